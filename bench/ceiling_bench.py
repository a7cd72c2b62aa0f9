"""The ceiling of our own HTTP stack (issue 13): a bare Starlette + uvicorn + httptools endpoint with the
same JSON shapes as our create/read/complete and no store, against our server (`resonate serve`, file
SQLite at synchronous=FULL), each alone on the server core, loaded from the other core with the raw
keep-alive client of bench/http_bench.py. Each cell runs for a fixed short time. Prints req/s, p50/p99
and ours/bare. Figures on a shared machine are noisy.

With `--profile OP --py-spy FILE`, runs only our server under OP@64 load and records it with py-spy
(collapsed stacks of the thread holding the GIL) for docs/performance.md.

With `--tail`, measures the 64-client tail under garbage-collection variants (bench-only shims).
With `--cpu`, prints the server CPU time per request (user+system from /proc, all threads) of the bare
endpoint, ours and (`--baseline REV`) ours as of a git revision, interleaved over `--repeat` rounds: the
steadiest figure on a shared machine, and bare/ours is the req/s ratio on a saturated core.
With `--layer N`, the ASGI applications alone (no uvicorn, no socket, no store), in-process.
`--loop uvloop` runs every server (bare and ours alike) on uvloop.

Usage: python bench/ceiling_bench.py [--seconds S] [--loop asyncio|uvloop]
       python bench/ceiling_bench.py --cpu [--baseline REV] [--repeat N] [--seconds S] [--loop ...]
       python bench/ceiling_bench.py --profile create|read|complete --py-spy FILE
       python bench/ceiling_bench.py --layer 20000
       python bench/ceiling_bench.py --tail
       python bench/ceiling_bench.py --serve-bare PORT   (the bare endpoint; run by the benchmark)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row, cpu_seconds_by_thread, make_row, median, print_table, run_for  # noqa: E402
from bench.http_bench import FAR, RawHttpConnection, promise_operation  # noqa: E402

SERVER_CORE = 0  # server pinned here; the load generator takes the other core
CELLS = [("create", 1), ("create", 16), ("create", 64), ("read", 16), ("read", 64), ("complete", 16), ("complete", 64)]
WARMUP_S = 0.5
READY_TIMEOUT_S = 30
JSON_TYPE = "application/json; charset=utf-8"


def pinned(cmd: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(SERVER_CORE), *cmd] if taskset else cmd


def pin_load_generator() -> None:
    cores = os.sched_getaffinity(0) - {SERVER_CORE}
    if cores:
        os.sched_setaffinity(0, cores)


# --- the bare endpoint ------------------------------------------------------------------------------

def bare_app():
    """Our routes' shapes with no store, no kernel, no metrics: parse the body, answer the promise."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    headers = {"content-type": JSON_TYPE, "resonate-version": "0.8.2"}

    def promise(status: int, pid: str, state: str, timeout: int, completed: bool) -> Response:
        now = int(time.time() * 1000)
        body = {"id": pid, "state": state, "param": {}, "value": {}, "timeout": timeout, "createdOn": now}
        if completed:
            body["completedOn"] = now
        return Response(json.dumps(body, separators=(",", ":")).encode(), status_code=status,
                        media_type=None, headers=headers)

    async def create(request: Request) -> Response:
        body = json.loads(await request.body())
        return promise(201, body["id"], "PENDING", body["timeout"], False)

    async def read(request: Request) -> Response:
        return promise(200, request.path_params["id"], "PENDING", FAR, False)

    async def complete(request: Request) -> Response:
        body = json.loads(await request.body())
        return promise(201, request.path_params["id"], body["state"], FAR, True)

    async def ping(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/ping", ping, methods=["GET"]), Route("/promises", create, methods=["POST"]),
                             Route("/promises/{id:path}", read, methods=["GET"]),
                             Route("/promises/{id:path}", complete, methods=["PATCH"])])


def serve_bare(port: int, loop: str = "asyncio") -> None:
    import uvicorn
    uvicorn.run(bare_app(), host="127.0.0.1", port=port, http="httptools", loop=loop, log_level="warning",
                access_log=False, lifespan="off")


class BareProcess:
    def __init__(self, loop: str = "asyncio"):
        from tests.infra.ports import free_port
        self.loop = loop
        self.http_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> "BareProcess":
        self.proc = subprocess.Popen(pinned([sys.executable, os.path.abspath(__file__), "--serve-bare",
                                             str(self.http_port), "--loop", self.loop]),
                                    start_new_session=True)
        wait_ready(self.url, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    from tests.server import wait_for_ping
    wait_for_ping(url, proc, READY_TIMEOUT_S)


# Our AsgiServer binds with socket.create_server, whose sockets have proto 0, so asyncio does not set
# TCP_NODELAY on accepted connections and Nagle holds the body segment until the client's delayed ACK
# (~40 ms a request). The shim sets TCP_NODELAY on the listening socket (Linux accepted sockets inherit
# it), to measure the server as it would be with that fixed, without touching resonate/.
NODELAY_SHIM = """
import runpy, socket
_create_server = socket.create_server
def create_server(*args, **kwargs):
    sock = _create_server(*args, **kwargs)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
socket.create_server = create_server
runpy.run_module("resonate.cli", run_name="__main__", alter_sys=True)
"""


# Garbage-collection variants for `--tail` (bench-only preludes to the shim): the first only reports the
# heap, 2 s after start, on the server's output (GCPROBE line in its log).
GC_PROBE = """
import gc, sys, threading, time
def _gc_probe():
    time.sleep(2)
    tracked = len(gc.get_objects())
    start = time.perf_counter()
    gc.collect()
    print(f"GCPROBE {tracked} tracked objects, full collection {(time.perf_counter() - start) * 1000:.1f} ms",
          file=sys.stderr, flush=True)
    if FREEZE:
        gc.freeze()
threading.Thread(target=_gc_probe, daemon=True).start()
"""
GC_VARIANTS = {
    "shim (GC probe only)": "FREEZE = False\n" + GC_PROBE,
    "shim + gc.disable()": "import gc; gc.disable()\n",
    "shim + gc threshold 50000": "import gc; gc.set_threshold(50000, 50, 100)\n",
    "shim + gc.freeze() after start": "FREEZE = True\n" + GC_PROBE,
}
TAIL_CELLS = [("create", 64), ("read", 64)]
GC_PROBE_WAIT_S = 3  # the probe runs 2 s after start; measure after it


def our_server(nodelay_shim: bool = False, prelude: str = ""):
    from tests.server import ServerProcess

    class PinnedServer(ServerProcess):
        def command(self) -> list[str]:
            cmd = super().command()  # `serve` on a temp file database, synchronous=FULL (the default)
            if nodelay_shim:
                assert cmd[1:3] == ["-m", "resonate.cli"], cmd
                cmd = [cmd[0], "-c", prelude + NODELAY_SHIM, *cmd[3:]]
            return pinned(cmd)

    return PinnedServer()


# --- the load -----------------------------------------------------------------------------------------

async def timed_cell(url: str, operation: str, clients: int, seconds: float, ids: list[str],
                     pending: list[str], label: str, probe=None, snapshots: list | None = None) -> Row:
    """Runs `operation` with `clients` keep-alive connections for `seconds`; creates append to `ids` and
    `pending`, reads cycle over `ids`, completes consume `pending` (the cell ends early if it runs out)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    conns = [await RawHttpConnection.open(host, int(port)) for _ in range(clients)]
    one = promise_operation(conns, operation, ids, pending, f"ceiling-{uuid.uuid4().hex[:8]}")
    latencies: list[float] = []
    if operation != "complete":  # completes have no spare promises to warm up on
        await run_for(clients, one, WARMUP_S)
    if probe is not None:  # e.g. the server's CPU counters, right around the measured window
        snapshots.append(probe())
    elapsed = await run_for(clients, one, seconds, latencies)
    if probe is not None:
        snapshots.append(probe())
    for c in conns:
        c.close()
    return make_row(label, operation, clients, elapsed, latencies)


async def run_cells(url: str, label: str, seconds: float, cells=CELLS, pid: int | None = None,
                    loop_shares: list[float] | None = None) -> tuple[list[Row], list[float]]:
    """The rows, and per row the server's CPU seconds per wall second in the measured window (if `pid`);
    `loop_shares` gets, per row, the event-loop (main) thread's share of that CPU."""
    ids: list[str] = []
    pending: list[str] = []
    rows, busy = [], []
    for op, c in cells:
        snaps: list = []
        probe = (lambda: (thread_cpu_seconds(pid), time.perf_counter())) if pid else None
        rows.append(await timed_cell(url, op, c, seconds, ids, pending, label, probe, snaps))
        if pid:
            (cpu0, t0), (cpu1, t1) = snaps
            total = sum(cpu1.values()) - sum(cpu0.values())
            busy.append(total / (t1 - t0))
            if loop_shares is not None:
                main = cpu1.get("event loop", 0.0) - cpu0.get("event loop", 0.0)
                loop_shares.append(main / total if total else 0.0)
    return rows, busy


def measure(server, label: str, seconds: float) -> tuple[list[Row], list[float]]:
    server.start()
    try:
        return asyncio.run(run_cells(server.url, label, seconds, pid=server.proc.pid))
    finally:
        server.stop()


def profile(operation: str, out: str, seconds: float, tree: str | None = None, loop: str = "asyncio") -> None:
    """Our server (from `tree` if given) under `operation`@64 while py-spy records the thread holding the GIL."""
    server = our_server_from(tree, loop).start()
    try:
        async def load():
            ids: list[str] = []
            pending: list[str] = []
            if operation != "create":  # something to read or complete: creates first, not recorded
                await timed_cell(server.url, "create", 64, seconds * (3 if operation == "complete" else 1), ids,
                                 pending, "setup")
            spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--pid",
                                    str(server.proc.pid), "--format", "raw", "--gil", "--threads", "--rate", "250",
                                    "--duration", str(int(seconds)), "--output", out, "--nonblocking"])
            await asyncio.sleep(1)  # py-spy attaching
            row = await timed_cell(server.url, operation, 64, seconds, ids, pending, "ours, under py-spy")
            spy.wait(60)
            print_table([row], f"our server under py-spy ({operation}@64), stacks in {out}")

        asyncio.run(load())
    finally:
        server.stop()


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of `pid`'s event-loop (main) thread and of all its other threads."""
    return cpu_seconds_by_thread(pid, lambda tid: "event loop" if tid == pid else "other threads")


CPU_CELLS = [("create", 16), ("create", 64), ("read", 16), ("read", 64), ("complete", 16), ("complete", 64)]


def baseline_tree(rev: str) -> str:
    """A copy of the repository at `rev` (git archive) in a temporary directory, to run as "before"."""
    import tarfile
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tempfile.mkdtemp(prefix="ceiling-baseline-")
    archive = subprocess.run(["git", "-C", root, "archive", "--format=tar", rev], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(out, filter="data")
    return out


def our_server_from(tree: str | None, loop: str = "asyncio"):
    """Our server; from another source tree (`tree`, e.g. baseline_tree) when given; `loop` is the event
    loop it runs on ("uvloop" through a bench-only prelude that installs uvloop's policy first)."""
    from tests.server import ServerProcess
    prelude = "import sys\n"
    if tree:
        prelude += f"sys.path.insert(0, {tree!r})\n"
    if loop == "uvloop":
        prelude += "import uvloop, asyncio; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n"
    prelude += "import runpy; runpy.run_module('resonate.cli', run_name='__main__', alter_sys=True)\n"

    class Server(ServerProcess):
        def command(self) -> list[str]:
            cmd = super().command()
            assert cmd[1:3] == ["-m", "resonate.cli"], cmd
            return pinned([cmd[0], "-c", prelude, *cmd[3:]])

    return Server()


def parse_cells(spec: str) -> list[tuple[str, int]]:
    """`create@16,read@64` -> [("create", 16), ("read", 64)]; reads and completes need a create cell before
    them (they use its promises)."""
    cells = []
    for cell in spec.split(","):
        op, _, clients = cell.strip().partition("@")
        if op not in ("create", "read", "complete") or not clients.isdigit():
            raise argparse.ArgumentTypeError(f"a cell is OPERATION@CLIENTS, e.g. read@64: got {cell!r}")
        cells.append((op, int(clients)))
    if cells[0][0] != "create":
        raise argparse.ArgumentTypeError("the first cell must be a create (later cells use its promises)")
    return cells


def cpu_compare(seconds: float, repeat: int, baseline: str | None, loop: str,
                cells: list[tuple[str, int]] = CPU_CELLS) -> None:
    """Server CPU per request (user+system of all threads, from /proc) of the bare endpoint, ours and,
    with `baseline`, ours at that revision, for each cell; servers interleaved, `repeat` rounds."""
    tree = (baseline if os.path.isdir(baseline) else baseline_tree(baseline)) if baseline else None
    servers = [("bare", lambda: BareProcess(loop)), ("ours", lambda: our_server_from(None, loop))]
    if tree:
        servers.append((f"ours@{baseline}", lambda: our_server_from(tree, loop)))
    cpu: dict[tuple[str, str, int], list[float]] = {}
    rps: dict[tuple[str, str, int], list[float]] = {}
    busy: dict[tuple[str, str, int], list[float]] = {}
    loop_share: dict[tuple[str, str, int], list[float]] = {}
    for round_ in range(repeat):
        for name, make in servers:
            server = make()
            server.start()
            try:
                shares: list[float] = []
                rows, load = asyncio.run(run_cells(server.url, name, seconds, cells, pid=server.proc.pid,
                                                   loop_shares=shares))
            finally:
                server.stop()
            for row, b, share in zip(rows, load, shares):
                key = (name, row.operation, row.concurrency)
                loop_share.setdefault(key, []).append(share)
                cpu.setdefault(key, []).append(b / row.throughput * 1e6)
                rps.setdefault(key, []).append(row.throughput)
                busy.setdefault(key, []).append(b)
            print(f"round {round_ + 1}/{repeat}: {name} done", file=sys.stderr, flush=True)
    names = [n for n, _ in servers]
    print(f"\nserver CPU per request (us, user+system, all threads; each value one {seconds:g} s cell, "
          f"{repeat} interleaved rounds; event loop: {loop}); req/s and core busy are medians")
    print(f"{'cell':<13}" + "".join(f"{n:>28}" for n in names) + f"{'bare/ours':>11}"
          + (f"{'bare/before':>13}" if tree else ""))
    for op, c in cells:
        cols = []
        for n in names:
            values = cpu[(n, op, c)]
            cols.append(f"{'/'.join(f'{v:.0f}' for v in values)} ({median(rps[(n, op, c)]):,.0f}/s "
                        f"{median(busy[(n, op, c)]):.0%})")
        bare = median(cpu[("bare", op, c)])
        line = f"{op + '@' + str(c):<13}" + "".join(f"{col:>28}" for col in cols)
        line += f"{bare / median(cpu[('ours', op, c)]):>11.0%}"
        if tree:
            line += f"{bare / median(cpu[(names[2], op, c)]):>13.0%}"
        print(line)
    print("\nbare/ours = bare CPU per request / ours (medians): the req/s ratio both would reach alone on a "
          "saturated core.\nour event-loop thread's share of our CPU (median):")
    for n in names[1:]:
        print(f"  {n:<16}" + "  ".join(f"{op}@{c} {median(loop_share[(n, op, c)]):.0%}" for op, c in cells))


def layer_cost(requests: int) -> None:
    """CPU per request of the ASGI applications alone (no uvicorn, no socket, no store): the bare endpoint,
    our fast path, and our FastAPI app (what the fast path bypasses), driven in-process with the same
    requests; our kernel is replaced by one answering with results recorded from a real kernel."""
    import tempfile

    from resonate.api.http.server import create_http_app
    from resonate.core.kernel import Kernel
    from resonate.core.operations import decode
    from resonate.core.store.sqlite import SqliteStore

    kernel = Kernel(SqliteStore(os.path.join(tempfile.mkdtemp(prefix="layer-"), "k.db")))
    kernel.start()
    try:
        answers = {"CreatePromise": kernel.call(decode("promises.create", {"id": "p", "timeout": FAR})),
                   "ReadPromise": kernel.call(decode("promises.read", {"id": "p"})),
                   "CompletePromise": kernel.call(decode("promises.complete", {"id": "p", "state": "RESOLVED"}))}
    finally:
        kernel.stop()

    class RecordedKernel:
        def answer_now(self, request):
            return None  # every answer through submit_async, as recorded

        def submit_async(self, request, dedup=None):
            future = asyncio.get_running_loop().create_future()
            future.set_result(answers[type(request).__name__])
            return future

    front = create_http_app(RecordedKernel())
    apps = {"bare starlette": bare_app(), "ours: fast path": front, "ours: FastAPI app": front.fallback}
    shapes = {"create": ("POST", "/promises", json.dumps({"id": "p", "timeout": FAR}).encode()),
              "read": ("GET", "/promises/p", b""), "complete": ("PATCH", "/promises/p", b'{"state":"RESOLVED"}')}
    headers = [(b"host", b"127.0.0.1:8001"), (b"content-type", b"application/json"), (b"content-length", b"40")]

    async def drive(app, method: str, path: str, body: bytes) -> float:
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive():
            return message

        async def send(message):
            pass

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
                 "server": ("127.0.0.1", 8001), "client": ("127.0.0.1", 5000), "scheme": "http", "root_path": "",
                 "method": method, "path": path, "raw_path": path.encode(), "query_string": b"", "headers": headers}
        for _ in range(requests // 10):  # warm-up
            await app(dict(scope), receive, send)
        start = time.process_time()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return (time.process_time() - start) / requests * 1e6

    print(f"\nASGI application CPU per request, in-process, {requests} requests each (us)")
    print(f"{'application':<20}" + "".join(f"{op:>10}" for op in shapes))
    for name, app in apps.items():
        print(f"{name:<20}" + "".join(f"{asyncio.run(drive(app, *shape)):>10.1f}" for shape in shapes.values()))


def tail_experiments(seconds: float) -> None:
    """The 64-client tail under garbage-collection variants, each on a fresh server with the shim."""
    rows: list[Row] = []
    probes: list[str] = []
    for label, prelude in GC_VARIANTS.items():
        server = our_server(nodelay_shim=True, prelude=prelude).start()
        time.sleep(GC_PROBE_WAIT_S)
        try:
            rows += asyncio.run(run_cells(server.url, label, seconds, TAIL_CELLS))[0]
        finally:
            server.stop()
        probes += [f"{label}: {line}" for line in server.log_tail(400).splitlines() if "GCPROBE" in line]
    print_table(rows, f"tail at 64 clients under GC variants (bench-only shims), {seconds:g} s per cell")
    for line in probes:
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=["create", "read", "complete"])
    parser.add_argument("--py-spy", default="profile.txt")
    parser.add_argument("--nodelay-shim", action="store_true", help="profile/--cpu with the TCP_NODELAY shim")
    parser.add_argument("--cpu", action="store_true",
                        help="server CPU per request: bare, ours (and --baseline REV), interleaved")
    parser.add_argument("--layer", type=int, metavar="N", help="ASGI applications alone, in-process, N requests")
    parser.add_argument("--baseline", metavar="REV", help="with --cpu: also run our server as of git REV (or from a source directory)")
    parser.add_argument("--repeat", type=int, default=2, help="with --cpu: interleaved rounds")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="event loop of every server (bare and ours alike, so the ratio stays fair)")
    parser.add_argument("--tail", action="store_true", help="ours at 64 clients under garbage-collection variants")
    parser.add_argument("--cells", type=parse_cells, default=CPU_CELLS,
                        help="with --cpu: the cells, e.g. create@16,read@16,read@64 (first a create)")
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, args.loop)
        return
    pin_load_generator()
    if args.layer:
        layer_cost(args.layer)
        return
    if args.tail:
        tail_experiments(args.seconds)
        return
    if args.cpu:
        cpu_compare(args.seconds, args.repeat, args.baseline, args.loop, args.cells)
        return
    if args.profile:
        tree = args.baseline if args.baseline and os.path.isdir(args.baseline) else (
            baseline_tree(args.baseline) if args.baseline else None)
        profile(args.profile, args.py_spy, args.seconds, tree, args.loop)
        return
    bare, bare_busy = measure(BareProcess(args.loop), "bare starlette+uvicorn+httptools", args.seconds)
    ours, ours_busy = measure(our_server_from(None, args.loop), "ours (serve, SQLite FULL)", args.seconds)
    pin = "server on core 0 (taskset), load on the other core" if shutil.which("taskset") else "no taskset: unpinned"
    print_table(bare + ours, f"HTTP ceiling, {args.seconds:g} s per cell, {pin}, event loop {args.loop}")
    print("\nserver CPU (user+system, all threads) per wall second and per request, in the measured window")
    for r, b in zip(bare + ours, bare_busy + ours_busy):
        print(f"{r.transport:<34} {r.operation:<10} {r.concurrency:>7} {b:>6.0%} {b / r.throughput * 1e6:>7.0f} us")
    print(f"\n{'operation':<10} {'clients':>7} {'ours/bare req/s':>15} {'bare/ours CPU per request':>26}")
    for b, o, bb, ob in zip(bare, ours, bare_busy, ours_busy):
        print(f"{b.operation:<10} {b.concurrency:>7} {o.throughput / b.throughput:>15.0%} "
              f"{(bb / b.throughput) / (ob / o.throughput):>26.0%}")

if __name__ == "__main__":
    main()
