"""Runs one scenario against one transport runner and reports every mismatch."""
from __future__ import annotations

import time
import uuid

from . import Scenario, matches, substitute


def run_scenario(runner, scenario: Scenario) -> list[str]:
    prefix = f"{uuid.uuid4().hex[:8]}-"
    problems = []
    for i, step in enumerate(scenario.steps):
        if step.wait_ms:  # an in-process runner moves its clock; a server's clock is the wall clock
            wait = getattr(runner, "wait", None)
            wait(step.wait_ms) if wait else time.sleep(step.wait_ms / 1000)
        fields = substitute(step.fields, prefix)
        code, body = runner.call(step.op, fields)
        where = f"step {i} {step.op} {fields}"
        if code != step.code:
            problems.append(f"{where}: expected code {step.code}, got {code}: {body}")
            break
        if step.expect is not None:
            problems += [f"{where}: {p}" for p in matches(substitute(step.expect, prefix), body)]
    return problems
