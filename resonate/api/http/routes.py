"""HTTP transport: one table maps each route to a core operation; nothing here decides behaviour.

A handler gathers the route's fields (path, query, headers, JSON body), lets the core decode and run
them, and writes the core's result or error back: status = code / 100, the reference's JSON shapes
and error envelope.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ...core import gojson
from ...core.codes import NO_CONTENT, ApiError, invalid
from ...core.operations import decode, render
from ...core.requests import Text
from ...observability.requests import RouteRecorder

VERSION = "0.8.2"
JSON_TYPE = "application/json; charset=utf-8"

# header -> canonical field; body keys with these names are ignored, as the reference reads them from headers only
HEADER_FIELDS = {"idempotency-key": "idempotencyKey", "strict": "strict", "traceparent": "traceparent",
                 "tracestate": "tracestate", "task-id": "taskId", "task-counter": "taskCounter"}
_HEADER_FIELD_NAMES = {v.lower() for v in HEADER_FIELDS.values()}


@dataclass(frozen=True, slots=True)
class HttpRoute:
    method: str
    path: str
    operation: str
    body: bool = True
    query: bool = False
    # extra fields from path parameters (and configuration), applied over the body
    path_fields: Callable[[dict, "HttpSettings"], dict] | None = None
    empty_body: bool = False  # drop task answers with no body and no content type


@dataclass
class HttpSettings:
    task_frequency_ms: int = 60_000
    authenticator: object = None  # resonate.auth.Authenticator when JWT is on; checked on the decoded request


def _id(params, _):
    return {"id": Text(params["id"])}


def _promise_id(params, _):
    return {"promiseId": Text(params["id"])}


def _task_link(params, _):
    return {"id": Text(params["id"]), "counter": Text(params["counter"])}


def _task_claim_link(params, settings: HttpSettings):
    # GET claims act for the synthetic process "{id}/{counter}" with the configured lease
    return {**_task_link(params, settings), "processId": Text(f"{params['id']}/{params['counter']}"),
            "ttl": settings.task_frequency_ms}


def _task_process(params, _):
    return {"processId": Text(f"{params['id']}/{params['counter']}")}


ROUTES: list[HttpRoute] = [
    HttpRoute("GET", "/promises", "promises.search", body=False, query=True),
    HttpRoute("POST", "/promises", "promises.create"),
    HttpRoute("POST", "/promises/task", "promises.createtask"),
    HttpRoute("POST", "/promises/callback/{id:path}", "promises.callback", path_fields=_promise_id),
    HttpRoute("POST", "/promises/subscribe/{id:path}", "promises.subscribe", path_fields=_promise_id),
    HttpRoute("GET", "/promises/{id:path}", "promises.read", body=False, path_fields=_id),
    HttpRoute("PATCH", "/promises/{id:path}", "promises.complete", path_fields=_id),
    HttpRoute("POST", "/callbacks", "promises.callback"),
    HttpRoute("POST", "/subscriptions", "promises.subscribe"),
    HttpRoute("GET", "/schedules", "schedules.search", body=False, query=True),
    HttpRoute("POST", "/schedules", "schedules.create"),
    HttpRoute("GET", "/schedules/{id:path}", "schedules.read", body=False, path_fields=_id),
    HttpRoute("DELETE", "/schedules/{id:path}", "schedules.delete", body=False, path_fields=_id),
    HttpRoute("POST", "/locks/acquire", "locks.acquire"),
    HttpRoute("POST", "/locks/release", "locks.release"),
    HttpRoute("POST", "/locks/heartbeat", "locks.heartbeat"),
    HttpRoute("POST", "/tasks/claim", "tasks.claim"),
    HttpRoute("GET", "/tasks/claim/{id}/{counter}", "tasks.claim", body=False, path_fields=_task_claim_link),
    HttpRoute("POST", "/tasks/complete", "tasks.complete"),
    HttpRoute("GET", "/tasks/complete/{id}/{counter}", "tasks.complete", body=False, path_fields=_task_link),
    HttpRoute("POST", "/tasks/drop", "tasks.drop", empty_body=True),
    HttpRoute("GET", "/tasks/drop/{id}/{counter}", "tasks.drop", body=False, path_fields=_task_link,
              empty_body=True),
    HttpRoute("POST", "/tasks/heartbeat", "tasks.heartbeat"),
    HttpRoute("GET", "/tasks/heartbeat/{id}/{counter}", "tasks.heartbeat", body=False, path_fields=_task_process),
    # not in v0.8.2: read a task (used by `resonate tree`); last, so the GET task links above match first
    HttpRoute("GET", "/tasks/{id:path}", "tasks.read", body=False, path_fields=_id),
]


def _reject_constant(name: str):
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


# json.loads(raw, parse_constant=...) would build a new JSONDecoder per call; this is the same decoder, once
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        raise invalid("EOF: the request body is empty")
    # exactly json.loads on bytes: detect UTF-8/16/32, then decode. An object whose first two bytes are
    # "{" and not NUL is UTF-8 (no BOM; UTF-16/32 would put NUL beside it), as detect_encoding finds
    encoding = "utf-8" if raw[:1] == b"{" and raw[1:2] != b"\x00" else json.detect_encoding(raw)
    try:
        return _DECODER.decode(raw.decode(encoding, "surrogatepass"))
    except UnicodeDecodeError:
        raise invalid("the request body is not valid UTF-8") from None
    except ValueError as e:
        raise invalid(f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise invalid("the request body is nested too deeply") from None


def query_fields(query_string: bytes) -> dict:
    fields: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for key, value in QueryParams(query_string).multi_items():  # as Starlette's Request.query_params
        if key.startswith("tags[") and key.endswith("]") and len(key) > 6:
            tags.setdefault(key[5:-1], value)  # first value wins
        elif key not in fields:
            fields[key] = Text(value)
    if tags:
        fields["tags"] = tags
    return fields


# the request headers a route reads; with duplicates the first one counts (as Starlette's Headers.get)
WANTED_HEADERS = {name.encode("latin-1"): name for name in (*HEADER_FIELDS, "authorization", "request-id")}


def read_headers(raw_headers) -> dict[str, str]:
    """One pass over the ASGI scope's (lower-case name, value) pairs for the headers a route reads."""
    found: dict[str, str] = {}
    for name, value in raw_headers:
        key = WANTED_HEADERS.get(name)
        if key is not None and key not in found:
            found[key] = value.decode("latin-1")
    return found


# An answer is (HTTP status, raw ASGI headers, body bytes, core code); headers and their order are those
# Starlette's Response built before (given headers, then content-length unless the status has no body).
Answer = tuple[int, list[tuple[bytes, bytes]], bytes, int]
_VERSION_HEADER = (b"resonate-version", VERSION.encode("latin-1"))
_JSON_TYPE_HEADER = (b"content-type", JSON_TYPE.encode("latin-1"))
_NO_BODY_STATUSES = frozenset({204, 304})


def raw_answer(code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    status = code // 100
    if not (status < 200 or status in _NO_BODY_STATUSES):
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
    return status, headers, body, code


def json_answer(code: int, body: Any) -> Answer:
    return raw_answer(code, [_JSON_TYPE_HEADER, _VERSION_HEADER], gojson.dumps(body).encode())


def error_answer(error: ApiError) -> Answer:
    return json_answer(error.code, {"error": error.to_json()})


class AnswerResponse(Response):
    """A Starlette response sending an Answer as it is (no header rebuilding)."""

    def __init__(self, answer: Answer):
        self.status_code, self.raw_headers, self.body, _ = answer
        self.background = None


def metric_path(path: str) -> str:
    """A route template in the reference's (gin) spelling: `/promises/{id:path}` -> `/promises/*id`."""
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: ("*" if m.group(2) else ":") + m.group(1), path)


def route_request(route: HttpRoute, settings: HttpSettings, raw_body: bytes | None, query_string: bytes,
                  headers: dict[str, str], path_params: dict) -> Any:
    """The route's fields (body or query, headers, path) decoded into the core request, authorized; raises
    the ApiError to answer instead."""
    if route.body:
        body = parse_body(raw_body)
        if isinstance(body, dict):
            fields = body  # parsed for this request: ours to change
            for key in body:
                if key.lower() in _HEADER_FIELD_NAMES:  # header-only fields are not read from the body
                    fields = {k: v for k, v in body.items() if k.lower() not in _HEADER_FIELD_NAMES}
                    break
        else:
            fields = body  # the core rejects non-objects, naming what it got
    elif route.query:
        fields = query_fields(query_string)
    else:
        fields = {}
    if isinstance(fields, dict):
        if headers:  # only what read_headers found: most requests carry none of these
            for header, name in HEADER_FIELDS.items():
                value = headers.get(header)
                if value is not None:
                    fields[name] = Text(value)
        if route.path_fields is not None:
            fields.update(route.path_fields(path_params, settings))
    core_request = decode(route.operation, fields)
    authenticator = settings.authenticator
    if authenticator is not None:
        denied = authenticator.check_jwt(headers.get("authorization"), core_request)
        if denied is not None:
            raise denied
    return core_request


def result_answer(route: HttpRoute, result) -> Answer:
    """The answer to a core result of `route`."""
    if route.empty_body:
        return raw_answer(result.code, [_VERSION_HEADER], b"")
    if result.code == NO_CONTENT:
        return raw_answer(result.code, [_JSON_TYPE_HEADER, _VERSION_HEADER], b"")
    return json_answer(result.code, render(result.body))


async def run_route(route: HttpRoute, kernel, settings: HttpSettings, raw_body: bytes | None,
                    query_string: bytes, headers: dict[str, str], path_params: dict) -> Answer:
    """The route's request run by the core, and its answer."""
    try:
        core_request = route_request(route, settings, raw_body, query_string, headers, path_params)
        answered = kernel.answer_now(core_request)  # a read answered here, or None: submitted
        if answered is None:
            result = await kernel.submit_async(core_request)
        elif answered[0]:
            result = answered[1]
        else:
            raise answered[1]
    except ApiError as e:
        return error_answer(e)
    return result_answer(route, result)


def make_handler(route: HttpRoute, kernel, settings: HttpSettings):
    """The Starlette endpoint of a route (requests the fast path in asgi.py leaves to the framework)."""
    record = RouteRecorder("http", route.operation, route.method, metric_path(route.path))

    async def handler(request: Request) -> Response:
        started = time.perf_counter()
        headers = read_headers(request.scope["headers"])
        gauge = record.begin()
        try:
            raw_body = await request.body() if route.body else None
            answer = await run_route(route, kernel, settings, raw_body, request.scope["query_string"], headers,
                                     request.path_params)
        finally:
            record.leave(gauge)
        record.finish(answer[3], answer[0], time.perf_counter() - started, headers.get("request-id"))
        return AnswerResponse(answer)

    return handler


def starlette_routes(kernel, settings: HttpSettings) -> list[Route]:
    return [Route(r.path, make_handler(r, kernel, settings), methods=[r.method], name=f"{r.method} {r.path}")
            for r in ROUTES]


async def not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("404 page not found", status_code=404)
