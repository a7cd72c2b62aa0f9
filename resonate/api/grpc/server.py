"""gRPC transport: the 20 unary RPCs of the reference's protos, on the app's event loop.

Every RPC goes through one handler driven by the table in `mapping.py`: parse the request bytes, turn
the message into canonical fields, let the core decode and run them, and write the result back. Errors
carry a gRPC status mapped from the core's 5-digit code, a message naming the cause, and the 5-digit
code itself in the trailing metadata key `resonate-code` (sent on success too, so clients can tell 200
from 201 where the response message cannot).

The HTTP/2 underneath is ours (`http2.py`), not grpcio's server: grpcio's Python server alone costs
more CPU per call than a whole HTTP request of ours (docs/performance.md section 9). Calls reach the
kernel with `submit_async`, like HTTP's, so a kernel batch answers all its calls with one loop callback
and each connection writes the answers of a turn in one send.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time

from google.protobuf.message import DecodeError

from ...core.codes import (INTERNAL_ERROR, INVALID, SHUTTING_DOWN, STATUS_TEXT, TASK_PRECONDITION_FAILED, UNAUTHORIZED,
                           ApiError, invalid, server_error)
from ...core.operations import decode
from ...observability.requests import RouteRecorder
from ..listen import listening_socket
from . import http2
from .http2 import Http2Connection, UnaryCall, trailers_block
from .mapping import RPCS, Rpc

log = logging.getLogger("resonate.grpc")

CODE_TRAILER = b"resonate-code"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # grpc-go's default receive limit, which the reference runs with

# 5-digit code -> gRPC status: exact codes first, then by the first three digits
_STATUS_BY_CODE = {INVALID: http2.INVALID_ARGUMENT, UNAUTHORIZED: http2.UNAUTHENTICATED,
                   TASK_PRECONDITION_FAILED: http2.FAILED_PRECONDITION}
_STATUS_BY_HUNDRED = {403: http2.PERMISSION_DENIED, 404: http2.NOT_FOUND, 409: http2.ALREADY_EXISTS,
                      500: http2.INTERNAL, 503: http2.UNAVAILABLE}


def grpc_status(code: int) -> int:
    """The gRPC status number of a 5-digit code."""
    status = _STATUS_BY_CODE.get(code) or _STATUS_BY_HUNDRED.get(code // 100)
    if status is not None:
        return status
    return http2.INVALID_ARGUMENT if INVALID <= code < INTERNAL_ERROR else http2.INTERNAL


def error_message(error: ApiError) -> str:
    """The cause: the detail texts when there are any, else the code's fixed text."""
    details = [d for d in error.details if d]
    return "; ".join(details) if details else STATUS_TEXT.get(error.code, STATUS_TEXT[INTERNAL_ERROR])


@functools.lru_cache(maxsize=None)
def success_trailers(code: int) -> bytes:
    return trailers_block(http2.OK, None, ((CODE_TRAILER, str(code).encode()),))


def fail(call: UnaryCall, error: ApiError) -> None:
    call.fail(grpc_status(error.code), error_message(error), ((CODE_TRAILER, str(error.code).encode()),))


class _Drain:
    """Counts calls in flight; once draining, new calls are refused with 50300 (as the reference does
    while it shuts down), so a client sees a clean UNAVAILABLE instead of a cancelled call."""

    QUIET_S = 0.2  # no new call for this long: whatever the clients had queued has been answered

    def __init__(self):
        self.draining = False
        self.inflight = 0
        self.last_arrival = 0.0

    def enter(self) -> None:
        self.last_arrival = time.monotonic()
        if self.draining:
            raise server_error(SHUTTING_DOWN)
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1

    async def settle(self, deadline: float) -> bool:
        """Wait until nothing runs and no call arrived for QUIET_S (True), or until the deadline (False)."""
        self.draining = True
        while time.monotonic() < deadline:
            if self.inflight == 0 and time.monotonic() - self.last_arrival >= self.QUIET_S:
                return True
            await asyncio.sleep(0.01)
        return False


def _handler(rpc: Rpc, kernel, drain: _Drain, loop: asyncio.AbstractEventLoop, authenticator=None):
    """The behaviour of one RPC, on the loop. Nothing cancels a submitted operation: a client that
    cancels or times out leaves it to run to completion, as in the reference; the answer to a call whose
    client has left is dropped."""
    operation = rpc.operation
    parse = rpc.request.FromString
    fields_of = rpc.fields
    reply_of = rpc.reply
    record = RouteRecorder("grpc", operation)
    not_a_message = f"the request is not a valid {rpc.request.DESCRIPTOR.full_name} message"

    def finish(call: UnaryCall, started: float, gauge, request_id: str | None, ok: bool, value) -> None:
        drain.leave()
        record.leave(gauge)
        if ok:
            try:
                reply = reply_of(value).SerializeToString()
            except Exception as e:  # a bug, not an input: answer cleanly and keep serving
                log.exception("%s failed", rpc.path)
                ok, value = False, server_error(INTERNAL_ERROR, f"{type(e).__name__}: {e}")
            else:
                call.reply(reply, success_trailers(value.code))
                record.finish(value.code, 0, time.perf_counter() - started, request_id)
                return
        if not isinstance(value, ApiError):
            log.error("%s failed", rpc.path, exc_info=value)
            value = server_error(INTERNAL_ERROR, f"{type(value).__name__}: {value}")
        fail(call, value)
        record.finish(value.code, grpc_status(value.code), time.perf_counter() - started, request_id)

    class Pending:
        """A submitted call's answer, as the kernel gives it (Kernel.submit_answer): on the loop, once."""

        __slots__ = ("call", "started", "gauge", "request_id")

        def __init__(self, call: UnaryCall, started: float, gauge, request_id: str | None):
            self.call, self.started, self.gauge, self.request_id = call, started, gauge, request_id

        @staticmethod
        def done() -> bool:
            return False  # nothing cancels a call's operation: the answer is always wanted

        cancelled = done

        def set_result(self, result) -> None:
            finish(self.call, self.started, self.gauge, self.request_id, True, result)

        def set_exception(self, error: BaseException) -> None:
            finish(self.call, self.started, self.gauge, self.request_id, False, error)

    def handle(call: UnaryCall) -> None:
        try:
            drain.enter()
        except ApiError as e:
            fail(call, e)
            return
        started = time.perf_counter()
        gauge = record.begin()
        request_id = None
        try:
            authorization = call.header(b"authorization") if authenticator is not None else None
            if authenticator is not None and not authenticator.check_basic(authorization):
                raise server_error(UNAUTHORIZED, "invalid basic auth credentials")
            try:
                message = parse(call.message)
            except DecodeError:
                raise invalid(not_a_message) from None
            request_id = getattr(message, "requestId", None) or None
            request = decode(operation, fields_of(message))
            if authenticator is not None:
                denied = authenticator.check_jwt(authorization, request)
                if denied is not None:
                    raise denied
            kernel.submit_answer(request, Pending(call, started, gauge, request_id), loop)  # reads answered at once
        except Exception as e:  # an invalid request, refused credentials, or a bug (answered as 50000)
            finish(call, started, gauge, request_id, False, e)

    return handle


def unimplemented(call: UnaryCall) -> None:
    service, _, method = call.path[1:].rpartition("/")
    call.fail(http2.UNIMPLEMENTED, f"unknown method {method} for service {service}" if service in _SERVICES
              else f"unknown service {service}")


_SERVICES = frozenset(rpc.service for rpc in RPCS)


def dispatcher(kernel, drain: _Drain, loop: asyncio.AbstractEventLoop, authenticator=None):
    """call -> its RPC's handler, by path (handlers run on `loop`); any other path is UNIMPLEMENTED."""
    handlers = {rpc.path: _handler(rpc, kernel, drain, loop, authenticator) for rpc in RPCS}

    def dispatch(call: UnaryCall) -> None:
        handlers.get(call.path, unimplemented)(call)

    return dispatch


class GrpcServer:
    name = "grpc"

    def __init__(self, kernel, cfg, authenticator=None):
        self.kernel = kernel
        self.cfg = cfg
        self.authenticator = authenticator if authenticator is not None and authenticator.enabled else None
        self.port: int | None = None  # the bound port (useful when cfg asks for port 0)
        self._server: asyncio.Server | None = None
        self._connections: set[Http2Connection] = set()
        self._drain = _Drain()

    async def start(self) -> None:
        host, port = self.cfg.grpc_addr
        dispatch = dispatcher(self.kernel, self._drain, asyncio.get_running_loop(), self.authenticator)
        connections = self._connections
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            # bound and listening before the first await: once another transport answers, so does this one
            sock = listening_socket(host, port)
        except OSError as e:
            raise SystemExit(f"resonate: could not listen for gRPC on {target}: {e}") from None
        server = await asyncio.get_running_loop().create_server(
            lambda: Http2Connection(dispatch, MAX_MESSAGE_BYTES, connections), sock=sock)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        log.info("gRPC listening on %s", target)

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound address once started (the port resolved when cfg asks for port 0)."""
        return None if self.port is None else (self.cfg.grpc_addr[0], self.port)

    def health(self) -> bool:
        return self._server is not None and not self._drain.draining

    async def stop(self) -> None:
        """Stop taking calls, answer those already taken within the grace period, then close.

        At once: new connections are refused and every connection gets GOAWAY naming the last call it
        took, so clients (and proxies) send new calls to another server or retry them there (a call the
        server never took is safe to retry: gRPC clients do it themselves). The calls already taken are
        answered; a connection closes after its last answer, or when the grace runs out."""
        if self._server is None:
            return
        grace = self.cfg.http_timeout_ms / 1000
        deadline = time.monotonic() + grace
        self._server.close()
        for connection in list(self._connections):
            connection.goaway(graceful=True)
        if not await self._drain.settle(deadline):
            log.warning("gRPC: %d calls still running after the %.1fs grace; closing their connections",
                        self._drain.inflight, grace)
        for connection in list(self._connections):
            connection.goaway()
        await self._server.wait_closed()
        self._server = None
