"""Runs scenario steps in-process: (operation, canonical fields) -> core request -> kernel -> (code, JSON).

No server, no socket: the kernel and a store (SQLite or PostgreSQL) in this process, with a clock the
test sets. Fields are typed as the HTTP binding types them (header, path and query values arrive as
text), so the same rows hold here and over HTTP.
"""
from __future__ import annotations

import json
from typing import Any

from resonate.core import gojson
from resonate.core.codes import ApiError
from resonate.core.kernel import Kernel
from resonate.core.operations import render
from resonate.core.requests import Text, decode

from .http_runner import HEADERS, ROUTES, _header_value


class ManualClock:
    """The kernel's clock, in epoch milliseconds, moved only by the test."""

    def __init__(self, now_ms: int = 1_700_000_000_000):
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


class InProcessRunner:
    name = "in-process"
    features = frozenset({"fencing", "json-types", "http-headers"})

    def __init__(self, store, clock: ManualClock | None = None):
        self.clock = clock or ManualClock()
        self.kernel = Kernel(store, clock=self.clock, queue_limit=100_000)
        self.kernel.start()

    def close(self) -> None:
        self.kernel.stop()

    def wait(self, ms: int) -> None:
        self.clock.advance(ms)

    def request(self, request: Any) -> tuple[int, Any]:
        try:
            result = self.kernel.call(request)
        except ApiError as e:
            return e.code, {"error": e.to_json()}
        body = render(result.body)
        return result.code, (json.loads(gojson.dumps(body)) if body is not None else None)

    def call(self, op: str, fields: dict) -> tuple[int, Any]:
        try:
            request = decode(op, as_http_types(op, fields))
        except ApiError as e:
            return e.code, {"error": e.to_json()}
        return self.request(request)


def as_http_types(op: str, fields: dict) -> dict:
    """The fields as the HTTP binding hands them to the core: text where HTTP carries text."""
    _, _, path_field, carrier = ROUTES[op]
    body = {k: v for k, v in fields.items() if k not in HEADERS and k != path_field}
    if carrier == "query":
        out = {k: (dict(v) if k == "tags" else Text(str(v))) for k, v in body.items()}
    else:
        out = json.loads(json.dumps(body))
    for k, v in fields.items():
        if k in HEADERS:
            out[k] = Text(_header_value(v))
        elif k == path_field:
            out[k] = Text(str(v))
    return out
