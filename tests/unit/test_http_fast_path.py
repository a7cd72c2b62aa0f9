"""The HTTP fast path (resonate/api/http/asgi.py): it picks the route Starlette's router would pick, it
answers byte for byte what the FastAPI app answers, and it reads headers as Starlette's Headers.get."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.datastructures import Headers
from starlette.routing import Match

from resonate.api.http import asgi
from resonate.api.http.routes import ROUTES, WANTED_HEADERS, read_headers
from resonate.api.http.server import create_http_app
from resonate.core.kernel import Kernel
from resonate.core.store.sqlite import SqliteStore
from resonate.observability import metrics

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PATHS = ["/", "", "/ping", "/ping/", "/promises", "/promises/", "/promises/a", "/promises/a/b", "/promises/task",
         "/promises/task/", "/promises/callback/x", "/promises/callback/", "/promises/subscribe/x/y",
         "/promises\n", "/promises/a\n", "/promises/a\nb", "//promises", "/callbacks", "/subscriptions",
         "/schedules", "/schedules/s", "/schedules/s/t", "/locks/acquire", "/locks/release/", "/locks/heartbeat",
         "/tasks/claim", "/tasks/claim/a/1", "/tasks/claim/a/b/1", "/tasks/complete/t/2", "/tasks/drop/t/3",
         "/tasks/heartbeat/t/4", "/tasks/t", "/tasks/", "/tasks/claim/a", "/openapi.json", "/docs",
         "/docs/oauth2-redirect", "/redoc", "/poll/g/i", "/unknown", "/promisesx", "/promises/ü"]
FIXED_MS = 1_700_000_000_000


@pytest.fixture
def front():
    return create_http_app(kernel=None, poll=object())


def starlette_choice(app, method: str, path: str):
    """The endpoint Starlette's router runs for (method, path): the first FULL match, else None."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in app.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route.endpoint, child["path_params"]
    return None


def test_the_index_picks_the_route_starlettes_router_picks(front):
    handlers = {}
    for route in front.fallback.router.routes:
        found = None
        for method in route.methods or ():
            probe = starlette_choice(front.fallback, method, route.path.replace("{id:path}", "z")
                                     .replace("{id}", "z").replace("{counter}", "1").replace("{rest:path}", "g/i"))
            if probe is not None and probe[0] is route.endpoint:
                found = front.index.match(method, route.path.replace("{id:path}", "z").replace("{id}", "z")
                                          .replace("{counter}", "1"))
        handlers[route.endpoint] = found[0] if found else None
    checked = 0
    for method in METHODS:
        for path in PATHS:
            expected = starlette_choice(front.fallback, method, path)
            got = front.index.match(method, path)
            if expected is None or handlers.get(expected[0]) is None:
                assert got is None, (method, path, got)
            elif got is None:  # falling through is always safe: the framework answers as it would anyway
                assert "\n" in path, (method, path)  # ("/promises\n" matches Starlette's "^/promises$")
            else:
                assert got[0] is handlers[expected[0]] and got[1] == expected[1], (method, path, got, expected)
                checked += 1
    assert checked > 30  # the comparison covered the fast routes, not only fall-throughs


def test_every_route_of_the_table_is_served_fast(front):
    served = set()
    for route in ROUTES:
        path = route.path.replace("{id:path}", "some/id").replace("{id}", "t").replace("{counter}", "1")
        found = front.index.match(route.method, path)
        assert found is not None, route
        served.add(found[0])
        expected = starlette_choice(front.fallback, route.method, path)
        assert expected is not None and expected[1] == found[1]
    assert len(served) == len(ROUTES)  # one fast handler per table entry
    assert front.index.match("GET", "/ping")[0] is asgi.ping


def test_method_mismatch_falls_back_or_picks_a_later_route(front):
    assert front.index.match("GET", "/promises/callback/x")[1] == {"id": "callback/x"}  # reads "callback/x"
    assert front.index.match("POST", "/promises/callback/x")[1] == {"id": "x"}
    assert front.index.match("DELETE", "/promises/x") is None  # 405 from the framework
    assert front.index.match("PUT", "/promises") is None
    assert front.index.match("GET", "/tasks/claim/a/1")[1] == {"id": "a", "counter": "1"}
    assert front.index.match("GET", "/tasks/claim/a/b/1")[1] == {"id": "claim/a/b/1"}  # tasks.read
    assert front.index.match("GET", "/openapi.json") is None  # FastAPI's own route
    assert front.index.match("GET", "/poll/g/i") is None


def test_an_unindexable_route_turns_the_fast_path_off():
    from starlette.routing import Route

    async def endpoint(request):
        raise AssertionError

    index = asgi.RouteIndex([Route("/{anything:path}", endpoint)], {endpoint: asgi.ping})
    assert not index.usable


def test_headers_are_read_in_one_pass_as_starlette_reads_them():
    raw = [(b"host", b"x"), (b"idempotency-key", b"first"), (b"strict", b"true"), (b"idempotency-key", b"second"),
           (b"request-id", b"r\xe9"), (b"Task-Id", b"upper-case raw names are not ours"), (b"authorization", b"a"),
           (b"authorization", b"b"), (b"traceparent", b"")]
    found = read_headers(raw)
    starlette = Headers(raw=raw)
    for name in WANTED_HEADERS.values():
        assert found.get(name) == starlette.get(name), name
    assert found["idempotency-key"] == "first" and found["request-id"] == "ré" and "task-id" not in found


# --- byte-identical answers: the same requests through the fast path and through the FastAPI app ----------

REQUESTS = [
    ("GET", "/ping", None, {}),
    ("POST", "/promises", b'{"id":"p1","timeout":9999999999999,"param":{"data":"aGk="},"tags":{"a":"b"}}',
     {"idempotency-key": "ik", "strict": "true"}),
    ("POST", "/promises", b'{"id":"p1","timeout":9999999999999}', {"idempotency-key": "ik"}),
    ("POST", "/promises", b'{"id":"p1","timeout":9999999999999}', {}),  # 409
    ("POST", "/promises", b"", {}),
    ("POST", "/promises", b"{nope", {}),
    ("POST", "/promises", b"[1]", {}),
    ("GET", "/promises/p1", None, {"request-id": "r1"}),
    ("HEAD", "/promises/p1", None, {}),  # Starlette's GET routes take HEAD too
    ("GET", "/promises/missing", None, {}),
    ("GET", "/promises?id=p*&tags[a]=b&limit=5", None, {}),
    ("POST", "/promises", b'{"id":"root","timeout":9999999999999}', {}),
    ("POST", "/promises/callback/p1", b'{"rootPromiseId":"root","timeout":1,"recv":"poll://any@g"}', {}),
    ("POST", "/schedules", b'{"id":"s1","cron":"* * * * *","promiseId":"s1.{{.timestamp}}","promiseTimeout":1000}', {}),
    ("GET", "/schedules/s1", None, {}),
    ("DELETE", "/schedules/s1", None, {}),
    ("PATCH", "/promises/p1", b'{"state":"RESOLVED","value":{"data":"eA=="}}', {"strict": "false"}),
    ("PATCH", "/promises/p1", b'{"state":"REJECTED"}', {}),
    ("POST", "/tasks/drop", b'{"id":"nope","counter":1}', {}),
    ("GET", "/tasks/drop/nope/1", None, {}),
    ("GET", "/tasks/nope", None, {}),
    ("GET", "/schedules/none", None, {}),
    ("DELETE", "/schedules/none", None, {}),
    ("POST", "/locks/acquire", b'{"resourceId":"r","executionId":"e","processId":"p","ttl":1000}', {}),
    ("DELETE", "/promises/p1", None, {}),  # 405 -> framework
    ("GET", "/nowhere", None, {}),  # 404 -> framework
    ("GET", "/promises/", None, {}),
]


def run_requests(app) -> list[tuple[int, list, bytes]]:
    async def go():
        answers = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for method, url, body, headers in REQUESTS:
                r = await client.request(method, url, content=body, headers=headers)
                answers.append((r.status_code, r.headers.raw, r.content))
        return answers

    return asyncio.run(go())


def test_the_fast_path_answers_byte_for_byte_as_the_framework(tmp_path):
    answers = {}
    for name in ("fast", "framework"):
        kernel = Kernel(SqliteStore(str(tmp_path / f"{name}.db")), clock=lambda: FIXED_MS)
        kernel.start()
        try:
            front = create_http_app(kernel)
            answers[name] = run_requests(front if name == "fast" else front.fallback)
        finally:
            kernel.stop()
    for request, fast, framework in zip(REQUESTS, answers["fast"], answers["framework"]):
        assert fast == framework, request
    statuses = [a[0] for a in answers["fast"]]
    assert {200, 201, 204, 400, 403, 404, 409}.issubset(statuses)  # the table reached every kind of answer


def test_route_metrics_bind_series_on_first_use_and_count_as_before(tmp_path):
    def sample(name, labels):
        return metrics.REGISTRY.get_sample_value(name, labels)

    labels = {"type": "ReadSchedule", "protocol": "http", "status": "40401"}
    http_labels = {"method": "GET", "path": "/schedules/*id", "status": "404"}
    before, http_before = sample("api_requests_total", labels) or 0, sample("http_requests_total", http_labels) or 0
    kernel = Kernel(SqliteStore(str(tmp_path / "m.db")))
    kernel.start()
    metrics.enable()
    try:
        front = create_http_app(kernel)

        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://api") as c:
                for _ in range(3):
                    assert (await c.get("/schedules/none")).status_code == 404
        asyncio.run(go())
    finally:
        metrics.disable()
        kernel.stop()
    assert sample("api_requests_total", labels) == before + 3
    assert sample("http_requests_total", http_labels) == http_before + 3
    assert sample("api_requests_in_flight", {"type": "ReadSchedule", "protocol": "http"}) == 0
    fresh = metrics.RouteMetrics("http", "locks.heartbeat", "POST", "/never/used")
    assert fresh.in_flight() is None  # metrics off: nothing bound, nothing recorded
    assert sample("http_requests_duration_seconds_count", {"method": "POST", "path": "/never/used"}) is None


class FailingKernel:
    """A kernel failing unexpectedly (not with an ApiError): the answer is Starlette's plain 500."""

    def answer_now(self, request):
        return None

    def submit_async(self, request, dedup=None):
        raise RuntimeError("boom")


AUTH_REQUESTS = [
    ("GET", "/promises/p", {"origin": "http://ui.example"}),  # no credentials: 401 with the Basic challenge
    ("GET", "/ping", {"origin": "http://ui.example"}),  # exempt from credentials
    ("GET", "/promises/p", {"origin": "http://ui.example", "authorization": "Basic dTpw"}),  # 500, no CORS headers
    ("GET", "/promises/p", {"authorization": "Basic dTpw"}),
    ("OPTIONS", "/promises/p", {"origin": "http://ui.example", "access-control-request-method": "GET"}),
    ("GET", "/promises/p", {"origin": "http://elsewhere.example", "authorization": "Basic d3Jvbmc6eA=="}),
]


def test_auth_cors_and_unexpected_errors_answer_as_the_framework():
    front = create_http_app(FailingKernel(), auth={"u": "p"}, cors_origins=["http://ui.example"])
    assert front.wrapped is not None  # the fast path runs under the same outer middleware

    async def go(app):
        answers = []
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for method, url, headers in AUTH_REQUESTS:
                r = await client.request(method, url, headers=headers)
                answers.append((r.status_code, r.headers.raw, r.content))
        return answers

    fast, framework = asyncio.run(go(front)), asyncio.run(go(front.fallback))
    for request, a, b in zip(AUTH_REQUESTS, fast, framework):
        assert a == b, request
    assert [a[0] for a in fast] == [401, 200, 500, 500, 200, 401]


def test_a_path_without_parameters_is_found_in_the_exact_table_after_its_first_match(front):
    """The exact table holds only routes without parameters (one path each), and the answer is the slow
    path's: the same handler, fresh empty params."""
    index = front.index
    handler, params = index.match("POST", "/promises")
    assert index.exact == {("POST", "/promises"): handler}
    params["changed"] = True
    assert index.match("POST", "/promises") == (handler, {})
    assert index.match("GET", "/promises/p1")[1] == {"id": "p1"}  # a route with a parameter: not kept
    assert index.match("PUT", "/promises") is None  # no route (405): not kept
    assert index.match("GET", "/openapi.json") is None  # the framework's own: not kept
    assert list(index.exact) == [("POST", "/promises")]


def test_header_only_fields_in_a_body_are_not_read_from_it():
    """idempotencyKey, strict and the others come from headers only, in any case in the body."""
    from resonate.api.http.routes import HttpSettings, route_request

    create = next(r for r in ROUTES if r.operation == "promises.create")
    body = b'{"id":"p1","timeout":1,"IdempotencyKey":"from-body","strict":true}'
    assert route_request(create, HttpSettings(), body, b"", {}, {}).idempotency_key is None
    request = route_request(create, HttpSettings(), body, b"", {"idempotency-key": "from-header"}, {})
    assert request.idempotency_key == "from-header" and request.strict is False
    plain = route_request(create, HttpSettings(), b'{"id":"p2","timeout":1}', b"", {}, {})
    assert (plain.id, plain.timeout, plain.idempotency_key) == ("p2", 1, None)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32-le",
                                      "utf-32"])
def test_request_bodies_are_decoded_as_json_loads_decodes_bytes(encoding):
    from resonate.api.http.routes import parse_body

    text = '{"id":"\u00e9t\u00e9","timeout":1}'
    assert parse_body(text.encode(encoding)) == {"id": "\u00e9t\u00e9", "timeout": 1}
    assert parse_body(b' {"a":1}') == {"a": 1} and parse_body(b"{}") == {}
