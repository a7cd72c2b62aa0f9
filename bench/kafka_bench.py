"""Kafka request-reply: round trips/s and p50/p99 at 1, 16 and 64 outstanding requests over a
multi-partition topic, beside a baseline from the same run on the same broker: a bare kafka-python
echo service (consume, produce the reply, wait for its ack, commit) with no core behind it.

    python bench/kafka_bench.py                       # starts its own broker and server
    python bench/kafka_bench.py --bootstrap 127.0.0.1:9092 --requests 2000 --partitions 8

`run_kafka(bootstrap=None, levels=(1, 16, 64), n=1000)` returns the rows, for bench/run.py.
The server's operation is `promises.create` (a durable write: SQLite, synchronous=FULL, group commit).

Also, in the same run: the good requests' latency when one request in 20 has an undeliverable reply
(its reply topic does not exist; the bench's broker, like production ones, creates no topic on
demand), and what deduplication costs in the kernel (creates with and without the stored reply).
Figures on a shared machine are noisy: compare rows of one run, not runs.
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

    bad_every = 0  # when set, every bad_every-th request is followed by one whose reply cannot be delivered

    def _send(self, i: int, prefix: str, sent_at: dict) -> None:
        cid = f"{prefix}{i}"
        envelope = {"target": self.target, "replyTo": {"topic": self.reply_topic, "target": "bench"},
                    "correlationId": cid, "operation": "promises.create",
                    "payload": {"id": cid, "timeout": FUTURE}}
        sent_at[cid] = time.perf_counter()
        self.producer.send(self.topic, json.dumps(envelope).encode(), key=str(i).encode())
        if self.bad_every and i % self.bad_every == 0:
            bad = dict(envelope, correlationId=f"{cid}-bad", replyTo={"topic": f"{self.reply_topic}.missing",
                                                                       "target": "bench"},
                       payload={"id": f"{cid}-bad", "timeout": FUTURE})
            self.producer.send(self.topic, json.dumps(bad).encode(), key=str(i + 1).encode())

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
        broker = KafkaBroker(auto_create_topics=False).start()
        bootstrap = broker.bootstrap
    admin_broker = broker
    run_id = uuid.uuid4().hex[:6]
    topics = {name: f"bench-{run_id}-{name}" for name in ("server", "server-replies", "echo", "echo-replies")}
    _create_topics(bootstrap, admin_broker, {topics["server"]: partitions, topics["echo"]: partitions,
                                              topics["server-replies"]: 1, topics["echo-replies"]: 1,
                                              f"{topics['server']}.dlq": 1})
    stop = multiprocessing.Event()
    echo = multiprocessing.Process(target=echo_service, args=(bootstrap, topics["echo"], stop), daemon=True)
    echo.start()
    server = ServerProcess(kafka_flags=["--api-kafka-enable", "--api-kafka-brokers", bootstrap,
                                        "--api-kafka-topic", topics["server"], "--api-kafka-target", "bench",
                                        "--api-kafka-timeout", "2s"]).start()
    try:
        echo_client = Client(bootstrap, topics["echo"], topics["echo-replies"], "bench")
        server_client = Client(bootstrap, topics["server"], topics["server-replies"], "bench")
        try:
            rows = _measure("kafka echo, no core (baseline)", echo_client, levels, n)
            rows += _measure("resonate over kafka", server_client, levels, n)
            server_client.bad_every = BAD_EVERY
            rows += _measure(f"resonate, 1 bad per {BAD_EVERY} good", server_client, [max(levels)], n)
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


BAD_EVERY = 20


def dedup_cost(n: int = 5000) -> list[tuple[str, float]]:
    """Creates per second through the kernel (SQLite, FULL), without and with a stored reply each."""
    import tempfile
    from concurrent.futures import wait

    from resonate.api.kafka.dedup import KafkaDedup, reply_key
    from resonate.core.kernel import Kernel
    from resonate.core.operations import decode
    from resonate.core.store.sqlite import SqliteStore

    results = []
    for label, dedup in (("kernel creates, no dedup", False), ("kernel creates, reply stored (Kafka)", True)):
        kernel = Kernel(SqliteStore(f"{tempfile.mkdtemp(prefix='resonate-dedup-bench-')}/b.db"), queue_limit=n)
        kernel.start()
        try:
            start = time.perf_counter()
            futures = [kernel.submit(decode("promises.create", {"id": f"d{i}", "timeout": FUTURE}),
                                     KafkaDedup(reply_key("bench", "replies", "bench", f"c{i}")) if dedup else None)
                       for i in range(n)]
            wait(futures)
            results.append((label, n / (time.perf_counter() - start)))
        finally:
            kernel.stop()
    return results


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
    ours = {r.concurrency: r for r in rows if r.transport == "resonate over kafka"}
    for level in sorted(ours):
        if echo.get(level):
            print(f"resonate / echo at {level} outstanding: {ours[level].throughput / echo[level]:.2f} (target >= 0.9)")
    for r in rows:
        if "bad per" in r.transport and r.concurrency in ours:
            clean = ours[r.concurrency]
            print(f"good requests at {r.concurrency} outstanding, p99 {clean.p99_ms:.1f} ms without bad ones, "
                  f"{r.p99_ms:.1f} ms with 1 bad per {BAD_EVERY} (throughput {clean.throughput:.0f} -> {r.throughput:.0f}/s)")


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
    for label, rate in dedup_cost():
        print(f"{label}: {rate:.0f}/s")


if __name__ == "__main__":
    main(sys.argv[1:])
