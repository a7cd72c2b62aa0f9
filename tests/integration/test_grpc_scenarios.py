"""The scenario table over gRPC against a real server process, and the same rows over HTTP and gRPC
side by side (same code, same body as far as the gRPC messages carry it).

Nothing is skipped silently: the rows gRPC cannot send and the body parts gRPC responses cannot carry
are listed below, and tests assert those lists are exactly what the table and the protos imply.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from tests.scenarios import Scenario, matches, substitute
from tests.scenarios.grpc_runner import GrpcRunner, wire_expectation
from tests.scenarios.http_runner import HttpRunner
from tests.scenarios.runner import run_scenario
from tests.scenarios.table import SCENARIOS
from tests.server import ServerProcess

# scenario -> why it cannot run over gRPC (the first blocking reason, exactly as computed below):
# the gRPC request messages have no task-id/task-counter fields (fencing); every proto field has one
# type, so a string timeout or a numeric id cannot be sent (json-types); and gRPC has one RPC per
# target state, so PENDING, REJECTED_TIMEDOUT or an unknown state cannot be requested.
NOT_RUN_OVER_GRPC = {
    "fencing token: invalid -> 412, valid -> proceeds": "needs fencing",
    "wrong types are 40000": "needs json-types",
    "complete rejects PENDING and REJECTED_TIMEDOUT and unknown states":
        "step 1: state 'PENDING': gRPC has one RPC per target state (Resolve, Reject, Cancel)",
}

# (scenario, step index) -> parts of the expected HTTP body that no gRPC response field carries
# ("*": the response has only a flag; its code is still compared)
BODY_NARROWED_OVER_GRPC = {
    ("create promise and task with router match -> claimed task", 0): ["task"],
    ("create promise and task with router match -> claimed task", 2): ["*"],
    ("create promise and task without router match -> task null", 0): ["task"],
    ("router creates an invoke task; claim, drop, complete with counters", 11): ["*"],
    ("completing the root promise completes its tasks", 3): ["*"],
    ("callback: register, idempotent, on completed, not found, self-reference", 2): ["callback.rootPromiseId"],
    ("locks: acquire, re-acquire, contention, heartbeat, release", 0): ["*"],
    ("locks: acquire, re-acquire, contention, heartbeat, release", 1): ["*"],
    ("ttl near int64 max is clamped, never overflows", 0): ["*"],
}

# (scenario, step index) -> why the gRPC error message differs from HTTP's (the code never does)
ERROR_MESSAGE_DIFFERS = {
    ("search validation", 1): "proto3 cannot tell an empty id from an absent one: gRPC says the id is required",
}

RUNNABLE = [s for s in SCENARIOS if s.name not in NOT_RUN_OVER_GRPC]


def why_not_runnable(scenario: Scenario) -> str | None:
    missing = scenario.needs - GrpcRunner.features
    if missing:
        return f"needs {', '.join(sorted(missing))}"
    for i, step in enumerate(scenario.steps):
        reason = GrpcRunner.unsupported(step.op, step.fields)
        if reason:
            return f"step {i}: {reason}"
    return None


def over_grpc(scenario: Scenario) -> Scenario:
    """The scenario with each expectation narrowed to what the gRPC response can carry."""
    return replace(scenario, steps=[replace(step, expect=wire_expectation(step.op, step.expect)[0])
                                    for step in scenario.steps])


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--system-signal-timeout", "100ms", grpc=True) as s:
        yield s


@pytest.fixture(scope="module")
def grpc_runner(server):
    runner = GrpcRunner(f"127.0.0.1:{server.grpc_port}")
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def http_runner(server):
    runner = HttpRunner(server.url)
    yield runner
    runner.close()


def test_rows_not_run_over_grpc_are_exactly_the_listed_ones():
    computed = {s.name: why_not_runnable(s) for s in SCENARIOS if why_not_runnable(s)}
    assert computed == NOT_RUN_OVER_GRPC


def test_body_checks_narrowed_over_grpc_are_exactly_the_listed_ones():
    computed = {}
    for s in RUNNABLE:
        for i, step in enumerate(s.steps):
            dropped = wire_expectation(step.op, step.expect)[1]
            if dropped:
                computed[(s.name, i)] = dropped
    assert computed == BODY_NARROWED_OVER_GRPC


@pytest.mark.parametrize("scenario", RUNNABLE, ids=[s.name for s in RUNNABLE])
def test_scenario_over_grpc(grpc_runner, scenario):
    problems = run_scenario(grpc_runner, over_grpc(scenario))
    assert not problems, "\n".join(problems)


# --- HTTP and gRPC side by side --------------------------------------------------------------------

VOLATILE = {"createdOn", "completedOn", "nextRunTime", "expiresAt"}  # clock readings


def normalise(value, prefix: str):
    if isinstance(value, str):
        return value.replace(prefix, "{p}")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in VOLATILE and isinstance(v, int):
                v = "<time>"
            elif k == "cursor" and isinstance(v, str):
                v = "<cursor>"  # a JWT over the prefixed id
            out[k] = normalise(v, prefix)
        return out
    if isinstance(value, list):
        return [normalise(v, prefix) for v in value]
    return value


def http_error_cause(body: dict) -> str:
    """What the gRPC status message should say for an HTTP error body: its detail texts or its message."""
    error = body["error"]
    texts = [d["message"] for d in error.get("details", []) if d.get("@type") != "RequestError" and d.get("message")]
    return "; ".join(texts) or error["message"]


@pytest.mark.parametrize("scenario", RUNNABLE, ids=[s.name for s in RUNNABLE])
def test_same_code_and_body_as_http(http_runner, grpc_runner, scenario):
    http_prefix, grpc_prefix = f"{uuid.uuid4().hex[:8]}-", f"{uuid.uuid4().hex[:8]}-"
    problems = []
    for i, step in enumerate(scenario.steps):
        if step.wait_ms:
            time.sleep(step.wait_ms / 1000)
        http_code, http_body = http_runner.call(step.op, substitute(step.fields, http_prefix))
        grpc_code, grpc_body = grpc_runner.call(step.op, substitute(step.fields, grpc_prefix))
        where = f"step {i} {step.op}"
        if http_code != grpc_code:
            problems.append(f"{where}: http {http_code} {http_body}, grpc {grpc_code} {grpc_body}")
            break
        if http_code >= 30000:
            same = grpc_body["error"]["message"] == http_error_cause(http_body)
            if same == ((scenario.name, i) in ERROR_MESSAGE_DIFFERS):  # differs exactly where listed
                problems.append(f"{where}: grpc says {grpc_body['error']['message']!r}, http {http_body}")
            continue
        expected, _ = wire_expectation(step.op, normalise(http_body, http_prefix))
        if expected is None:
            continue  # the gRPC response is a flag only; the code was compared above
        actual = normalise(grpc_body, grpc_prefix)
        if expected != actual:
            problems.append(f"{where}: bodies differ: " + "; ".join(matches(expected, actual)) +
                            f"\n  http {expected}\n  grpc {actual}")
    assert not problems, "\n".join(problems)
