"""Kafka request-reply: round trips/s and p50/p99 at 1, 16 and 64 outstanding requests over a
multi-partition topic, beside a baseline from the same run on the same broker: a bare kafka-python
echo service (consume, produce the reply, wait for its ack, commit) with no core behind it.

    python bench/kafka_bench.py                       # starts its own broker and server
    python bench/kafka_bench.py --bootstrap 127.0.0.1:9092 --requests 2000 --partitions 8

`run_kafka(bootstrap=None, levels=(1, 16, 64), n=1000)` returns the rows, for bench/run.py.
The server's operation is `promises.create` (a durable write: SQLite, synchronous=FULL, group commit).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Row, make_row, print_table  # noqa: E402

FUTURE = 10**15


def echo_service(bootstrap: str, topic: str, stop) -> None:
    """The baseline: as little as a Kafka request-reply service can do, done the same safe way
    (the reply is acknowledged before the request's offset is committed)."""
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"echo-{topic}", enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=100)
        if not batches:
            continue
        for records in batches.values():
            for r in records:
                envelope = json.loads(r.value)
                reply = {"target": envelope["replyTo"]["target"], "correlationId": envelope["correlationId"],
                         "operation": envelope["operation"], "success": True, "response": envelope["payload"]}
                producer.send(envelope["replyTo"]["topic"], json.dumps(reply).encode())
        producer.flush()
        consumer.commit()
    consumer.close()
    producer.close()


class Client:
    """Keeps `outstanding` requests in flight: every reply sends the next request."""

    def __init__(self, bootstrap: str, topic: str, reply_topic: str, target: str):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        self.topic, self.reply_topic, self.target = topic, reply_topic, target
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, enable_idempotence=False)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
        tp = TopicPartition(reply_topic, 0)
        self.consumer.assign([tp])
        self.consumer.seek_to_end(tp)
        self.consumer.position(tp)

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()

    def _send(self, i: int, prefix: str, sent_at: dict) -> None:
        cid = f"{prefix}{i}"
        envelope = {"target": self.target, "replyTo": {"topic": self.reply_topic, "target": "bench"},
                    "correlationId": cid, "operation": "promises.create",
                    "payload": {"id": cid, "timeout": FUTURE}}
        sent_at[cid] = time.perf_counter()
        self.producer.send(self.topic, json.dumps(envelope).encode(), key=str(i).encode())

    def run(self, outstanding: int, n: int) -> tuple[float, list[float], int]:
        prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        failures = 0
        next_i = 0
        start = time.perf_counter()
        for _ in range(min(outstanding, n)):
            self._send(next_i, prefix, sent_at)
            next_i += 1
        deadline = time.monotonic() + 120
        while len(latencies) < n and time.monotonic() < deadline:
            for records in self.consumer.poll(timeout_ms=100).values():
                for r in records:
                    reply = json.loads(r.value)
                    began = sent_at.pop(reply["correlationId"], None)
                    if began is None:
                        continue  # a reply from an earlier level
                    latencies.append((time.perf_counter() - began) * 1000)
                    failures += not reply["success"]
                    if next_i < n:
                        self._send(next_i, prefix, sent_at)
                        next_i += 1
        return time.perf_counter() - start, latencies, failures


def _measure(label: str, client: Client, levels, n: int) -> list[Row]:
    client.run(16, min(n, 200))  # warm-up: group joined, metadata known
    rows = []
    for outstanding in levels:
        seconds, latencies, failures = client.run(outstanding, n)
        if failures:
            print(f"  {label}: {failures} failed replies at {outstanding} outstanding")
        rows.append(make_row(label, "create", outstanding, seconds, latencies))
    return rows


def run_kafka(bootstrap: str | None = None, levels=(1, 16, 64), n: int = 1000, partitions: int = 8) -> list[Row]:
    from tests.server import ServerProcess

    broker = None
    if bootstrap is None:
        from tests.infra.kafka_broker import KafkaBroker
        broker = KafkaBroker().start()
        bootstrap = broker.bootstrap
    admin_broker = broker
    run_id = uuid.uuid4().hex[:6]
    topics = {name: f"bench-{run_id}-{name}" for name in ("server", "server-replies", "echo", "echo-replies")}
    _create_topics(bootstrap, admin_broker, {topics["server"]: partitions, topics["echo"]: partitions,
                                              topics["server-replies"]: 1, topics["echo-replies"]: 1})
    stop = multiprocessing.Event()
    echo = multiprocessing.Process(target=echo_service, args=(bootstrap, topics["echo"], stop), daemon=True)
    echo.start()
    server = ServerProcess(kafka_flags=["--api-kafka-enable", "--api-kafka-brokers", bootstrap,
                                        "--api-kafka-topic", topics["server"], "--api-kafka-target", "bench"]).start()
    try:
        echo_client = Client(bootstrap, topics["echo"], topics["echo-replies"], "bench")
        server_client = Client(bootstrap, topics["server"], topics["server-replies"], "bench")
        try:
            rows = _measure("kafka echo, no core (baseline)", echo_client, levels, n)
            rows += _measure("resonate over kafka", server_client, levels, n)
        finally:
            echo_client.close()
            server_client.close()
    finally:
        server.stop()
        stop.set()
        echo.join(10)
        if echo.is_alive():
            echo.kill()
        if broker is not None:
            broker.close()
    return rows


def _create_topics(bootstrap: str, broker, topics: dict[str, int]) -> None:
    if broker is not None:
        for name, partitions in topics.items():
            broker.create_topic(name, partitions)
        return
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, p, 1) for name, p in topics.items()])
    finally:
        admin.close()
    time.sleep(1)


def print_rows(rows: list[Row], n: int, partitions: int) -> None:
    print_table(rows, f"Kafka request-reply, {partitions}-partition request topic, {n} requests per cell")
    echo = {r.concurrency: r.throughput for r in rows if r.transport.startswith("kafka echo")}
    ours = {r.concurrency: r.throughput for r in rows if r.transport.startswith("resonate")}
    for level in sorted(ours):
        if echo.get(level):
            print(f"resonate / echo at {level} outstanding: {ours[level] / echo[level]:.2f} (target >= 0.5)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: start one)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per level")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--levels", default="1,16,64")
    args, _ = parser.parse_known_args(argv if argv is not None else [])
    levels = [int(x) for x in args.levels.split(",")]
    rows = run_kafka(args.bootstrap, levels, args.requests, args.partitions)
    print_rows(rows, args.requests, args.partitions)


if __name__ == "__main__":
    main(sys.argv[1:])
