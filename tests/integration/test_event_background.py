"""Event-driven background work (issue 8), observed through the API of real server processes.

The servers here run with a 60 s background period: everything below happens long before a
period-only pass would run, so each test fails on the old design (`--system-background-mode period`).
"""
from __future__ import annotations

import queue
import uuid

import httpx
import pytest

from tests.integration.test_background import PollListener, now_ms
from tests.server import ServerProcess

LONG_PERIOD = ("--system-signal-timeout", "60s")
WELL_WITHIN_S = 5  # a bound for the waits below; the period (60 s) is far beyond it


@pytest.fixture(scope="module")
def server():
    with ServerProcess(*LONG_PERIOD) as s:
        yield s


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("tags, state", [({}, "REJECTED_TIMEDOUT"), ({"resonate:timeout": "true"}, "RESOLVED")])
@pytest.mark.parametrize("route", ["subscribe", "callback"])
def test_a_past_deadline_promise_answers_as_timed_out_at_once(api, tags, state, route):
    pid = uid("past")
    r = api.post("/promises", json={"id": pid, "timeout": now_ms() - 1000, "tags": tags})
    assert r.status_code == 201 and r.json()["state"] == "PENDING"  # stored pending, as the reference
    if route == "subscribe":
        r = api.post(f"/promises/subscribe/{pid}", json={"id": "s1", "recv": "poll://any@nobody", "timeout": 0})
    else:
        r = api.post(f"/promises/callback/{pid}", json={"rootPromiseId": uid("root"), "recv": "poll://any@nobody",
                                                        "timeout": 0})
    assert r.status_code == 200, r.text
    assert r.json()["callback"] is None
    assert r.json()["promise"]["state"] == state
    assert r.json()["promise"]["completedOn"] == r.json()["promise"]["timeout"]
    group = "resolved" if state == "RESOLVED" else "rejected"
    found = api.get("/promises", params={"id": pid, "state": group}).json()["promises"]
    assert [p["id"] for p in found] == [pid]
    assert api.get("/promises", params={"id": pid, "state": "pending"}).json()["promises"] == []


def test_a_timeout_fires_at_its_deadline_not_at_the_period(server, api):
    group, ident = uid("grp"), "listener"
    listener = PollListener(server.poll_url, group, ident)
    try:
        pid = uid("soon")
        assert api.post("/promises", json={"id": pid, "timeout": now_ms() + 200}).status_code == 201
        r = api.post(f"/promises/subscribe/{pid}",
                     json={"id": "s1", "recv": f"poll://any@{group}/{ident}", "timeout": now_ms() + 60_000})
        assert r.status_code == 201 and r.json()["promise"]["state"] == "PENDING"
        try:
            message = listener.next(timeout=WELL_WITHIN_S)
        except queue.Empty:
            pytest.fail(f"no notify within {WELL_WITHIN_S}s of a 200 ms deadline (background period 60 s)")
        assert message["type"] == "notify"
        assert message["promise"]["id"] == pid and message["promise"]["state"] == "REJECTED_TIMEDOUT"
    finally:
        listener.close()


def test_a_completion_resumes_a_listener_at_once(server, api):
    group, ident = uid("grp"), "worker"
    listener = PollListener(server.poll_url, group, ident)
    try:
        root, leaf = uid("root"), uid("leaf")
        for pid in (root, leaf):
            assert api.post("/promises", json={"id": pid, "timeout": now_ms() + 600_000}).status_code == 201
        r = api.post(f"/promises/callback/{leaf}", json={"rootPromiseId": root, "recv": f"poll://any@{group}/{ident}",
                                                         "timeout": now_ms() + 600_000})
        assert r.status_code == 201
        assert api.patch(f"/promises/{leaf}", json={"state": "RESOLVED"}).status_code == 201
        try:
            message = listener.next(timeout=WELL_WITHIN_S)
        except queue.Empty:
            pytest.fail(f"no resume within {WELL_WITHIN_S}s of the completion (background period 60 s)")
        assert message["type"] == "resume"
        assert message["task"]["rootPromiseId"] == root
        task = message["task"]
        claim = api.post("/tasks/claim", json={"id": task["id"], "counter": task["counter"], "processId": "w",
                                               "ttl": 60_000})
        assert claim.status_code == 201
        assert claim.json()["promises"]["leaf"]["data"]["state"] == "RESOLVED"
    finally:
        listener.close()


def test_an_invoke_task_is_delivered_right_after_its_creation(server, api):
    group, ident = uid("grp"), "worker"
    listener = PollListener(server.poll_url, group, ident)
    try:
        pid = uid("invoke")
        r = api.post("/promises", json={"id": pid, "timeout": now_ms() + 600_000,
                                        "tags": {"resonate:invoke": f"poll://any@{group}/{ident}"}})
        assert r.status_code == 201
        try:
            message = listener.next(timeout=WELL_WITHIN_S)
        except queue.Empty:
            pytest.fail(f"no invoke within {WELL_WITHIN_S}s of the creation (background period 60 s)")
        assert message["type"] == "invoke" and message["task"]["rootPromiseId"] == pid
    finally:
        listener.close()
