"""The domain: promises, callbacks, tasks, schedules, locks and messages, with their JSON forms.

JSON forms follow the reference's Go struct order and omitempty rules (spec 1.1-1.7, 3.3).
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def clamp_int64(n: int) -> int:
    """`now + ttl` sums are clamped to int64 instead of wrapping (v0.8.2)."""
    return INT64_MAX if n > INT64_MAX else INT64_MIN if n < INT64_MIN else n


class PromiseState(IntEnum):
    PENDING = 1
    RESOLVED = 2
    REJECTED = 4
    REJECTED_CANCELED = 8
    REJECTED_TIMEDOUT = 16


_PROMISE_STATE_NAMES = {state: state.name for state in PromiseState}  # Enum.name is a property: slower


class TaskState(IntEnum):
    INIT = 1
    ENQUEUED = 2
    CLAIMED = 4
    COMPLETED = 8
    TIMEDOUT = 16


@dataclass(slots=True)
class Value:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.headers:
            out["headers"] = dict(sorted(self.headers.items()))
        if self.data:
            out["data"] = binascii.b2a_base64(self.data, newline=False).decode("ascii")  # base64.b64encode
        return out


@dataclass(slots=True)
class Promise:
    id: str
    state: PromiseState
    param: Value
    value: Value
    timeout: int
    idempotency_key_for_create: str | None = None
    idempotency_key_for_complete: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created_on: int | None = None
    completed_on: int | None = None
    sort_id: int = 0

    def timed_out_state(self) -> PromiseState:
        if self.tags.get("resonate:timeout") == "true":
            return PromiseState.RESOLVED
        return PromiseState.REJECTED_TIMEDOUT

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "id": self.id,
            "state": _PROMISE_STATE_NAMES[self.state],
            "param": self.param.to_json(),
            "value": self.value.to_json(),
            "timeout": self.timeout,
        }
        if self.idempotency_key_for_create is not None:
            out["idempotencyKeyForCreate"] = self.idempotency_key_for_create
        if self.idempotency_key_for_complete is not None:
            out["idempotencyKeyForComplete"] = self.idempotency_key_for_complete
        if self.tags:
            out["tags"] = dict(sorted(self.tags.items()))
        if self.created_on is not None:
            out["createdOn"] = self.created_on
        if self.completed_on is not None:
            out["completedOn"] = self.completed_on
        return out


@dataclass(slots=True)
class Mesg:
    type: str  # invoke | resume | notify
    root: str
    leaf: str
    head: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"type": self.type}
        if self.head:
            out["head"] = dict(sorted(self.head.items()))
        out["root"] = self.root
        out["leaf"] = self.leaf
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Mesg":
        return cls(type=d["type"], root=d.get("root", ""), leaf=d.get("leaf", ""), head=d.get("head") or {})


@dataclass(slots=True)
class Callback:
    id: str
    promise_id: str
    root_promise_id: str
    recv: str  # raw JSON text, verbatim as the client sent it
    mesg: Mesg
    timeout: int
    created_on: int

    def to_json(self) -> dict:
        # rootPromiseId is never filled in API responses (spec 1.2 / 7.8)
        return {"id": self.id, "promiseId": self.promise_id, "rootPromiseId": "", "timeout": self.timeout,
                "createdOn": self.created_on}


@dataclass(slots=True)
class Task:
    id: str
    state: TaskState
    root_promise_id: str
    recv: str  # raw JSON text
    mesg: Mesg
    timeout: int
    counter: int = 1
    attempt: int = 0
    ttl: int = 0
    expires_at: int = 0
    process_id: str | None = None
    created_on: int | None = None
    completed_on: int | None = None
    sort_id: int = 0

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "counter": self.counter, "timeout": self.timeout,
                               "rootPromiseId": self.root_promise_id}
        if self.process_id:
            out["processId"] = self.process_id
        if self.created_on is not None:
            out["createdOn"] = self.created_on
        if self.completed_on is not None:
            out["completedOn"] = self.completed_on
        return out


@dataclass(slots=True)
class Schedule:
    id: str
    description: str
    cron: str
    tags: dict[str, str]
    promise_id: str
    promise_timeout: int
    promise_param: Value
    promise_tags: dict[str, str]
    last_run_time: int | None
    next_run_time: int
    idempotency_key: str | None
    created_on: int
    sort_id: int = 0

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id}
        if self.description:
            out["desc"] = self.description
        out["cron"] = self.cron
        out["tags"] = dict(sorted(self.tags.items()))
        out["promiseId"] = self.promise_id
        out["promiseTimeout"] = self.promise_timeout
        out["promiseParam"] = self.promise_param.to_json()
        if self.promise_tags:
            out["promiseTags"] = dict(sorted(self.promise_tags.items()))
        if self.last_run_time:
            out["lastRunTime"] = self.last_run_time
        out["nextRunTime"] = self.next_run_time
        if self.idempotency_key is not None:
            out["idempotencyKey"] = self.idempotency_key
        out["createdOn"] = self.created_on
        return out


@dataclass(slots=True)
class Lock:
    resource_id: str
    execution_id: str
    process_id: str
    ttl: int
    expires_at: int

    def to_json(self) -> dict:
        return {"resourceId": self.resource_id, "executionId": self.execution_id, "processId": self.process_id,
                "ttl": self.ttl, "expiresAt": self.expires_at}


def resume_id(root_promise_id: str, promise_id: str) -> str:
    return f"__resume:{root_promise_id}:{promise_id}"


def notify_id(promise_id: str, subscription_id: str) -> str:
    return f"__notify:{promise_id}:{subscription_id}"


def invoke_id(promise_id: str) -> str:
    return f"__invoke:{promise_id}"
