"""The Kafka envelope, reply routing, bad input and delivery rules, against a real server and broker."""
import json
import subprocess
import time
import uuid
import zlib

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.scenarios.kafka_runner import KafkaRunner
from tests.server import ServerProcess

TARGET = "transport.server"
FUTURE = 10**15
REPLY_TIMEOUT = "3s"  # --api-kafka-timeout: how long one undeliverable reply is retried


@pytest.fixture(scope="module")
def setup(kafka_broker):
    topic = f"transport-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 4)
    kafka_broker.create_topic(f"{topic}.replies", 8)
    kafka_broker.create_topic(f"{topic}.tasks", 3)
    kafka_broker.create_topic(f"{topic}.dead", 1)
    server = ServerProcess("--system-signal-timeout", "100ms", "--aio-sender-plugin-kafka-enable",
                           "--aio-sender-plugin-kafka-brokers", kafka_broker.bootstrap, kafka_flags=[
                               "--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap,
                               "--api-kafka-topic", topic, "--api-kafka-target", TARGET,
                               "--api-kafka-timeout", REPLY_TIMEOUT,
                               "--api-kafka-dead-letter-topic", f"{topic}.dead"]).start()
    runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", TARGET)
    yield kafka_broker, server, runner, topic
    runner.close()
    server.stop()


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """The first `count` records of a topic (all partitions, from the beginning)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             fetch_max_wait_ms=50)
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def group_lag(kafka, group: str, topic: str) -> int:
    """Records of `topic` the group has not committed yet."""
    admin = kafka.admin()
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap)
    try:
        committed = {tp: om.offset for tp, om in admin.list_group_offsets({group: None})[group].items()
                     if tp.topic == topic}
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(tps)
        return sum(ends[tp] - max(committed.get(tp, 0), 0) for tp in tps)
    finally:
        consumer.close()
        admin.close()


def test_readme_and_code_spellings_are_both_accepted(setup):
    _, _, runner, _ = setup
    pid = f"spell-{uuid.uuid4().hex[:6]}"
    # README: idempotencyKey; code: iKey; they are the same key
    first = runner.request(runner.envelope("promises.create", {"id": pid, "timeout": FUTURE, "idempotencyKey": "k"}))
    again = runner.request(runner.envelope("promises.create", {"id": pid, "timeout": FUTURE, "iKey": "k"}))
    assert first["success"] and again["success"], (first, again)
    assert again["response"]["idempotencyKeyForCreate"] == "k"
    # README's flat createtask payload
    flat = runner.request(runner.envelope("promises.createtask", {
        "id": f"{pid}-t", "timeout": FUTURE, "tags": {"resonate:invoke": "poll://any@nobody"},
        "taskProcessId": "worker-1", "taskTtl": 30000}))
    assert flat["success"], flat
    assert flat["response"]["task"]["processId"] == "worker-1"
    assert flat["response"]["promise"]["id"] == f"{pid}-t"
    # README's expiryInMilliseconds for locks
    lock = runner.request(runner.envelope("locks.acquire", {
        "resourceId": pid, "executionId": "e", "processId": "p", "expiryInMilliseconds": 45000}))
    assert lock["success"] and lock["response"]["ttl"] == 45000, lock
    # schedules take `description` in and give `desc` out
    sched = runner.request(runner.envelope("schedules.create", {
        "id": pid, "description": "nightly", "cron": "0 0 * * *", "promiseId": "p.{{.timestamp}}",
        "promiseTimeout": 60000}))
    assert sched["success"] and sched["response"]["desc"] == "nightly", sched
    # search tags are honoured (the reference ignores them)
    runner.request(runner.envelope("promises.create", {"id": f"{pid}-a", "timeout": FUTURE, "tags": {"k": "1"}}))
    runner.request(runner.envelope("promises.create", {"id": f"{pid}-b", "timeout": FUTURE, "tags": {"k": "2"}}))
    found = runner.request(runner.envelope("promises.search", {"id": f"{pid}-*", "tags": {"k": "2"}}))
    assert [p["id"] for p in found["response"]["promises"]] == [f"{pid}-b"]
    # bodiless operations omit `response`
    released = runner.request(runner.envelope("locks.release", {"resourceId": pid, "executionId": "e"}))
    assert released["success"] and "response" not in released, released


def test_envelope_keys_are_case_insensitive(setup):
    _, _, runner, _ = setup
    cid = uuid.uuid4().hex
    reply = runner.request({"Target": TARGET, "REPLYTO": {"Topic": runner.reply_topic, "TARGET": "test-client"},
                            "CorrelationID": cid, "Operation": "promises.read", "Payload": {"ID": "nope"},
                            "correlationId": cid})
    assert reply["error"]["code"] == 40400, reply


def librdkafka_partitions(kafka, kcat: str, topic: str, keys: list[str]) -> dict[bytes, int]:
    """Where librdkafka's default partitioner (kcat, as the reference's confluent-kafka-go) puts each key."""
    kafka.create_topic(topic, 8)
    lines = "".join(f"{k}:probe\n" for k in keys)
    subprocess.run([kcat, "-P", "-b", kafka.bootstrap, "-t", topic, "-K:"], input=lines.encode(), check=True,
                   timeout=60)
    return {r.key: r.partition for r in read_topic(kafka.bootstrap, topic, len(keys))}


def test_keyed_replies_land_where_librdkafka_puts_the_key(setup, kcat):
    kafka, _, runner, topic = setup
    keys = ["user-123", "order-77", "zeta", "a", "worker-7"]
    expected = librdkafka_partitions(kafka, kcat, f"{topic}.librdkafka", keys)
    assert len(set(expected.values())) > 1  # the keys spread, so the comparison means something
    sent = {}
    for i, key in enumerate(keys):
        key_field = "partitionKey" if i % 2 else "key"  # the README's spelling and the code's
        env = runner.envelope("promises.read", {"id": "nope"})
        env["replyTo"][key_field] = key
        runner.send(env)
        sent[env["correlationId"]] = key.encode()
    explicit = runner.envelope("promises.read", {"id": "nope"})
    explicit["replyTo"]["partition"] = 5
    runner.send(explicit)
    runner.collector.wait_all(list(sent) + [explicit["correlationId"]])
    by_cid = {json.loads(r.value)["correlationId"]: r for r in runner.collector.records}
    for cid, key in sent.items():
        record = by_cid[cid]
        assert record.key == key
        assert record.partition == expected[key] == zlib.crc32(key) % 8, (key, record.partition, expected[key])
    assert by_cid[explicit["correlationId"]].partition == 5


def test_redelivered_request_gets_the_identical_reply_and_changes_nothing(setup):
    _, server, runner, _ = setup
    pid = f"dup-{uuid.uuid4().hex[:6]}"
    env = runner.envelope("promises.create", {"id": pid, "timeout": FUTURE})  # no key: a re-run would be 40900
    runner.send(env)
    runner.send(env)
    replies = runner.collector.wait(env["correlationId"], count=2)
    assert replies[0] == replies[1] and replies[0]["success"], replies
    # the same create with a new correlation id does run, and conflicts
    other = runner.request(runner.envelope("promises.create", {"id": pid, "timeout": FUTURE}))
    assert other["error"]["code"] == 40900
    assert httpx.get(f"{server.url}/promises/{pid}").json()["createdOn"] == replies[0]["response"]["createdOn"]


def test_bad_messages_get_an_error_reply_or_a_dead_letter_and_the_rest_is_served(setup):
    kafka, _, runner, topic = setup
    key = b"same-partition"  # every message below sits on one partition, in this order
    good_before = runner.envelope("promises.read", {"id": "nope"})
    runner.send(good_before, key=key)
    dead = [b"this is not json", b"[1, 2, 3]",
            json.dumps({"target": TARGET, "correlationId": "x", "operation": "promises.read",
                        "payload": {"id": "a"}}).encode(),  # no replyTo
            json.dumps({"target": TARGET, "replyTo": {"topic": ""}, "correlationId": "y",
                        "operation": "promises.read", "payload": {"id": "a"}}).encode()]
    for value in dead:
        runner.send(value, key=key)
    other_tenant = runner.envelope("promises.read", {"id": "nope"})
    other_tenant["target"] = "someone.else"
    runner.send(other_tenant, key=key)
    unknown = runner.envelope("promises.frobnicate", {"id": "a"})
    invalid_payload = runner.envelope("promises.create", {"timeout": FUTURE})
    wrong_type = runner.envelope("promises.create", {"id": 7, "timeout": "soon"})
    no_payload = runner.envelope("locks.heartbeat", None)
    del no_payload["payload"]
    no_correlation = runner.envelope("locks.heartbeat", {"processId": "p"})
    del no_correlation["correlationId"]
    for env in (unknown, invalid_payload, wrong_type, no_payload, no_correlation):
        runner.send(env, key=key)
    good_after = runner.envelope("promises.create", {"id": f"after-{uuid.uuid4().hex[:6]}", "timeout": FUTURE})
    runner.send(good_after, key=key)

    assert runner.collector.wait(good_after["correlationId"])[0]["success"]
    assert runner.collector.wait(good_before["correlationId"])[0]["error"]["code"] == 40400
    error = runner.collector.wait(unknown["correlationId"])[0]["error"]
    assert error["code"] == 40000 and error["message"] == "unknown operation: promises.frobnicate"
    error = runner.collector.wait(invalid_payload["correlationId"])[0]["error"]
    assert error["code"] == 40000 and "id" in error["details"][0]["message"], error
    error = runner.collector.wait(wrong_type["correlationId"])[0]["error"]
    assert error["code"] == 40000 and "id" in error["details"][0]["message"], error
    error = runner.collector.wait(no_payload["correlationId"])[0]["error"]
    assert error["code"] == 40000 and "payload" in error["message"], error
    anonymous = [r for r in runner.collector.wait("", count=1) if r["operation"] == "locks.heartbeat"]
    assert anonymous and anonymous[0]["error"]["code"] == 40000
    assert "correlationId" in anonymous[0]["error"]["message"]
    assert other_tenant["correlationId"] not in runner.collector.replies

    letters = read_topic(kafka.bootstrap, f"{topic}.dead", len(dead))
    assert sorted(r.value for r in letters) == sorted(dead)
    for record in letters:
        headers = dict(record.headers)
        assert headers["resonate.dlq.topic"] == topic.encode()
        assert headers["resonate.dlq.reason"]
        assert int(headers["resonate.dlq.offset"]) >= 0 and int(headers["resonate.dlq.partition"]) >= 0


def test_a_reply_to_a_missing_topic_does_not_delay_other_replies(setup):
    kafka, _, runner, topic = setup
    # a topic the broker refuses to create (it collides with an existing one), whatever auto-create says
    taken = f"taken_{uuid.uuid4().hex[:6]}"
    kafka.create_topic(taken, 1)
    stuck = runner.envelope("promises.read", {"id": "nope"})
    stuck["replyTo"]["topic"] = taken.replace("_", ".")
    key = b"stuck-partition"
    runner.send(stuck, key=key)
    behind = [runner.envelope("promises.read", {"id": "nope"}) for _ in range(20)]
    for env in behind:
        runner.send(env, key=key)
    runner.collector.wait_all([e["correlationId"] for e in behind], timeout=30)
    # the bad reply is given up on after the retry bound and its offset committed: the group catches up
    deadline = time.monotonic() + 30
    while group_lag(kafka, f"resonate-servers.{TARGET}", topic) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert group_lag(kafka, f"resonate-servers.{TARGET}", topic) == 0
    assert stuck["correlationId"] not in runner.collector.replies


def test_kafka_plugin_delivers_task_messages_with_key_and_trace_headers(setup):
    kafka, _, runner, topic = setup
    pid = f"plug-{uuid.uuid4().hex[:6]}"
    env = runner.envelope("promises.create", {
        "id": pid, "timeout": FUTURE, "tags": {"resonate:invoke": f"kafka://{topic}.tasks?key=worker-{pid}"}})
    runner.producer.send(runner.topic, value=json.dumps(env).encode(),
                         headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
    assert runner.collector.wait(env["correlationId"])[0]["success"]
    records = [r for r in read_topic(kafka.bootstrap, f"{topic}.tasks", 1) if r.key == f"worker-{pid}".encode()]
    assert records, "no task message"
    message = json.loads(records[0].value)
    assert message["type"] == "invoke" and message["task"]["rootPromiseId"] == pid
    assert dict(records[0].headers)["traceparent"] == b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert records[0].partition == zlib.crc32(f"worker-{pid}".encode()) % 3  # as librdkafka would
