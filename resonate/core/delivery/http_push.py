"""The `http` plugin: POST the message to the recipient's URL (spec 5.6), through httpx.

As in the reference, success means the connection was established and the request headers went out;
the response is read in the background and ignored. httpx (h11) writes the request, so a header name
or value that would break the request framing is refused before anything reaches the socket
(recipients are also checked when registered, core/recipient.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import gojson

log = logging.getLogger("resonate.http_push")

# httpcore trace events: the request headers were written, so the connection is up
_HEADERS_SENT = frozenset({"http11.send_request_headers.complete", "http2.send_request_headers.complete"})
_BODY_SENT = frozenset({"http11.send_request_body.complete", "http2.send_request_body.complete"})
SHUTDOWN_GRACE_S = 5.0  # at shutdown, requests still being written get this long to finish


class HttpPlugin:
    name = "http"
    schemes = ("http", "https")

    def __init__(self, *, workers: int = 3, timeout_s: float = 180, connect_timeout_s: float = 10,
                 ttr_ms: int = 15_000, ttc_ms: int = 60_000):
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.ttr_ms = ttr_ms
        self.ttc_ms = ttc_ms
        # `workers` deliveries connect at once (--aio-http-workers); once the request is out the worker is
        # free, and the response is awaited in the background for at most --aio-http-timeout
        self._workers = asyncio.Semaphore(workers)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=workers),
            follow_redirects=False, trust_env=False)
        # each request in flight -> set once its body is written (after that only the ignored answer is awaited)
        self._pending: dict[asyncio.Future, asyncio.Event] = {}
        self._closed = False

    @classmethod
    def from_config(cls, cfg) -> "HttpPlugin":
        return cls(workers=cfg.http_plugin_workers, timeout_s=cfg.http_plugin_timeout_ms / 1000,
                   connect_timeout_s=cfg.http_plugin_conn_timeout_ms / 1000, ttr_ms=cfg.http_plugin_ttr_ms,
                   ttc_ms=cfg.http_plugin_ttc_ms)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _forget(self, post: asyncio.Future) -> None:
        self._pending.pop(post, None)

    async def send(self, address: Any, body: dict, head: dict[str, str]) -> bool:
        if self._closed or not isinstance(address, dict) or not isinstance(address.get("url"), str):
            return False
        url = address["url"]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        headers = dict(head)
        extra = address.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        headers["Content-Type"] = "application/json"
        payload = gojson.dumps(body).encode()
        connected = asyncio.Event()
        written = asyncio.Event()

        async def trace(event: str, info: dict) -> None:
            if event in _HEADERS_SENT:
                connected.set()
            elif event in _BODY_SENT:
                written.set()

        async with self._workers:
            post = asyncio.ensure_future(self._post(url, headers, payload, trace))
            self._pending[post] = written
            post.add_done_callback(self._forget)
            await _first(post, connected.wait())
        return connected.is_set()

    async def _post(self, url: str, headers: dict[str, str], payload: bytes, trace) -> None:
        try:
            response = await self._client.post(url, content=payload, headers=headers, extensions={"trace": trace})
            log.debug("http recipient %s answered %d", url, response.status_code)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - unreachable, refused, timed out, invalid: the dispatcher retries
            log.info("http recipient %s: %s: %s", url, type(e).__name__, e)

    async def close(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Requests still being written get `grace_s` to finish; then every request in flight is cancelled
        (a written request only awaits its answer, which is ignored) and the client closes."""
        self._closed = True
        writing = [asyncio.ensure_future(_first(post, written.wait()))
                   for post, written in self._pending.items() if not written.is_set()]
        if writing and grace_s > 0:
            await asyncio.wait(writing, timeout=grace_s)
        for waiter in writing:
            waiter.cancel()
        pending = list(self._pending)
        for post in pending:
            post.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()


async def _first(task: asyncio.Future, signal) -> None:
    """Waits until `task` ends or the awaitable `signal` completes, whichever is first."""
    waiter = asyncio.ensure_future(signal)
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
