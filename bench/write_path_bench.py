"""A create's path through each transport inside the server process, without sockets or store (issue 13):
what the event loop spends on one write between the bytes arriving and the answer's bytes leaving.

- `http`: the API server's protocol (uvicorn's httptools protocol with the lane, as `resonate serve`
  configures it) over an in-memory transport, fed `POST /promises` requests;
- `grpc`: our HTTP/2 connection (resonate/api/grpc/http2.py) fed CreatePromise calls as a client with a
  warm HPACK table sends them (encoded by `hpack`'s encoder, with a changing `grpc-timeout` as grpc-go
  sends it), pre-encoded before timing.

Both hand the request to a kernel stand-in that keeps the answer object, and the bench answers it at once
with a result a real kernel produced: decoding, validation, answer rendering and framing are all real;
the writer thread, the commit and the loop's syscalls are not. Per-create CPU time, `--rounds` rounds.

Usage: python bench/write_path_bench.py [--requests N] [--rounds R] [--profile]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hpack  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from resonate.api.grpc import http2  # noqa: E402
from resonate.api.grpc.pb import promise_pb2  # noqa: E402
from resonate.api.grpc.server import _Drain, dispatcher  # noqa: E402
from resonate.api.http.server import create_http_app  # noqa: E402
from resonate.api.http.transport import CoalescingHttpToolsProtocol, uvicorn_config  # noqa: E402
from resonate.core.kernel import Kernel  # noqa: E402
from resonate.core.requests import decode  # noqa: E402
from resonate.core.store.sqlite import SqliteStore  # noqa: E402

from read_path_bench import MemoryTransport  # noqa: E402  (bench/ is on sys.path when run as a script)

FAR = 9_999_999_999_999
WINDOW_REFILL_EVERY = 500  # calls between the gRPC client's connection WINDOW_UPDATEs


class AnsweringKernel:
    """The kernel's surface for the lane and gRPC: every request is kept for the bench to answer."""

    def __init__(self):
        self.answers = []

    def submit_answer(self, request, answer, loop) -> None:
        self.answers.append(answer)


def dropped(data: bytes) -> None:
    """Written bytes are dropped: what matters is the work that made them."""


def real_create_result():
    """A create's result from a real kernel, the answer both transports render."""
    with tempfile.TemporaryDirectory() as directory:
        kernel = Kernel(SqliteStore(os.path.join(directory, "result.db")))
        kernel.start()
        try:
            return kernel.call(decode("promises.create", {"id": "bench", "timeout": FAR,
                                                          "param": {"data": "aGk="}}))
        finally:
            kernel.stop()


def http_round(loop, result, requests: int):
    kernel = AnsweringKernel()
    config = uvicorn_config(create_http_app(kernel), log_config=None, access_log=False)
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Mon, 30 Nov 2026 08:00:00 GMT"), (b"server", b"uvicorn")]
    protocol = CoalescingHttpToolsProtocol(config, state, {}, _loop=loop)
    protocol.connection_made(MemoryTransport(dropped))
    wire = []
    for i in range(requests):
        body = b'{"id":"bench-%d","timeout":%d,"param":{"headers":{},"data":"aGk="},"tags":{}}' % (i, FAR)
        wire.append(b"POST /promises HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def run():
        for data in wire:
            protocol.data_received(data)
            kernel.answers.pop().set_result(result)
            protocol.transport._flush()  # the coalescing transport's end-of-turn flush
    return run


def grpc_round(loop, result, requests: int):
    kernel = AnsweringKernel()
    connection = http2.Http2Connection(dispatcher(kernel, _Drain(), loop), 4 << 20, set())
    connection.connection_made(MemoryTransport(dropped))
    big_window = http2.SETTINGS_INITIAL_WINDOW_SIZE.to_bytes(2, "big") + http2.MAX_WINDOW.to_bytes(4, "big")
    connection.data_received(http2.PREFACE + http2.frame(http2.SETTINGS, 0, 0, big_window))
    encoder = hpack.Encoder()
    refill = http2.frame(http2.WINDOW_UPDATE, 0, 0, (1 << 24).to_bytes(4, "big"))
    wire = []
    for i in range(requests):
        message = promise_pb2.CreatePromiseRequest(id=f"bench-{i}", timeout=FAR).SerializeToString()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", "/promise.Promises/CreatePromise"),
                   (":authority", "127.0.0.1:50051"), ("content-type", "application/grpc"),
                   ("user-agent", "grpc-go/1.60.0"), ("te", "trailers"), ("grpc-timeout", f"{19_999_000 - i}u")]
        stream_id = 2 * i + 1
        data = http2.frame(http2.HEADERS, http2.END_HEADERS, stream_id, encoder.encode(headers)) + http2.frame(
            http2.DATA, http2.END_STREAM, stream_id, b"\x00" + len(message).to_bytes(4, "big") + message)
        wire.append(refill + data if i % WINDOW_REFILL_EVERY == 0 else data)

    def run():
        for data in wire:
            connection.data_received(data)
            kernel.answers.pop().set_result(result)
            connection.flush()
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one round of each, top 25 by own time")
    args = parser.parse_args(argv)
    result = real_create_result()
    asyncio.run(measure(result, args))


async def measure(result, args) -> None:
    """On a running loop, as the server's protocols expect."""
    loop = asyncio.get_running_loop()
    figures: dict[str, list[float]] = {"http": [], "grpc": []}
    for _ in range(args.rounds):
        for name, make in (("http", http_round), ("grpc", grpc_round)):
            run = make(loop, result, args.requests)
            started = time.process_time()
            run()
            figures[name].append((time.process_time() - started) / args.requests * 1e6)
    print(f"a create's CPU inside the server process, no sockets, no store ({args.requests} per round)")
    for name, values in figures.items():
        print(f"  {name:5} " + " / ".join(f"{v:.1f}" for v in values) + " us per create")
    if args.profile:
        for name, make in (("http", http_round), ("grpc", grpc_round)):
            run = make(loop, result, args.requests)
            profiler = cProfile.Profile()
            profiler.runcall(run)
            print(f"--- {name}")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
