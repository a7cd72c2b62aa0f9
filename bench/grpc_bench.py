"""gRPC throughput and latency: CreatePromise, then ResolvePromise of the same promises, at several
client concurrencies, against a real server. Bounded: each level sends exactly `n` requests per
operation and stops. Calls go over a few connections of bench/raw_grpc.py's minimal client, so the client
costs little next to the server (grpcio's client costs more per call than our server does).

    python bench/grpc_bench.py                    # starts its own server process (SQLite, defaults)
    python bench/grpc_bench.py --target 127.0.0.1:50051 --n 5000 --concurrency 1,16,64

`run_grpc(target, concurrency_levels, n)` returns the rows, for bench/run.py to print beside HTTP.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.raw_grpc import CallFailed, RawGrpcPool  # noqa: E402
from resonate.api.grpc.pb import promise_pb2, promise_t_pb2  # noqa: E402

FUTURE = 10**15
OK_STATUS = 0
COLUMNS = ("transport", "operation", "concurrency", "requests", "errors", "seconds", "rps", "p50_ms", "p99_ms")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def _drive(concurrency: int, calls: list) -> tuple[float, list[float], int]:
    """Run the calls (zero-argument coroutine factories) with `concurrency` workers."""
    latencies: list[float] = []
    errors = 0
    queue = iter(calls)

    async def worker():
        nonlocal errors
        for make_call in queue:  # workers share one iterator: each call runs once
            start = time.perf_counter()
            try:
                await make_call()
            except CallFailed:
                errors += 1
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, sorted(latencies), errors


def _row(operation: str, concurrency: int, seconds: float, latencies: list[float], errors: int) -> dict:
    n = len(latencies)
    return {"transport": "grpc", "operation": operation, "concurrency": concurrency, "requests": n,
            "errors": errors, "seconds": round(seconds, 3), "rps": round(n / seconds, 1) if seconds else 0.0,
            "p50_ms": round(statistics.median(latencies), 2) if latencies else float("nan"),
            "p99_ms": round(percentile(latencies, 0.99), 2)}


CONNECTIONS = 4  # calls spread over a few HTTP/2 connections, as gRPC clients do


async def _checked(pool: RawGrpcPool, path: str, message: bytes) -> None:
    status, code, _ = await pool.call(path, message)
    if status != OK_STATUS:
        raise CallFailed(f"{path}: grpc-status {status}, resonate-code {code}")


async def _run(target: str, concurrency_levels, n: int) -> list[dict]:
    """Raw calls over bench/raw_grpc.py's client, which costs far less per call than grpcio's (as HTTP's
    benchmarks use a raw HTTP/1.1 client): the figures are the server's, not the client's."""
    rows = []
    host, port = target.rsplit(":", 1)
    pool = await RawGrpcPool.open(host, int(port), CONNECTIONS)
    try:
        value = promise_t_pb2.Value(data=b"done")
        for concurrency in concurrency_levels:
            prefix = f"bench-grpc-{uuid.uuid4().hex[:8]}-c{concurrency}"
            ids = [f"{prefix}-{i}" for i in range(n)]
            creates = [lambda pid=pid: _checked(pool, "/promise.Promises/CreatePromise", promise_pb2.CreatePromiseRequest(
                id=pid, timeout=FUTURE).SerializeToString()) for pid in ids]
            rows.append(_row("create", concurrency, *await _drive(concurrency, creates)))
            completes = [lambda pid=pid: _checked(pool, "/promise.Promises/ResolvePromise", promise_pb2.ResolvePromiseRequest(
                id=pid, value=value).SerializeToString()) for pid in ids]
            rows.append(_row("complete", concurrency, *await _drive(concurrency, completes)))
    finally:
        pool.close()
    return rows


def run_grpc(server_url_or_port, concurrency_levels=(1, 16, 64), n: int = 2000) -> list[dict]:
    """Rows of COLUMNS for each (operation, concurrency); `server_url_or_port` is "host:port" or a port."""
    target = f"127.0.0.1:{server_url_or_port}" if isinstance(server_url_or_port, int) else str(server_url_or_port)
    target = target.removeprefix("grpc://")
    return asyncio.run(_run(target, list(concurrency_levels), n))


def format_table(rows: list[dict]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.rjust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(str(r[c]).rjust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", help="host:port of a running server's gRPC API (default: start one)")
    parser.add_argument("--n", type=int, default=2000, help="requests per operation and concurrency level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated client concurrency levels")
    parser.add_argument("--server-flag", action="append", default=[],
                        help="extra flag for the server this script starts (repeatable)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c]
    if args.target:
        rows = run_grpc(args.target, levels, args.n)
    else:
        from tests.server import ServerProcess
        with ServerProcess(*args.server_flag, grpc=True) as server:
            rows = run_grpc(server.grpc_port, levels, args.n)
    print(format_table(rows))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
