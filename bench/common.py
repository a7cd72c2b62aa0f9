"""Shared pieces of the benchmarks: latency statistics, bounded concurrent runs and the table."""
from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Awaitable, Callable


@dataclass
class Row:
    transport: str
    operation: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run_concurrently(call: Callable[[int], Awaitable[None]], total: int, concurrency: int) -> tuple[float, list[float]]:
    """Runs `call(i)` for i in range(total) with `concurrency` workers; returns (seconds, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker():
        for i in counter:
            start = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


async def run_for(workers: int, one: Callable[[int], Awaitable[bool]], seconds: float,
                  latencies: list[float] | None = None) -> float:
    """Each of `workers` calls `one(worker)` again and again until `seconds` have passed or a call returns
    False (nothing left to do); each call's milliseconds go to `latencies` when given. Returns the
    elapsed seconds."""
    start = time.perf_counter()
    until = start + seconds

    async def worker(index: int) -> None:
        while time.perf_counter() < until:
            began = time.perf_counter()
            if not await one(index):
                return
            if latencies is not None:
                latencies.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return time.perf_counter() - start


def make_row(transport: str, operation: str, concurrency: int, seconds: float, latencies: list[float]) -> Row:
    return Row(transport, operation, concurrency, len(latencies), seconds, percentile(latencies, 0.5),
               percentile(latencies, 0.99))


def print_table(rows: list[Row], title: str) -> None:
    print(f"\n{title}")
    print(f"{'transport':<34} {'operation':<10} {'clients':>7} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r.transport:<34} {r.operation:<10} {r.concurrency:>7} {r.requests:>8} {r.throughput:>9.0f} "
              f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def cpu_seconds_by_thread(pid: int, group: Callable[[int], str]) -> dict[str, float]:
    """CPU seconds (user + system) of `pid`'s threads from /proc, summed by `group(thread id)`."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        key = group(int(tid))
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out
