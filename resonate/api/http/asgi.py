"""The HTTP API's fast path: a thin ASGI application in front of the FastAPI app.

It serves the API routes straight from the ASGI scope (no Starlette Request, no middleware layers, no
linear route scan) and hands everything else to the FastAPI app untouched. Which requests it serves is
derived from the FastAPI app's own route list, in order, so both always pick the same route:

- routes are indexed by their first path segment (which must be literal), keeping their order, and a
  request is checked only against the routes of its own segment, with Starlette's regex and method test;
- the first route whose path and method both match wins, as in Starlette's router; if it is one of ours
  (an endpoint made by routes.make_handler, or /ping) the fast path serves it, otherwise (a FastAPI route
  such as /openapi.json, a /poll stream) or if nothing matches fully (404, 405, trailing-slash redirects),
  the request goes to the FastAPI app, which answers as it always did.

Answers are byte-identical to the Starlette handlers' (same status, headers in the same order, body):
both paths share routes.run_route.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from .routes import HttpRoute, HttpSettings, RouteRecorder, metric_path, read_headers, run_route

# a fast handler: (scope, receive, send, path params); it answers the request itself
Handler = Callable[[dict, Callable, Callable, dict], Awaitable[None]]

# set in the scope when a fast handler failed before answering, so the front sends the 500 itself
FAILED_KEY = "resonate.unanswered"
# what Starlette's ServerErrorMiddleware answers to an unexpected exception (outside CORS, as there)
INTERNAL_ERROR = PlainTextResponse("Internal Server Error", status_code=500)
PING_BODY = b'{"status":"ok"}'  # Starlette's JSONResponse({"status": "ok"})
PING_HEADERS = [(b"content-length", str(len(PING_BODY)).encode()), (b"content-type", b"application/json")]


def first_segment(path: str) -> str:
    """`/promises/a/b` -> `promises`; the index key of a request path or a route template."""
    return path[1:].partition("/")[0]


class RouteIndex:
    """The routes of a Starlette router, in order, grouped by first path segment. `match(method, path)`
    gives (handler, path params) when the first fully matching route is one with a fast handler."""

    def __init__(self, routes: list, handlers: dict) -> None:
        self.groups: dict[str, list[tuple]] = {}
        # (method, path) -> handler, for paths that matched a route without parameters: such a route's
        # pattern matches one path only, so this holds at most one entry per such route and method
        self.exact: dict[tuple[str, str], Any] = {}
        self.usable = True  # False: some route cannot be indexed (e.g. a parameter in its first segment)
        for route in routes:
            if not isinstance(route, Route) or not route.path.startswith("/") or "{" in first_segment(route.path):
                self.usable = False  # keep the framework's order: serve nothing fast
                return
            self.groups.setdefault(first_segment(route.path), []).append(
                (route.methods, route.path_regex, route.param_convertors, handlers.get(route.endpoint)))

    def match(self, method: str, path: str):
        handler = self.exact.get((method, path))
        if handler is not None:
            return handler, {}
        candidates = self.groups.get(path[1:].partition("/")[0])
        if candidates is None or not path.startswith("/"):
            return None
        for methods, regex, convertors, handler in candidates:
            if methods is not None and method not in methods:
                continue  # at most a partial match (405), which the framework answers
            found = regex.match(path)
            if found is None:
                continue
            if handler is None:
                return None  # the framework's own route
            params = found.groupdict()
            if not params:
                self.exact[(method, path)] = handler
            for key, value in params.items():
                params[key] = convertors[key].convert(value)
            return handler, params
        return None


async def read_body(receive) -> bytes:
    """The whole request body, as Starlette's Request.body() reads it."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class FastRoute:
    """What routes.make_handler's endpoint does for `route`, straight on the ASGI scope (called as a Handler).
    The HTTP protocol's lane (lane.py) runs the same route with no ASGI at all, through the same parts."""

    __slots__ = ("route", "kernel", "settings", "record")

    def __init__(self, route: HttpRoute, kernel, settings: HttpSettings):
        self.route, self.kernel, self.settings = route, kernel, settings
        self.record = RouteRecorder("http", route.operation, route.method, metric_path(route.path))

    async def __call__(self, scope: dict, receive, send, params: dict) -> None:
        started = time.perf_counter()
        headers = read_headers(scope["headers"])
        record = self.record
        gauge = record.begin()
        try:
            raw_body = await read_body(receive) if self.route.body else None
            status, raw_headers, body, code = await run_route(self.route, self.kernel, self.settings, raw_body,
                                                              scope["query_string"], headers, params)
        except Exception:
            scope[FAILED_KEY] = True
            raise
        finally:
            record.leave(gauge)
        record.finish(code, status, time.perf_counter() - started, headers.get("request-id"))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


async def ping(scope: dict, receive, send, params: dict) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": list(PING_HEADERS)})
    await send({"type": "http.response.body", "body": PING_BODY})


class FastApiFront:
    """The ASGI application uvicorn runs: fast handlers for the indexed routes, wrapped in the same outer
    middleware as the framework app (`wrap`: basic auth, CORS), and the framework app for the rest."""

    def __init__(self, fallback, index: RouteIndex, wrap: Callable | None = None):
        self.fallback = fallback  # the framework app
        self._serve_fallback = fallback  # what requests it answers go through (`fallback_through`)
        self.index = index
        self.wrapped = wrap(self._serve_matched) if wrap is not None else None

    def fallback_through(self, middleware: Callable) -> None:
        """Requests for the framework app go through `middleware(framework app)` (applied once)."""
        self._serve_fallback = middleware(self.fallback)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or not self.index.usable:
            await self._serve_fallback(scope, receive, send)
            return
        found = self.index.match(scope["method"], scope["path"])
        if found is None:
            await self._serve_fallback(scope, receive, send)
            return
        try:
            if self.wrapped is None:
                await found[0](scope, receive, send, found[1])
            else:
                scope["resonate.route"] = found
                await self.wrapped(scope, receive, send)
        except Exception:
            if scope.pop(FAILED_KEY, False):
                await INTERNAL_ERROR(scope, receive, send)
            raise

    @staticmethod
    async def _serve_matched(scope, receive, send) -> None:
        handler, params = scope["resonate.route"]
        await handler(scope, receive, send, params)

