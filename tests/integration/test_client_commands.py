"""The command-line client (`resonate promises|schedules|tasks|invoke|tree`) against a live server of ours.

Each test runs the real `resonate` command in a subprocess, then checks what it printed, its exit code
and, over plain HTTP, what the server now holds.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.infra.ports import free_port
from tests.server import ROOT, ServerProcess

HOUR_MS = 3_600_000
CLIENT_ENV = ("RESONATE_SERVER", "RESONATE_USERNAME", "RESONATE_PASSWORD", "RESONATE_TOKEN")


@pytest.fixture(scope="module")
def server():
    with ServerProcess() as s:
        yield s


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def resonate(*args: str, server: ServerProcess | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `resonate ARGS` with a clean client environment; `server` adds --server."""
    full_env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    full_env.update(env or {})
    argv = [sys.executable, "-m", "resonate.cli", *args]
    if server is not None:
        argv += ["--server", server.url]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=full_env)


def ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    assert "Traceback" not in out.stderr
    return out.stdout


def refused(out: subprocess.CompletedProcess, exit_code: int, *words: str) -> str:
    assert out.returncode == exit_code, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    assert out.stdout == ""
    line = out.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, out.stderr
    for word in words:
        assert word in line, line
    return line


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


# -- promises -------------------------------------------------------------------------------------------

def test_create_then_get_shows_the_reference_detail_view(server, http):
    pid = uid("foo")
    before = now_ms()
    assert ok(resonate("promises", "create", pid, "--timeout", "1h", "--data", "hello", "--header", "a=b",
                       "--tag", "team=x", server=server)) == f"Created promise: {pid}\n"
    after = now_ms()
    held = http.get(f"/promises/{pid}").json()
    assert held["state"] == "PENDING"
    assert held["param"] == {"data": b64("hello"), "headers": {"a": "b"}}
    assert held["tags"] == {"team": "x"}
    assert before + HOUR_MS <= held["timeout"] <= after + HOUR_MS

    view = ok(resonate("promises", "get", pid, server=server))
    pad = " " * (len("Timeout:  ") - len("Id:"))
    assert view == (f"Id:{pad}{pid}\nState:    PENDING\nTimeout:  {held['timeout']}\n\n"
                    "Idempotency Key (create):    \nIdempotency Key (complete):  \n\n"
                    "Param:\n  Headers:\n    a:  b\n  Data:\n    hello\n\n"
                    "Value:\n  Headers:\n  Data:\n\nTags:\n  team:  x\n")

    as_json = ok(resonate("promises", "get", pid, "-o", "json", server=server))
    assert json.loads(as_json) == held
    assert list(json.loads(as_json)) == ["createdOn", "id", "param", "state", "tags", "timeout", "value"]
    assert as_json.startswith('{\n  "createdOn": ')


def test_error_answers_exit_non_zero_with_words_and_code(server, http):
    pid = uid("dup")
    ok(resonate("promises", "create", pid, "--timeout", "1h", server=server))
    refused(resonate("promises", "create", pid, "--timeout", "1h", server=server), 1,
            "already exists", "409 Conflict", "code 40900")
    refused(resonate("promises", "get", uid("nope"), server=server), 1, "not found", "404 Not Found", "code 40400")
    ok(resonate("promises", "resolve", pid, server=server))
    refused(resonate("promises", "resolve", pid, "--data", "again", server=server), 1,
            "already been resolved", "403 Forbidden", "code 40301")
    assert http.get(f"/promises/{pid}").json()["value"] == {}


def test_idempotency_key_deduplicates_and_is_stored(server, http):
    pid = uid("idem")
    args = ("promises", "create", pid, "--timeout", "1h", "--idempotency-key", "k1")
    assert ok(resonate(*args, server=server)) == f"Created promise: {pid}\n"
    assert ok(resonate(*args, server=server)) == f"Created promise: {pid} (deduplicated)\n"
    assert http.get(f"/promises/{pid}").json()["idempotencyKeyForCreate"] == "k1"
    done = ("promises", "resolve", pid, "--idempotency-key", "k2", "--data", "v")
    assert ok(resonate(*done, server=server)) == f"Resolved promise: {pid}\n"
    assert ok(resonate(*done, server=server)) == f"Resolved promise: {pid} (deduplicated)\n"
    assert http.get(f"/promises/{pid}").json()["idempotencyKeyForComplete"] == "k2"


@pytest.mark.parametrize("verb, state, word", [("resolve", "RESOLVED", "Resolved"),
                                               ("reject", "REJECTED", "Rejected"),
                                               ("cancel", "REJECTED_CANCELED", "Canceled")])
def test_complete_verbs_store_state_and_value(server, http, verb, state, word):
    pid = uid(verb)
    ok(resonate("promises", "create", pid, "-t", "30m", server=server))
    out = ok(resonate("promises", verb, pid, "--data", "out", "--header", "h=1", "--header", "g=2", server=server))
    assert out == f"{word} promise: {pid}\n"
    held = http.get(f"/promises/{pid}").json()
    assert held["state"] == state
    assert held["value"] == {"data": b64("out"), "headers": {"h": "1", "g": "2"}}


def test_non_strict_completion_of_a_completed_promise(server, http):
    pid = uid("strict")
    ok(resonate("promises", "create", pid, "--timeout", "1h", server=server))
    ok(resonate("promises", "resolve", pid, "--idempotency-key", "k", server=server))
    # strict (the default) refuses rejecting a resolved promise; --strict=false answers with the promise as is
    refused(resonate("promises", "reject", pid, "--idempotency-key", "k", server=server), 1, "403")
    assert ok(resonate("promises", "reject", pid, "--idempotency-key", "k", "--strict=false", server=server)) == (
        f"Rejected promise: {pid} (deduplicated)\n")
    assert http.get(f"/promises/{pid}").json()["state"] == "RESOLVED"


def test_search_table_filters_and_json_lines(server, http):
    group = uid("srch")
    for name, tag in (("a", "x"), ("b", "y"), ("c", "x")):
        ok(resonate("promises", "create", f"{group}.{name}", "--timeout", "1h", "--tag", f"team={tag}",
                    server=server))
    ok(resonate("promises", "resolve", f"{group}.c", server=server))

    table = ok(resonate("promises", "search", f"{group}.*", server=server)).splitlines()
    assert table[0].split() == ["ID", "STATE", "TIMEOUT", "TAGS"]
    assert [row.split()[:2] for row in table[1:]] == [[f"{group}.c", "RESOLVED"], [f"{group}.b", "PENDING"],
                                                      [f"{group}.a", "PENDING"]]
    width = len(f"{group}.a") + 2
    assert all(row[width - 2:width] == "  " and row[width] != " " for row in table)  # one aligned column

    pending_x = ok(resonate("promises", "search", f"{group}.*", "--state", "pending", "--tag", "team=x",
                            server=server)).splitlines()
    assert [row.split()[0] for row in pending_x[1:]] == [f"{group}.a"]
    assert pending_x[1].endswith("team:x")

    lines = ok(resonate("promises", "search", f"{group}.*", "-o", "json", "--limit", "2", server=server)).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"{group}.c", f"{group}.b"]
    assert json.loads(lines[0]) == http.get(f"/promises/{group}.c").json()


def test_search_all_pages_through_cursors(server, http):
    group = uid("page")
    ids = [f"{group}.{i}" for i in range(5)]
    for pid in ids:
        http.post("/promises", json={"id": pid, "timeout": now_ms() + HOUR_MS}).raise_for_status()
    one_page = ok(resonate("promises", "search", f"{group}.*", "--limit", "2", server=server)).splitlines()
    assert len(one_page) == 1 + 2
    every = ok(resonate("promises", "search", f"{group}.*", "--limit", "2", "--all", server=server)).splitlines()
    assert sorted(row.split()[0] for row in every[1:]) == ids
    as_json = ok(resonate("promises", "search", f"{group}.*", "--limit", "2", "--all", "-o", "json",
                          server=server)).splitlines()
    assert sorted(json.loads(line)["id"] for line in as_json) == ids
    cursor = http.get("/promises", params={"id": f"{group}.*", "limit": 2}).json()["cursor"]
    second = ok(resonate("promises", "search", f"{group}.*", "--limit", "2", "--cursor", cursor,
                         server=server)).splitlines()
    assert [row.split()[0] for row in second[1:]] == [ids[2], ids[1]]


def test_callback_and_subscribe(server, http):
    pid, root = uid("p"), uid("root")
    for p in (pid, root):
        ok(resonate("promises", "create", p, "--timeout", "1h", server=server))
    args = ("promises", "callback", pid, "--root-promise-id", root, "--timeout", "1h", "--recv", "default")
    assert ok(resonate(*args, server=server)) == f"Created callback: __resume:{root}:{pid}\n"
    assert ok(resonate(*args, server=server)) == f"Created callback: __resume:{root}:{pid} (deduplicated)\n"
    sub = ("promises", "subscribe", pid, "--id", "sub1", "-t", "1h", "--recv",
           '{"type": "poll", "data": {"group": "default", "id": "2"}}')
    assert ok(resonate(*sub, server=server)) == f"Created subscription: __notify:{pid}:sub1\n"
    assert ok(resonate(*sub, server=server)) == f"Created subscription: __notify:{pid}:sub1 (deduplicated)\n"

    # the server holds the callback: resolving the promise makes a resume task for the root's receiver
    ok(resonate("promises", "resolve", pid, server=server))
    assert ok(resonate(*args, server=server)) == f"Promise {pid} already resolved\n"
    refused(resonate("promises", "callback", uid("missing"), "-p", root, "-t", "1h", server=server), 1, "404")
    refused(resonate("promises", "subscribe", pid, "--id", "s", "-t", "1h", "--recv", "[1]", server=server), 2,
            "invalid --recv")


# -- schedules ------------------------------------------------------------------------------------------

def test_schedule_create_get_search_delete(server, http):
    sid = uid("s")
    out = ok(resonate("schedules", "create", sid, "--cron", "*/5 * * * *", "--promise-id", f"{sid}.{{{{.timestamp}}}}",
                      "--promise-timeout", "1h", "--description", "hi", "--tag", "k=v", "--promise-data", "d",
                      "--promise-header", "h=1", "--promise-tag", "pt=2", server=server))
    assert out == f"Created schedule: {sid}\n"
    held = http.get(f"/schedules/{sid}").json()
    # v0.8.2's HTTP API names the description `desc`
    assert (held["cron"], held["desc"], held["promiseTimeout"]) == ("*/5 * * * *", "hi", HOUR_MS)
    assert held["promiseId"] == f"{sid}.{{{{.timestamp}}}}"
    assert held["promiseParam"] == {"data": b64("d"), "headers": {"h": "1"}}
    assert (held["tags"], held["promiseTags"]) == ({"k": "v"}, {"pt": "2"})

    view = ok(resonate("schedules", "get", sid, server=server)).splitlines()
    assert view[:2] == [f"Id:           {sid}", "Description:  hi"]
    assert view[3:6] == ["Cron:           */5 * * * *", "Last run time:  0",
                         f"Next run time:  {held['nextRunTime']}"]
    assert view[7:] == ["Tags:", "  k:  v", "", f"Promise id:       {sid}.{{{{.timestamp}}}}",
                        "Promise timeout:  3600000", "Promise param:", "  Headers:", "    h:  1", "  Data:",
                        "    d", "Promise tags:", "  pt:  2"]
    as_json = json.loads(ok(resonate("schedules", "get", sid, "-o", "json", server=server)))
    assert as_json == {**{k: v for k, v in held.items() if k != "desc"}, "description": "hi"}

    table = ok(resonate("schedules", "search", f"{sid}*", server=server)).splitlines()
    assert table == ["ID" + " " * (len(sid)) + "CRON         LAST RUN TIME  NEXT RUN TIME  TAGS",
                     f"{sid}  */5 * * * *  0              {held['nextRunTime']}  k:v"]

    assert ok(resonate("schedules", "delete", sid, server=server)) == f"Deleted schedule: {sid}\n"
    assert http.get(f"/schedules/{sid}").status_code == 404
    refused(resonate("schedules", "delete", sid, server=server), 1, "404")


# -- tasks and invoke -----------------------------------------------------------------------------------

def test_invoke_creates_the_promise_the_reference_creates(server, http):
    pid = uid("job")
    before = now_ms()
    out = ok(resonate("invoke", pid, "--func", "add", "--arg", "1", "--arg", "a string", "--arg", '{"k": "v"}',
                      "--timeout", "30m", "--delay", "10m", "--target", "poll://any@workers", server=server))
    after = now_ms()
    assert out == f"Created promise: {pid}\n"
    held = http.get(f"/promises/{pid}").json()
    assert base64.b64decode(held["param"]["data"]).decode() == (
        '{"func":"add","args":[1,"a string",{"k":"v"}],"version":1}')
    assert held["tags"]["resonate:invoke"] == "poll://any@workers"
    assert before + 600_000 <= int(held["tags"]["resonate:delay"]) <= after + 600_000
    assert before + 2_400_000 <= held["timeout"] <= after + 2_400_000
    refused(resonate("invoke", uid("v"), "--func", "f", "--version", "0", server=server), 2, "version")


def test_tasks_claim_heartbeat_complete(server, http):
    pid = uid("work")
    ok(resonate("invoke", pid, "--func", "hello", server=server))
    task = f"__invoke:{pid}"
    pid_name = uid("proc")
    assert ok(resonate("tasks", "claim", task, "--counter", "1", "--pid", pid_name, "--ttl", "1m",
                       server=server)) == f"Task claimed: {task}\n"
    refused(resonate("tasks", "claim", task, "-c", "1", "--pid", "other", server=server), 1, "already claimed", "403")
    assert ok(resonate("tasks", "heartbeat", "--pid", pid_name, server=server)) == "Tasks heartbeated: 1\n"
    assert ok(resonate("tasks", "complete", task, "-c", "1", server=server)) == f"Task completed: {task}\n"
    # the server no longer holds a claim for the process
    assert http.post("/tasks/heartbeat", json={"processId": pid_name}).json()["tasksAffected"] == 0
    replay = ok(resonate("tasks", "complete", task, "-c", "1", server=server))
    assert replay == f"Task completed: {task} (deduplicated)\n"
    refused(resonate("tasks", "claim", task, "--counter", "1", server=server), 1, "403")
    refused(resonate("tasks", "claim", task, "--counter", "0", server=server), 2, "counter is required")


# -- tree -----------------------------------------------------------------------------------------------

def test_tree_draws_the_call_graph_with_states(server, http):
    root = uid("root")

    def create(pid, tags, data=None):
        body = {"id": pid, "timeout": now_ms() + HOUR_MS, "tags": {"resonate:root": root, **tags}}
        if data:
            body["param"] = {"data": b64(json.dumps(data))}
        http.post("/promises", json=body).raise_for_status()

    create(root, {"resonate:invoke": "poll://any@default"}, {"func": "main", "args": []})
    create(f"{root}.1", {"resonate:parent": root, "resonate:scope": "local"}, {"func": "step"})
    create(f"{root}.2", {"resonate:parent": root, "resonate:scope": "global"}, {"func": "remote"})
    create(f"{root}.3", {"resonate:parent": root, "resonate:timeout": "1"})
    # the rpc child is the root of its own graph
    http.post("/promises", json={"id": f"{root}.2.1", "timeout": now_ms() + HOUR_MS,
                                 "tags": {"resonate:root": f"{root}.2", "resonate:parent": f"{root}.2"}})
    http.patch(f"/promises/{root}.1", json={"state": "RESOLVED"}).raise_for_status()
    http.patch(f"/promises/{root}.3", json={"state": "REJECTED"}).raise_for_status()
    ok(resonate("tasks", "claim", f"__invoke:{root}", "--counter", "1", "--pid", "w", server=server))

    assert ok(resonate("tree", root, server=server)).splitlines() == [
        f"{root} 🟡 PENDING [task CLAIMED, counter 1]",
        f"├── {root}.1 🟢 (run step) RESOLVED",
        f"├── {root}.2 🟡 (rpc remote) PENDING",
        f"│   └── {root}.2.1 🟡 PENDING",
        f"└── {root}.3 🔴 (sleep) REJECTED",
    ]


def test_tree_of_an_untagged_root_reads_its_state(server, http):
    root = uid("plain")
    ok(resonate("promises", "create", root, "--timeout", "1h", server=server))
    ok(resonate("promises", "resolve", root, server=server))
    ok(resonate("promises", "create", f"{root}.child", "--timeout", "1h", "--tag", f"resonate:root={root}",
                "--tag", f"resonate:parent={root}", server=server))
    assert ok(resonate("tree", root, server=server)) == f"{root} 🟢 RESOLVED\n└── {root}.child 🟡 PENDING\n"
    refused(resonate("tree", uid("missing"), server=server), 1, "not found", "404")


# -- connection, configuration, auth --------------------------------------------------------------------

def test_connection_refused_is_one_clear_line():
    url = f"http://127.0.0.1:{free_port()}"
    line = refused(resonate("promises", "get", "foo", "-S", url), 3, "could not connect", url, "connection refused")
    assert line.startswith("Error: ")


def test_wrong_server_is_one_clear_line(server):
    refused(resonate("promises", "get", "foo", "--server", "localhost:8001"), 2, "http://")
    # a server that is not a Resonate API (the poll port) answers without the error envelope: status and url shown
    line = refused(resonate("promises", "search", "*", "--server", server.poll_url), 1, f"from {server.poll_url}/")
    assert line.startswith("Error: 400 Bad Request")


def test_server_from_the_environment_and_flag_order(server, http):
    pid = uid("env")
    assert ok(resonate("promises", "create", pid, "-t", "1h", env={"RESONATE_SERVER": server.url})) == (
        f"Created promise: {pid}\n")
    # the global flags may also come before the subcommand, as cobra's persistent flags
    out = resonate("promises", "-S", server.url, "get", pid, "-o", "json")
    assert json.loads(ok(out))["id"] == pid
    # the flag wins over the environment
    dead = f"http://127.0.0.1:{free_port()}"
    assert ok(resonate("promises", "get", pid, "-S", server.url, env={"RESONATE_SERVER": dead}))


def test_basic_auth_from_flags_or_environment():
    with ServerProcess("--api-http-auth", "alice=secret") as secured:
        pid = uid("auth")
        refused(resonate("promises", "create", pid, "-t", "1h", server=secured), 1, "401")
        refused(resonate("promises", "create", pid, "-t", "1h", "-U", "alice", "-P", "wrong", server=secured), 1,
                "401")
        ok(resonate("promises", "create", pid, "-t", "1h", "-U", "alice", "-P", "secret", server=secured))
        env = {"RESONATE_USERNAME": "alice", "RESONATE_PASSWORD": "secret"}
        assert "PENDING" in ok(resonate("promises", "get", pid, server=secured, env=env))
        assert httpx.get(f"{secured.url}/promises/{pid}", auth=("alice", "secret")).json()["id"] == pid


class _RecordingHandler(BaseHTTPRequestHandler):
    """Answers every promise read with one invoked promise and, as the reference, has no task read."""
    seen: list[dict] = []

    def do_GET(self):
        type(self).seen.append(dict(self.headers))
        if self.path.startswith("/tasks/"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"id": "t", "state": "PENDING", "timeout": 1, "param": {}, "value": {},
                           "tags": {"resonate:invoke": "poll://any@default"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_token_is_sent_as_bearer():
    recorder = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{recorder.server_address[1]}"
    try:
        ok(resonate("promises", "get", "t", "-S", url, "-T", "tok.en.jwt"))
        without_tasks = resonate("tree", "t", "-S", url, env={"RESONATE_TOKEN": "from-env", "RESONATE_USERNAME": "u"})
        assert ok(without_tasks) == "t 🟡 PENDING\n"
        assert "offers no task read" in without_tasks.stderr
        ok(resonate("promises", "get", "t", "-S", url, "-U", "u", "-P", "p"))
    finally:
        recorder.shutdown()
        recorder.server_close()
    auth = [h.get("Authorization") for h in _RecordingHandler.seen]
    assert auth[0] == "Bearer tok.en.jwt"
    assert set(auth[1:-1]) == {"Bearer from-env"}  # the token wins over basic auth, as the reference
    assert auth[-1] == "Basic " + base64.b64encode(b"u:p").decode()


# -- usage ----------------------------------------------------------------------------------------------

# Every flag of v0.8.2's client commands (cli-v0.8.2.md), with its short form
REFERENCE_FLAGS = {
    ("promises", "get"): ["-o, --output"],
    ("promises", "search"): ["--cursor", "--limit", "-o, --output", "--state", "--tag"],
    ("promises", "create"): ["--data", "--header", "--idempotency-key", "--strict", "--tag", "-t, --timeout"],
    ("promises", "resolve"): ["--data", "--header", "--idempotency-key", "--strict"],
    ("promises", "reject"): ["--data", "--header", "--idempotency-key", "--strict"],
    ("promises", "cancel"): ["--data", "--header", "--idempotency-key", "--strict"],
    ("promises", "callback"): ["--recv", "-p, --root-promise-id", "-t, --timeout"],
    ("promises", "subscribe"): ["-i, --id", "--recv", "-t, --timeout"],
    ("schedules", "get"): ["-o, --output"],
    ("schedules", "search"): ["--cursor", "--limit", "-o, --output", "--tag"],
    ("schedules", "create"): ["-c, --cron", "--description", "--promise-data", "--promise-header",
                              "-i, --promise-id", "--promise-tag", "-t, --promise-timeout", "--tag"],
    ("schedules", "delete"): [],
    ("tasks", "claim"): ["-c, --counter", "--pid", "--ttl"],
    ("tasks", "complete"): ["-c, --counter"],
    ("tasks", "heartbeat"): ["--pid"],
    ("invoke",): ["--arg", "--delay", "-f, --func", "--json-args", "--target", "-t, --timeout", "--version"],
    ("tree",): [],
}
GLOBAL_FLAGS = ["-S, --server", "-U, --username", "-P, --password", "-T, --token"]


@pytest.mark.parametrize("command", list(REFERENCE_FLAGS), ids=" ".join)
def test_help_lists_the_reference_flags(command):
    text = ok(resonate(*command, "--help"))
    for flag in REFERENCE_FLAGS[command] + GLOBAL_FLAGS:
        short, _, long = flag.rpartition(", ")
        assert (f"{short} " in text if short else True) and f"{long} " in text, (flag, text)


def test_aliases_and_missing_flags():
    assert "get" in ok(resonate("promise", "--help")) and "delete" in ok(resonate("schedule", "--help"))
    assert "claim" in ok(resonate("task", "--help"))
    out = resonate("promises", "create", "foo")
    assert out.returncode == 2 and "-t/--timeout" in out.stderr
    out = resonate("promises", "create", "foo", "--timeout", "soon")
    assert out.returncode == 2 and "invalid duration" in out.stderr
    out = resonate("promises", "search")
    assert out.returncode == 2 and "q" in out.stderr


def test_task_read_extension(server, http):
    """`GET /tasks/{id}` (not in v0.8.2) reads a task without changing it; `resonate tree` relies on it."""
    pid = uid("read")
    ok(resonate("invoke", pid, "--func", "f", server=server))
    task = http.get(f"/tasks/__invoke:{pid}").json()
    assert (task["id"], task["counter"], task["rootPromiseId"]) == (f"__invoke:{pid}", 1, pid)
    assert task["state"] in ("INIT", "ENQUEUED")
    assert http.get(f"/tasks/__invoke:{pid}").json() == task  # reading twice changes nothing
    missing = http.get(f"/tasks/__invoke:{uid('none')}")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, 40403)


def test_serve_does_not_load_the_client():
    """The client commands are declared with argparse only; httpx and the handlers load when one runs."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "resonate.cli", "serve", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "resonate.client" in loaded
    assert not {m for m in loaded if m.startswith(("httpx", "resonate.client."))}, loaded
