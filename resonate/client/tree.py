"""`resonate tree <id>`: the call graph under a root promise, drawn as the reference draws it.

The graph comes from the SDK's tags: every promise of a call graph carries `resonate:root`, every child
`resonate:parent`; an rpc child (`resonate:scope=global`) is the root of its own sub-graph. Beyond the
reference, each line ends with the node's state in words, and the root's state is read even when the
root does not tag itself. A node tagged `resonate:invoke` has a task, `__invoke:<id>`; v0.8.2's HTTP API
cannot read tasks, so its state and counter are shown only when the server offers our read-only
extension `GET /tasks/{id}` (this server does; against the reference they are left out, with a note).
"""
from __future__ import annotations

import base64
import binascii
import json
import sys
from collections import deque

from .http import Api, decode_json, path_segment, run
from .common import pages

ROOT_TAG, PARENT_TAG, SCOPE_TAG, TIMEOUT_TAG = "resonate:root", "resonate:parent", "resonate:scope", "resonate:timeout"
INVOKE_TAG = "resonate:invoke"
TASK_NOT_FOUND = 40403
PAGE_SIZE = 100
_STATUS = {"PENDING": " 🟡", "RESOLVED": " 🟢", "REJECTED": " 🔴", "REJECTED_CANCELED": " 🔴",
           "REJECTED_TIMEDOUT": " 🔴"}


def _function(promise: dict) -> str:
    data = (promise.get("param") or {}).get("data")
    if not data:
        return ""
    try:
        decoded = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return ""
    name = decoded.get("func") if isinstance(decoded, dict) else None
    return f" {name}" if isinstance(name, str) and name else ""


def details(promise: dict) -> str:
    """What the promise is for, as the reference says it: (sleep), (rpc func) or (run func)."""
    tags = promise.get("tags") or {}
    if tags.get(TIMEOUT_TAG):
        return "(sleep)"
    if tags.get(SCOPE_TAG) == "global":
        return f"(rpc{_function(promise)})"
    if tags.get(SCOPE_TAG) == "local":
        return f"(run{_function(promise)})"
    return ""


def collect(api: Api, root_id: str) -> tuple[dict | None, dict[str, list[dict]]]:
    """The root promise (if it tags itself) and each promise's children, oldest first."""
    root, children = None, {}
    searched, roots = {root_id}, deque([root_id])
    while roots:
        graph_root = roots.popleft()
        query = {"id": "*", "limit": PAGE_SIZE, f"tags[{ROOT_TAG}]": graph_root}
        for page in pages(api, "promises", query, follow=True):
            for promise in page:
                pid, tags = promise.get("id"), promise.get("tags") or {}
                if pid == root_id:
                    root = promise
                parent = tags.get(PARENT_TAG)
                if parent and parent != pid:
                    children.setdefault(parent, []).append(promise)
                if tags.get(SCOPE_TAG) == "global" and pid not in searched:
                    searched.add(pid)
                    roots.append(pid)
    for siblings in children.values():
        siblings.sort(key=lambda p: p.get("createdOn") or 0)
    return root, children


def read_tasks(api: Api, promises: list[dict]) -> dict[str, dict] | None:
    """The invoke task of each promise that has one, by promise id; None if the server cannot read tasks."""
    tasks = {}
    for promise in promises:
        pid = promise.get("id")
        if not (promise.get("tags") or {}).get(INVOKE_TAG):
            continue
        response = api.call("GET", f"/tasks/{path_segment(f'__invoke:{pid}')}", ok=(200, 404, 405))
        if response.status_code == 200:
            tasks[pid] = decode_json(response)
            continue
        try:
            missing = response.json()["error"]["code"] == TASK_NOT_FOUND
        except (ValueError, KeyError, TypeError):
            missing = False
        if not missing:  # no such route: a server without the task read (the reference's)
            return None
    return tasks


def task_words(task: dict | None) -> str:
    if not task:
        return ""
    return f"[task {task.get('state', '?')}, counter {task.get('counter', '?')}]"


def draw(root: dict, children: dict[str, list[dict]], tasks: dict[str, dict] | None = None) -> list[str]:
    lines: list[str] = []
    drawn: set[str] = set()

    def node(promise: dict, prefix: str, last: bool, is_root: bool) -> None:
        connector = "" if is_root else ("└── " if last else "├── ")
        state = promise.get("state", "")
        words = " ".join(filter(None, [details(promise), state, task_words((tasks or {}).get(promise.get("id")))]))
        lines.append(f"{prefix}{connector}{promise.get('id')}{_STATUS.get(state, '')} {words}")
        drawn.add(promise.get("id"))
        kids = [c for c in children.get(promise.get("id"), []) if c.get("id") not in drawn]
        for i, child in enumerate(kids):
            child_prefix = prefix if is_root else prefix + ("    " if last else "│   ")
            node(child, child_prefix, i == len(kids) - 1, False)

    node(root, "", True, True)
    return lines


def tree(ns) -> int:
    def command():
        with Api(ns) as api:
            root, children = collect(api, ns.id)
            if root is None:  # the root is not tagged as its own root: read it, so a missing root is an error
                root = decode_json(api.call("GET", f"/promises/{path_segment(ns.id)}", ok=(200,)))
            nodes = [root] + [c for siblings in children.values() for c in siblings]
            tasks = read_tasks(api, nodes)
        print("\n".join(draw(root, children, tasks)))
        if tasks is None:
            print(f"note: {api.server} offers no task read (GET /tasks/{{id}} is not in v0.8.2's API); "
                  "tasks are not shown", file=sys.stderr)
    return run(command)


