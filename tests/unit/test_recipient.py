"""Recipients are checked when registered, on every transport (the core's decode step)."""
from __future__ import annotations

import json

import pytest

from resonate.core.codes import ApiError
from resonate.core.operations import decode
from resonate.core.requests import Text

FAR = 10**15


def refused(operation: str, fields: dict) -> str:
    with pytest.raises(ApiError) as e:
        decode(operation, fields)
    assert e.value.code == 40000
    return " ".join(e.value.details)


def subscribe(recv) -> dict:
    return {"id": "s", "promiseId": "p", "timeout": FAR, "recv": recv}


@pytest.mark.parametrize("recv, field", [
    ({"type": "http", "data": {"url": "http://h/", "headers": {"X-A": "v\r\nX-B: 1"}}}, "recv.data.headers.X-A"),
    ({"type": "http", "data": {"url": "http://h/", "headers": {"X-A": "v\nX-B: 1"}}}, "recv.data.headers.X-A"),
    ({"type": "http", "data": {"url": "http://h/", "headers": {"X-A": "v\x00"}}}, "recv.data.headers.X-A"),
    ({"type": "http", "data": {"url": "http://h/", "Headers": {"X A": "v"}}}, "recv.data.Headers"),
    ({"type": "http", "data": {"url": "http://h/", "headers": {"": "v"}}}, "recv.data.headers"),
    ({"type": "kafka", "data": {"topic": "t", "headers": {"k:": "v"}}}, "recv.data.headers"),
    ({"type": "http", "data": {"url": "http://h/x\r\nX-B: 1"}}, "recv.data.url"),
    ("http://h/x\r\nX-B: 1", "recv"),
])
def test_injecting_recipients_are_refused_naming_the_field(recv, field):
    assert f"the field {field}" in refused("promises.subscribe", subscribe(recv))


def test_raw_json_recipients_from_grpc_are_checked_too():
    raw = Text(json.dumps({"type": "http", "data": {"url": "http://h/", "headers": {"X": "a\rb"}}}))
    assert "recv.data.headers.X" in refused("promises.subscribe", subscribe(raw))


@pytest.mark.parametrize("recv", [
    {"type": "http", "data": {"url": "http://h/a b", "headers": {"X-A": "tab\there", "X-B": "ünïcode"}}},
    {"type": "poll", "data": {"group": "g", "id": "i"}},
    {"type": "http", "data": None},
    "poll://any@default",
    "default",
    {"type": "http", "data": {"url": "http://h/", "headers": {"X-Count": 3}}},
])
def test_ordinary_recipients_pass_unchanged(recv):
    request = decode("promises.subscribe", subscribe(recv))
    assert json.loads(request.recv) == recv


def test_callbacks_are_checked():
    bad = {"type": "http", "data": {"url": "http://h/", "headers": {"X": "\r\n"}}}
    assert "recv.data.headers.X" in refused("promises.callback", {"promiseId": "p", "rootPromiseId": "r",
                                                                   "timeout": FAR, "recv": bad})


def test_invoke_tags_are_checked_on_promises_and_schedules():
    bad = json.dumps({"type": "http", "data": {"url": "http://h/", "headers": {"X": "a\r\nb"}}})
    assert "tags.resonate:invoke.data.headers.X" in refused(
        "promises.create", {"id": "p", "timeout": FAR, "tags": {"resonate:invoke": bad}})
    assert "tags.resonate:invoke" in refused(
        "promises.create", {"id": "p", "timeout": FAR, "tags": {"resonate:invoke": "http://h/\r\nX: 1"}})
    assert "promiseTags.resonate:invoke.data.headers.X" in refused(
        "schedules.create", {"id": "s", "cron": "* * * * *", "promiseId": "p", "promiseTags": {"resonate:invoke": bad}})
    # other tags are not recipients: any text stays allowed in them
    request = decode("promises.create", {"id": "p", "timeout": FAR, "tags": {"note": "line 1\r\nline 2"}})
    assert request.tags == {"note": "line 1\r\nline 2"}


def test_the_trace_head_is_checked():
    assert "the field traceparent" in refused(
        "promises.create", {"id": "p", "timeout": FAR, "traceparent": "00-a\r\nX-B: 1"})
    request = decode("promises.create", {"id": "p", "timeout": FAR, "traceparent": "00-abc-def-01"})
    assert request.head == {"traceparent": "00-abc-def-01"}
