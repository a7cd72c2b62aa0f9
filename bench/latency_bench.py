"""Background latency (issue 8): event-driven passes against the old period-only passes, same run.

Each figure is measured on a real server process with default settings (1 s signal timeout), once per
background mode (`--system-background-mode event`, the default, and `period`, the old design):
- resume latency: a promise is completed (PATCH sent) until the resume message arrives on the poll
  stream of the listener registered on it;
- timeout lateness: on an idle server, promises due 50..500 ms ahead, from each deadline until its
  subscriber's notify arrives;
- a chain of sequential steps, each create (resonate:invoke) -> task delivered on the poll stream ->
  claim -> complete, end to end;
- HTTP create/complete throughput (bench/http_bench.py's load).
With `--postgres`, the same on three PostgreSQL-backed servers, the listener on a different server
from the one completing. Figures on a shared machine are noisy.

Usage: python bench/latency_bench.py [--samples N] [--chain-steps N] [--postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402

from bench.common import percentile  # noqa: E402
from bench.http_bench import http_rows  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

MODES = ("event", "period")
FAR_MS = 3_600_000
PERIOD_CHAIN_STEPS = 10  # the period-only chain costs ~1 s a step: measured on fewer, scaled to the same count
# period-only, several servers: a resume for a stream on another server waits for retries (ttr 15 s each)
PERIOD_CROSS_SERVER_RESUMES = 3
PERIOD_CROSS_SERVER_STEPS = 2  # ~1 minute a step there
STEP_TIMEOUT_S = 300
RESUME_LOST_AFTER_S = 60  # period-only across servers: each retry (ttr 15 s) may go to the wrong server
LOST_AFTER_S = 10  # a notify not arrived this long after the last one is counted as lost
PRESENCE_SETTLE_S = 0.5  # a new stream's presence reaches the other servers (LISTEN/NOTIFY) well within this


def wall_ms() -> float:
    return time.time() * 1000


class PollStream:
    """An SSE client on one poll stream, read by its own thread (so the load generator's own scheduling
    does not add to the figures); every message lands in a queue with its arrival time."""

    def __init__(self, poll_url: str, group: str, ident: str):
        self.url = f"{poll_url}/{group}/{ident}"
        self.recv = f"poll://any@{group}/{ident}"
        self.messages: queue.Queue = queue.Queue()
        self._connected = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        threading.Thread(target=self._run, daemon=True).start()
        if not self._connected.wait(10):
            raise RuntimeError(f"poll stream {self.url} did not open")

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url) as r:
                for line in r.iter_lines():
                    self._connected.set()
                    if line.startswith("data: "):
                        self.messages.put((wall_ms(), json.loads(line[6:])))
        except httpx.HTTPError:
            pass  # closed

    def next(self, timeout: float = 30) -> tuple[float, dict]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()


def stats(samples: list[float]) -> str:
    got = [x for x in samples if x != float("inf")]
    lost = f", {len(samples) - len(got)} lost" if len(got) < len(samples) else ""
    return f"p50 {percentile(got, 0.5):8.1f} ms   p99 {percentile(got, 0.99):8.1f} ms   (n={len(got)}{lost})"


def resume_latency(api_urls: list[str], poll_url: str, samples: int) -> list[float]:
    """The listener sits on `poll_url`; creates go to the first API, completions to the last."""
    stream = PollStream(poll_url, f"g{uuid.uuid4().hex[:8]}", "listener")
    if len(api_urls) > 1:
        time.sleep(PRESENCE_SETTLE_S)
    first, last = httpx.Client(base_url=api_urls[0], timeout=30), httpx.Client(base_url=api_urls[-1], timeout=30)
    out = []
    try:
        for i in range(samples):
            root, leaf = f"root-{uuid.uuid4().hex}", f"leaf-{uuid.uuid4().hex}"
            for pid in (root, leaf):
                assert (first.post("/promises", json={"id": pid, "timeout": int(wall_ms()) + FAR_MS})).status_code == 201
            r = first.post(f"/promises/callback/{leaf}", json={"rootPromiseId": root, "recv": stream.recv,
                                                                      "timeout": int(wall_ms()) + FAR_MS})
            assert r.status_code == 201, r.text
            start = wall_ms()
            assert (last.patch(f"/promises/{leaf}", json={"state": "RESOLVED"})).status_code == 201
            arrived = float("inf")  # not arrived within LOST_AFTER_S: counted as lost
            try:
                while True:  # an earlier, unclaimed resume may come again once its claim window ends
                    got, message = stream.next(timeout=RESUME_LOST_AFTER_S)
                    if message["type"] == "resume" and message["task"]["rootPromiseId"] == root:
                        arrived = got
                        break
            except queue.Empty:
                pass
            out.append(arrived - start)
    finally:
        stream.close()
        first.close()
        last.close()
    return out


def timeout_lateness(api_url: str, poll_url: str, samples: int) -> list[float]:
    stream = PollStream(poll_url, f"g{uuid.uuid4().hex[:8]}", "listener")
    deadlines: dict[str, int] = {}
    with httpx.Client(base_url=api_url, timeout=30) as api:
        try:
            for _ in range(samples):
                pid = f"due-{uuid.uuid4().hex}"
                deadlines[pid] = int(wall_ms()) + random.randint(50, 500)
                assert (api.post("/promises", json={"id": pid, "timeout": deadlines[pid]})).status_code == 201
                r = api.post(f"/promises/subscribe/{pid}", json={"id": "bench", "recv": stream.recv,
                                                                        "timeout": int(wall_ms()) + FAR_MS})
                if r.status_code == 200 and r.json()["promise"]["state"] == "REJECTED_TIMEDOUT":
                    del deadlines[pid]  # the set-up outlived the deadline (a loaded machine): no sample
                    continue
                assert r.status_code == 201, r.text
            out = []
            while len(out) < len(deadlines):
                try:
                    arrived, message = stream.next(timeout=LOST_AFTER_S)
                except queue.Empty:
                    # notifications are at most once: sent once, by whichever server enqueues them; on
                    # the period-only design that server may not hold the stream, and the notify is lost
                    out += [float("inf")] * (len(deadlines) - len(out))
                    break
                out.append(arrived - deadlines[message["promise"]["id"]])
            return out
        finally:
            stream.close()


def chain(api_url: str, poll_url: str, steps: int) -> float:
    """Seconds for `steps` sequential create -> delivered -> claim -> complete."""
    stream = PollStream(poll_url, f"g{uuid.uuid4().hex[:8]}", "worker")
    with httpx.Client(base_url=api_url, timeout=30) as api:
        try:
            start = time.perf_counter()
            for i in range(steps):
                pid = f"step-{uuid.uuid4().hex}"
                r = api.post("/promises", json={"id": pid, "timeout": int(wall_ms()) + FAR_MS,
                                                      "tags": {"resonate:invoke": stream.recv}})
                assert r.status_code == 201, r.text
                while True:  # an unclaimed earlier task may come again: not this step's
                    _, message = stream.next(timeout=STEP_TIMEOUT_S)
                    if message["task"]["rootPromiseId"] == pid:
                        break
                task = message["task"]
                r = api.post("/tasks/claim", json={"id": task["id"], "counter": task["counter"],
                                                         "processId": "bench", "ttl": 60_000})
                assert r.status_code == 201, r.text
                r = api.post("/tasks/complete", json={"id": task["id"], "counter": task["counter"]})
                assert r.status_code == 201, r.text
            return time.perf_counter() - start
        finally:
            stream.close()


def measure(api_urls: list[str], poll_urls: list[str], samples: int, steps: int, throughput: bool,
            resumes: int | None = None) -> dict:
    out = {"resume": resume_latency(api_urls, poll_urls[0], resumes or samples)}
    time.sleep(1.5)  # let the server go idle: lateness is measured on an idle server
    out["lateness"] = timeout_lateness(api_urls[0], poll_urls[0], samples)
    out["chain"] = (steps, chain(api_urls[0], poll_urls[0], steps))
    if throughput:
        rows = asyncio.run(http_rows(api_urls if len(api_urls) > 1 else api_urls[0], [16, 64], 2000))
        out["throughput"] = {(r.operation, r.concurrency): r.throughput for r in rows}
    return out


def report(title: str, results: dict[str, dict], chain_steps: int) -> None:
    print(f"\n{title}")
    for mode in MODES:
        r = results[mode]
        print(f"  [{mode:6}] resume latency    {stats(r['resume'])}")
        print(f"  [{mode:6}] timeout lateness  {stats(r['lateness'])}")
        steps, seconds = r["chain"]
        scaled = seconds * chain_steps / steps
        note = "" if steps == chain_steps else f"  (measured on {steps} steps, scaled)"
        print(f"  [{mode:6}] chain of {chain_steps} steps  {scaled:8.2f} s   {scaled / chain_steps * 1000:7.1f} ms/step{note}")
    if "throughput" in results["event"]:
        for key in sorted(results["event"]["throughput"]):
            ev, per = results["event"]["throughput"][key], results["period"]["throughput"][key]
            print(f"  HTTP {key[0]:<8} {key[1]:>3} clients: event {ev:7.0f} req/s, period {per:7.0f} req/s "
                  f"({(ev / per - 1) * 100:+.1f}%)")


def run_sqlite(samples: int, chain_steps: int, throughput: bool = True) -> None:
    results = {}
    for mode in MODES:
        with ServerProcess("--system-background-mode", mode) as server:
            steps = chain_steps if mode == "event" else min(chain_steps, PERIOD_CHAIN_STEPS)
            results[mode] = (measure([server.url], [server.poll_url], samples, steps, throughput))
    report("Background latency on SQLite, one server, default settings (1 s signal timeout)", results, chain_steps)


def run_postgres(samples: int, chain_steps: int) -> None:
    print("\nPostgreSQL, three servers: measuring (the period-only baseline takes minutes)...", flush=True)
    from tests.infra.postgres_server import PostgresServer
    from tests.integration.test_postgres_scenarios import postgres_store_flags
    pg = PostgresServer().start()
    results = {}
    try:
        for mode in MODES:
            database = f"latency_{mode}_{uuid.uuid4().hex[:6]}"
            pg.create_database(database)
            servers = [ServerProcess("--system-background-mode", mode,
                                     store_flags=postgres_store_flags(pg, database)).start() for _ in range(3)]
            try:
                # period-only, several servers: a step whose task another server enqueues waits for ttr
                steps = chain_steps if mode == "event" else min(chain_steps, PERIOD_CROSS_SERVER_STEPS)
                # the listener on server 0, completions on server 2
                resumes = samples if mode == "event" else min(samples, PERIOD_CROSS_SERVER_RESUMES)
                results[mode] = measure([s.url for s in servers], [servers[0].poll_url], samples, steps,
                                        throughput=False, resumes=resumes)
            finally:
                for s in servers:
                    s.stop()
                pg.drop_database(database)
    finally:
        pg.stop()
    report("Background latency on PostgreSQL, three servers (listener on another server than the completer)",
           results, chain_steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--chain-steps", type=int, default=100)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--no-throughput", action="store_true")
    args = parser.parse_args(argv)
    run_sqlite(args.samples, args.chain_steps, throughput=not args.no_throughput)
    if args.postgres:
        run_postgres(args.samples, args.chain_steps)


if __name__ == "__main__":
    main()
