"""The scenario table: data, not code, run unchanged against every transport.

A scenario is a list of steps; a step names a core operation, its canonical fields (the JSON body
keys of the HTTP API plus `idempotencyKey`, `strict`, `traceparent`, `taskId`, `taskCounter` for
what HTTP carries in headers) and the expected 5-digit code and body subset. Each transport's runner
turns (operation, fields) into its wire format and the answer back into (code, reference JSON).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable

FUTURE = 10**15  # an absolute deadline far away
PAST = 1  # an absolute deadline long gone


@dataclass
class Step:
    op: str
    fields: dict
    code: int
    expect: Any = None  # subset of the rendered body; None checks nothing beyond the code
    wait_ms: int = 0  # pause before the step (for lazy timeouts)


@dataclass
class Scenario:
    name: str
    steps: list[Step]
    needs: frozenset = field(default_factory=frozenset)  # transport features, e.g. {"http-headers"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def substitute(value: Any, prefix: str) -> Any:
    """Every `{p}` in strings (keys and values) becomes the scenario's unique prefix."""
    if isinstance(value, str):
        return value.replace("{p}", prefix)
    if isinstance(value, dict):
        return {substitute(k, prefix): substitute(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, prefix) for v in value]
    return value


def matches(expected: Any, actual: Any, path: str = "body") -> list[str]:
    """Deep subset match: dicts need the expected keys; `ABSENT` demands a key is missing."""
    problems: list[str] = []
    if expected is ANY:
        return problems
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        for k, v in expected.items():
            if v is ABSENT:
                if k in actual:
                    problems.append(f"{path}.{k}: expected absent, got {actual[k]!r}")
            elif k not in actual:
                problems.append(f"{path}.{k}: missing")
            else:
                problems += matches(v, actual[k], f"{path}.{k}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        for i, (e, a) in enumerate(zip(expected, actual)):
            problems += matches(e, a, f"{path}[{i}]")
        return problems
    if callable(expected):
        if not expected(actual):
            problems.append(f"{path}: {actual!r} fails {getattr(expected, '__name__', 'check')}")
        return problems
    if expected != actual:
        problems.append(f"{path}: expected {expected!r}, got {actual!r}")
    return problems


class _Sentinel:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


ANY = _Sentinel("ANY")
ABSENT = _Sentinel("ABSENT")
