"""The kernel's own CPU per request, without HTTP (issue 13): `submit_async` from one event loop with N
concurrent callers, file SQLite at synchronous=FULL, process CPU time (all threads) per request.

A/B in one run: `--tree DIR` (repeatable) imports `resonate` from another source tree (e.g. a `git archive`
of the baseline commit); each tree runs in its own subprocess, interleaved `--rounds` times.

Usage: python bench/kernel_bench.py [--tree DIR ...] [--requests N] [--rounds R]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAR = 10**15
CELLS = [("create", 1), ("create", 64), ("read", 1), ("read", 64), ("complete", 64)]


def run_cells(requests: int) -> dict[str, float]:
    """In this process: CPU µs per request for each cell (the resonate on sys.path)."""
    from resonate.core.kernel import Kernel
    from resonate.core.requests import decode
    from resonate.core.store.sqlite import SqliteStore

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kernel = Kernel(SqliteStore(os.path.join(tmp, "k.db")), queue_limit=100_000)
        kernel.start()
        try:
            async def cell(op: str, clients: int, prefix: str, ids: list[str]) -> float:
                def make(i: int):
                    if op == "create":
                        return decode("promises.create", {"id": f"{prefix}-{i}", "timeout": FAR})
                    if op == "read":
                        return decode("promises.read", {"id": ids[i % len(ids)]})
                    return decode("promises.complete", {"id": ids[i], "state": "RESOLVED"})

                counter = iter(range(requests))

                async def client():
                    for i in counter:
                        await kernel.submit_async(make(i))

                cpu = time.process_time()
                await asyncio.gather(*(client() for _ in range(clients)))
                return (time.process_time() - cpu) * 1e6 / requests

            async def all_cells():
                for op, clients in CELLS:
                    prefix = f"{op}{clients}"
                    if op == "create":
                        ids = []
                    else:  # reads and completes work on promises created beforehand (not measured)
                        ids = [f"seed{clients}{op}-{i}" for i in range(requests)]
                        for start in range(0, requests, 500):
                            await asyncio.gather(*(kernel.submit_async(decode(
                                "promises.create", {"id": pid, "timeout": FAR})) for pid in ids[start:start + 500]))
                    out[f"{op}@{clients}"] = await cell(op, clients, prefix, ids)

            asyncio.run(all_cells())
        finally:
            kernel.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", default=[], help="a source tree to compare (repeatable)")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_cells(args.requests)))
        return
    trees = args.tree + [HERE]
    results: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=tree)
            raw = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--requests",
                                  str(args.requests)], env=env, cwd=tree, check=True, capture_output=True,
                                 text=True).stdout
            results[tree].append(json.loads(raw.strip().splitlines()[-1]))
    print(f"kernel CPU per request (process time of all threads, µs), {args.requests} requests per cell, "
          f"{args.rounds} interleaved rounds; shared machine: noisy")
    print(f"{'tree':<40}" + "".join(f"{op}@{c}".rjust(14) for op, c in CELLS))
    for tree, rounds in results.items():
        cells = [f"{op}@{c}" for op, c in CELLS]
        print(f"{tree[-40:]:<40}" + "".join(
            f"{'/'.join(f'{r[k]:.0f}' for r in rounds):>14}" for k in cells))


if __name__ == "__main__":
    main()
