"""Recipient headers can not inject anything: CR/LF is refused at registration (400 naming the field),
and never reaches a listening socket, even when the HTTP sender is handed one directly."""
from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time

import httpx
import pytest

from resonate.core.delivery.http_push import HttpPlugin

INJECTED = "v\r\nX-Injected: 1\r\n\r\nGET /second HTTP/1.1"


class RawListener:
    """A TCP listener that records the raw bytes of every request it is sent (one request per connection)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: queue.Queue[bytes] = queue.Queue()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            conn.settimeout(10)
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
        if data:
            self.requests.put(data)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def listener():
    server = RawListener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def api(sqlite_server):
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        yield client


def _recv(url: str, headers: dict[str, str]) -> dict:
    return {"type": "http", "data": {"url": url, "headers": headers}}


def _expect_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert field in response.text, response.text


def test_crlf_in_recipient_headers_is_refused_and_never_sent(api, listener):
    uid = f"inject-{time.time_ns()}"
    far = int(time.time() * 1000) + 600_000
    bad = _recv(listener.url("/bad"), {"X-A": INJECTED})

    # a promise whose invoke tag carries the header
    r = api.post("/promises", json={"id": f"{uid}-p", "timeout": far,
                                    "tags": {"resonate:invoke": json.dumps(bad)}})
    _expect_refused(r, "tags.resonate:invoke.data.headers")
    assert api.get(f"/promises/{uid}-p").status_code == 404  # nothing was created

    # the same on a schedule's promise tags
    r = api.post("/schedules", json={"id": f"{uid}-s", "cron": "* * * * *", "promiseId": f"{uid}-s.{{{{.timestamp}}}}",
                                     "promiseTimeout": 60_000,
                                     "promiseTags": {"resonate:invoke": json.dumps(bad)}})
    _expect_refused(r, "promiseTags.resonate:invoke.data.headers")

    # a callback and a subscription on a live promise
    assert api.post("/promises", json={"id": f"{uid}-root", "timeout": far}).status_code == 201
    assert api.post("/promises", json={"id": f"{uid}-leaf", "timeout": far}).status_code == 201
    r = api.post(f"/promises/callback/{uid}-leaf", json={"rootPromiseId": f"{uid}-root", "timeout": far, "recv": bad})
    _expect_refused(r, "recv.data.headers")
    r = api.post(f"/promises/subscribe/{uid}-leaf", json={"id": "sub", "timeout": far, "recv": bad})
    _expect_refused(r, "recv.data.headers")
    # a header name is a token; a URL holds no CR/LF either
    r = api.post("/subscriptions", json={"id": "sub", "promiseId": f"{uid}-leaf", "timeout": far,
                                         "recv": _recv(listener.url("/x"), {"X-A\r\nX-B": "v"})})
    _expect_refused(r, "recv.data.headers")
    r = api.post("/subscriptions", json={"id": "sub", "promiseId": f"{uid}-leaf", "timeout": far,
                                         "recv": listener.url("/x\r\nX-Injected: 1")})
    _expect_refused(r, "recv")

    # the positive signal: a clean recipient registered after all of the above is delivered; it is the
    # only request the listener ever saw, and it carries no injected header
    good = _recv(listener.url("/good"), {"X-Sentinel": uid})
    r = api.post("/promises", json={"id": f"{uid}-good", "timeout": far,
                                    "tags": {"resonate:invoke": json.dumps(good)}})
    assert r.status_code == 201, r.text
    raw = listener.requests.get(timeout=30)
    assert raw.startswith(b"POST /good HTTP/1.1\r\n"), raw
    assert f"x-sentinel: {uid}".encode() in raw.lower()
    assert b"x-injected" not in raw.lower() and b"/second" not in raw and b"/bad" not in raw
    assert listener.requests.empty()
    assert api.get("/ping").status_code == 200  # and the server keeps serving


def test_the_http_sender_refuses_crlf_it_is_handed_directly(listener):
    """A recipient stored before the registration check existed: the HTTP client refuses to write it."""

    async def run() -> tuple[bool, bool]:
        plugin = HttpPlugin(workers=1, timeout_s=10, connect_timeout_s=5)
        try:
            bad = await plugin.send({"url": listener.url("/bad"), "headers": {"X-A": INJECTED}}, {"n": 1}, {})
            bad_head = await plugin.send({"url": listener.url("/bad")}, {"n": 2}, {"traceparent": INJECTED})
            good = await plugin.send({"url": listener.url("/good"), "headers": {"X-Sentinel": "ok"}}, {"n": 3}, {})
            return bad or bad_head, good
        finally:
            await plugin.close(grace_s=10)

    sent_bad, sent_good = asyncio.run(run())
    assert not sent_bad and sent_good
    raw = listener.requests.get(timeout=10)
    assert raw.startswith(b"POST /good HTTP/1.1\r\n") and b"x-injected" not in raw.lower()
    assert b'{"n":3}' in raw
    assert listener.requests.empty()
