"""Logs and metrics helpers in-process: the key=value and JSON line formats, the gin-style path labels,
and the poll streams' CORS (--aio-poll-cors-allow-origin)."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import httpx

from resonate.api.http.routes import metric_path
from resonate.api.http.server import create_poll_app
from resonate.core.delivery.poll import PollPlugin
from resonate.observability.logs import configure_logging, log_request


def capture(fmt: str, level: str = "debug") -> io.StringIO:
    out = io.StringIO()
    configure_logging(level, fmt, stream=out)
    return out


def teardown_function():
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


def test_key_value_lines_like_the_reference():
    out = capture("text")
    logging.getLogger("resonate").info("resonate serving", extra={"fields": {"http": "0.0.0.0:8001", "auth": "a b"}})
    log_request("http", "promises.create", 201, 20100, 0.0012, "req-1")
    first, second = out.getvalue().splitlines()
    assert first.startswith("time=") and ' level=INFO msg="resonate serving" http=0.0.0.0:8001 auth="a b"' in first
    assert "level=DEBUG msg=request" in second
    for part in ("transport=http", "operation=promises.create", "status=201", "code=20100", "duration_ms=1.2",
                 "request_id=req-1"):
        assert part in second.split(), part


def test_json_lines_and_kafka_correlation_id():
    out = capture("json")
    log_request("kafka", "promises.read", 404, 40400, 0.002, "corr-9")
    line = json.loads(out.getvalue())
    assert line["level"] == "DEBUG" and line["transport"] == "kafka" and line["correlation_id"] == "corr-9"
    assert line["status"] == 404 and line["code"] == 40400


def test_request_lines_only_at_debug():
    out = capture("text", level="info")
    log_request("grpc", "promises.read", 0, 20000, 0.001, None)
    logging.getLogger("resonate.loops").warning("background pass failed: boom")
    assert "msg=request" not in out.getvalue() and "background pass failed" in out.getvalue()


def test_metric_paths_are_spelled_as_gin_does():
    assert metric_path("/promises/{id:path}") == "/promises/*id"
    assert metric_path("/tasks/claim/{id}/{counter}") == "/tasks/claim/:id/:counter"
    assert metric_path("/promises") == "/promises"


def test_poll_streams_answer_cors_preflights_for_allowed_origins():
    app = create_poll_app(PollPlugin(), cors_origins=["http://app.example"])

    async def preflight(origin: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://poll") as client:
            return await client.options("/g/1", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})

    r = asyncio.run(preflight("http://app.example"))
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://app.example"
    assert asyncio.run(preflight("http://evil.example")).status_code == 400
