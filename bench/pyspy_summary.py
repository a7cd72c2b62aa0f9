"""Summarises py-spy's raw (collapsed) stacks of a server under load: samples per thread, the share of
the event-loop thread by layer (inclusive), and the top functions by own time. Used for
docs/performance.md; the layers are matched on file paths and function names.

Usage: python bench/pyspy_summary.py STACKS.txt [--top N]
"""
from __future__ import annotations

import argparse
import collections
import re

# inclusive layers of the event-loop thread: the first pattern found anywhere in a stack counts it
LAYERS = [
    ("idle: waiting in epoll", r"EpollSelector\.select \(selectors\.py"),
    ("JSON decode of the body (parse_body)", r"parse_body \(resonate"),
    ("core decode (request validation)", r"decode \(resonate/core/(operations|requests)\.py"),
    ("kernel.submit + wrap_future (hand-off to the writer)", r"(submit \(resonate/core/kernel\.py|wrap_future|_chain_future)"),
    ("render + gojson encode of the answer", r"(render \(resonate/core/operations|gojson\.py)"),
    ("request log + metrics (observability)", r"(resonate/observability/|prometheus_client)"),
    ("Starlette Response (build, send)", r"starlette/responses\.py"),
    ("Starlette Request (construct, body, headers)", r"starlette/requests\.py|starlette/datastructures\.py"),
    ("routing (Router, Route.matches)", r"starlette/routing\.py:\d+\);Route\.matches"),
    ("our handler's own lines (routes.py)", r"resonate/api/http/routes\.py"),
    ("fastapi/starlette app + middleware layers", r"(fastapi/|starlette/)"),
    ("uvicorn httptools protocol (parse, write)", r"uvicorn/"),
    ("asyncio loop + socket transport", r"asyncio/|selectors\.py"),
]

FRAME = re.compile(r"^(.*) \((.*)\)$")


def load(path: str):
    stacks = []
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        thread, _, frames = stack.partition(";")
        stacks.append((thread, frames, int(count)))
    return stacks


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stacks")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    stacks = load(args.stacks)
    names = {}
    per_thread = collections.Counter()
    idle_thread = collections.Counter()
    for thread, frames, n in stacks:
        name = thread.split(":", 1)[1].strip() if ":" in thread else thread
        tid = thread.split(":", 1)[0]
        names[tid] = name
        per_thread[tid] += n
        leaf = frames.rsplit(";", 1)[-1]
        if re.search(r"(select \(selectors|wait \(threading|_wait_for_tstate_lock|get \(queue\.py|"
                     r"Condition\.wait|Event\.wait|\bsleep\b|_recv_msg|accept)", leaf):
            idle_thread[tid] += n
    total = sum(per_thread.values())
    print(f"{total} samples; per thread (busy = not waiting in select/locks/queues):")
    for tid, n in per_thread.most_common():
        print(f"  {names[tid][:40]:<40} {n:>7} samples, busy {n - idle_thread[tid]:>7}")
    main_tid = next(t for t, nm in names.items() if nm.startswith("MainThread"))
    main = [(f, n) for t, f, n in stacks if t.split(":", 1)[0] == main_tid]
    busy = sum(n for f, n in main if not re.search(LAYERS[0][1], f))
    print(f"\nevent-loop thread, {busy} busy samples; inclusive share of busy by layer (first match wins):")
    layer_counts = collections.Counter()
    for frames, n in main:
        for label, pattern in LAYERS:
            if re.search(pattern, frames):
                layer_counts[label] += n
                break
        else:
            layer_counts["other"] += n
    for label, n in layer_counts.most_common():
        if not label.startswith("idle"):
            print(f"  {label:<50} {n:>6} {n / busy:>6.1%}")
    for scope, rows in (("event-loop thread", main),
                        ("all other threads", [(f, n) for t, f, n in stacks if t.split(':', 1)[0] != main_tid])):
        own = collections.Counter()
        incl = collections.Counter()
        for frames, n in rows:
            parts = frames.split(";")
            own[parts[-1]] += n
            for fr in set(parts):
                incl[fr] += n
        print(f"\n{scope}: top functions by own samples (own, inclusive)")
        for fr, n in own.most_common(args.top):
            print(f"  {n:>6} {incl[fr]:>6}  {fr[:110]}")


if __name__ == "__main__":
    main()
