"""The HTTP API's application (fast path in front of FastAPI), and the poll plugin's event-stream application."""
from __future__ import annotations

import json
from importlib import resources

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ...auth import basic_credentials, basic_ok
from ...observability import metrics
from ...observability.logs import log_request
from .asgi import FastApiFront, FastRoute, RouteIndex
from .asgi import ping as fast_ping
from .routes import ROUTES, HttpSettings, not_found, starlette_routes


class BasicAuth:
    """HTTP basic auth over every route but `exempt` ones (ASGI middleware, so streams pass untouched)."""

    def __init__(self, app, users: dict[str, str], unauthorized, exempt: frozenset = frozenset()):
        self.app = app
        self.accepted = basic_credentials(users)
        self.unauthorized = unauthorized
        self.exempt = exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in self.exempt:
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not basic_ok(self.accepted, given):
                await self.unauthorized(scope, receive, send)
                # refused before routing: no operation, and gin's empty path label for unrouted requests
                request_id = dict(scope["headers"]).get(b"request-id", b"").decode("latin-1") or None
                log_request("http", "", 401, None, 0.0, request_id)
                metrics.http_request(scope["method"], "", 401, 0.0)
                return
        await self.app(scope, receive, send)


# the reference's answers: an empty 401 with a Basic challenge on the API, `unauthorized` on the poll port
API_UNAUTHORIZED = Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="Authorization Required"'})
POLL_UNAUTHORIZED = PlainTextResponse("unauthorized", status_code=401,
                                      headers={"WWW-Authenticate": 'Basic realm="Authorization Required"'})

SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


def _openapi_document() -> dict:
    return json.loads(resources.files(__package__).joinpath("openapi.json").read_text())


def poll_endpoint(poll):
    """GET /{group}/{id...}: opens the server-sent-event stream of that recipient (spec 5.6)."""

    async def stream(request: Request) -> Response:
        rest = request.path_params.get("rest", "")
        group, sep, ident = rest.partition("/")
        if not sep or not group:
            return PlainTextResponse("invalid request", status_code=400)
        conn = poll.connect(group, ident)
        if conn is None:
            return Response(status_code=200, media_type="text/event-stream")  # over the connection limit
        return StreamingResponse(poll.stream(conn), media_type="text/event-stream", headers=SSE_HEADERS)

    return stream


async def _method_not_allowed(request: Request) -> Response:
    return PlainTextResponse("method not allowed", status_code=405)


def create_poll_app(poll, auth: dict[str, str] | None = None, cors_origins: list[str] | None = None) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    if auth:
        app.add_middleware(BasicAuth, users=auth, unauthorized=POLL_UNAUTHORIZED)
    if cors_origins:  # outermost, so preflights are answered before credentials are asked for
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "OPTIONS"])
    app.router.routes.append(Route("/{rest:path}", poll_endpoint(poll), methods=["GET"]))
    app.router.routes.append(Route("/{rest:path}", _method_not_allowed,
                                   methods=["POST", "PUT", "PATCH", "DELETE"]))
    return app


def create_http_app(kernel, settings: HttpSettings | None = None, poll=None,
                    auth: dict[str, str] | None = None, cors_origins: list[str] | None = None) -> FastApiFront:
    """The API's ASGI application: the fast path (asgi.py) for the routes of ROUTES and /ping, in front
    of the FastAPI app, which answers everything else (errors, redirects, OpenAPI, docs, poll streams)."""
    settings = settings or HttpSettings()
    app = FastAPI(title="resonate-py", version="0.8.2", redirect_slashes=True)
    # the same outer middleware over both paths
    auth_options = dict(users=auth, unauthorized=API_UNAUTHORIZED, exempt=frozenset({"/ping"}))
    cors_options = dict(allow_origins=cors_origins, allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                        allow_headers=["Origin", "Content-Length", "Content-Type", "Idempotency-Key", "Strict"],
                        expose_headers=["Resonate-Version"])
    if auth:  # /ping answers without credentials (v0.8.2), so health checks need none
        app.add_middleware(BasicAuth, **auth_options)
    if cors_origins:  # outermost, so preflights are answered before credentials are asked for
        app.add_middleware(CORSMiddleware, **cors_options)
    app.openapi = _openapi_document  # the hand-checked contract of the routes below

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app.router.routes.append(Route("/ping", ping, methods=["GET"]))
    api_routes = starlette_routes(kernel, settings)
    app.router.routes.extend(api_routes)
    if poll is not None:
        app.router.routes.append(Route("/poll/{rest:path}", poll_endpoint(poll), methods=["GET"]))

    async def http_exception(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (404, 405):
            return await not_found(request, exc)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    app.add_exception_handler(HTTPException, http_exception)

    handlers = {ping: fast_ping}
    handlers.update({served.endpoint: FastRoute(route, kernel, settings) for route, served in zip(ROUTES, api_routes)})

    def wrap(inner):
        if auth:
            inner = BasicAuth(inner, **auth_options)
        if cors_origins:
            inner = CORSMiddleware(inner, **cors_options)
        return inner

    return FastApiFront(app, RouteIndex(app.router.routes, handlers), wrap if auth or cors_origins else None)
