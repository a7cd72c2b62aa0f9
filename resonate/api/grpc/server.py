"""gRPC transport: the 20 unary RPCs of the reference's protos, served by grpcio's server on a thread pool.

Every RPC goes through one generic handler driven by the table in `mapping.py`: parse the request
bytes, turn the message into canonical fields, let the core decode and run them, and write the
result back. Errors carry a gRPC status mapped from the core's 5-digit code, a message naming the
cause, and the 5-digit code itself in the trailing metadata key `resonate-code` (sent on success
too, so clients can tell 200 from 201 where the response message cannot).

Why threads and not `grpc.aio` on the app's loop: per call, grpc.aio costs about twice the CPU of
grpcio's thread-pool server (bench/grpc_ceiling.py, docs/performance.md section 9), and a handler
thread simply blocks on the kernel's future, where a coroutine needs a hand-off back to the loop.
A handler thread that waits on the kernel holds no GIL.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.message import DecodeError

from ...core.codes import (INTERNAL_ERROR, INVALID, SHUTTING_DOWN, STATUS_TEXT, TASK_PRECONDITION_FAILED, UNAUTHORIZED,
                           ApiError, invalid, server_error)
from ...core.operations import decode
from ...observability import metrics
from ...observability.requests import finished
from .mapping import RPCS, Rpc

log = logging.getLogger("resonate.grpc")

CODE_TRAILER = "resonate-code"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # grpc-go's default receive limit, which the reference runs with

# 5-digit code -> gRPC status: exact codes first, then by the first three digits
_STATUS_BY_CODE = {INVALID: grpc.StatusCode.INVALID_ARGUMENT, UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
                   TASK_PRECONDITION_FAILED: grpc.StatusCode.FAILED_PRECONDITION}
_STATUS_BY_HUNDRED = {403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
                      409: grpc.StatusCode.ALREADY_EXISTS, 500: grpc.StatusCode.INTERNAL,
                      503: grpc.StatusCode.UNAVAILABLE}


def grpc_status(code: int) -> grpc.StatusCode:
    status = _STATUS_BY_CODE.get(code) or _STATUS_BY_HUNDRED.get(code // 100)
    if status is not None:
        return status
    return grpc.StatusCode.INVALID_ARGUMENT if INVALID <= code < INTERNAL_ERROR else grpc.StatusCode.INTERNAL


def error_message(error: ApiError) -> str:
    """The cause: the detail texts when there are any, else the code's fixed text."""
    details = [d for d in error.details if d]
    return "; ".join(details) if details else STATUS_TEXT.get(error.code, STATUS_TEXT[INTERNAL_ERROR])


class _Drain:
    """Counts calls in flight (from the handler threads); once draining, new calls are refused with 50300
    (as the reference does while it shuts down), so a client sees a clean UNAVAILABLE instead of a
    cancelled call."""

    QUIET_S = 0.2  # no new call for this long: whatever the clients had queued has been answered

    def __init__(self):
        self.draining = False
        self.inflight = 0
        self.last_arrival = 0.0
        self._lock = threading.Lock()

    def enter(self) -> None:
        self.last_arrival = time.monotonic()
        if self.draining:
            raise server_error(SHUTTING_DOWN)
        with self._lock:
            self.inflight += 1

    def leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    async def settle(self, deadline: float) -> bool:
        """Wait until nothing runs and no call arrived for QUIET_S (True), or until the deadline (False)."""
        self.draining = True
        while time.monotonic() < deadline:
            if self.inflight == 0 and time.monotonic() - self.last_arrival >= self.QUIET_S:
                return True
            await asyncio.sleep(0.01)
        return False


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def _abort(context: grpc.ServicerContext, error: ApiError):
    context.set_trailing_metadata(((CODE_TRAILER, str(error.code)),))
    context.abort(grpc_status(error.code), error_message(error))  # raises: grpcio sends the status


def _handler(rpc: Rpc, kernel, drain: _Drain, authenticator=None):
    """The behaviour of one RPC, run on a handler thread. The kernel's future is waited on, never
    cancelled: a client that cancels or times out does not cancel the operation, which runs to
    completion as in the reference; grpcio drops the answer of a call whose client has left."""
    operation = rpc.operation
    parse = rpc.request.FromString
    fields_of = rpc.fields
    reply_of = rpc.reply
    not_a_message = f"the request is not a valid {rpc.request.DESCRIPTOR.full_name} message"

    def handle(raw: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            drain.enter()
        except ApiError as e:
            _abort(context, e)
        started = time.perf_counter()
        code = INTERNAL_ERROR
        request_id = None
        try:
            with metrics.InFlight("grpc", operation):
                try:
                    authorization = _authorization(context) if authenticator is not None else None
                    if authenticator is not None and not authenticator.check_basic(authorization):
                        raise server_error(40100, "invalid basic auth credentials")
                    try:
                        message = parse(raw)
                    except DecodeError:
                        raise invalid(not_a_message) from None
                    request_id = getattr(message, "requestId", None) or None
                    request = decode(operation, fields_of(message))
                    if authenticator is not None:
                        denied = authenticator.check_jwt(authorization, request)
                        if denied is not None:
                            raise denied
                    result = kernel.submit(request).result()
                    reply = reply_of(result).SerializeToString()
                except ApiError as e:
                    error = e
                except Exception as e:  # a bug, not an input: answer cleanly and keep serving
                    log.exception("%s failed", rpc.path)
                    error = server_error(INTERNAL_ERROR, f"{type(e).__name__}: {e}")
                else:
                    code = result.code
                    context.set_trailing_metadata(((CODE_TRAILER, str(code)),))
                    return reply
                code = error.code
                _abort(context, error)
        finally:
            drain.leave()
            finished("grpc", operation, code, time.perf_counter() - started, request_id,
                     status=grpc_status(code).value[0] if code >= 40000 else 0)

    return handle


def method_handlers(kernel, drain: _Drain, authenticator=None) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
    """Handlers by service and method; request and response stay raw bytes so bad bytes get a clean 40000."""
    services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for rpc in RPCS:
        services.setdefault(rpc.service, {})[rpc.method] = grpc.unary_unary_rpc_method_handler(
            _handler(rpc, kernel, drain, authenticator))
    return services


class GrpcServer:
    name = "grpc"

    # Handler threads, started on demand: a call holds one from arrival (its message may still be on the
    # way) until it is answered; more calls queue inside grpcio, unbounded as in grpc-go. Generous, so a
    # few slow senders cannot hold every thread and all concurrent calls can share a kernel batch; an
    # idle thread costs no CPU.
    HANDLER_THREADS = 256
    OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)]

    def __init__(self, kernel, cfg, authenticator=None):
        self.kernel = kernel
        self.cfg = cfg
        self.authenticator = authenticator if authenticator is not None and authenticator.enabled else None
        self.port: int | None = None  # the bound port (useful when cfg asks for port 0)
        self._server: grpc.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._drain = _Drain()

    async def start(self) -> None:
        host, port = self.cfg.grpc_addr
        pool = ThreadPoolExecutor(self.HANDLER_THREADS, thread_name_prefix="resonate-grpc")
        server = grpc.server(pool, options=self.OPTIONS)
        # registered methods are matched by grpc's core, not by a Python scan per call; any other method
        # finds no handler and is UNIMPLEMENTED
        for service, methods in method_handlers(self.kernel, self._drain, self.authenticator).items():
            server.add_registered_method_handlers(service, methods)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = server.add_insecure_port(target)
        except RuntimeError as e:
            pool.shutdown(wait=False)
            raise SystemExit(f"resonate: could not listen for gRPC on {target}: {e}") from None
        server.start()
        self._server, self._pool = server, pool
        log.info("gRPC listening on %s", target)

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound address once started (the port resolved when cfg asks for port 0)."""
        return None if self.port is None else (self.cfg.grpc_addr[0], self.port)

    def health(self) -> bool:
        return self._server is not None and not self._drain.draining

    async def stop(self) -> None:
        """Refuse new calls (50300), let in-flight ones finish within the grace period, then close."""
        if self._server is None:
            return
        grace = self.cfg.http_timeout_ms / 1000
        deadline = time.monotonic() + grace
        # keep answering while draining: calls the clients already sent get 50300 (UNAVAILABLE), which
        # says "not executed, retry"; grpcio would otherwise cancel queued calls outright on stop
        if not await self._drain.settle(deadline):
            log.warning("gRPC: %d calls still running after the %.1fs grace; cancelling them",
                        self._drain.inflight, grace)
        stopped = self._server.stop(grace=max(0.0, deadline - time.monotonic()))
        await asyncio.to_thread(stopped.wait)  # never block the loop, which other transports still use
        # a handler still waiting on the kernel finishes when the kernel stops (it answers 50300 then)
        self._pool.shutdown(wait=False)
        self._server, self._pool = None, None
