"""The README's tour, run as a new user would: each command of its shell block, as written, with curl,
against an embedded server (only `localhost:8001`/`localhost:8002` become the server's ports), and each
answer checked. Edit the tour and this test says which answer changed."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from resonate.embedded import EmbeddedServer
from tests.infra.wait import wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def tour_commands() -> list[str]:
    """The shell commands of the README's "A short tour" block (continuation lines joined, comments dropped)."""
    match = re.search(r"^## A short tour.*?^```sh\n(.*?)^```", README.read_text(), re.S | re.M)
    assert match, "README.md has no '## A short tour' section with a ```sh block"
    commands, current = [], ""
    for line in match.group(1).splitlines():
        current = f"{current}\n{line}" if current else line
        if line.endswith("\\"):
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current)
        current = ""
    return commands


def body(out: str):
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"expected a JSON answer, got {out!r}") from None


def promise(promise_id: str, state: str, **fields):
    def check(out: str) -> None:
        p = body(out)
        assert (p["id"], p["state"]) == (promise_id, state), p
        for name, value in fields.items():
            assert p[name] == value, (name, p)
    return check


def empty(out: str) -> None:
    assert out == "", out


def search_finds_order_1(out: str) -> None:
    found = body(out)["promises"]
    assert [(p["id"], p["state"], p["tags"]) for p in found] == [("order-1", "RESOLVED", {"team": "a"})], found


def registered(callback_id: str):
    def check(out: str) -> None:
        b = body(out)
        assert b["callback"]["id"] == callback_id and b["promise"]["id"] == "step-1", b
    return check


def claimed_job_1(out: str) -> None:
    b = body(out)
    assert b["type"] == "invoke" and b["promises"]["root"]["data"]["id"] == "job-1", b


def task_completed(out: str) -> None:
    b = body(out)
    assert b["id"] == "__invoke:job-1" and b["completedOn"] > 0, b


def affected(key: str):
    def check(out: str) -> None:
        assert body(out) == {key: 1}
    return check


def schedule_created(out: str) -> None:
    b = body(out)
    assert (b["id"], b["cron"], b["promiseId"]) == ("nightly", "0 2 * * *", "nightly.{{.timestamp}}"), b
    assert b["nextRunTime"] > 0, b


def schedules_found(out: str) -> None:
    assert [s["id"] for s in body(out)["schedules"]] == ["nightly"], out


def lock_acquired(out: str) -> None:
    b = body(out)
    assert (b["resourceId"], b["executionId"], b["processId"]) == ("db", "e1", "p1"), b


STREAM = "curl -sN localhost:8002/workers/worker-1 &"
JOB = '-d "{\\"id\\":\\"job-1\\"'
# a fragment naming each command (in tour order) -> the check of its answer
CHECKS = [
    ("T=$((", empty),
    ("-H 'idempotency-key: k1'", promise("order-1", "PENDING", param={"data": "aGVsbG8="}, tags={"team": "a"},
                                         idempotencyKeyForCreate="k1")),
    ("curl -s localhost:8001/promises/order-1", promise("order-1", "PENDING")),
    ("-XPATCH localhost:8001/promises/order-1", promise("order-1", "RESOLVED", value={"data": "ZG9uZQ=="})),
    ("tags[team]=a", search_finds_order_1),
    ('-d "{\\"id\\":\\"step-1\\"', promise("step-1", "PENDING")),
    ('-d "{\\"id\\":\\"wf-1\\"', promise("wf-1", "PENDING")),
    ("/promises/callback/step-1", registered("__resume:wf-1:step-1")),
    ("/promises/subscribe/step-1", registered("__notify:step-1:watcher")),
    (STREAM, None),  # runs in the background; its output is checked once the task is sent
    (JOB, promise("job-1", "PENDING", tags={"resonate:invoke": "poll://any@workers"})),
    ("/tasks/claim", claimed_job_1),
    ("/tasks/heartbeat", affected("tasksAffected")),
    ("/tasks/complete", task_completed),
    ("localhost:8001/schedules \\", schedule_created),
    ("/schedules?id=*", schedules_found),
    ("-XDELETE localhost:8001/schedules/nightly", empty),
    ("/locks/acquire", lock_acquired),
    ("/locks/heartbeat", affected("locksAffected")),
    ("/locks/release", empty),
]


def wait_for_file_text(path: Path, needle: str, timeout: float = 30.0) -> str:
    wait_until(lambda: needle in path.read_text(), f"{needle!r} in the poll stream's output", timeout=timeout)
    return path.read_text()


def test_readme_tour_runs_as_written(tmp_path):
    assert shutil.which("curl"), "the README tour needs curl on PATH"
    commands = tour_commands()
    assert len(commands) == len(CHECKS) and all(fragment in command for command, (fragment, _) in
                                                zip(commands, CHECKS)), "the tour changed: update CHECKS to match"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    stream_out = tmp_path / "stream.txt"
    stream = None
    try:
        with EmbeddedServer(grpc_enable=False) as server:
            def local(command: str) -> str:
                return (command.replace("localhost:8001", f"127.0.0.1:{server.http_port}")
                        .replace("localhost:8002", f"127.0.0.1:{server.poll_port}"))

            for command, (fragment, check) in zip(commands, CHECKS):
                if fragment == STREAM:
                    background = local(command).split("#")[0].rstrip().removesuffix("&")
                    stream = subprocess.Popen(["bash", "-c", f"exec {background}"], env=env,
                                              stdout=stream_out.open("wb"), stderr=subprocess.STDOUT)
                    deadline = time.monotonic() + 30
                    while server.app.poll.connection_count < 1:
                        assert stream.poll() is None and time.monotonic() < deadline, stream_out.read_text()
                        time.sleep(0.01)
                    continue
                # the shell variable T (set by the first command) carries over, as in one terminal
                done = subprocess.run(["bash", "-c", f'{local(command)}\necho "@@T=$T"'], env=env,
                                      capture_output=True, text=True, timeout=30)
                out, _, t_value = done.stdout.rpartition("@@T=")
                assert done.returncode == 0, (command, done.stderr)
                env["T"] = t_value.strip()
                check(out.strip())
                if fragment == JOB:
                    # the task goes out on the next background pass; the README claims it afterwards
                    sent = wait_for_file_text(stream_out, "__invoke:job-1")
                    event = json.loads(next(line for line in sent.splitlines() if "__invoke:job-1" in line)[5:])
                    assert event["type"] == "invoke" and event["task"]["counter"] == 1, event
            assert int(env["T"]) > time.time() * 1000
        assert stream is not None
        stream.wait(30)  # the server closed the stream on stop
    finally:
        if stream is not None and stream.poll() is None:
            stream.kill()
            stream.wait()


@pytest.mark.parametrize("line", [c for c in tour_commands() if "tags[" in c])
def test_bracketed_query_parameters_are_not_globbed(line):
    assert line.startswith("curl -sg ") or "%5B" in line, "curl reads [..] as a glob without -g"
