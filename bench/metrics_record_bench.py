"""CPU cost of the metric recording calls, in-process, µs per call: this tree against a baseline revision
(default: the one before the folded metrics) measured in the same run, each in a fresh interpreter.

  python bench/metrics_record_bench.py [--baseline REV] [--calls N]

Rows: one HTTP route's calls per request (RouteRecorder begin + leave + finish), one gRPC request's
(InFlight + finished), a read answered beside the writer (store_read; absent in the baseline), and one
kernel batch of 10 creates (kernel_batch). Each figure includes folding (or, in the baseline,
prometheus_client's locked updates) and is the best of 3 runs; the scrape row is one generate_latest after
the run. Shared machine: figures are noisy, compare the columns of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_BASELINE = "b969867"

MEASURE = r'''
import json, sys, time
sys.path.insert(0, TREE)
from prometheus_client import generate_latest
from resonate.core.operations import Result
from resonate.core.requests import CreatePromise
from resonate.observability import metrics
from resonate.observability.requests import RouteRecorder, finished
metrics.enable()

def best(fn, n):
    runs = []
    for _ in range(3):
        started = time.process_time()
        fn(n)
        runs.append((time.process_time() - started) / n * 1e6)
    return min(runs)

route = RouteRecorder("http", "promises.create", "POST", "/promises")
def http(n):
    for _ in range(n):
        gauge = route.begin()
        route.leave(gauge)
        route.finish(20100, 201, 0.0004)
def grpc(n):
    for _ in range(n):
        with metrics.InFlight("grpc", "promises.create"):
            pass
        finished("grpc", "promises.create", 20100, 0.0004)
def reads(n):
    for _ in range(n):
        metrics.store_read(0.00002)
batch = [(CreatePromise.__new__(CreatePromise), True, Result(20100, None))] * 10
def kernel(n):
    for _ in range(n):
        metrics.kernel_batch(batch, 10, 0.001)
out = {"http request": best(http, CALLS), "grpc request": best(grpc, CALLS),
       "kernel batch of 10": best(kernel, CALLS // 10)}
if hasattr(metrics, "store_read"):
    out["direct read (store_read)"] = best(reads, CALLS)
started = time.process_time()
generate_latest(metrics.REGISTRY)
out["scrape (ms)"] = (time.process_time() - started) * 1e3
print(json.dumps(out))
'''


def measure(tree: str, calls: int) -> dict[str, float]:
    code = f"TREE = {tree!r}\nCALLS = {calls}\n" + MEASURE
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    from bench.ceiling_bench import baseline_tree
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    before = measure(baseline_tree(args.baseline), args.calls)
    after = measure(here, args.calls)
    print(f"metric recording, in-process, µs of CPU per call (best of 3; shared machine: noisy)")
    print(f"{'call':<28} {'@' + args.baseline:>10} {'this tree':>10}")
    for key in after:
        old = before.get(key)
        print(f"{key:<28} {'-' if old is None else f'{old:.2f}':>10} {after[key]:>10.2f}")


if __name__ == "__main__":
    main()
