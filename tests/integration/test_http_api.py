"""HTTP-specific behaviour: routes, headers, envelopes, and bad input that must never hurt the server."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def api(sqlite_server):
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        yield client


def test_ping_and_docs(api):
    assert api.get("/ping").json() == {"status": "ok"}
    assert api.get("/docs").status_code == 200
    doc = api.get("/openapi.json").json()
    assert "/promises" in doc["paths"] and "/ping" in doc["paths"]


def test_unknown_route_and_method_are_plain_404(api):
    for method, path in [("GET", "/nope"), ("PUT", "/promises/x"), ("POST", "/locks/steal")]:
        r = api.request(method, path)
        assert r.status_code == 404 and r.text == "404 page not found"


def test_json_answers_carry_version_and_content_type(api):
    pid = f"http-{now_ms()}"
    r = api.post("/promises", json={"id": pid, "timeout": now_ms() + 60_000})
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["resonate-version"]
    assert r.content.startswith(b'{"id":')


def test_ids_may_contain_slashes_and_colons(api):
    pid = f"a/b:c/{now_ms()}"
    assert api.post("/promises", json={"id": pid, "timeout": now_ms() + 60_000}).status_code == 201
    r = api.get(f"/promises/{pid}")
    assert r.status_code == 200 and r.json()["id"] == pid
    assert api.patch(f"/promises/{pid}", json={"state": "RESOLVED"}).json()["state"] == "RESOLVED"


def test_strict_header_accepts_python_spelling_and_rejects_garbage(api):
    pid = f"strict-{now_ms()}"
    api.post("/promises", json={"id": pid, "timeout": now_ms() + 60_000}, headers={"idempotency-key": "k"})
    api.patch(f"/promises/{pid}", json={"state": "RESOLVED"})
    r = api.post("/promises", json={"id": pid, "timeout": 1}, headers={"idempotency-key": "k", "strict": "True"})
    assert r.status_code == 409
    r = api.post("/promises", json={"id": pid, "timeout": 1}, headers={"idempotency-key": "k", "strict": "False"})
    assert r.status_code == 200
    r = api.post("/promises", json={"id": pid}, headers={"strict": "maybe"})
    assert r.status_code == 400 and "strict" in r.json()["error"]["details"][0]["message"]


def test_error_envelopes(api):
    r = api.get("/promises/does-not-exist")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == 40400 and err["message"] == "The specified promise was not found"
    assert err["details"][0]["@type"] == "RequestError"
    assert err["details"][0]["metadata"]["url"].endswith("#40400")
    r = api.post("/promises", json={"timeout": 1})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == 40000
    assert err["details"][0]["@type"] == "FieldValidationError"
    assert err["details"][0]["message"] == "The field id is required."
    r = api.post("/promises", json={"id": "x"}, headers={"task-id": "nope", "task-counter": "1"})
    assert r.status_code == 412 and r.json()["error"]["details"][0]["@type"] == "ServerError"


def test_drop_has_no_body_and_delete_has_no_body(api):
    pid = f"drop-{now_ms()}"
    api.post("/promises", json={"id": pid, "timeout": now_ms() + 60_000,
                                "tags": {"resonate:invoke": "poll://any@nobody-listens"}})
    api.post("/tasks/claim", json={"id": f"__invoke:{pid}", "counter": 1, "processId": "p", "ttl": 60_000})
    r = api.post("/tasks/drop", json={"id": f"__invoke:{pid}", "counter": 1})
    assert r.status_code == 201 and r.content == b"" and "content-type" not in r.headers
    sid = f"del-{now_ms()}"
    api.post("/schedules", json={"id": sid, "cron": "0 0 1 1 *", "promiseId": "x"})
    r = api.delete(f"/schedules/{sid}")
    assert r.status_code == 204 and r.content == b""


def test_get_task_routes_synthesize_process_and_parse_counters(api):
    pid = f"gettask-{now_ms()}"
    api.post("/promises", json={"id": pid, "timeout": now_ms() + 60_000,
                                "tags": {"resonate:invoke": "poll://any@nobody-listens"}})
    assert api.get(f"/tasks/claim/__invoke:{pid}/x").status_code == 400
    assert api.get(f"/tasks/claim/__invoke:{pid}/1").status_code == 201
    assert api.get(f"/tasks/heartbeat/__invoke:{pid}/1").json() == {"tasksAffected": 1}
    assert api.get(f"/tasks/complete/__invoke:{pid}/1").status_code == 201


def test_malformed_bodies_get_clear_400s(api):
    cases = [b"", b"{", b"[]", b"null", b"\"str\"", b"{\"id\": NaN}", b"\xff\xfe", b"{\"id\": \"a\", \"timeout\": 1e3}"]
    for raw in cases:
        r = api.post("/promises", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["error"]["code"] == 40000
    deep = b"[" * 100_000 + b"]" * 100_000
    assert api.post("/promises", content=deep).status_code == 400
    assert api.get("/ping").status_code == 200


def test_huge_id_and_negative_ttls(api):
    big = "x" * 200_000
    r = api.post("/promises", json={"id": big, "timeout": now_ms() + 60_000})
    assert r.status_code == 400 and "id" in r.json()["error"]["details"][0]["message"]
    edge = "y" * 1024
    assert api.post("/promises", json={"id": edge, "timeout": now_ms() + 60_000}).status_code == 201
    r = api.post("/locks/acquire", json={"resourceId": "r", "executionId": "e", "processId": "p", "ttl": -1})
    assert r.status_code == 400 and "ttl" in r.json()["error"]["details"][0]["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=12)
field_names = st.sampled_from(["id", "timeout", "param", "value", "tags", "state", "promise", "task", "processId",
                               "ttl", "counter", "recv", "rootPromiseId", "cron", "promiseId", "resourceId",
                               "executionId", "limit", "data", "headers"])
bodies = st.dictionaries(field_names, json_values, max_size=6) | json_values
routes = st.sampled_from([("POST", "/promises"), ("POST", "/promises/task"), ("PATCH", "/promises/fz"),
                          ("POST", "/promises/callback/fz"), ("POST", "/promises/subscribe/fz"),
                          ("POST", "/schedules"), ("POST", "/locks/acquire"), ("POST", "/locks/release"),
                          ("POST", "/locks/heartbeat"), ("POST", "/tasks/claim"), ("POST", "/tasks/complete"),
                          ("POST", "/tasks/drop"), ("POST", "/tasks/heartbeat"), ("POST", "/callbacks")])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=routes, body=bodies)
def test_any_json_body_gets_a_4xx_or_success_never_a_5xx(api, route, body):
    method, path = route
    r = api.request(method, path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (method, path, body, r.text)
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["code"] // 100 == r.status_code and err["message"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["id", "state", "limit", "cursor", "tags[a]", "tags["]),
                              st.text(max_size=30), max_size=4),
       headers=st.dictionaries(st.sampled_from(["strict", "idempotency-key", "task-id", "task-counter"]),
                               # HTTP clients refuse header values with outer spaces
                               st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                       max_size=20).map(str.strip),
                               max_size=3))
def test_any_query_or_header_gets_a_clean_answer(api, params, headers):
    r = api.get("/promises", params=params, headers=headers)
    assert r.status_code in (200, 400), r.text
    r = api.post("/promises", json={"id": "hdr-fuzz", "timeout": 1}, headers=headers)
    assert r.status_code < 500, r.text


def test_search_pages_through_every_promise_with_cursors(api):
    prefix = f"page-{now_ms()}"
    for i in range(5):
        api.post("/promises", json={"id": f"{prefix}-{i}", "timeout": now_ms() + 60_000, "tags": {"g": "x"}})
    seen, cursor, pages = [], None, 0
    while True:
        params = {"cursor": cursor} if cursor else {"id": f"{prefix}-*", "limit": 2, "tags[g]": "x"}
        body = api.get("/promises", params=params).json()
        seen += [p["id"] for p in body["promises"]]
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            break
    assert seen == [f"{prefix}-{i}" for i in range(4, -1, -1)]  # newest first, each once
    assert pages == 3
    # an exact multiple is followed by one empty page, as in the reference
    body = api.get("/promises", params={"id": f"{prefix}-*", "limit": 5}).json()
    assert len(body["promises"]) == 5 and body["cursor"]
    assert api.get("/promises", params={"cursor": body["cursor"]}).json() == {"cursor": None, "promises": []}
    forged = body["cursor"][:-2] + ("AA" if not body["cursor"].endswith("AA") else "BB")
    r = api.get("/promises", params={"cursor": forged})
    assert r.status_code == 400 and "signature" in r.text
