"""The gRPC transport's start and stop, in-process."""
from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

from resonate.api.grpc.server import GrpcServer
from tests.infra.ports import free_port

GRACE_MS = 1000


def test_the_port_listens_before_start_first_yields_to_the_loop():
    """The app starts transports one after another; while gRPC's start awaits, the loop already serves
    HTTP. A client that saw HTTP answer must find the gRPC port listening too (not refused)."""
    port = free_port()
    server = GrpcServer(kernel=None, cfg=SimpleNamespace(grpc_addr=("127.0.0.1", port), http_timeout_ms=GRACE_MS))

    async def scenario():
        starting = asyncio.ensure_future(server.start())
        await asyncio.sleep(0)  # start() runs up to its first suspension
        assert not starting.done()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted by the kernel's backlog: the socket listens
        await starting
        assert server.address == ("127.0.0.1", port) and server.health()
        await server.stop()
        assert not server.health()

    asyncio.run(scenario())


class RecordedCall:
    """What a handler answers, without HTTP/2 underneath."""

    def __init__(self, path: str, message: bytes):
        self.path, self.message, self.headers = path, message, {}
        self.answers: list[tuple] = []

    def header(self, name: bytes):
        return None

    def reply(self, message: bytes, trailers: bytes) -> None:
        self.answers.append(("reply", message))

    def fail(self, status: int, message: str, metadata=()) -> None:
        self.answers.append(("fail", status, message, dict(metadata)))


class BrokenKernel:
    """A kernel with a bug: reads raise."""

    def submit_answer(self, request, answer, loop):
        raise RuntimeError("boom")


def test_a_bug_behind_a_call_is_answered_internal_with_50000_and_the_call_leaves_the_drain_count():
    from resonate.api.grpc import http2
    from resonate.api.grpc.server import _Drain, dispatcher
    from resonate.api.grpc.pb import promise_pb2

    drain = _Drain()

    async def scenario():
        dispatch = dispatcher(BrokenKernel(), drain, asyncio.get_running_loop())
        call = RecordedCall("/promise.Promises/ReadPromise", promise_pb2.ReadPromiseRequest(id="p").SerializeToString())
        dispatch(call)
        return call

    call = asyncio.run(scenario())
    [(kind, status, message, metadata)] = call.answers
    assert (kind, status, metadata) == ("fail", http2.INTERNAL, {b"resonate-code": b"50000"})
    assert "RuntimeError: boom" in message
    assert drain.inflight == 0
