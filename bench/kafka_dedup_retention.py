"""Stored Kafka replies stay bounded: N deduplicated requests through the kernel (SQLite), on a
simulated clock that advances by `--step-ms` per request, with the reply-pruning pass
(`--api-kafka-dedupe-retention`) run as the background loop would. Prints the `replies` row count
and the database file size every tenth of the run: they level off once the retention is reached,
instead of growing with N. Baseline in the same run: the same requests without pruning.

    python bench/kafka_dedup_retention.py                  # 1,000,000 requests (several minutes)
    python bench/kafka_dedup_retention.py --requests 100000

Figures on a shared machine are noisy; the shape (flat vs growing) is what matters.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from resonate.api.kafka.dedup import KafkaDedup, reply_key  # noqa: E402
from resonate.core.background import PruneReplies  # noqa: E402
from resonate.core.kernel import Kernel  # noqa: E402
from resonate.core.operations import decode  # noqa: E402
from resonate.core.store.sqlite import SqliteStore  # noqa: E402

BATCH = 1000  # requests submitted at once (the kernel commits them in shared transactions)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def run(n: int, step_ms: int, retention_ms: int, prune: bool) -> list[tuple[int, int, int]]:
    """(requests so far, stored replies, database bytes) at every tenth of the run."""
    path = os.path.join(tempfile.mkdtemp(prefix="resonate-retention-"), "r.db")
    clock = Clock()
    kernel = Kernel(SqliteStore(path, synchronous="NORMAL"), clock=clock, queue_limit=BATCH * 2)
    kernel.start()
    samples = []
    try:
        for start in range(0, n, BATCH):
            futures = []
            for i in range(start, min(n, start + BATCH)):
                clock.now += step_ms
                # promises.read of a missing id: the cheapest request whose reply is still stored
                futures.append(kernel.submit(decode("promises.read", {"id": f"r{i}"}),
                                             KafkaDedup(reply_key("bench", "replies", "bench", f"c{i}"))))
            wait(futures)
            if prune:
                while kernel.submit(PruneReplies(retention_ms, 10_000), background=True).result(60).body >= 10_000:
                    pass
            done = min(n, start + BATCH)
            if done % max(BATCH, n // 10) == 0 or done == n:
                count = kernel.store.connect().tx.one("SELECT COUNT(*) FROM replies")[0]
                size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
                samples.append((done, count, size))
    finally:
        kernel.stop()
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--step-ms", type=int, default=100, help="simulated time between requests")
    parser.add_argument("--retention-ms", type=int, default=24 * 3600 * 1000)
    args = parser.parse_args(argv)
    for prune in (False, True):
        began = time.perf_counter()
        samples = run(args.requests, args.step_ms, args.retention_ms, prune)
        label = "with pruning" if prune else "without pruning (baseline)"
        print(f"{label}: {args.requests} requests in {time.perf_counter() - began:.0f}s, "
              f"{args.step_ms} ms apart, retention {args.retention_ms} ms")
        for done, count, size in samples:
            print(f"  after {done:>9} requests: {count:>9} stored replies, {size / 1e6:8.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
