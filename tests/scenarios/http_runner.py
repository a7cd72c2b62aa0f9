"""Runs scenario steps over HTTP: (operation, canonical fields) -> request -> (code, JSON body)."""
from __future__ import annotations

import json
from typing import Any

import httpx

HEADERS = {"idempotencyKey": "idempotency-key", "strict": "strict", "traceparent": "traceparent",
           "tracestate": "tracestate", "taskId": "task-id", "taskCounter": "task-counter"}

# operation -> (method, path template or None, field used in the path, body or query)
ROUTES = {
    "promises.read": ("GET", "/promises/{}", "id", None),
    "promises.search": ("GET", "/promises", None, "query"),
    "promises.create": ("POST", "/promises", None, "body"),
    "promises.createtask": ("POST", "/promises/task", None, "body"),
    "promises.complete": ("PATCH", "/promises/{}", "id", "body"),
    "promises.callback": ("POST", "/promises/callback/{}", "promiseId", "body"),
    "promises.subscribe": ("POST", "/promises/subscribe/{}", "promiseId", "body"),
    "schedules.read": ("GET", "/schedules/{}", "id", None),
    "schedules.search": ("GET", "/schedules", None, "query"),
    "schedules.create": ("POST", "/schedules", None, "body"),
    "schedules.delete": ("DELETE", "/schedules/{}", "id", None),
    "locks.acquire": ("POST", "/locks/acquire", None, "body"),
    "locks.release": ("POST", "/locks/release", None, "body"),
    "locks.heartbeat": ("POST", "/locks/heartbeat", None, "body"),
    "tasks.claim": ("POST", "/tasks/claim", None, "body"),
    "tasks.complete": ("POST", "/tasks/complete", None, "body"),
    "tasks.drop": ("POST", "/tasks/drop", None, "body"),
    "tasks.heartbeat": ("POST", "/tasks/heartbeat", None, "body"),
}


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class HttpRunner:
    name = "http"
    features = frozenset({"fencing", "json-types", "http-headers"})

    def __init__(self, base_url: str):
        self.client = httpx.Client(base_url=base_url, timeout=30)

    def close(self):
        self.client.close()

    def call(self, op: str, fields: dict) -> tuple[int, Any]:
        method, path, path_field, carrier = ROUTES[op]
        fields = dict(fields)
        headers = {HEADERS[k]: _header_value(fields.pop(k)) for k in list(fields) if k in HEADERS}
        if path_field is not None:
            path = path.format(fields.pop(path_field, ""))
        if op == "promises.subscribe" or op == "promises.callback":
            pass  # the remaining fields form the body; the path carries the promise id
        params = None
        content = None
        if carrier == "query":
            params = []
            for k, v in fields.items():
                if k == "tags":
                    params += [(f"tags[{tk}]", tv) for tk, tv in v.items()]
                else:
                    params.append((k, str(v)))
        elif carrier == "body":
            content = json.dumps(fields)
            headers["content-type"] = "application/json"
        r = self.client.request(method, path, params=params, content=content, headers=headers)
        body = r.json() if r.content else None
        if r.status_code >= 300:
            assert body and "error" in body, f"{method} {path}: error without envelope: {r.status_code} {r.text}"
            assert body["error"]["code"] // 100 == r.status_code, r.text
            return body["error"]["code"], body
        return r.status_code * 100, body
