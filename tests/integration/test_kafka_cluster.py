"""Several server processes on one topic: tenants with their own targets, and group members that crash."""
import os
import random
import tempfile
import threading
import time
import uuid

import httpx

from tests.scenarios.kafka_runner import KafkaRunner
from tests.server import ServerProcess

FUTURE = 10**15


def kafka_server(kafka_broker, topic: str, target: str, **kwargs) -> ServerProcess:
    return ServerProcess(kafka_flags=["--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap,
                                      "--api-kafka-topic", topic, "--api-kafka-target", target], **kwargs)


def wait_for_log(server: ServerProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_tail(400):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log of {server.url}:\n{server.log_tail()}")


def all_promise_ids(server: ServerProcess, pattern: str) -> list[str]:
    ids, params = [], {"id": pattern, "limit": 100}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while True:
            page = client.get("/promises", params=params).json()
            ids += [p["id"] for p in page["promises"]]
            if not page["cursor"]:
                return ids
            params = {"cursor": page["cursor"]}


def test_two_targets_on_one_topic_each_answer_their_own_requests(kafka_broker):
    topic = f"tenants-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 4)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    tenants = {"tenant.a": kafka_server(kafka_broker, topic, "tenant.a").start(),
               "tenant.b": kafka_server(kafka_broker, topic, "tenant.b").start()}
    runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", target="")
    try:
        for server in tenants.values():  # each tenant is its own consumer group: both hold every partition
            wait_for_log(server, "kafka: assigned ['0', '1', '2', '3']", timeout=90)
        sent = {}
        for i in range(40):
            target = "tenant.a" if i % 2 == 0 else "tenant.b"
            env = runner.envelope("promises.create", {"id": f"{topic}-{i}", "timeout": FUTURE})
            env["target"] = target
            env["replyTo"]["target"] = target
            runner.send(env)
            sent[env["correlationId"]] = (target, f"{topic}-{i}")
        runner.collector.wait_all(list(sent), timeout=60)
        runner.sentinels(range(4), targets=list(tenants))  # a second answer, if any, arrived before these
        for cid, (target, pid) in sent.items():
            replies = runner.collector.replies[cid]
            assert len(replies) == 1 and replies[0]["success"] and replies[0]["target"] == target, replies
        for target, server in tenants.items():
            own = sorted(pid for t, pid in sent.values() if t == target)
            assert sorted(all_promise_ids(server, f"{topic}-*")) == own  # nothing executed by the other tenant
    finally:
        runner.close()
        for server in tenants.values():
            server.stop()


def test_group_members_share_partitions_and_a_killed_member_loses_and_duplicates_nothing(kafka_broker):
    topic = f"group-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 4)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    db = os.path.join(tempfile.mkdtemp(prefix="resonate-group-"), "shared.db")  # one store, two processes
    first = kafka_server(kafka_broker, topic, "group.server", db_path=db).start()
    wait_for_log(first, "kafka: assigned ['0', '1', '2', '3']")
    second = kafka_server(kafka_broker, topic, "group.server", db_path=db).start()
    runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", "group.server", timeout=60)
    try:
        wait_for_log(second, "kafka: assigned ['")  # the group rebalanced: both members hold partitions
        assert "kafka: assigned []" not in second.log_tail(400)
        sent: dict[str, str] = {}

        def produce():
            for i in range(300):
                env = runner.envelope("promises.create", {"id": f"{topic}-{i}", "timeout": FUTURE})  # no key
                sent[env["correlationId"]] = f"{topic}-{i}"
                runner.send(env, key=str(random.random()).encode())
                time.sleep(0.005)

        producer = threading.Thread(target=produce)
        producer.start()
        while len(runner.collector.replies) < 60:
            time.sleep(0.01)
        first.kill()  # SIGKILL mid-stream: its uncommitted requests go to the survivor
        producer.join()
        runner.collector.wait_all(list(sent), timeout=90)
        runner.sentinels(range(4))  # answered by the survivor after every redelivered request
        for cid, pid in sent.items():
            replies = runner.collector.replies[cid]
            assert all(r == replies[0] for r in replies), replies  # redelivery answers identically
            assert replies[0]["success"], replies  # a second execution of the create would be 40900
            assert replies[0]["response"]["id"] == pid
        assert sorted(all_promise_ids(second, f"{topic}-*")) == sorted(sent.values())  # each created once
    finally:
        runner.close()
        first.kill()
        second.stop()
