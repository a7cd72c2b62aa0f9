"""Basic auth on the HTTP API, gRPC and the poll streams (`--api-http-auth`, `--aio-poll-auth`)."""
import base64

import grpc
import httpx
import pytest

from resonate.api.grpc.pb import promise_pb2, promise_pb2_grpc
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def server():
    s = ServerProcess("--api-http-auth", "alice=secret", "--api-http-auth", "bob=hunter2", "--aio-poll-auth", "w=pw",
                      grpc=True).start()
    yield s
    s.stop()


def test_api_needs_credentials_but_ping_does_not(server):
    assert httpx.get(f"{server.url}/ping").status_code == 200
    r = httpx.post(f"{server.url}/promises", json={"id": "auth-1", "timeout": 10**15})
    assert r.status_code == 401 and r.content == b""
    assert r.headers["www-authenticate"] == 'Basic realm="Authorization Required"'
    assert httpx.get(f"{server.url}/promises/auth-1", auth=("alice", "wrong")).status_code == 401
    assert httpx.post(f"{server.url}/promises", json={"id": "auth-1", "timeout": 10**15},
                      auth=("alice", "secret")).status_code == 201
    assert httpx.get(f"{server.url}/promises/auth-1", auth=("bob", "hunter2")).status_code == 200
    assert httpx.get(f"{server.url}/poll/g/x", auth=("nobody", "x")).status_code == 401
    # refusals are counted as unrouted requests (gin's empty path)
    scrape = httpx.get(server.metrics_url).text
    assert 'http_requests_total{method="POST",path="",status="401"} 1.0' in scrape


def test_poll_streams_need_their_own_credentials(server):
    r = httpx.get(f"{server.poll_url}/workers/w1")
    assert r.status_code == 401 and r.text == "unauthorized"
    with httpx.stream("GET", f"{server.poll_url}/workers/w1", auth=("w", "pw"), timeout=5) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")


def _basic(user: str, password: str) -> tuple:
    return (("authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()),)


def test_grpc_stays_on_and_checks_the_same_credentials(server):
    # the reference turns gRPC off (it would bypass the credentials); ours checks the metadata instead
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = promise_pb2_grpc.PromisesStub(channel)
        request = promise_pb2.CreatePromiseRequest(id="auth-grpc-1", timeout=10**15)
        for metadata in ((), _basic("alice", "wrong"), (("authorization", "garbage"),)):
            with pytest.raises(grpc.RpcError) as e:
                stub.CreatePromise(request, metadata=metadata, timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.CreatePromise(request, metadata=_basic("bob", "hunter2"), timeout=10)
    # nothing was created by the refused calls, and the accepted one is visible over HTTP
    r = httpx.get(f"{server.url}/promises/auth-grpc-1", auth=("alice", "secret"))
    assert r.status_code == 200 and r.json()["state"] == "PENDING"


def test_cors_preflight_and_exposed_version_header():
    with ServerProcess("--api-http-cors-allow-origin", "http://app.example") as s:
        r = httpx.options(f"{s.url}/promises", headers={"Origin": "http://app.example",
                                                         "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "idempotency-key"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://app.example"
        assert "PATCH" in r.headers["access-control-allow-methods"]
        r = httpx.post(f"{s.url}/promises", json={"id": "cors-1", "timeout": 10**15},
                       headers={"Origin": "http://app.example"})
        assert r.status_code == 201
        assert "resonate-version" in r.headers["access-control-expose-headers"].lower()
        r = httpx.options(f"{s.url}/promises", headers={"Origin": "http://evil.example",
                                                         "Access-Control-Request-Method": "POST"})
        assert r.status_code == 400
