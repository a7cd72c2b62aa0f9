"""Start-up and stop of an embedded server (HTTP + poll + gRPC on in-memory SQLite), beside the baseline
of the same run: a `resonate serve` process started until it answers /ping (how the suite starts servers).

  cold: the first EmbeddedServer of a fresh Python process, imports included (what a pytest session pays once)
  warm: the next ones in the same process (what each per-test `resonate_fresh_server` pays)
Figures come from a shared 2-core machine: noisy.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import percentile  # noqa: E402

COLD_RUNS = 5
WARM_RUNS = 20
BASELINE_RUNS = 3
_COLD_SCRIPT = """
import time
t0 = time.perf_counter()
from resonate.embedded import EmbeddedServer
server = EmbeddedServer().start()
t1 = time.perf_counter()
server.stop()
print(t1 - t0, time.perf_counter() - t1)
"""


def cold_runs() -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(COLD_RUNS):
        out = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], capture_output=True, text=True, check=True)
        start_s, stop_s = (float(x) for x in out.stdout.split())
        starts.append(start_s * 1000)
        stops.append(stop_s * 1000)
    return starts, stops


def warm_runs(**settings) -> tuple[list[float], list[float]]:
    from resonate.embedded import EmbeddedServer
    EmbeddedServer(**settings).start().stop()  # imports and one-time set-up out of the way
    starts, stops = [], []
    for _ in range(WARM_RUNS):
        t0 = time.perf_counter()
        server = EmbeddedServer(**settings).start()
        t1 = time.perf_counter()
        server.stop()
        starts.append((t1 - t0) * 1000)
        stops.append((time.perf_counter() - t1) * 1000)
    return starts, stops


def baseline_runs() -> list[float]:
    from tests.server import ServerProcess
    starts = []
    for _ in range(BASELINE_RUNS):
        t0 = time.perf_counter()
        server = ServerProcess(grpc=True, command="dev").start()
        starts.append((time.perf_counter() - t0) * 1000)
        server.stop()
    return starts


def main() -> None:
    rows = [("embedded, cold (fresh process, imports)", *cold_runs()),
            ("embedded, warm (HTTP + poll + gRPC)", *warm_runs()),
            ("embedded, warm (HTTP only)", *warm_runs(grpc_enable=False, poll_enable=False))]
    baseline = baseline_runs()
    print("\nStart-up of an embedded server (in-memory SQLite), ms; shared 2-core machine, noisy")
    print(f"{'server':<44} {'runs':>5} {'start p50':>10} {'start max':>10} {'stop p50':>9} {'stop max':>9}")
    for name, starts, stops in rows:
        print(f"{name:<44} {len(starts):>5} {percentile(starts, 0.5):>10.1f} {max(starts):>10.1f} "
              f"{percentile(stops, 0.5):>9.1f} {max(stops):>9.1f}")
    print(f"{'baseline: `resonate dev` process to /ping':<44} {len(baseline):>5} {percentile(baseline, 0.5):>10.1f} "
          f"{max(baseline):>10.1f} {'':>9} {'':>9}")


if __name__ == "__main__":
    main()
