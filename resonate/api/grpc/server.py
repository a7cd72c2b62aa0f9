"""gRPC transport: the 20 unary RPCs of the reference's protos, served by `grpc.aio` on the app's loop.

Every RPC goes through one generic handler driven by the table in `mapping.py`: parse the request
bytes, turn the message into canonical fields, let the core decode and run them, and write the
result back. Errors carry a gRPC status mapped from the core's 5-digit code, a message naming the
cause, and the 5-digit code itself in the trailing metadata key `resonate-code` (sent on success
too, so clients can tell 200 from 201 where the response message cannot).
"""
from __future__ import annotations

import asyncio
import logging
import time

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


def _give_up_if_caller_left(context: grpc.aio.ServicerContext) -> None:
    """The operation has run; if the caller's deadline already passed, nobody waits for the answer, and
    sending it would only make grpcio log a failed batch."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise asyncio.CancelledError()


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


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def _handler(rpc: Rpc, kernel, drain: _Drain, authenticator=None):
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            drain.enter()
        except ApiError as e:
            await context.abort(grpc_status(e.code), error_message(e), trailing_metadata=((CODE_TRAILER, str(e.code)),))
        started = time.perf_counter()
        outcome = {"code": 50000, "request_id": None}
        try:
            with metrics.InFlight("grpc", rpc.operation):
                return await run_call(raw, context, outcome)
        finally:
            drain.leave()
            finished("grpc", rpc.operation, outcome["code"], time.perf_counter() - started, outcome["request_id"],
                     status=grpc_status(outcome["code"]).value[0] if outcome["code"] >= 40000 else 0)

    async def run_call(raw: bytes, context: grpc.aio.ServicerContext, outcome: dict) -> bytes:
        try:
            authorization = _authorization(context) if authenticator is not None else None
            if authenticator is not None and not authenticator.check_basic(authorization):
                raise server_error(40100, "invalid basic auth credentials")
            try:
                message = rpc.request.FromString(raw)
            except DecodeError:
                raise invalid(f"the request is not a valid {rpc.request.DESCRIPTOR.full_name} message") from None
            outcome["request_id"] = getattr(message, "requestId", None) or None
            request = decode(rpc.operation, rpc.fields(message))
            if authenticator is not None:
                denied = authenticator.check_jwt(authorization, request)
                if denied is not None:
                    raise denied
            # shielded: a client that cancels or times out does not cancel the operation, which runs to
            # completion as in the reference, and the kernel's future is never cancelled under it
            result = await asyncio.shield(kernel.submit_async(request))
            reply = rpc.reply(result).SerializeToString()
        except ApiError as e:
            error = e
        except Exception as e:  # a bug, not an input: answer cleanly and keep serving
            log.exception("%s failed", rpc.path)
            error = server_error(INTERNAL_ERROR, f"{type(e).__name__}: {e}")
        else:
            outcome["code"] = result.code
            _give_up_if_caller_left(context)
            context.set_trailing_metadata(((CODE_TRAILER, str(result.code)),))
            return reply
        outcome["code"] = error.code
        _give_up_if_caller_left(context)
        await context.abort(grpc_status(error.code), error_message(error),
                            trailing_metadata=((CODE_TRAILER, str(error.code)),))

    return handle


def generic_handlers(kernel, drain: _Drain, authenticator=None) -> list[grpc.GenericRpcHandler]:
    """One generic handler per service; request and response stay raw bytes so bad bytes get a clean 40000."""
    services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for rpc in RPCS:
        services.setdefault(rpc.service, {})[rpc.method] = grpc.unary_unary_rpc_method_handler(
            _handler(rpc, kernel, drain, authenticator))
    return [grpc.method_handlers_generic_handler(service, methods) for service, methods in services.items()]


class GrpcServer:
    name = "grpc"

    def __init__(self, kernel, cfg, authenticator=None):
        self.kernel = kernel
        self.cfg = cfg
        self.authenticator = authenticator if authenticator is not None and authenticator.enabled else None
        self.port: int | None = None  # the bound port (useful when cfg asks for port 0)
        self._server: grpc.aio.Server | None = None
        self._drain = _Drain()

    async def start(self) -> None:
        host, port = self.cfg.grpc_addr
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                          ("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(generic_handlers(self.kernel, self._drain, self.authenticator))
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = server.add_insecure_port(target)
        except RuntimeError as e:
            raise SystemExit(f"resonate: could not listen for gRPC on {target}: {e}") from None
        await server.start()
        self._server = server
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
        await self._server.stop(grace=max(0.0, deadline - time.monotonic()))
        self._server = None
