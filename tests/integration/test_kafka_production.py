"""The Kafka pipeline in production conditions, in-process on a real kernel (SQLite) and a dedicated
real broker with topic auto-creation OFF (the usual production setting):

- undeliverable replies (missing topic, oversized, refused) never hold back other requests;
- a full kernel holds Kafka requests back instead of answering 50301;
- no injected failure (operation, producer, delivery callback, poll loop) stops a partition;
- request topics created after start are consumed, and multi-line fragments are dead-lettered with
  one hint in the log;
- SASL (PLAIN, SCRAM-SHA-256/512) and TLS with a CA file, for the API and (a server process) the
  Kafka plugin, whose gzip compression is checked in the broker's log segment;
- a new group can start at the end of the topic.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import uuid

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from resonate.api.kafka.consumer import KafkaPipeline, PipelineSettings
from resonate.core import operations
from resonate.core.codes import ApiError
from resonate.core.kernel import Kernel
from resonate.core.operations import decode
from resonate.core.store.sqlite import SqliteStore
from resonate.core.delivery.kafka import security_from
from resonate.observability.logs import thread_stacks
from tests.infra.fixtures import SASL_USERS
from tests.scenarios.kafka_runner import KafkaRunner
from tests.server import ServerProcess

FUTURE = 10**15
TARGET = "prod.server"
SMALL_TOPIC_MAX_BYTES = 4096  # the small reply topic's max.message.bytes


@pytest.fixture
def broker(production_kafka_broker):
    """A broker that creates no topic on demand (auto.create.topics.enable=false)."""
    return production_kafka_broker


def new_topics(broker, partitions: int = 1) -> str:
    base = f"prod-{uuid.uuid4().hex[:8]}"
    broker.create_topic(base, partitions)
    broker.create_topic(f"{base}.replies", 4)
    broker.create_topic(f"{base}.dlq", 1)
    return base


class Harness:
    def __init__(self, broker, topic: str, *, queue_limit: int = 1000, reply_timeout_ms: int = 2_000,
                 bootstrap: str | None = None, **settings):
        self.kernel = Kernel(SqliteStore(os.path.join(tempfile.mkdtemp(prefix="resonate-prod-"), "k.db")),
                             queue_limit=queue_limit)
        self.kernel.start()
        self.group = f"{topic}-group"
        self.pipeline = KafkaPipeline(self.kernel, PipelineSettings(
            brokers=[bootstrap or broker.bootstrap], topics=settings.pop("topics", [topic]), target=TARGET, group=self.group,
            dead_letter_topic=f"{topic}.dlq", reply_timeout_ms=reply_timeout_ms, **settings))
        self.runner = KafkaRunner(broker.bootstrap, topic, f"{topic}.replies", TARGET, timeout=60)
        self.pipeline.start()

    def close(self) -> None:
        self.pipeline.stop(5)
        self.kernel.stop()
        self.runner.close()


def read_all(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list = []
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while len(records) < count and not deadline.is_set():
                for batch in consumer.poll(timeout_ms=100).values():
                    records.extend(batch)
        finally:
            timer.cancel()
        return records
    finally:
        consumer.close()


def wait_committed(bootstrap: str, group: str, topic: str, timeout: float = 30.0) -> None:
    """Until the group's committed offsets reach the end of every partition of the topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(tps)
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        try:
            while True:
                committed = {tp: om.offset for tp, om in admin.list_group_offsets({group: None})[group].items()}
                lag = {tp.partition: ends[tp] - committed.get(tp, 0) for tp in tps if committed.get(tp, 0) < ends[tp]}
                if not lag:
                    return
                if stop.wait(0.1):
                    raise AssertionError(f"group {group} did not commit {topic} to its end: lag {lag}")
        finally:
            timer.cancel()
    finally:
        consumer.close()
        admin.close()


def headers(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers or []}


# ----------------------------------------------------------------------------------- no request holds back another
def test_undeliverable_replies_are_dead_lettered_and_hold_back_no_other_request(broker):
    topic = new_topics(broker, partitions=4)
    small = f"{topic}.small"
    broker.create_topic(small, 1, config={"max.message.bytes": str(SMALL_TOPIC_MAX_BYTES)})
    h = Harness(broker, topic)
    try:
        good, bad = [], {}
        big_param = {"data": "x" * (SMALL_TOPIC_MAX_BYTES * 2)}
        for i in range(1050):
            if i % 21 == 20:  # 50 bad ones, interleaved
                n = len(bad)
                kind = ("missing", "oversized", "refused")[n % 3]
                env = h.runner.envelope("promises.create", {"id": f"{topic}-bad-{n}", "timeout": FUTURE,
                                                            "param": big_param if kind == "oversized" else {}})
                env["replyTo"]["topic"] = {"missing": f"{topic}.nowhere", "oversized": small,
                                           "refused": "bad topic name!"}[kind]
                bad[env["correlationId"]] = kind
            else:
                env = h.runner.envelope("promises.create", {"id": f"{topic}-good-{i}", "timeout": FUTURE})
                good.append(env["correlationId"])
            h.runner.producer.send(topic, json.dumps(env).encode(), partition=i % 4)
        h.runner.producer.flush(30)
        h.runner.collector.wait_all(good, timeout=120)
        for cid in good:
            assert h.runner.collector.replies[cid][0]["success"], h.runner.collector.replies[cid]
        dead = read_all(broker.bootstrap, f"{topic}.dlq", len(bad))
        dead_cids = {json.loads(r.value)["correlationId"]: headers(r)["resonate.dlq.reason"] for r in dead}
        assert set(dead_cids) == set(bad), (len(dead_cids), len(bad))
        for cid, reason in dead_cids.items():
            assert "not delivered" in reason, reason
        # every oversized reply was replaced by an error reply that fits
        replaced = read_all(broker.bootstrap, small, sum(1 for k in bad.values() if k == "oversized"))
        replacements = {json.loads(r.value)["correlationId"]: json.loads(r.value) for r in replaced}
        assert set(replacements) == {c for c, k in bad.items() if k == "oversized"}
        assert all(not r["success"] and "larger than the broker accepts" in r["error"]["message"]
                   for r in replacements.values())
        assert h.pipeline.stats.reply_failures == len(bad)
        wait_committed(broker.bootstrap, h.group, topic)
    finally:
        h.close()


# ----------------------------------------------------------------------------------- back-pressure
# The flood's clients back off this long after a 50301, as clients do. Retrying at once, four threads
# spinning on refusals fight every other thread of this process for the GIL (the consumer's and its
# heartbeats' included), which no server sees: its HTTP clients are served by one event-loop thread.
REFUSED_CLIENT_BACKOFF_S = 0.002

def test_a_full_kernel_holds_kafka_requests_back_instead_of_answering_5xx(broker):
    topic = new_topics(broker, partitions=2)
    h = Harness(broker, topic, queue_limit=4)
    flooding = threading.Event()
    refused = []

    def http_like_flood():  # another transport's clients keep the kernel full; they get 50301
        n = 0
        while not flooding.is_set():
            n += 1
            future = h.kernel.submit(decode("promises.create", {"id": f"{topic}-flood-{n}", "timeout": FUTURE}))
            try:
                future.result(30)
            except ApiError as e:
                refused.append(e.code)
                flooding.wait(REFUSED_CLIENT_BACKOFF_S)  # as a refused client backs off before it retries

    threads = [threading.Thread(target=http_like_flood) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        sent = []
        for i in range(200):
            env = h.runner.envelope("promises.create", {"id": f"{topic}-k-{i}", "timeout": FUTURE})
            h.runner.producer.send(topic, json.dumps(env).encode(), partition=i % 2)
            sent.append(env["correlationId"])
        h.runner.producer.flush(30)
        try:
            h.runner.collector.wait_all(sent, timeout=120)
        except TimeoutError as e:  # where things stood, for whoever looks next (seen twice in full CI runs)
            raise TimeoutError(f"{e}; pipeline {h.pipeline.stats}; kernel pending {h.kernel._pending}, "
                               f"waiting {h.kernel._waiting}, batches {h.kernel.batches}; "
                               f"flood refusals {len(refused)}; threads:\n{thread_stacks(6)}") from None
    finally:
        flooding.set()
        for t in threads:
            t.join(30)
        h.close()
    assert 50301 in refused  # the kernel was full while the Kafka requests went through
    codes = [r.get("error", {}).get("code") for cid in sent for r in h.runner.collector.replies[cid]]
    assert all(r["success"] for cid in sent for r in h.runner.collector.replies[cid]), codes


# ----------------------------------------------------------------------------------- no failure stops a partition
class Once:
    """Raises the first time it is called, then behaves as the wrapped callable."""

    def __init__(self, wrapped):
        self.wrapped, self.raised = wrapped, False

    def __call__(self, *args, **kwargs):
        if not self.raised:
            self.raised = True
            raise RuntimeError("injected fault")
        return self.wrapped(*args, **kwargs)


def inject(h: Harness, fault: str, monkeypatch) -> Once:
    p = h.pipeline
    if fault == "operation":
        executor = operations.EXECUTORS[operations.CreatePromise]
        once = Once(executor)
        monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, once)
    elif fault == "producer":
        p.ready.wait(30)
        once = Once(p._producer.send)
        monkeypatch.setattr(p._producer, "send", once)
    elif fault == "delivery-callback":
        once = Once(p._delivered)
        monkeypatch.setattr(p, "_delivered", once)
    else:
        once = Once(p._flow_control)
        monkeypatch.setattr(p, "_flow_control", once)
    return once


@pytest.mark.parametrize("fault", ["operation", "producer", "delivery-callback", "poll-loop"])
def test_no_failure_stops_a_partition(broker, fault, monkeypatch):
    topic = new_topics(broker, partitions=1)
    h = Harness(broker, topic)
    try:
        first = h.runner.request(h.runner.envelope("promises.create", {"id": f"{topic}-0", "timeout": FUTURE}))
        assert first["success"], first  # the reply topic is known: later replies take the fast path
        once = inject(h, fault, monkeypatch)
        sent = []
        for i in range(1, 21):
            env = h.runner.envelope("promises.create", {"id": f"{topic}-{i}", "timeout": FUTURE})
            h.runner.send(env)
            sent.append(env["correlationId"])
        h.runner.collector.wait_all(sent, timeout=60)
        assert once.raised, f"the {fault} fault was never triggered"
        replies = [h.runner.collector.replies[cid][0] for cid in sent]
        # an operation that raised is run again (its error was not stored), as a redelivery would
        assert all(r["success"] for r in replies), [r for r in replies if not r["success"]]
        wait_committed(broker.bootstrap, h.group, topic)
    finally:
        h.close()


# ----------------------------------------------------------------------------------- topics and fragments
def test_a_request_topic_created_after_start_is_consumed(broker):
    topic = new_topics(broker)
    late = f"{topic}.late"
    h = Harness(broker, topic, topics=[topic, late], topic_refresh_ms=1_000)
    try:
        assert h.runner.request(h.runner.envelope("promises.read", {"id": "nope"}))["error"]["code"] == 40400
        broker.create_topic(late, 1)
        env = h.runner.envelope("promises.create", {"id": f"{topic}-late", "timeout": FUTURE})
        h.runner.producer.send(late, json.dumps(env).encode()).get(30)
        assert h.runner.collector.wait(env["correlationId"], 60)[0]["success"]
    finally:
        h.close()


def test_multi_line_fragments_are_dead_lettered_with_one_hint(broker, caplog):
    topic = new_topics(broker)
    h = Harness(broker, topic)
    pretty = json.dumps(h.runner.envelope("promises.read", {"id": "x"}), indent=2).splitlines()
    try:
        with caplog.at_level(logging.INFO, logger="resonate.kafka"):
            for line in pretty:  # what `echo '{ ... }' | kcat -P` sends: one message per line
                h.runner.send(line.encode())
            dead = read_all(broker.bootstrap, f"{topic}.dlq", len(pretty))
            h.runner.sentinels([0])  # every fragment was handled before this reply
        assert [r.value.decode() for r in dead] == pretty
        hints = [r for r in caplog.records if "ONE line" in r.getMessage()]
        assert len(hints) == 1, [r.getMessage() for r in caplog.records]
        assert "dead-lettered:" not in caplog.text  # no line per fragment
    finally:
        h.close()


def test_request_log_lines_carry_request_and_correlation_ids(broker, caplog):
    topic = new_topics(broker)
    h = Harness(broker, topic)
    try:
        env = h.runner.envelope("promises.create", {"timeout": FUTURE})
        env["requestId"] = "rid-42"
        with caplog.at_level(logging.DEBUG, logger="resonate.kafka"):
            reply = h.runner.request(env)
            other = h.runner.envelope("promises.read", {"id": "x"})
            other["target"] = "someone.else"
            h.runner.send(other)
            h.runner.sentinels([0])
        assert reply["error"]["message"] == "validation error: id is required", reply
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refused and "rid-42" in refused[0] and env["correlationId"] in refused[0], refused
        skipped = [r for r in caplog.records if "is not this server's" in r.getMessage()]
        assert skipped and skipped[0].levelno == logging.DEBUG
    finally:
        h.close()


# ----------------------------------------------------------------------------------- managed brokers
def password_file(tmp_path) -> str:
    path = tmp_path / "kafka-password"
    path.write_text(SASL_USERS["resonate"] + "\n")
    return str(path)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_api_authenticates_with_sasl(broker, mechanism, tmp_path):
    topic = new_topics(broker)
    security = security_from("SASL_PLAINTEXT", mechanism, "resonate", password_file(tmp_path), "", "")
    h = Harness(broker, topic, bootstrap=broker.sasl_bootstrap, security=security)
    try:
        reply = h.runner.request(h.runner.envelope("promises.create", {"id": f"{topic}-sasl", "timeout": FUTURE}))
        assert reply["success"], reply
    finally:
        h.close()


def test_the_api_connects_with_tls_and_a_ca_file(broker):
    topic = new_topics(broker)
    security = security_from("SSL", "", "", "", "", str(broker.ca_file))
    h = Harness(broker, topic, bootstrap=broker.ssl_bootstrap, security=security)
    try:
        reply = h.runner.request(h.runner.envelope("promises.create", {"id": f"{topic}-tls", "timeout": FUTURE}))
        assert reply["success"], reply
    finally:
        h.close()


def test_tls_without_the_ca_file_is_refused(broker):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):  # the broker's certificate is signed by a CA the system does not trust
        KafkaProducer(bootstrap_servers=broker.ssl_bootstrap, security_protocol="SSL",
                      max_block_ms=5_000).partitions_for("x")


def test_a_wrong_sasl_password_gets_no_connection(broker, tmp_path):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    wrong = security_from("SASL_PLAINTEXT", "SCRAM-SHA-256", "resonate", password_file(tmp_path), "", "")
    options = dict(wrong.client_options(), sasl_plain_password="not-the-password")
    with pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=broker.sasl_bootstrap, max_block_ms=5_000, **options).partitions_for("x")


def test_the_kafka_plugin_authenticates_and_compresses(broker, tmp_path):
    topic = f"plugin-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 1)
    promise_id = "compressible-" + "abcdefgh" * 40  # plain text in the log segment unless compressed
    server = ServerProcess(
        "--system-signal-timeout", "100ms", "--aio-sender-plugin-kafka-enable",
        "--aio-sender-plugin-kafka-brokers", broker.sasl_bootstrap, "--aio-kafka-compression", "gzip",
        "--aio-kafka-workers", "2", "--aio-kafka-size", "10",
        "--api-kafka-security-protocol", "SASL_PLAINTEXT", "--api-kafka-sasl-mechanism", "SCRAM-SHA-512",
        "--api-kafka-sasl-username", "resonate", "--api-kafka-sasl-password-file", password_file(tmp_path)).start()
    try:
        created = httpx.post(f"{server.url}/promises", json={
            "id": promise_id, "timeout": FUTURE, "tags": {"resonate:invoke": f"kafka://{topic}?key=k"}}, timeout=30)
        assert created.status_code == 201, created.text
        [record] = read_all(broker.bootstrap, topic, 1)
        assert promise_id in record.value.decode() and record.key == b"k"
        segments = list((broker.data_dir / f"{topic}-0").glob("*.log"))
        raw = b"".join(p.read_bytes() for p in segments)
        assert raw and promise_id.encode() not in raw  # stored gzip-compressed, as sent
    finally:
        server.stop()


# ----------------------------------------------------------------------------------- groups
def test_a_new_group_can_start_at_the_end_of_the_topic(broker):
    """Taking over from another server's group without replaying what is already on the topic."""
    topic = new_topics(broker)
    runner = KafkaRunner(broker.bootstrap, topic, f"{topic}.replies", TARGET)
    old = [runner.envelope("promises.create", {"id": f"{topic}-old-{i}", "timeout": FUTURE}) for i in range(5)]
    try:
        for env in old:
            env["replyTo"]["partition"] = 0  # every reply on one partition: a replayed one comes first
            runner.send(env)
    finally:
        runner.close()
    h = Harness(broker, topic, auto_offset_reset="latest")
    try:
        # the group has joined (and so taken its starting offset) once a request sent now is answered;
        # until then, requests are sent again with new ids
        fresh = None
        for attempt in range(60):
            fresh = h.runner.envelope("promises.create", {"id": f"{topic}-new-{attempt}", "timeout": FUTURE})
            fresh["replyTo"]["partition"] = 0
            h.runner.send(fresh)
            try:
                h.runner.collector.wait(fresh["correlationId"], timeout=2)
                break
            except TimeoutError:
                continue
        assert h.runner.collector.replies.get(fresh["correlationId"]), "the new group never answered"
        assert not any(env["correlationId"] in h.runner.collector.replies for env in old)  # not replayed
    finally:
        h.close()


def test_once_every_request_topic_is_subscribed_no_topic_list_is_asked_for(broker, monkeypatch):
    """kafka-python's `consumer.topics()` waits for its answer without a time limit: the poll thread stops
    asking once it consumes every request topic."""
    topic = new_topics(broker)
    asked = []
    real = KafkaConsumer.topics
    monkeypatch.setattr(KafkaConsumer, "topics", lambda self: asked.append(1) or real(self))
    h = Harness(broker, topic, topic_refresh_ms=1)  # a question would be due on every poll turn
    try:
        assert h.runner.request(h.runner.envelope("promises.read", {"id": "nope"}))["error"]["code"] == 40400
        subscribed = len(asked)
        assert subscribed >= 1
        for i in range(3):  # each answer takes poll turns, every one of them past the refresh interval
            env = h.runner.envelope("promises.create", {"id": f"{topic}-{i}", "timeout": FUTURE})
            assert h.runner.request(env)["success"]
        assert len(asked) == subscribed
    finally:
        h.close()
