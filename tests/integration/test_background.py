"""Background behaviour observed through the API, with a 100 ms loop period."""
from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.infra.ports import free_port
from tests.infra.wait import wait_until


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class PollListener:
    """A real SSE client on the poll port, collecting every `data:` event."""

    def __init__(self, base_url: str, group: str, ident: str):
        self.events: queue.Queue = queue.Queue()
        self._url = f"{base_url}/{group}/{ident}"
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._connected.wait(5), "poll stream did not open"

    def _run(self):
        try:
            with self._client.stream("GET", self._url) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    self._connected.set()
                    if line.startswith("data: "):
                        self.events.put(json.loads(line[6:]))
        except Exception:
            pass

    def next(self, timeout=10):
        return self.events.get(timeout=timeout)

    def close(self):
        self._client.close()


class PushRecipient:
    """A real HTTP server recording the messages POSTed to it."""

    def __init__(self):
        self.received: queue.Queue = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def api(sqlite_server):
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        yield client


def test_invoke_task_reaches_poll_listener_then_lease_expiry_reenqueues_with_higher_counter(sqlite_server, api):
    listener = PollListener(sqlite_server.poll_url, "bg-workers", "w1")
    try:
        pid = f"bg-invoke-{now_ms()}"
        r = api.post("/promises", json={"id": pid, "timeout": now_ms() + 60_000,
                                        "tags": {"resonate:invoke": "poll://any@bg-workers"}})
        assert r.status_code == 201
        msg = listener.next()
        assert msg["type"] == "invoke"
        assert msg["task"]["id"] == f"__invoke:{pid}" and msg["task"]["counter"] == 1
        assert msg["href"]["claim"].endswith(f"/tasks/claim/__invoke:{pid}/1")
        # claim with ttl 0: the lease expires at the next pass and the task comes back with counter 2
        r = api.post("/tasks/claim", json={"id": f"__invoke:{pid}", "counter": 1, "processId": "w1", "ttl": 0})
        assert r.status_code == 201
        again = listener.next()
        assert again["task"]["id"] == f"__invoke:{pid}" and again["task"]["counter"] == 2
        assert api.post("/tasks/complete", json={"id": f"__invoke:{pid}", "counter": 1}).status_code == 403
        r = api.get(again["href"]["claim"].replace(sqlite_server.url, ""))
        assert r.status_code == 201 and r.json()["type"] == "invoke"
        r = api.get(f"/tasks/complete/__invoke:{pid}/2")
        assert r.status_code == 201
    finally:
        listener.close()


def test_promise_times_out_in_background_and_notifies_subscriber(sqlite_server, api):
    listener = PollListener(sqlite_server.poll_url, "bg-subs", "s1")
    try:
        pid = f"bg-timeout-{now_ms()}"
        deadline = now_ms() + 300
        assert api.post("/promises", json={"id": pid, "timeout": deadline}).status_code == 201
        r = api.post(f"/promises/subscribe/{pid}", json={"id": "sub", "recv": "poll://uni@bg-subs/s1",
                                                          "timeout": now_ms() + 60_000})
        assert r.status_code == 201
        msg = listener.next()  # nothing touches the promise: only the background pass can time it out
        assert msg["type"] == "notify"
        assert msg["promise"]["id"] == pid
        assert msg["promise"]["state"] == "REJECTED_TIMEDOUT"
        assert msg["promise"]["completedOn"] == deadline
    finally:
        listener.close()


def test_resume_callback_is_pushed_to_http_recipient(sqlite_server, api):
    recipient = PushRecipient()
    try:
        t = now_ms()
        leaf, root = f"bg-leaf-{t}", f"bg-root-{t}"
        for pid in (leaf, root):
            assert api.post("/promises", json={"id": pid, "timeout": t + 60_000}).status_code == 201
        r = api.post(f"/promises/callback/{leaf}", json={
            "rootPromiseId": root, "timeout": t + 60_000, "recv": f"http://127.0.0.1:{recipient.port}/hook"},
            headers={"traceparent": "00-abc-def-01"})
        assert r.status_code == 201
        assert api.patch(f"/promises/{leaf}", json={"state": "RESOLVED"}).status_code == 201
        path, headers, body = recipient.received.get(timeout=10)
        assert path == "/hook"
        assert headers["Content-Type"] == "application/json"
        assert headers.get("traceparent") == "00-abc-def-01"
        assert body["type"] == "resume"
        assert body["task"]["id"] == f"__resume:{root}:{leaf}"
        assert body["href"]["claim"].endswith(f"/tasks/claim/__resume:{root}:{leaf}/1")
    finally:
        recipient.close()


def test_schedule_creates_promises_every_second(sqlite_server, api):
    sid = f"bg-sched-{now_ms()}"
    r = api.post("/schedules", json={"id": sid, "cron": "* * * * * *", "promiseId": "{{.id}}.{{.timestamp}}",
                                     "promiseTimeout": 60_000, "promiseTags": {"k": "v"}})
    assert r.status_code == 201
    first = r.json()["nextRunTime"]
    wait_until(lambda: len(api.get("/promises", params={"id": f"{sid}.*"}).json()["promises"]) >= 3,
               "three scheduled promises")
    assert api.delete(f"/schedules/{sid}").status_code == 204
    promises = api.get("/promises", params={"id": f"{sid}.*"}).json()["promises"]
    stamps = sorted(int(p["id"].rsplit(".", 1)[1]) for p in promises)
    assert stamps == [first + 1000 * k for k in range(len(stamps))]  # one per second, none skipped
    for p in promises:
        stamp = int(p["id"].rsplit(".", 1)[1])
        assert stamp % 1000 == 0
        assert p["timeout"] == stamp + 60_000
        assert p["tags"] == {"k": "v", "resonate:schedule": sid, "resonate:invocation": "true"}


def test_expired_lock_is_released_by_the_background_pass(sqlite_server, api):
    rid = f"bg-lock-{now_ms()}"
    body = {"resourceId": rid, "executionId": "e1", "processId": "p1", "ttl": 100}
    assert api.post("/locks/acquire", json=body).status_code == 201
    other = {"resourceId": rid, "executionId": "e2", "processId": "p2", "ttl": 60_000}
    # held until the background pass releases it (acquiring never releases an expired lock itself)
    wait_until(lambda: api.post("/locks/acquire", json=other).status_code == 201, "the expired lock released")
