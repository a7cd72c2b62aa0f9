"""The client's views against what the v0.8.2 client printed (cli-v0.8.2-output.md), and Go's tabwriter rules."""
from __future__ import annotations

import argparse
import base64
import json

import pytest

from resonate.client.invoke import param_data
from resonate.client.render import (go_json, go_promise, go_schedule, promise_view, promises_table, schedule_view,
                                    schedules_table, tabwrite)
from resonate.client.tree import draw

PROMISE = {"id": "foo", "state": "PENDING", "timeout": 1795997888762, "createdOn": 1795994288764,
           "param": {"headers": {"a": "b"}, "data": base64.b64encode(b"hello").decode()}, "value": {},
           "tags": {"team": "x"}}

# As the reference printed it, trailing spaces included
PROMISE_VIEW = """\
Id:       foo
State:    PENDING
Timeout:  1795997888762

Idempotency Key (create):    
Idempotency Key (complete):  

Param:
  Headers:
    a:  b
  Data:
    hello

Value:
  Headers:
  Data:

Tags:
  team:  x
"""

PROMISE_JSON = """\
{
  "createdOn": 1795994288764,
  "id": "foo",
  "param": {
    "data": "aGVsbG8=",
    "headers": {
      "a": "b"
    }
  },
  "state": "PENDING",
  "tags": {
    "team": "x"
  },
  "timeout": 1795997888762,
  "value": {}
}"""

SCHEDULE = {"id": "s1", "description": "", "cron": "*/5 * * * *", "tags": {}, "promiseId": "s1.{{.timestamp}}",
            "promiseTimeout": 3600000, "promiseParam": {}, "promiseTags": None, "nextRunTime": 1795994400000,
            "createdOn": 1795994296231}

SCHEDULE_VIEW = """\
Id:           s1
Description:  

Cron:           */5 * * * *
Last run time:  0
Next run time:  1795994400000

Tags:

Promise id:       s1.{{.timestamp}}
Promise timeout:  3600000
Promise param:
  Headers:
  Data:
Promise tags:
"""


def test_promise_view_is_the_reference_view():
    assert promise_view(PROMISE) == PROMISE_VIEW


def test_promise_json_is_the_reference_json():
    assert go_json(go_promise(PROMISE), indent=True) == PROMISE_JSON


def test_promise_json_keeps_go_struct_order_and_nulls():
    bare = {"id": "root", "state": "PENDING", "timeout": 1795997888909, "param": {}, "value": {},
            "createdOn": 1795994288910}
    assert go_json(go_promise(bare), indent=False) == (
        '{"createdOn":1795994288910,"id":"root","param":{},"state":"PENDING","tags":null,'
        '"timeout":1795997888909,"value":{}}')


def test_schedule_view_and_json_are_the_reference_ones():
    assert schedule_view(SCHEDULE) == SCHEDULE_VIEW
    assert json.loads(go_json(go_schedule(SCHEDULE), indent=True)) == {
        "createdOn": 1795994296231, "cron": "*/5 * * * *", "description": "", "id": "s1",
        "nextRunTime": 1795994400000, "promiseId": "s1.{{.timestamp}}", "promiseParam": {}, "promiseTags": None,
        "promiseTimeout": 3600000, "tags": {}}
    assert list(go_schedule(SCHEDULE)) == ["createdOn", "cron", "description", "id", "nextRunTime", "promiseId",
                                           "promiseParam", "promiseTags", "promiseTimeout", "tags"]


def test_search_tables_align_as_the_reference():
    rows = [("root", "PENDING", None), ("baz", "REJECTED_CANCELED", None), ("foo", "RESOLVED", {"team": "x"})]
    promises = [{"id": i, "state": s, "timeout": 1795997888909, "tags": t} for i, s, t in rows]
    assert promises_table(promises) == (
        "ID    STATE              TIMEOUT        TAGS\n"
        "root  PENDING            1795997888909  \n"
        "baz   REJECTED_CANCELED  1795997888909  \n"
        "foo   RESOLVED           1795997888909  team:x\n")
    assert schedules_table([SCHEDULE]) == (
        "ID  CRON         LAST RUN TIME  NEXT RUN TIME  TAGS\n"
        "s1  */5 * * * *  0              1795994400000  \n")
    assert promises_table([]) == "ID  STATE  TIMEOUT  TAGS\n"


@pytest.mark.parametrize("text, expected", [
    # a line without a cell in a column ends that column's block
    ("a\tb\nlonger\tc\n\nx\ty\n", "a       b\nlonger  c\n\nx  y\n"),
    # nested blocks: the outer column spans all three lines, the inner one only the last two
    ("k:\tv\n\tk2:\tv2\n\tlong-key:\tv3\n", "k:  v\n    k2:        v2\n    long-key:  v3\n"),
    # cells are counted in characters, not bytes
    ("é\tx\nab\ty\n", "é   x\nab  y\n"),
])
def test_tabwriter_rules(text, expected):
    assert tabwrite(text) == expected


def test_go_json_escapes_html_as_go():
    assert go_json({"a": "<b>&"}, indent=False) == '{"a":"\\u003cb\\u003e\\u0026"}'


@pytest.mark.parametrize("args, json_args, expected", [
    (["1"], "", '{"func":"f","args":[1],"version":1}'),
    (["1", "2", "a string", '{"k": "v"}', "true", "1e3"], "",
     '{"func":"f","args":[1,2,"a string",{"k":"v"},true,1000],"version":1}'),
    ([], "", '{"func":"f","args":[],"version":1}'),
    (["NaN", "-Infinity", "<b>"], "", '{"func":"f","args":["NaN","-Infinity","\\u003cb\\u003e"],"version":1}'),
    ([], '[{"key": "value"}, {"num": 42}, 12345678901234567890]',
     '{"func":"f","args":[{"key":"value"},{"num":42},12345678901234567000],"version":1}'),
])
def test_invoke_param_is_what_the_reference_writes(args, json_args, expected):
    ns = argparse.Namespace(func="f", args=args, json_args=json_args, version=1)
    assert param_data(ns) == expected


def _p(pid, state, created, **tags):
    return {"id": pid, "state": state, "createdOn": created, "tags": tags, "param": {}}


def test_tree_drawing():
    root = _p("root", "PENDING", 1, **{"resonate:root": "root"})
    func = {"data": base64.b64encode(b'{"func":"add","args":[]}').decode()}
    children = {
        "root": [{**_p("a", "RESOLVED", 2, **{"resonate:scope": "local"}), "param": func},
                 _p("b", "PENDING", 3, **{"resonate:scope": "global"}),
                 _p("c", "REJECTED_TIMEDOUT", 4, **{"resonate:timeout": "1"})],
        "b": [_p("b1", "PENDING", 5), _p("b2", "REJECTED", 6)],
        "a": [_p("a1", "RESOLVED", 7)],
    }
    assert draw(root, children) == [
        "root 🟡 PENDING",
        "├── a 🟢 (run add) RESOLVED",
        "│   └── a1 🟢 RESOLVED",
        "├── b 🟡 (rpc) PENDING",
        "│   ├── b1 🟡 PENDING",
        "│   └── b2 🔴 REJECTED",
        "└── c 🔴 (sleep) REJECTED_TIMEDOUT",
    ]


def test_tree_survives_a_parent_cycle():
    root = _p("r", "PENDING", 1)
    assert draw(root, {"r": [_p("x", "PENDING", 2)], "x": [_p("r", "PENDING", 1)]}) == ["r 🟡 PENDING",
                                                                                      "└── x 🟡 PENDING"]
