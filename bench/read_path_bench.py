"""One HTTP read's whole path inside the server process, without sockets (issue 13): uvicorn's httptools
protocol (as `resonate serve` configures it) over an in-memory transport, 64 keep-alive connections each
sent one `GET /promises/{id}` per round, our application with a real kernel on file SQLite at
synchronous=FULL. Process CPU time per request; the bare Starlette endpoint of bench/ceiling_bench.py
runs the same way as the ceiling. No syscalls, no wake-ups, no load generator: what remains is Python
and SQLite, so an A/B of a read-path change shows here with less noise than through the network.

A/B in one run: `--tree DIR` (repeatable) imports `resonate` from another source tree (e.g. a `git archive`
of the baseline commit); each variant runs in its own subprocess, interleaved `--rounds` times.

Usage: python bench/read_path_bench.py [--tree DIR ...] [--requests N] [--rounds R]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAR = 10**15
CONNECTIONS = 64
PROMISES = 1000


class MemoryTransport:
    """What uvicorn's protocol needs of a transport; `on_write` sees every write."""

    def __init__(self, on_write):
        self.on_write = on_write

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def writelines(self, chunks) -> None:
        self.on_write(b"".join(chunks))

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8001), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def measure(variant: str, requests: int) -> float:
    """CPU µs per read of `variant` ("bare" or "ours", with the resonate on sys.path)."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    loop = asyncio.get_running_loop()
    kernel = None
    make_config = uvicorn.Config
    if variant == "bare":
        sys.path.insert(0, os.path.join(HERE, "bench"))
        from ceiling_bench import bare_app
        app, protocol, ids = bare_app(), HttpToolsProtocol, ["p"]
    else:
        from resonate.api.http import transport
        from resonate.api.http.server import create_http_app
        from resonate.core.kernel import Kernel
        from resonate.core.operations import decode
        from resonate.core.store.sqlite import SqliteStore
        make_config = getattr(transport, "uvicorn_config", uvicorn.Config)  # as the server builds it
        kernel = Kernel(SqliteStore(os.path.join(tempfile.mkdtemp(prefix="read-path-"), "k.db")),
                        queue_limit=100_000)
        kernel.start()
        ids = [f"p{i}" for i in range(PROMISES)]
        for pid in ids:
            kernel.call(decode("promises.create", {"id": pid, "timeout": FAR}))
        app, protocol = create_http_app(kernel), transport.CoalescingHttpToolsProtocol
    config = make_config(app, http=protocol, log_level="warning", access_log=False, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    unanswered = [0]
    answered = asyncio.Event()

    def on_write(data: bytes) -> None:
        if data.endswith(b"}"):  # an answer's body (alone, or after its head): one request done
            unanswered[0] -= 1
            if unanswered[0] == 0:
                answered.set()

    connections = []
    for _ in range(CONNECTIONS):
        conn = protocol(config=config, server_state=state, app_state={}, _loop=loop)
        conn.connection_made(MemoryTransport(on_write))
        connections.append(conn)
    reads = [f"GET /promises/{pid} HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nUser-Agent: bench\r\n\r\n".encode()
             for pid in ids]

    async def rounds(n: int) -> int:
        sent = 0
        for _ in range(max(1, n // CONNECTIONS)):
            unanswered[0] = CONNECTIONS
            answered.clear()
            for conn in connections:
                conn.data_received(reads[sent % len(reads)])
                sent += 1
            await answered.wait()
        return sent

    try:
        await rounds(requests // 10)  # warm-up
        started = time.process_time()
        sent = await rounds(requests)
        return (time.process_time() - started) / sent * 1e6
    finally:
        for conn in connections:
            conn.connection_lost(None)
        if kernel is not None:
            kernel.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", default=[], help="another source tree to compare")
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "TREE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        variant, tree = args.run
        sys.path.insert(0, tree)
        print(f"{asyncio.run(measure(variant, args.requests)):.2f}")
        return
    variants = [("bare", "bare", HERE), ("ours (this tree)", "ours", HERE)]
    variants += [(f"ours ({tree})", "ours", tree) for tree in args.tree]
    results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for _ in range(args.rounds):
        for name, variant, tree in variants:
            out = subprocess.run([sys.executable, __file__, "--run", variant, tree, "--requests", str(args.requests)],
                                 check=True, capture_output=True, text=True, cwd=HERE).stdout
            results[name].append(float(out.split()[-1]))
    print(f"\nHTTP read path in-process (uvicorn protocol, app, kernel, file SQLite; no sockets): CPU µs per "
          f"request, {args.requests} requests x {args.rounds} interleaved rounds, {CONNECTIONS} connections")
    for name, values in results.items():
        print(f"{name:<48} " + " / ".join(f"{v:.1f}" for v in values) + f"   best {min(values):.1f}")


if __name__ == "__main__":
    main()
