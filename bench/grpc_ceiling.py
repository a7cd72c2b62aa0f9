"""gRPC against HTTP per request, on the same server in the same run (issue 13: "gRPC per request >= HTTP").

Our server (`resonate serve`, file SQLite at synchronous=FULL, gRPC and HTTP both on) is pinned to core 0
with taskset; the load generator (one asyncio process) takes the other core. For each operation
(create, read, complete) and each concurrency (1, 16, 64), the same server is loaded over gRPC and then
over HTTP for a fixed short window, and the bench prints req/s, p50/p99 and the server's CPU time per
request (user + system of all its threads, from /proc/<pid>/stat over the measured window). A bare
grpc.aio server with the same messages and no store (parse the request, build and serialize the reply)
is the gRPC ceiling, measured the same way. The load generator's own CPU share is printed too: at
~100% it, not the server, is the bottleneck, and req/s says nothing about the server (CPU per request
still does).

The gRPC load: bench/raw_grpc.py's minimal HTTP/2 client over `--channels` connections (default 4), or
with `--client grpcio` grpc.aio channels (raw-bytes unary calls, no stub), `clients` concurrent calls
spread over the connections. The HTTP load:
bench/http_bench.py's raw keep-alive client, one connection per concurrent client.

With `--ours-src DIR` a second build of our server (e.g. a `git archive` of an earlier commit unpacked
in DIR) is measured in the same run, interleaved cell by cell, as the A/B baseline.

With `--profile OP --py-spy FILE`, runs only our server under OP@64 over gRPC and records it with
`py-spy record --gil --threads` (pip install py-spy into the venv; not a project dependency);
`--summary FILE` breaks such a recording down by layer.

Usage: python bench/grpc_ceiling.py [--seconds S] [--ops create,read,complete] [--clients 1,16,64]
                                     [--repeat N] [--ours-src DIR] [--no-bare]
       python bench/grpc_ceiling.py --profile create|read|complete --py-spy FILE [--seconds S]
       python bench/grpc_ceiling.py --summary FILE
       python bench/grpc_ceiling.py --serve-bare-grpc PORT   (the bare gRPC server; run by the benchmark)
Figures on a shared machine are noisy: compare CPU per request, A/B within one run.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.ceiling_bench import SERVER_CORE, pin_load_generator, pinned, thread_cpu_seconds  # noqa: E402
from bench.common import Row, cpu_seconds_by_thread, make_row, run_for  # noqa: E402
from bench.http_bench import FAR, RawHttpConnection, promise_operation  # noqa: E402
from resonate.api.grpc.pb import promise_pb2, promise_t_pb2  # noqa: E402

WARMUP_S = 0.5
READY_TIMEOUT_S = 30
DEFAULT_CHANNELS = 4
COMPLETES_PER_SECOND = 5000  # promises created ahead for each complete cell (more than a cell completes)
CREATE, READ, RESOLVE = "/promise.Promises/CreatePromise", "/promise.Promises/ReadPromise", \
    "/promise.Promises/ResolvePromise"
PATH_BY_OPERATION = {"create": CREATE, "read": READ, "complete": RESOLVE}


def process_cpu_seconds(pid: int) -> float:
    return sum(thread_cpu_seconds(pid).values())


def thread_group(name: str) -> str:
    if name.startswith("MainThread"):
        return "event loop"
    if name.startswith("resonate-grpc"):
        return "gRPC handler threads"
    if "_serve" in name:
        return "gRPC poller (grpcio _serve)"
    if name.startswith("resonate-writer"):
        return "kernel writer"
    return "other"


def cpu_by_thread_group(pid: int, names_file: str) -> dict[str, float]:
    try:
        with open(names_file) as f:
            names = {int(k): v for k, v in json.load(f).items()}
    except (OSError, ValueError):
        names = {}
    return cpu_seconds_by_thread(pid, lambda tid: thread_group(names.get(tid, "?")))


def threads_breakdown(seconds: float, channels: int, ops: list[str]) -> None:
    """Server CPU per request by thread group, gRPC and HTTP at 64 clients, one server."""
    import tempfile
    names_file = os.path.join(tempfile.mkdtemp(prefix="grpc-ceiling-"), "threads.json")
    os.environ["THREAD_NAMES_FILE"] = names_file
    server = our_server(label="ours", variant="thread-names").start()
    try:
        async def load():
            grpc_load = GrpcLoad(f"127.0.0.1:{server.grpc_port}", channels, RAW_CLIENT[0])
            await grpc_load.ready()
            pools = {"grpc": Pools(), "http": Pools()}
            for op in ops:
                for transport in ("grpc", "http"):
                    if op == "complete" or not pools[transport].ids:  # something to complete or read
                        await timed_cell(transport, server, "create", 64, seconds * 2, pools[transport], grpc_load,
                                         "fill")
                    before = cpu_by_thread_group(server.proc.pid, names_file)
                    row, busy, _ = await timed_cell(transport, server, op, 64, seconds, pools[transport], grpc_load,
                                                    transport)
                    after = cpu_by_thread_group(server.proc.pid, names_file)
                    per = {k: (after[k] - before.get(k, 0.0)) * 1e6 / row.requests for k in after}
                    parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 1)
                    print(f"{transport:<5} {op:<9} @64 {row.throughput:>6.0f} req/s  {busy:>4.0%} busy  "
                          f"{sum(per.values()):>4.0f} us CPU/request ({parts})", flush=True)
            await grpc_load.close()

        print(f"server CPU per request by thread (utime+stime from /proc), {seconds:g} s per cell")
        asyncio.run(load())
    finally:
        server.stop()


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# --- the bare gRPC server -----------------------------------------------------------------------------

SYNC_POOL_THREADS = 16
GRPC_PREFIX_BYTES = 5  # a gRPC message on the wire: 1 byte compressed flag, 4 bytes length


# the bare servers' three RPCs: path -> (request, response, state of the promise answered, completed)
BARE_RPCS = {
    CREATE: (promise_pb2.CreatePromiseRequest, promise_pb2.CreatePromiseResponse, promise_t_pb2.PENDING, False),
    READ: (promise_pb2.ReadPromiseRequest, promise_pb2.ReadPromiseResponse, promise_t_pb2.PENDING, False),
    RESOLVE: (promise_pb2.ResolvePromiseRequest, promise_pb2.ResolvePromiseResponse, promise_t_pb2.RESOLVED, True),
}


def bare_reply(path: str, raw: bytes) -> bytes:
    """What a bare server answers: parse the request, build the promise reply, serialize; no store."""
    request, response, state, completed = BARE_RPCS[path]
    m = request.FromString(raw)
    now = int(time.time() * 1000)
    return response(promise=promise_t_pb2.Promise(
        id=m.id, state=state, param=promise_t_pb2.Value(), value=promise_t_pb2.Value(), timeout=FAR,
        createdOn=now, completedOn=now if completed else 0)).SerializeToString()


def serve_bare_grpc(port: int, hop: bool = False, sync: bool = False) -> None:
    """The same three RPCs, raw bytes in and out as ours, no store, on grpc.aio or (`sync`) grpcio's
    thread-pool server. With `hop`, each call also waits for a no-op run on another thread, as ours waits
    for the writer."""
    import concurrent.futures

    import grpc

    worker = concurrent.futures.ThreadPoolExecutor(1)

    def aio_handler(path: str):
        async def handle(raw: bytes, context) -> bytes:
            if hop:
                await asyncio.wrap_future(worker.submit(int))
            return bare_reply(path, raw)
        return handle

    def sync_handler(path: str):  # runs on a pool thread and blocks for the hop
        def handle(raw: bytes, context) -> bytes:
            if hop:
                worker.submit(int).result()
            return bare_reply(path, raw)
        return handle

    def handlers(make) -> list:
        return [grpc.method_handlers_generic_handler("promise.Promises", {
            path.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(make(path)) for path in BARE_RPCS})]

    if sync:
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(SYNC_POOL_THREADS))
        server.add_generic_rpc_handlers(handlers(sync_handler))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(handlers(aio_handler))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def serve_bare_h2(port: int) -> None:
    """The bare RPCs behind our own HTTP/2 layer (resonate/api/grpc/http2.py, what our server runs on) with
    no store: our gRPC transport's own ceiling."""
    from resonate.api.grpc.http2 import Http2Connection, trailers_block

    ok = trailers_block(0, None, ())

    def dispatch(call) -> None:
        call.reply(bare_reply(call.path, call.message), ok)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: Http2Connection(dispatch, 4 * 1024 * 1024), "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


class BareGrpcProcess:
    def __init__(self, hop: bool = False, sync: bool = False, h2: bool = False):
        from tests.infra.ports import free_port
        self.hop, self.sync, self.h2 = hop, sync, h2
        self.label = ("bare grpc sync" if sync else "bare grpc.aio") + (" + thread hop" if hop else " (no store)")
        if h2:
            self.label = "bare own http2 (no store)"
        self.grpc_port = free_port()
        self.url = None  # no HTTP
        self.proc: subprocess.Popen | None = None

    def start(self) -> "BareGrpcProcess":
        self.proc = subprocess.Popen(pinned([sys.executable, os.path.abspath(__file__),
                                             "--serve-bare-h2" if self.h2 else "--serve-bare-grpc",
                                             str(self.grpc_port), *(["--hop"] if self.hop else []),
                                             *(["--sync"] if self.sync else [])]),
                                     start_new_session=True)
        asyncio.run(wait_grpc_ready(f"127.0.0.1:{self.grpc_port}", self.proc))
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


async def wait_grpc_ready(target: str, proc: subprocess.Popen) -> None:
    import grpc
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with grpc.aio.insecure_channel(target) as channel:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                await asyncio.wait_for(channel.channel_ready(), 1)
                return
            except asyncio.TimeoutError:
                pass
    raise RuntimeError(f"{target} was not ready within {READY_TIMEOUT_S}s")


# bench-only variants of our server: Python run before the server starts (GrpcServer's class settings)
VARIANT_SHIM = """
import runpy
from resonate.api.grpc.server import GrpcServer
{prelude}
runpy.run_module("resonate.cli", run_name="__main__", alter_sys=True)
"""
# writes {native thread id: name} of the server's threads to $THREAD_NAMES_FILE every 0.2 s (for --threads)
THREAD_NAMES = """
import json, os, threading, time
def _dump_thread_names():
    while True:
        names = {t.native_id: t.name for t in threading.enumerate()}
        with open(os.environ["THREAD_NAMES_FILE"] + ".tmp", "w") as f:
            json.dump(names, f)
        os.replace(os.environ["THREAD_NAMES_FILE"] + ".tmp", os.environ["THREAD_NAMES_FILE"])
        time.sleep(0.2)
threading.Thread(target=_dump_thread_names, name="bench-thread-names", daemon=True).start()
"""
VARIANTS = {
    "thread-names": THREAD_NAMES,
    # what perf-tail's garbage-collection change would do to gRPC and HTTP: start-up objects frozen out of
    # the collected generations 2 s after start (section 4 of docs/performance.md)
    "gcfreeze": "import gc, threading, time\n"
                "threading.Thread(target=lambda: (time.sleep(2), gc.freeze()), daemon=True).start()",
}


def our_server(src: str | None = None, label: str = "ours", variant: str | None = None):
    """`resonate serve` on a temp file SQLite (FULL), gRPC and HTTP on, pinned; from `src` if given."""
    from tests.server import ServerProcess

    class PinnedServer(ServerProcess):
        def command(self) -> list[str]:
            cmd = super().command()
            if variant is not None:
                assert cmd[1:3] == ["-m", "resonate.cli"], cmd
                cmd = [cmd[0], "-c", VARIANT_SHIM.format(prelude=VARIANTS[variant]), *cmd[3:]]
            return pinned(cmd)

        def start(self, timeout: float = 30):
            if src is None:
                return super().start(timeout)
            # run the other build: its directory first on sys.path (python -m puts the cwd there)
            import tests.server as ts
            saved = ts.ROOT
            ts.ROOT = src
            try:
                return super().start(timeout)
            finally:
                ts.ROOT = saved

    server = PinnedServer(grpc=True)
    server.label = label
    return server


# --- the load -----------------------------------------------------------------------------------------

RAW_CLIENT = [True]  # --client: the raw bench client (True) or grpc.aio (False)


class GrpcLoad:
    """Raw-bytes unary calls over a few connections: bench/raw_grpc.py's minimal client (`raw`, the default:
    it costs the load core far less per call than grpcio's), or grpc.aio channels."""

    def __init__(self, target: str, channels: int, raw: bool = True):
        self.target, self.raw, self.channels = target, raw, channels
        self.pool = None
        if not raw:
            import grpc
            self.aio = [grpc.aio.insecure_channel(target) for _ in range(channels)]
            self.calls = {path: [ch.unary_unary(path) for ch in self.aio] for path in PATH_BY_OPERATION.values()}

    async def ready(self) -> None:
        if self.raw:
            from bench.raw_grpc import RawGrpcPool
            host, port = self.target.rsplit(":", 1)
            self.pool = await RawGrpcPool.open(host, int(port), self.channels)
            return
        for ch in self.aio:
            await asyncio.wait_for(ch.channel_ready(), READY_TIMEOUT_S)

    async def call(self, path: str, worker_index: int, message: bytes) -> None:
        if self.raw:
            status, code, _ = await self.pool.call(path, message)
            if status != 0:
                raise RuntimeError(f"{path}: grpc-status {status}, resonate-code {code}")
            return
        await self.calls[path][worker_index % self.channels](message, timeout=30)

    async def close(self) -> None:
        if self.raw:
            if self.pool is not None:
                self.pool.close()
            return
        for ch in self.aio:
            await ch.close()


def grpc_request(operation: str, pid: str) -> bytes:
    if operation == "create":
        return promise_pb2.CreatePromiseRequest(id=pid, timeout=FAR).SerializeToString()
    if operation == "read":
        return promise_pb2.ReadPromiseRequest(id=pid).SerializeToString()
    return promise_pb2.ResolvePromiseRequest(id=pid, value=promise_t_pb2.Value(data=b"done")).SerializeToString()


class Pools:
    """Promise ids per transport: creates add to them, reads cycle over them, completes consume them."""

    def __init__(self):
        self.ids: list[str] = []
        self.pending: list[str] = []


async def timed_cell(transport: str, server, operation: str, clients: int, seconds: float, pools: Pools,
                     grpc_load: GrpcLoad | None, label: str) -> tuple[Row, float, float]:
    """(row, server CPU seconds per wall second, load generator CPU seconds per wall second)."""
    prefix = f"gc-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    conns: list = []
    if transport == "http":
        host, port = server.url.split("//", 1)[1].rsplit(":", 1)
        conns = [await RawHttpConnection.open(host, int(port)) for _ in range(clients)]
        one = promise_operation(conns, operation, pools.ids, pools.pending, prefix)
    else:
        counter = iter(range(10**9))

        async def one(worker_index: int) -> bool:
            i = next(counter)
            if operation == "create":
                pid = f"{prefix}-{i}"
            elif operation == "read":
                pid = pools.ids[i % len(pools.ids)]
            else:
                if not pools.pending:
                    return False
                pid = pools.pending.pop()
            await grpc_load.call(PATH_BY_OPERATION[operation], worker_index, grpc_request(operation, pid))
            if operation == "create":
                pools.ids.append(pid)
                pools.pending.append(pid)
            return True

    if operation != "complete":  # completes have no spare promises to warm up on
        await run_for(clients, one, WARMUP_S)
    pid = server.proc.pid
    cpu0, own0, t0 = process_cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
    await run_for(clients, one, seconds, latencies)
    cpu1, own1, t1 = process_cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
    for c in conns:
        c.close()
    return make_row(label, operation, clients, t1 - t0, latencies), (cpu1 - cpu0) / (t1 - t0), \
        (own1 - own0) / (t1 - t0)


Result = tuple[Row, float, float]

PROTOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resonate", "api", "grpc", "protos")
GHZ_REQUESTS_PER_SECOND = 2000  # requests per ghz cell at 16+ clients, per measured second asked for
GHZ_MIN_REQUESTS = 1000
GHZ_CALLS = {"create": "promise.Promises.CreatePromise", "read": "promise.Promises.ReadPromise",
             "complete": "promise.Promises.ResolvePromise"}


class GhzState:
    """What the ghz cells of one server created: a prefix and a count (ghz numbers its requests)."""

    def __init__(self):
        self.created: list[tuple[str, int]] = []  # (prefix, count) of each create cell
        self.completed = 0  # how many of the created ids the complete cells used


def ghz_cell(ghz: str, server, operation: str, clients: int, seconds: float, state: GhzState, label: str) -> Result:
    """One cell driven by ghz (Go) on the load core; its own CPU share is ghz's user+sys over its run."""
    prefix = f"ghz-{uuid.uuid4().hex[:8]}"
    cmd = ["taskset", "-c", str(1 - SERVER_CORE), ghz, "--insecure", "--cpus", "1", "--proto", os.path.join(PROTOS, "promise.proto"),
           "--import-paths", PROTOS, "--call", GHZ_CALLS[operation], "-c", str(clients),
           "--connections", str(min(clients, DEFAULT_CHANNELS)), "--format", "json"]
    # a count, not a duration: ghz's -z cancels the calls still in flight at the end (UNAVAILABLE)
    requests = max(GHZ_MIN_REQUESTS, int(GHZ_REQUESTS_PER_SECOND * seconds)) if clients > 1 else GHZ_MIN_REQUESTS
    if operation == "create":
        cmd += ["-n", str(requests), "-d", json.dumps({"id": prefix + "-{{.RequestNumber}}", "timeout": FAR})]
    elif operation == "read":
        read_prefix, count = state.created[-1]
        cmd += ["-n", str(requests),
                "-d", json.dumps({"id": read_prefix + "-{{randomInt 0 " + str(count) + "}}"})]
    else:  # complete the ids of the create cells, oldest first, each once: a count, not a duration
        read_prefix, count = next((p, c) for p, c in state.created if c >= clients)
        state.created.remove((read_prefix, count))
        cmd += ["-n", str(count), "-d", json.dumps({"id": read_prefix + "-{{.RequestNumber}}",
                                                    "value": {"data": "ZG9uZQ=="}})]
    import resource
    pid = server.proc.pid
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, t0 = process_cpu_seconds(pid), time.perf_counter()
    ran = subprocess.run(cmd + [f"127.0.0.1:{server.grpc_port}"], capture_output=True, text=True, timeout=600)
    cpu1, t1 = process_cpu_seconds(pid), time.perf_counter()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ghz_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    report = json.loads(ran.stdout)
    if operation == "create":
        state.created.append((prefix, report["count"]))
    ok = report["statusCodeDistribution"].get("OK", 0)
    if ok != report["count"]:
        raise RuntimeError(f"ghz {operation}: {report['statusCodeDistribution']} {report.get('errorDistribution')}")
    wall = report["total"] / 1e9
    lat = {d["percentage"]: d["latency"] / 1e6 for d in report["latencyDistribution"]}
    row = Row(label, operation, clients, report["count"], wall, lat.get(50, 0.0), lat.get(99, 0.0))
    # the server's CPU over ghz's whole run (it idles while ghz starts) per second of ghz's measured window,
    # so that busy / req/s is the server's CPU per request; ghz's own share includes its start-up
    return row, (cpu1 - cpu0) / wall, ghz_cpu / (t1 - t0)


def run_ghz(ghz: str, server, ops: list[str], levels: list[int], seconds: float, repeat: int) -> list[Result]:
    """ghz cells, each followed by the same cell over HTTP (the Python raw client) on the same server."""
    state = GhzState()
    http_pool = Pools()
    results = []
    for _ in range(repeat):
        for op in ops:
            for clients in levels:
                if op == "complete" and not any(c >= clients for _, c in state.created):
                    ghz_cell(ghz, server, "create", 64, seconds, state, "fill")
                results.append(ghz_cell(ghz, server, op, clients, seconds, state, f"{server.label} grpc"))
                if op == "complete":
                    while len(http_pool.pending) < COMPLETES_PER_SECOND * seconds:
                        asyncio.run(timed_cell("http", server, "create", 64, seconds, http_pool, None, "fill"))
                results.append(asyncio.run(timed_cell("http", server, op, clients, seconds, http_pool, None,
                                                      f"{server.label} http")))
    return results


async def run_all(servers: list, ops: list[str], levels: list[int], seconds: float, channels: int,
                  repeat: int) -> list[Result]:
    """Cell by cell, every (server, transport) in turn, so slow drifts of the shared machine hit all alike."""
    loads = {}
    pools = {}
    for s in servers:
        loads[s.label] = GrpcLoad(f"127.0.0.1:{s.grpc_port}", channels, RAW_CLIENT[0])
        await loads[s.label].ready()
        for transport in ("grpc", "http"):
            pools[(s.label, transport)] = Pools()
    results: list[Result] = []
    for _ in range(repeat):
        for op in ops:
            if op == "complete":  # fill the pools so every complete cell has promises to complete
                for s in servers:
                    for transport in (("grpc", "http") if s.url else ("grpc",)):
                        pool = pools[(s.label, transport)]
                        while len(pool.pending) < COMPLETES_PER_SECOND * seconds * len(levels):
                            await timed_cell(transport, s, "create", 64, 2.0, pool, loads[s.label], "fill")
            for clients in levels:
                for s in servers:
                    for transport in (("grpc", "http") if s.url else ("grpc",)):
                        if op == "read" and not pools[(s.label, transport)].ids:  # something to read
                            await timed_cell(transport, s, "create", 64, 1.0, pools[(s.label, transport)],
                                             loads[s.label], "fill")
                        label = f"{s.label} {transport}"
                        results.append(await timed_cell(transport, s, op, clients, seconds,
                                                        pools[(s.label, transport)], loads[s.label], label))
    for load in loads.values():
        await load.close()
    return results


def print_results(results: list[Result], title: str) -> None:
    print(f"\n{title}")
    print(f"{'server transport':<34} {'op':<9} {'clients':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'srv CPU':>7} {'us/req':>7} {'load CPU':>8}")
    for row, busy, own in results:
        print(f"{row.transport:<34} {row.operation:<9} {row.concurrency:>7} {row.throughput:>8.0f} "
              f"{row.p50_ms:>7.2f} {row.p99_ms:>7.2f} {busy:>7.0%} {busy / row.throughput * 1e6 if row.throughput else 0:>7.0f} "
              f"{own:>8.0%}")


def print_ratios(results: list[Result]) -> None:
    """gRPC against HTTP of each server: CPU per request (lower is better) and req/s, median over repeats."""
    import statistics
    cells = collections.defaultdict(list)
    for row, busy, _ in results:
        server, _, transport = row.transport.rpartition(" ")
        cells[(server, row.operation, row.concurrency, transport)].append(
            (busy / row.throughput * 1e6 if row.throughput else float("nan"), row.throughput))
    print("\nper server, gRPC / HTTP (median over repeats): CPU per request (below 100% = gRPC cheaper), req/s")
    print(f"{'server':<28} {'op':<9} {'clients':>7} {'grpc us':>8} {'http us':>8} {'cpu g/h':>8} {'req/s g/h':>9}")
    for (server, op, clients, transport), values in cells.items():
        if transport != "grpc" or (server, op, clients, "http") not in cells:
            continue
        g_us = statistics.median(v[0] for v in values)
        g_rps = statistics.median(v[1] for v in values)
        h = cells[(server, op, clients, "http")]
        h_us = statistics.median(v[0] for v in h)
        h_rps = statistics.median(v[1] for v in h)
        print(f"{server:<28} {op:<9} {clients:>7} {g_us:>8.0f} {h_us:>8.0f} {g_us / h_us:>8.0%} {g_rps / h_rps:>9.0%}")


# --- profiling ----------------------------------------------------------------------------------------

def profile(operation: str, out: str, seconds: float, channels: int) -> None:
    server = our_server().start()
    try:
        async def load():
            grpc_load = GrpcLoad(f"127.0.0.1:{server.grpc_port}", channels, RAW_CLIENT[0])
            await grpc_load.ready()
            pools = Pools()
            if operation != "create":
                await timed_cell("grpc", server, "create", 64, seconds * (3 if operation == "complete" else 1),
                                 pools, grpc_load, "setup")
            spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--pid",
                                    str(server.proc.pid), "--format", "raw", "--gil", "--threads", "--rate", "250",
                                    "--duration", str(int(seconds)), "--output", out, "--nonblocking"])
            await asyncio.sleep(1)  # py-spy attaching
            result = await timed_cell("grpc", server, operation, 64, seconds, pools, grpc_load, "ours grpc, py-spy")
            spy.wait(60)
            await grpc_load.close()
            print_results([result], f"our server under py-spy (gRPC {operation}@64), stacks in {out}")

        asyncio.run(load())
    finally:
        server.stop()


# inclusive layers of a gRPC call; the first pattern found in a stack counts it
GRPC_LAYERS = [
    ("waiting (poll, locks, queues, epoll)", r"(EpollSelector\.select|_poll_wrapper|CompletionQueue\.poll"
                                             r"|Condition\.wait|Event\.wait|queue\.py|_worker \(concurrent)[^;]*$"),
    ("core decode (request validation)", r"decode \(resonate/core/(operations|requests)\.py"),
    ("proto -> fields, result -> proto (mapping.py)", r"resonate/api/grpc/mapping\.py"),
    ("kernel.submit (queue put, admission)", r"submit \(resonate/core/kernel\.py"),
    ("waiting for the kernel's answer (Future.result)", r"result \(concurrent/futures/_base\.py"),
    ("asyncio hand-off (wrap_future, shield)", r"(wrap_future|_chain_future|shield \(asyncio)"),
    ("request log + metrics (observability)", r"(resonate/observability/|prometheus_client)"),
    ("our handler's own lines (server.py)", r"resonate/api/grpc/server\.py"),
    ("kernel writer: SQL, commit, outcomes", r"resonate/core/(kernel|store|operations)"),
    ("grpcio Python server (events, RPC state, send status)", r"grpc/_server\.py|grpc/_common|grpc/_cython"),
    ("grpc.aio server", r"grpc/aio|_handle_rpc|_handle_unary"),
    ("asyncio loop + callbacks", r"asyncio/|selectors\.py"),
    ("thread pool (submit, worker)", r"concurrent/futures/thread\.py|threading\.py"),
]


def summarise(path: str, top: int = 15) -> None:
    """Samples by thread group, by layer (inclusive, first match wins), and the top own functions."""
    stacks = []
    for line in open(path):
        line = line.rstrip("\n")
        if line:
            stack, _, count = line.rpartition(" ")
            thread, _, frames = stack.partition(";")
            name = re.sub(r"^thread \(0?x?[0-9a-f]+\): ?", "", thread)
            stacks.append((thread_group(re.sub(r"Thread-\d+ \(_serve\)", "_serve", name)), frames, int(count)))
    total = sum(n for _, _, n in stacks)
    groups = collections.Counter()
    for group, _, n in stacks:
        groups[group] += n
    print(f"{total} GIL-holding samples (py-spy --gil): by thread group")
    for group, n in groups.most_common():
        print(f"  {group:<36} {n:>6} ({n / total:.0%})")
    layers = collections.Counter()
    for _, frames, n in stacks:
        for label, pattern in GRPC_LAYERS:
            if re.search(pattern, frames):
                layers[label] += n
                break
        else:
            layers["other"] += n
    print("\nall threads, share of samples by layer (first match wins):")
    for label, n in layers.most_common():
        print(f"  {label:<56} {n:>6}  {n / total:>5.1%}")
    for group in groups:
        own = collections.Counter()
        for g, frames, n in stacks:
            if g == group:
                own[frames.rsplit(";", 1)[-1]] += n
        print(f"\n{group}: top {top} functions by own samples")
        for fn, n in own.most_common(top):
            print(f"  {n:>6}  {fn}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--ops", default="create,read,complete")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, help="gRPC client channels")
    parser.add_argument("--repeat", type=int, default=1, help="run every cell this many times, interleaved")
    parser.add_argument("--ours-src", help="also measure our server from this source tree (A/B baseline)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare grpc.aio ceiling")
    parser.add_argument("--profile", choices=["create", "read", "complete"])
    parser.add_argument("--py-spy", default="grpc-profile.txt")
    parser.add_argument("--threads", action="store_true",
                        help="our server's CPU per request by thread group (gRPC and HTTP at 64 clients)")
    parser.add_argument("--ghz", metavar="PATH", help="drive our server's gRPC with ghz instead (go install "
                        "github.com/bojand/ghz/cmd/ghz@latest), the load pinned to core 1; with --ours-src the "
                        "baseline is measured after ours")
    parser.add_argument("--summary", metavar="FILE", help="summarise a py-spy raw recording by layer")
    parser.add_argument("--serve-bare-grpc", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare-h2", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--h2", action="store_true", help="also the bare RPCs on our own HTTP/2 layer "
                        "(resonate/api/grpc/http2.py), no store")
    parser.add_argument("--hop", action="store_true",
                        help="also a bare server whose calls wait for a no-op on another thread")
    parser.add_argument("--sync", action="store_true", help="also the bare servers on grpcio's sync server")
    parser.add_argument("--variants", default="", help="also our server in these bench-only variants "
                        f"(comma-separated, from: {', '.join(VARIANTS)})")
    parser.add_argument("--no-ours", action="store_true", help="only the bare server(s)")
    parser.add_argument("--client", choices=["raw", "grpcio"], default="raw",
                        help="gRPC load: bench/raw_grpc.py's minimal client (default) or grpc.aio channels")
    args = parser.parse_args(argv)
    RAW_CLIENT[0] = args.client == "raw"
    if args.serve_bare_h2:
        serve_bare_h2(args.serve_bare_h2)
        return
    if args.serve_bare_grpc:
        serve_bare_grpc(args.serve_bare_grpc, args.hop, args.sync)
        return
    if args.summary:
        summarise(args.summary)
        return
    pin_load_generator()
    if args.profile:
        profile(args.profile, args.py_spy, args.seconds, args.channels)
        return
    if args.threads:
        for _ in range(args.repeat):
            threads_breakdown(args.seconds, args.channels, args.ops.split(","))
        return
    if args.ghz:  # with --ours-src, the baseline's cells follow ours, server by server
        results = []
        builds = [our_server(label="ours")]
        if args.ours_src:
            builds.append(our_server(os.path.abspath(args.ours_src), label="baseline"))
        for build in builds:
            server = build.start()
            try:
                results += run_ghz(args.ghz, server, args.ops.split(","), [int(c) for c in args.clients.split(",")],
                                   args.seconds, args.repeat)
            finally:
                server.stop()
        print_results(results, f"gRPC load from ghz ({args.ghz}, one core), HTTP from the Python raw client, "
                               f"{args.seconds:g} s per cell; us/req = server CPU per request")
        print_ratios(results)
        return
    servers = [] if args.no_ours else [our_server(label="ours")]
    for variant in filter(None, args.variants.split(",")):
        servers.append(our_server(label=f"ours {variant}", variant=variant))
    if args.ours_src:
        servers.append(our_server(os.path.abspath(args.ours_src), label="baseline"))
    if not args.no_bare:
        servers.append(BareGrpcProcess())
    if args.hop:
        servers.append(BareGrpcProcess(hop=True))
    if args.h2:
        servers.append(BareGrpcProcess(h2=True))
    if args.sync:
        servers += [BareGrpcProcess(sync=True)] + ([BareGrpcProcess(hop=True, sync=True)] if args.hop else [])
    started = []
    try:
        for s in servers:
            started.append(s.start())
        results = asyncio.run(run_all(servers, args.ops.split(","), [int(c) for c in args.clients.split(",")],
                                      args.seconds, args.channels, args.repeat))
    finally:
        for s in started:
            s.stop()
    print_results(results, f"gRPC and HTTP on one server, {args.seconds:g} s per cell, server on core 0, load on "
                           f"the other core ({'raw gRPC client' if RAW_CLIENT[0] else 'grpc.aio client'}, {args.channels} connections); srv CPU = server "
                           f"core busy, us/req = server CPU per request, load CPU = load generator busy")
    print_ratios(results)


if __name__ == "__main__":
    main()
