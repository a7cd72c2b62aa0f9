"""`resonate promises get|search|create|resolve|reject|cancel|callback|subscribe`."""
from __future__ import annotations

import json
import sys
import time
from typing import Iterator

from .http import Api, ClientFailure, EXIT_USAGE, decode_json, encode_data, path_segment, run
from .render import go_json, go_promise, promise_view, promises_table

CREATED, DEDUPLICATED = 201, 200
# state sent for each completing verb, and the word printed after it
_COMPLETIONS = {"resolve": ("RESOLVED", "Resolved"), "reject": ("REJECTED", "Rejected"),
                "cancel": ("REJECTED_CANCELED", "Canceled")}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _value(ns, data_attr: str = "data", headers_attr: str = "headers") -> dict:
    value: dict = {}
    if getattr(ns, headers_attr) is not None:
        value["headers"] = getattr(ns, headers_attr)
    if getattr(ns, data_attr) is not None:
        value["data"] = encode_data(getattr(ns, data_attr))
    return value


def _write_headers(ns) -> dict:
    headers = {"strict": "true" if ns.strict else "false"}
    if ns.idempotency_key is not None:
        headers["idempotency-key"] = ns.idempotency_key
    return headers


def _created(response, noun: str, name: str) -> None:
    suffix = " (deduplicated)" if response.status_code == DEDUPLICATED else ""
    print(f"{noun}: {name}{suffix}")


def get(ns) -> int:
    def command():
        with Api(ns) as api:
            promise = decode_json(api.call("GET", f"/promises/{path_segment(ns.id)}", ok=(200,)))
        if ns.output == "json":
            print(go_json(go_promise(promise), indent=True))
        else:
            sys.stdout.write(promise_view(promise))
    return run(command)


def search_query(ns) -> dict:
    params = {"id": ns.id, "limit": ns.limit}
    if getattr(ns, "state", None) is not None:
        params["state"] = ns.state
    for key, value in (ns.tags or {}).items():
        params[f"tags[{key}]"] = value
    if ns.cursor is not None:
        params["cursor"] = ns.cursor
    return params


def pages(api: Api, path: str, params: dict, key: str, follow: bool) -> Iterator[list[dict]]:
    """Each page of a search; with `follow`, the next pages too, through the cursors."""
    query = params
    while True:
        answer = decode_json(api.call("GET", path, ok=(200,), params=params))
        yield answer.get(key) or []
        cursor = answer.get("cursor")
        if not follow or not cursor:
            return
        params = {**query, "cursor": cursor}


def search(ns) -> int:
    def command():
        with Api(ns) as api:
            found = []
            for page in pages(api, "/promises", search_query(ns), "promises", ns.all):
                if ns.output == "json":  # one line per promise, printed as each page arrives
                    for promise in page:
                        print(go_json(go_promise(promise), indent=False))
                else:
                    found += page
        if ns.output != "json":
            sys.stdout.write(promises_table(found))
    return run(command)


def create(ns) -> int:
    def command():
        body: dict = {"id": ns.id, "timeout": _now_ms() + ns.timeout, "param": _value(ns)}
        if ns.tags is not None:
            body["tags"] = ns.tags
        with Api(ns) as api:
            response = api.call("POST", "/promises", ok=(CREATED, DEDUPLICATED), json_body=body,
                                headers=_write_headers(ns))
        _created(response, "Created promise", ns.id)
    return run(command)


def _complete(ns, verb: str) -> int:
    state, past = _COMPLETIONS[verb]

    def command():
        body = {"state": state, "value": _value(ns)}
        with Api(ns) as api:
            response = api.call("PATCH", f"/promises/{path_segment(ns.id)}", ok=(CREATED, DEDUPLICATED),
                                json_body=body, headers=_write_headers(ns))
        _created(response, f"{past} promise", ns.id)
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


def _registered(response, noun: str, promise_id: str, name: str) -> None:
    """A callback or subscription: 200 means deduplicated, or that the promise is already complete."""
    if response.status_code == DEDUPLICATED:
        promise = (decode_json(response) or {}).get("promise") or {}
        if promise.get("state") not in (None, "PENDING"):
            print(f"Promise {promise_id} already {promise['state'].lower()}")
            return
    _created(response, f"Created {noun}", name)


def callback(ns) -> int:
    def command():
        body = {"rootPromiseId": ns.root_promise_id, "recv": parse_recv(ns.recv), "timeout": _now_ms() + ns.timeout}
        with Api(ns) as api:
            response = api.call("POST", f"/promises/callback/{path_segment(ns.id)}", ok=(CREATED, DEDUPLICATED),
                                json_body=body)
        _registered(response, "callback", ns.id, f"__resume:{ns.root_promise_id}:{ns.id}")
    return run(command)


def subscribe(ns) -> int:
    def command():
        body = {"id": ns.subscription_id, "recv": parse_recv(ns.recv), "timeout": _now_ms() + ns.timeout}
        with Api(ns) as api:
            response = api.call("POST", f"/promises/subscribe/{path_segment(ns.id)}", ok=(CREATED, DEDUPLICATED),
                                json_body=body)
        _registered(response, "subscription", ns.id, f"__notify:{ns.id}:{ns.subscription_id}")
    return run(command)
