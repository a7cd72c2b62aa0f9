"""Runs every benchmark and prints one table per transport with its baselines from the same run.

Usage: python bench/run.py [--requests N] [--transport-requests N] [--only http,grpc,metrics,kafka,postgres,startup,latency,latency-postgres]
`--only ceiling` (not in the default list) runs bench/ceiling_bench.py: ours against a bare Starlette endpoint.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row, print_table  # noqa: E402
from bench.http_bench import core_rows, http_rows  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

LEVELS = [1, 16, 64]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per operation and level")
    parser.add_argument("--transport-requests", type=int, default=6000,
                        help="requests per cell of the HTTP and gRPC table (at 2,000 a cell at 16 clients lasts "
                             "0.2 s, and which transport came out ahead there was noise)")
    parser.add_argument("--only", default="http,grpc,metrics,kafka,postgres,startup,latency,latency-postgres")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    n = args.requests

    if parts & {"http", "grpc"}:
        server = ServerProcess(grpc="grpc" in parts).start()
        nt = args.transport_requests
        http, grpc = [], []
        from bench.grpc_bench import run_grpc
        try:
            for level in LEVELS:  # the transports take turns, so both meet the store at about the same size
                if "http" in parts:
                    http += asyncio.run(http_rows(server.url, [level], nt))
                if "grpc" in parts:
                    grpc += [Row("grpc", r["operation"], r["concurrency"], r["requests"], r["seconds"], r["p50_ms"],
                                 r["p99_ms"]) for r in run_grpc(server.grpc_port, [level], nt)]
        finally:
            server.stop()
        print_table(http + grpc, f"HTTP and gRPC on SQLite (synchronous=FULL), {nt} requests per cell")
        if http and grpc:  # issue 13: gRPC per request at least HTTP
            http_by = {(r.operation, r.concurrency): r.throughput for r in http}
            print("gRPC / HTTP req/s: " + ", ".join(
                f"{r.operation}@{r.concurrency} {r.throughput / http_by[(r.operation, r.concurrency)]:.0%}"
                for r in grpc))
        rows = asyncio.run(core_rows(LEVELS, n, batch_size=1000, label="core, group commit (no transport)"))
        rows += asyncio.run(core_rows(LEVELS, n, batch_size=1, label="core, one commit per request"))
        print_table(rows, f"The kernel alone on SQLite (synchronous=FULL), {n} requests per cell")
        by = {(r.transport, r.operation, r.concurrency): r.throughput for r in rows}
        for op in ("create", "complete"):
            group = by[("core, group commit (no transport)", op, 64)]
            single = by[("core, one commit per request", op, 64)]
            print(f"group commit speed-up at 64 clients, {op}: {group / single:.1f}x")
    if "ceiling" in parts:  # issue 13: our HTTP stack against its framework's ceiling, server pinned to one core
        from bench.ceiling_bench import main as ceiling_main
        ceiling_main([])
    if "startup" in parts:
        from bench.startup_bench import main as startup_main
        startup_main()
    if "metrics" in parts:
        from bench.metrics_bench import main as metrics_main
        metrics_main(["--requests", str(n)])
    if "latency" in parts:  # background latency, event-driven vs period-only (issue 8)
        from bench.latency_bench import main as latency_main
        latency_main(["--postgres"] if "latency-postgres" in parts else [])
    if "kafka" in parts:
        try:
            from bench.kafka_bench import main as kafka_main
        except ImportError as e:
            print(f"\nKafka benchmark not available: {e}")
        else:
            kafka_main()
    if "postgres" in parts:
        try:
            from bench.postgres_bench import main as postgres_main
        except ImportError as e:
            print(f"\nPostgreSQL benchmark not available: {e}")
        else:
            postgres_main()


if __name__ == "__main__":
    main()
