"""Cost of metrics and request accounting: HTTP create/complete throughput of one server with
--metrics-addr set against one with metrics off (--metrics-addr ""), in the same run, interleaved
(off, on, off, on, ...) so drift on this shared machine hits both alike. Target: under 5%.

Usage: python bench/metrics_bench.py [--requests N] [--rounds R]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.http_bench import http_rows  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

LEVELS = [16, 64]


def measure(flags: list[str], n: int) -> dict[tuple[str, int], float]:
    with ServerProcess(*flags) as server:
        rows = asyncio.run(http_rows(server.url, LEVELS, n))
    return {(r.operation, r.concurrency): r.throughput for r in rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        runs["off"].append(measure(["--metrics-addr", ""], args.requests))
        runs["on"].append(measure([], args.requests))  # ServerProcess gives it a metrics port
    print(f"\nMetrics overhead, HTTP on SQLite, {args.requests} requests per cell, median of {args.rounds} "
          "interleaved rounds (shared machine: figures are noisy)")
    print(f"{'operation':<10} {'clients':>7} {'off req/s':>10} {'on req/s':>10} {'overhead':>9}")
    overheads = []
    for key in runs["off"][0]:
        off = statistics.median(r[key] for r in runs["off"])
        on = statistics.median(r[key] for r in runs["on"])
        overhead = (off - on) / off * 100
        overheads.append(overhead)
        print(f"{key[0]:<10} {key[1]:>7} {off:>10.0f} {on:>10.0f} {overhead:>8.1f}%")
    print(f"mean overhead: {statistics.mean(overheads):.1f}% (target < 5%)")


if __name__ == "__main__":
    main()
