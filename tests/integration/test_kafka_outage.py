"""The broker goes away under load and comes back: HTTP keeps answering, Kafka resumes, nothing is lost."""
import json
import time
import uuid

import httpx

from tests.scenarios.kafka_runner import KafkaRunner
from tests.server import ServerProcess

FUTURE = 10**15
TARGET = "outage.server"


def test_broker_stopped_and_restarted_under_load(kafka_broker):
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 4)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    server = ServerProcess(kafka_flags=["--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap,
                                        "--api-kafka-topic", topic, "--api-kafka-target", TARGET]).start()
    runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", TARGET, timeout=120)
    try:
        runner.request(runner.envelope("promises.read", {"id": "warm-up"}))  # the server has joined its group
        acknowledged = {}
        for i in range(300):  # acknowledged by the broker before it goes down
            env = runner.envelope("promises.create", {"id": f"{topic}-{i}", "timeout": FUTURE})
            runner.producer.send(topic, value=json.dumps(env).encode(), key=str(i).encode())
            acknowledged[env["correlationId"]] = f"{topic}-{i}"
        runner.producer.flush(30)
        kafka_broker.stop()  # while the server is still working through them
        try:
            during = httpx.post(f"{server.url}/promises", json={"id": f"{topic}-http", "timeout": FUTURE}, timeout=10)
            assert during.status_code == 201, during.text
            time.sleep(3)
            assert httpx.get(f"{server.url}/promises/{topic}-http", timeout=10).status_code == 200
        finally:
            kafka_broker.start()
        after = runner.envelope("promises.create", {"id": f"{topic}-after", "timeout": FUTURE})
        runner.send(after)
        acknowledged[after["correlationId"]] = f"{topic}-after"
        runner.collector.wait_all(list(acknowledged), timeout=120)
        for cid, pid in acknowledged.items():
            replies = runner.collector.replies[cid]
            assert all(r == replies[0] for r in replies) and replies[0]["success"], replies
            assert replies[0]["response"]["id"] == pid
        assert server.proc.poll() is None, "the server must survive the outage"
    finally:
        runner.close()
        server.stop()

