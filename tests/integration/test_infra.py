"""Smoke tests of the real services the integration tests run against."""

from __future__ import annotations

import subprocess
import uuid

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.infra.fixtures import kafka_broker, kcat, postgres_server  # noqa: F401
from tests.infra.ports import port_is_open


def _topic() -> str:
    return f"infra-smoke-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5,
                             request_timeout_ms=15000)
    try:
        for v in values:
            producer.send(topic, v).get(timeout=30)
    finally:
        producer.close()


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=15000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[bytes] = []
        for msg in consumer:
            out.append(msg.value)
            if len(out) >= expected:
                break
        return out
    finally:
        consumer.close()


def test_kafka_produce_and_consume(kafka_broker):
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=1)
    _produce(kafka_broker.bootstrap, topic, b"hello")
    assert _consume_all(kafka_broker.bootstrap, topic, 1) == [b"hello"]


def test_kafka_consumer_group_commit(kafka_broker):
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=2)
    _produce(kafka_broker.bootstrap, topic, b"a", b"b")
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap,
                             group_id=f"g-{topic}", auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000)
    try:
        got = []
        for msg in consumer:
            got.append(msg.value)
            if len(got) == 2:
                break
        consumer.commit()
    finally:
        consumer.close()
    assert sorted(got) == [b"a", b"b"]


def test_kafka_restart_keeps_port_and_data(kafka_broker):
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=1)
    bootstrap = kafka_broker.bootstrap
    _produce(bootstrap, topic, b"before")

    kafka_broker.stop()
    assert not kafka_broker.is_running()
    assert not port_is_open(kafka_broker.port)
    kafka_broker.start()

    assert kafka_broker.bootstrap == bootstrap
    _produce(bootstrap, topic, b"after")
    assert _consume_all(bootstrap, topic, 2) == [b"before", b"after"]


def test_kafka_crash_and_restart(kafka_broker):
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=1)
    _produce(kafka_broker.bootstrap, topic, b"acked")  # acks=all: on disk (page cache)
    kafka_broker.kill()
    kafka_broker.start()
    _produce(kafka_broker.bootstrap, topic, b"after-crash")
    assert _consume_all(kafka_broker.bootstrap, topic, 2) == [b"acked", b"after-crash"]


def test_kafka_auto_create_topics_is_on_by_default(kafka_broker):
    topic = _topic()
    _produce(kafka_broker.bootstrap, topic, b"auto")
    assert _consume_all(kafka_broker.bootstrap, topic, 1) == [b"auto"]


def test_postgres_select_1(postgres_server):
    with psycopg.connect(postgres_server.dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_user, current_database()").fetchone() == (
            postgres_server.user, postgres_server.database)
    assert postgres_server.dsn == (
        f"postgresql://resonate:resonate@127.0.0.1:{postgres_server.port}/{postgres_server.database}"
    )


def test_postgres_create_and_drop_database(postgres_server):
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    dsn = postgres_server.create_database(name)
    with psycopg.connect(dsn) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (42)")
        assert conn.execute("select x from t").fetchone() == (42,)
    postgres_server.drop_database(name)
    with psycopg.connect(postgres_server.dsn_for("postgres")) as conn:
        assert conn.execute("select count(*) from pg_database where datname = %s", (name,)).fetchone() == (0,)


def test_postgres_rejects_a_wrong_password(postgres_server):
    bad = f"postgresql://resonate:wrong@127.0.0.1:{postgres_server.port}/{postgres_server.database}"
    try:
        psycopg.connect(bad, connect_timeout=5).close()
    except psycopg.OperationalError as e:
        assert "password authentication failed" in str(e)
    else:  # pragma: no cover
        raise AssertionError("PostgreSQL accepted a wrong password")


def test_kcat_lists_metadata(kafka_broker, kcat):
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=3)
    r = subprocess.run([kcat, "-b", kafka_broker.bootstrap, "-L", "-t", topic, "-m", "15"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "1 brokers:" in r.stdout
    assert f"broker 1 at {kafka_broker.bootstrap}" in r.stdout
    assert f'topic "{topic}" with 3 partitions' in r.stdout
