"""The HTTP protocol's lane: API requests served straight from the parser's callbacks, with no ASGI.

uvicorn's httptools protocol gives every request a scope, a request/response cycle, an asyncio task and
ASGI messages before our fast path (asgi.py) runs; at the API's request rates that is most of the event
loop's time. `LaneProtocol` is that protocol, except that a request the fast path would serve is run
when the parser completes it:
- its fields decoded and run by the core through the same functions as the fast path
  (routes.route_request, result_answer, error_answer), so both answer byte for byte alike;
- it goes to the kernel with `Kernel.submit_answer`: a read answered beside the writer is answered within
  the same callback; for a write the kernel's writer calls the exchange back on the loop;
- the answer leaves in one write: uvicorn's status line and default headers (date, server), the route's
  headers, `connection: close` when the connection ends after it.

Everything else takes uvicorn's path unchanged: HEAD, HTTP/1.0, `Expect: 100-continue`, upgrades,
routes the fast path leaves to the framework, a request pipelined behind one still being answered (it
queues behind it as uvicorn queues), a connection whose writes are paused, an app wrapped in middleware
(basic auth, CORS) and uvicorn options that need its cycle (concurrency limits, access log). Shutdown
is uvicorn's: a connection with a lane request in flight closes once it is answered.
"""
from __future__ import annotations

import logging
import time
import urllib.parse

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ...core.codes import ApiError
from .asgi import FastApiFront, FastRoute
from .routes import error_answer, read_headers, result_answer, route_request

log = logging.getLogger("resonate.http")

CONNECTION_CLOSE = b"connection: close\r\n"
# uvicorn's answer to an exception in the application, after which it closes the connection
INTERNAL_ERROR_HEADERS = [(b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8")]
INTERNAL_ERROR_BODY = b"Internal Server Error"


class _NoEvent:
    """uvicorn's protocol wakes its cycle's message event when the connection is lost; a lane exchange
    waits on nothing."""

    @staticmethod
    def set() -> None:
        pass


NO_EVENT = _NoEvent()


class LaneExchange:
    """One request on the lane: its body as it arrives, then its answer. It stands in the protocol's
    `cycle` slot (uvicorn reads `response_complete`, `keep_alive`, `disconnected` and `message_event`
    there), and it is the answer object the kernel calls for a submitted write (set_result /
    set_exception, after asking done() and cancelled())."""

    __slots__ = ("protocol", "fast", "params", "query", "body", "keep_alive", "response_complete",
                 "disconnected", "started", "headers", "gauge")

    message_event = NO_EVENT

    def __init__(self, protocol: "LaneProtocol", fast: FastRoute, params: dict, query: bytes, keep_alive: bool):
        self.protocol, self.fast, self.params, self.query = protocol, fast, params, query
        self.body: bytes | bytearray = b""  # one piece as it came, or a bytearray once a second one comes
        self.keep_alive = keep_alive
        self.response_complete = self.disconnected = False
        self.started = 0.0
        self.headers: dict[str, str] = {}
        self.gauge = None

    def run(self, raw_headers: list) -> None:
        """Called when the request is complete: answered now, or submitted to the kernel."""
        self.started = time.perf_counter()
        fast = self.fast
        self.headers = headers = read_headers(raw_headers)
        self.gauge = fast.record.begin()
        try:
            request = route_request(fast.route, fast.settings, self.body if fast.route.body else None,
                                    self.query, headers, self.params)
            fast.kernel.submit_answer(request, self, self.protocol.loop)  # a read is answered before it returns
        except ApiError as e:
            self.set_exception(e)
        except Exception:  # noqa: BLE001 - answered as uvicorn answers an application's exception
            self._fail()

    # -- the kernel's answer object
    def done(self) -> bool:
        return self.response_complete

    @staticmethod
    def cancelled() -> bool:
        return False  # a client gone does not withdraw its request (as with the ASGI path)

    def set_result(self, result) -> None:
        try:
            answer = result_answer(self.fast.route, result)
        except Exception:  # noqa: BLE001
            self._fail()
            return
        self._answer(*answer)

    def set_exception(self, error: BaseException) -> None:
        if isinstance(error, ApiError):
            self._answer(*error_answer(error))
        else:
            self._fail(error)

    # -- answering
    def _answer(self, status: int, headers: list, body: bytes, code: int) -> None:
        record = self.fast.record
        record.leave(self.gauge)
        record.finish(code, status, time.perf_counter() - self.started, self.headers.get("request-id"))
        self.protocol.lane_answer(self, status, headers, body)

    def _fail(self, error: BaseException | None = None) -> None:
        log.error("Exception in ASGI application", exc_info=error or True)
        if self.response_complete:  # failed after its answer was written: nothing more to send or count
            return
        self.fast.record.leave(self.gauge)
        self.keep_alive = False
        self.protocol.lane_answer(self, 500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY)


class LaneProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the lane (see the module's docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        app, config = self.app, self.config
        usable = (isinstance(app, FastApiFront) and app.wrapped is None and app.index.usable
                  and not self.root_path and config.limit_concurrency is None and not self.access_log)
        self.lane_index = app.index if usable else None
        self.idle_since: float | None = None  # loop time the connection went idle (None: busy)

    # -- keep-alive: uvicorn cancels and re-arms a timer per request; here one timer runs while the
    # connection is in use, and when it fires it closes an idle connection or re-arms for the rest
    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None

    def _went_idle(self) -> None:
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_at(self.idle_since + self.timeout_keep_alive,
                                                             self.timeout_keep_alive_handler)

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        idle_since = self.idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: the next answer re-arms it
        if self.loop.time() >= idle_since + self.timeout_keep_alive:
            self.transport.close()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(idle_since + self.timeout_keep_alive,
                                                             self.timeout_keep_alive_handler)

    def on_response_complete(self) -> None:
        """uvicorn's, with `_went_idle` for its keep-alive timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.idle_since = None
        self.flow.resume_reading()
        if self.pipeline:  # requests pipelined behind this one start now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._went_idle()

    def on_message_begin(self) -> None:
        self.idle_since = None  # busy from here (a request may begin after an answer in the same read)
        if self.lane_index is None:
            super().on_message_begin()
            return
        # uvicorn's scope is built only if the request takes its path (`_begin_scope`)
        self.url, self.expect_100_continue, self.headers, self.scope = b"", False, [], None

    def _begin_scope(self) -> None:
        """uvicorn's on_message_begin, run late: its scope, keeping the URL and headers read since."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect_100_continue
        self.scope["headers"] = headers

    def on_headers_complete(self) -> None:
        index = self.lane_index
        if index is not None:
            if (not self.expect_100_continue and not self.flow.write_paused
                    and (self.cycle is None or self.cycle.response_complete)):
                exchange = self._lane_exchange(index)
                if exchange is not None:
                    self.cycle = exchange
                    return
            self._begin_scope()
        super().on_headers_complete()

    def _lane_exchange(self, index) -> LaneExchange | None:
        parser = self.parser
        method = parser.get_method()
        if method == b"HEAD" or parser.get_http_version() != "1.1" or parser.should_upgrade():
            return None
        try:
            parsed = httptools.parse_url(self.url)
            path = parsed.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None  # uvicorn's path answers it as before
        if "%" in path:
            path = urllib.parse.unquote(path)
        found = index.match(method.decode("ascii"), path)
        if found is None or type(found[0]) is not FastRoute:
            return None
        return LaneExchange(self, found[0], found[1], parsed.query or b"", parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle) is LaneExchange:
            if not cycle.response_complete:
                if not cycle.body:
                    cycle.body = body
                else:  # a body in many pieces is gathered in place, not copied anew with each piece
                    if type(cycle.body) is not bytearray:
                        cycle.body = bytearray(cycle.body)
                    cycle.body += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if type(cycle) is LaneExchange:
            if not cycle.response_complete:
                cycle.run(self.headers)
            return
        super().on_message_complete()

    def lane_answer(self, exchange: LaneExchange, status: int, headers: list, body: bytes) -> None:
        """Writes the answer as uvicorn's cycle would (status line, default headers, the route's headers,
        `connection: close` if the connection ends), then lets uvicorn go on as after any answer."""
        if exchange.response_complete:
            return
        exchange.response_complete = True
        if not exchange.disconnected:
            content = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                content.extend((name, b": ", value, b"\r\n"))
            for name, value in headers:
                content.extend((name, b": ", value, b"\r\n"))
            if not exchange.keep_alive:
                content.append(CONNECTION_CLOSE)
            content.append(b"\r\n")
            content.append(body)
            # over the API server's coalescing transport the answer leaves at the end of this loop turn,
            # with the others of the turn: at 64 clients that keeps every answer about one turn away
            # (written at once, p99 was 2.2-2.4x p50 on reads, against 1.8x; docs/performance.md 14)
            self.transport.write(b"".join(content))
            if not exchange.keep_alive:
                self.transport.close()
        self.on_response_complete()
