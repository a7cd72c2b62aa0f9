"""The HTTP API as a transport, and the poll sender with its event-stream server (resonate.plugins)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ...core.delivery.poll import PollPlugin
from ..listen import listening_socket
from .asgi import FastApiFront
from .lane import LaneProtocol

log = logging.getLogger("resonate.http")

STARTUP_POLL_S = 0.01  # how often start() looks whether uvicorn is listening yet


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class _Flusher:
    """The held writes of one event loop's CoalescingTransports, flushed by one callback per loop iteration
    (not one per write: under load an iteration answers many requests)."""

    __slots__ = ("_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop, self._pending = loop, []

    def add(self, transport: "CoalescingTransport") -> None:
        pending = self._pending
        if not pending:
            self._loop.call_soon(self._flush_all)
        pending.append(transport)

    def _flush_all(self) -> None:
        pending, self._pending = self._pending, []
        for transport in pending:
            transport._flush()


_flushers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher]" = weakref.WeakKeyDictionary()


class CoalescingTransport:
    """A transport that holds each write until the next one or the end of the loop iteration, so the head
    and body of an answer (uvicorn writes them separately) leave in one send(): one syscall and one TCP
    segment fewer per request. Streams still flush within the iteration that wrote them."""

    __slots__ = ("_transport", "_flusher", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        flusher = _flushers.get(loop)
        if flusher is None:
            flusher = _flushers[loop] = _Flusher(loop)
        self._transport, self._flusher, self._held = transport, flusher, None

    def write(self, data: bytes) -> None:
        if not data:
            return
        held = self._held
        if held is None:
            self._held = data
            self._flusher.add(self)
        else:
            self._held = None
            self._transport.write(held + data)

    def writelines(self, chunks) -> None:
        self.write(b"".join(chunks))

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:  # asked once per answer: not through __getattr__
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str):  # is_closing, get_extra_info, pause_reading, set_protocol, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(LaneProtocol):
    """uvicorn's httptools protocol, with the lane (lane.py), over a CoalescingTransport."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))


def uvicorn_config(app, **options) -> uvicorn.Config:
    """uvicorn's Config for `app`. uvicorn wraps every application in its ProxyHeadersMiddleware (client
    address and scheme from X-Forwarded-* of trusted proxies); the API's fast path (FastApiFront) reads
    neither, so there only the framework app behind it is wrapped, with the same trusted hosts: the same
    scopes reach the same code, one middleware layer fewer per fast request."""
    if not isinstance(app, FastApiFront):
        return uvicorn.Config(app, **options)
    config = uvicorn.Config(app, proxy_headers=False, **options)
    app.fallback_through(lambda fallback: ProxyHeadersMiddleware(fallback, trusted_hosts=config.forwarded_allow_ips))
    return config


class AsgiServer:
    """One uvicorn server on the running event loop; `stop` lets requests in flight finish within the grace."""

    def __init__(self, app, addr: tuple[str, int], grace_s: float, http="auto"):
        self.app = app
        self.http = http  # uvicorn's protocol: a name or a protocol class
        self.addr = addr
        self.grace_s = grace_s
        self._server: _QuietServer | None = None
        self._task: asyncio.Task | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> None:
        host, port = self.addr
        try:  # bound here, so a taken port is a clean error and the bound port is known at once
            sock = listening_socket(host, port)
        except OSError as e:
            raise SystemExit(f"resonate: could not listen on {host}:{port}: {e.strerror or e}") from None
        self.address = tuple(sock.getsockname()[:2])
        config = uvicorn_config(self.app, http=self.http, log_level="warning", access_log=False, lifespan="off",
                                log_config=None,  # uvicorn logs through our handler, on stdout
                                timeout_graceful_shutdown=max(1, round(self.grace_s)))
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # raises uvicorn's start-up error, if it raised one
                raise SystemExit(f"resonate: could not serve on {host}:{port}")
            await asyncio.sleep(STARTUP_POLL_S)
        self._server, self._task = server, task

    def health(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        done, _ = await asyncio.wait({self._task}, timeout=self.grace_s + 1)
        if not done:
            log.warning("http server on %s:%s still running after the grace period; cancelling it", *self.addr)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = self._task = None


class _Served:
    """A part whose endpoint is one AsgiServer (`self._server`): started, checked and addressed through it."""

    _server: AsgiServer

    @property
    def address(self) -> tuple[str, int] | None:
        return self._server.address

    async def start(self) -> None:
        await self._server.start()

    def health(self) -> bool:
        return self._server.health()


class HttpTransport(_Served):
    """The HTTP API (and the poll streams under /poll when the poll sender is on)."""

    name = "http"

    def __init__(self, kernel, cfg, poll: PollPlugin | None = None, authenticator=None):
        from .routes import HttpSettings
        from .server import create_http_app
        self.poll = poll
        jwt = authenticator if authenticator is not None and authenticator.jwt_enabled else None
        settings = HttpSettings(task_frequency_ms=cfg.http_task_frequency_ms, authenticator=jwt)
        app = create_http_app(kernel, settings, poll=poll, auth=cfg.http_auth, cors_origins=cfg.http_cors_allow_origin)
        self._server = AsgiServer(app, cfg.http_addr, cfg.http_timeout_ms / 1000, http=CoalescingHttpToolsProtocol)

    async def stop(self) -> None:
        if self.poll is not None:
            self.poll.close_all()  # open event streams would hold the graceful shutdown for its whole grace
        await self._server.stop()


class PollSender(PollPlugin, _Served):
    """The poll plugin plus its own event-stream server on --aio-poll-addr."""

    schemes = ("poll",)

    def __init__(self, cfg):
        from .server import create_poll_app
        super().__init__(buffer_size=cfg.poll_buffer_size, max_connections=cfg.poll_max_connections,
                         ttr_ms=cfg.poll_ttr_ms, ttc_ms=cfg.poll_ttc_ms,
                         disconnect_after_s=cfg.poll_disconnect_after_ms / 1000)
        app = create_poll_app(self, auth=cfg.poll_auth, cors_origins=cfg.poll_cors_allow_origin)
        self._server = AsgiServer(app, cfg.poll_addr, cfg.poll_timeout_ms / 1000)

    async def close(self) -> None:
        self.close_all()
        await self._server.stop()


def build_http_transport(services):
    if not services.cfg.http_enable:
        return None
    return HttpTransport(services.kernel, services.cfg, poll=services.senders.get("poll"),
                         authenticator=services.authenticator)


def build_poll_sender(services):
    return PollSender(services.cfg) if services.cfg.poll_enable else None
