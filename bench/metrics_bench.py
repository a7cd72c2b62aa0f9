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
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.http_bench import http_rows  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

LEVELS = [16, 64]


def accounting_cost_us(requests: int = 20_000) -> float:
    """CPU time of one HTTP request's metric calls (in flight, api and http counters and histograms, the
    kernel's per-request share), in-process: a figure the machine's load does not blur as much."""
    from resonate.core.operations import Result
    from resonate.core.requests import CreatePromise
    from resonate.observability import metrics
    from resonate.observability.requests import finished
    was = metrics.enabled()
    metrics.enable()
    batch = [(CreatePromise, True, Result(20100, None))] * 10
    started = time.process_time()
    for i in range(requests):
        with metrics.InFlight("http", "promises.create"):
            finished("http", "promises.create", 20100, 0.001, None, status=201)
            metrics.http_request("POST", "/promises", 201, 0.001)
        if i % 10 == 0:
            metrics.kernel_batch(batch, 10, 0.001)
    cost = (time.process_time() - started) / requests * 1e6
    if not was:
        metrics.disable()
    return cost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per burst")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    # both servers run for the whole measurement; short bursts alternate between them, so the load other
    # processes put on this shared machine falls on both alike
    with ServerProcess("--metrics-addr", "") as off, ServerProcess() as on:  # ServerProcess gives `on` a port
        servers = {"off": off, "on": on}
        for i in range(args.rounds):
            for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
                rows = asyncio.run(http_rows(servers[mode].url, LEVELS, args.requests))
                runs[mode].append({(r.operation, r.concurrency): r.throughput for r in rows})
                if args.verbose:
                    print(mode, {k: round(v) for k, v in runs[mode][-1].items()}, flush=True)
    print(f"\nMetrics overhead, HTTP on SQLite, {args.requests} requests per burst, median of {args.rounds} "
          "alternating bursts per server (shared machine: figures are noisy)")
    print(f"{'operation':<10} {'clients':>7} {'off req/s':>10} {'on req/s':>10} {'overhead':>9}")
    overheads = []
    for key in runs["off"][0]:
        off_rate = statistics.median(r[key] for r in runs["off"])
        on_rate = statistics.median(r[key] for r in runs["on"])
        overhead = (off_rate - on_rate) / off_rate * 100
        overheads.append(overhead)
        print(f"{key[0]:<10} {key[1]:>7} {off_rate:>10.0f} {on_rate:>10.0f} {overhead:>8.1f}%")
    print(f"mean overhead: {statistics.mean(overheads):.1f}% (target < 5%)")
    cost = accounting_cost_us()
    slowest = min(statistics.median(r[key] for r in runs["on"]) for key in runs["on"][0])
    print(f"metric calls per request, in-process: {cost:.1f} us of CPU = {cost * slowest / 1e6 * 100:.1f}% of one "
          f"core at the slowest measured rate ({slowest:.0f} req/s)")


if __name__ == "__main__":
    main()
