"""`resonate promises get|search|create|resolve|reject|cancel|callback|subscribe`."""
from __future__ import annotations

import json
import time

from .common import CREATED, DEDUPLICATED, report, show, value_of
from .common import search as common_search
from .http import Api, ClientFailure, EXIT_USAGE, decode_json, path_segment, run
from .render import go_promise, promise_view, promises_table

# state sent for each completing verb, and the word printed after it
_COMPLETIONS = {"resolve": ("RESOLVED", "Resolved"), "reject": ("REJECTED", "Rejected"),
                "cancel": ("REJECTED_CANCELED", "Canceled")}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _write_headers(ns) -> dict:
    headers = {"strict": "true" if ns.strict else "false"}
    if ns.idempotency_key is not None:
        headers["idempotency-key"] = ns.idempotency_key
    return headers


def get(ns) -> int:
    return show(ns, "promises", go_promise, promise_view)


def search(ns) -> int:
    return common_search(ns, "promises", go_promise, promises_table)


def create(ns) -> int:
    def command():
        body: dict = {"id": ns.id, "timeout": _now_ms() + ns.timeout, "param": value_of(ns)}
        if ns.tags is not None:
            body["tags"] = ns.tags
        with Api(ns) as api:
            response = api.call("POST", "/promises", ok=(CREATED, DEDUPLICATED), json_body=body,
                                headers=_write_headers(ns))
        report(response, f"Created promise: {ns.id}")
    return run(command)


def _complete(ns, verb: str) -> int:
    state, past = _COMPLETIONS[verb]

    def command():
        body = {"state": state, "value": value_of(ns)}
        with Api(ns) as api:
            response = api.call("PATCH", f"/promises/{path_segment(ns.id)}", ok=(CREATED, DEDUPLICATED),
                                json_body=body, headers=_write_headers(ns))
        report(response, f"{past} promise: {ns.id}")
    return run(command)


def resolve(ns) -> int:
    return _complete(ns, "resolve")


def reject(ns) -> int:
    return _complete(ns, "reject")


def cancel(ns) -> int:
    return _complete(ns, "cancel")


def parse_recv(text: str):
    """`--recv`: a JSON object {"type": ..., "data": ...}, or else a receiver name or url, as the reference."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(value, dict):
        raise ClientFailure(f"Error: invalid --recv {text!r}: expected a name, a url or a JSON object "
                            '{"type": ..., "data": ...}', EXIT_USAGE)
    return {"data": value.get("data"), "type": value.get("type", "")}


def _register(ns, kind: str, body: dict, noun: str, name: str) -> int:
    """A callback or subscription on promise `ns.id`; a 200 is a replay, or the promise is already complete."""
    def command():
        with Api(ns) as api:
            response = api.call("POST", f"/promises/{kind}/{path_segment(ns.id)}", ok=(CREATED, DEDUPLICATED),
                                json_body={**body, "recv": parse_recv(ns.recv), "timeout": _now_ms() + ns.timeout})
        if response.status_code == DEDUPLICATED:
            promise = (decode_json(response) or {}).get("promise") or {}
            if promise.get("state") not in (None, "PENDING"):
                print(f"Promise {ns.id} already {promise['state'].lower()}")
                return
        report(response, f"Created {noun}: {name}")
    return run(command)


def callback(ns) -> int:
    return _register(ns, "callback", {"rootPromiseId": ns.root_promise_id}, "callback",
                     f"__resume:{ns.root_promise_id}:{ns.id}")


def subscribe(ns) -> int:
    return _register(ns, "subscribe", {"id": ns.subscription_id}, "subscription",
                     f"__notify:{ns.id}:{ns.subscription_id}")
