"""gRPC throughput and latency: CreatePromise, then ResolvePromise of the same promises, at several
client concurrencies, against a real server. Bounded: each level sends exactly `n` requests per
operation and stops. Raw-bytes calls over a few grpc.aio channels, so the client costs little next to the
server (a single channel with stubs made the client a visible part of the figure).

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

import grpc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from resonate.api.grpc.pb import promise_pb2, promise_t_pb2  # noqa: E402

FUTURE = 10**15
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
            except grpc.RpcError:
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


CHANNELS = 4  # calls spread over a few connections, so the Python client is not what is measured


async def _run(target: str, concurrency_levels, n: int) -> list[dict]:
    """Raw-bytes calls (no stub, the answer not parsed): the client's own cost per call stays small."""
    rows = []
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        create = [ch.unary_unary("/promise.Promises/CreatePromise") for ch in channels]
        resolve = [ch.unary_unary("/promise.Promises/ResolvePromise") for ch in channels]
        value = promise_t_pb2.Value(data=b"done")
        for concurrency in concurrency_levels:
            prefix = f"bench-grpc-{uuid.uuid4().hex[:8]}-c{concurrency}"
            ids = [f"{prefix}-{i}" for i in range(n)]
            creates = [lambda i=i, pid=pid: create[i % CHANNELS](
                promise_pb2.CreatePromiseRequest(id=pid, timeout=FUTURE).SerializeToString(), timeout=30)
                for i, pid in enumerate(ids)]
            rows.append(_row("create", concurrency, *await _drive(concurrency, creates)))
            completes = [lambda i=i, pid=pid: resolve[i % CHANNELS](
                promise_pb2.ResolvePromiseRequest(id=pid, value=value).SerializeToString(), timeout=30)
                for i, pid in enumerate(ids)]
            rows.append(_row("complete", concurrency, *await _drive(concurrency, completes)))
    finally:
        for channel in channels:
            await channel.close()
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
