"""One typed request per operation, and the decoding of transport fields into them.

Every transport hands the core a flat mapping of fields (JSON body keys, plus path, query and header
values under their canonical names). Values that arrived as text (headers, query strings, path
segments) are wrapped in `Text`, so integers and booleans parse from them exactly as the reference's
HTTP binding does, while JSON bodies keep Go's strict typing. All validation lives here, so every
transport rejects the same inputs with the same code and message.
"""
from __future__ import annotations

import binascii
from collections.abc import Mapping  # not typing's alias: its isinstance goes through a Python wrapper
from dataclasses import dataclass, field
from typing import Any, Callable

from . import cron as cronlib
from . import cursor as cursorlib
from . import gojson
from .codes import INVALID, ApiError, ErrorKind, invalid
from .model import INT64_MAX, INT64_MIN, Value
from .recipient import check_head, check_recv, check_routed_tags


class Text(str):
    """A value that came from text (header, query string, path), not from a typed JSON document."""


# ---------------------------------------------------------------------------------------------------
# Requests (the 18 client operations)

@dataclass(slots=True)
class Fence:
    task_id: str
    counter: int


@dataclass(slots=True)
class ReadPromise:
    id: str


@dataclass(slots=True)
class SearchPromises:
    id: str
    states: list[str]
    tags: dict[str, str]
    limit: int
    sort_id: int | None = None


@dataclass(slots=True)
class CreatePromise:
    id: str
    param: Value
    timeout: int
    tags: dict[str, str]
    idempotency_key: str | None = None
    strict: bool = False
    head: dict[str, str] = field(default_factory=dict)
    fence: Fence | None = None


@dataclass(slots=True)
class CreatePromiseAndTask:
    promise: CreatePromise
    process_id: str
    ttl: int


@dataclass(slots=True)
class CompletePromise:
    id: str
    state: str  # RESOLVED | REJECTED | REJECTED_CANCELED
    value: Value
    idempotency_key: str | None = None
    strict: bool = False
    fence: Fence | None = None


@dataclass(slots=True)
class CreateCallback:
    promise_id: str
    root_promise_id: str
    recv: str  # raw JSON text
    timeout: int
    head: dict[str, str] = field(default_factory=dict)
    fence: Fence | None = None


@dataclass(slots=True)
class CreateSubscription:
    id: str
    promise_id: str
    recv: str
    timeout: int
    head: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ReadSchedule:
    id: str


@dataclass(slots=True)
class SearchSchedules:
    id: str
    tags: dict[str, str]
    limit: int
    sort_id: int | None = None


@dataclass(slots=True)
class CreateSchedule:
    id: str
    description: str
    cron: str
    tags: dict[str, str]
    promise_id: str
    promise_timeout: int
    promise_param: Value
    promise_tags: dict[str, str]
    idempotency_key: str | None = None


@dataclass(slots=True)
class DeleteSchedule:
    id: str


@dataclass(slots=True)
class AcquireLock:
    resource_id: str
    execution_id: str
    process_id: str
    ttl: int


@dataclass(slots=True)
class ReleaseLock:
    resource_id: str
    execution_id: str


@dataclass(slots=True)
class HeartbeatLocks:
    process_id: str


@dataclass(slots=True)
class ClaimTask:
    id: str
    counter: int
    process_id: str
    ttl: int


@dataclass(slots=True)
class CompleteTask:
    id: str
    counter: int


@dataclass(slots=True)
class ReadTask:  # not in v0.8.2: a read-only extension, so `resonate tree` can show a node's task
    id: str


@dataclass(slots=True)
class DropTask:
    id: str
    counter: int


@dataclass(slots=True)
class HeartbeatTasks:
    process_id: str


# ---------------------------------------------------------------------------------------------------
# Field access with Go encoding/json semantics

_MISSING = object()


class Fields:
    """Case-insensitive lookup (exact match preferred), as Go's JSON decoder matches struct fields."""

    __slots__ = ("_raw", "_folded")

    def __init__(self, raw: Mapping[str, Any] | None):
        if raw is None:
            raw = {}
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise invalid(f"the request must be a JSON object, not {_json_kind(raw)}")
        self._raw = raw
        self._folded: dict[str, Any] | None = None

    def get(self, name: str) -> Any:
        value = self._raw.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if self._folded is None:
            self._folded = {}
            for k, v in self._raw.items():
                if isinstance(k, str):
                    self._folded[k.lower()] = v  # later duplicates win, as in Go
        return self._folded.get(name.lower(), _MISSING)

    def has(self, name: str) -> bool:
        return self.get(name) is not _MISSING

    def sub(self, name: str) -> "Fields":
        value = self.get(name)
        if value is _MISSING or value is None:
            return Fields({})
        if not isinstance(value, Mapping):
            raise invalid(f"the field {name} must be an object, not {_json_kind(value)}")
        return Fields(value)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return "null" if value is None else type(value).__name__


def _type_error(name: str, value: Any, go_type: str) -> Exception:
    return invalid(f"the field {name} must be of type {go_type}, not {_json_kind(value)}")


# Identifiers are indexed; PostgreSQL refuses index entries over ~2.7 kB, and a callback id joins two
# promise ids. One limit on every store keeps the outcome the same everywhere.
MAX_ID_BYTES = 1024


def _nul_error(label: str) -> Exception:
    return invalid(f"the field {label} must not contain NUL characters")


def string(f: Fields, name: str, *, required: bool = False, label: str | None = None) -> str:
    """A string field; required ones are identifiers: non-empty and at most MAX_ID_BYTES. `label` names
    it in errors (default: `name` in lower case, built only for an error)."""
    value = f.get(name)
    if value is _MISSING or value is None:
        value = ""
    elif not isinstance(value, str):
        raise _type_error(label or name.lower(), value, "string")
    if required:
        if value == "":
            raise invalid(f"The field {label or name.lower()} is required.")
        if len(value) > MAX_ID_BYTES // 4 and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise invalid(f"the field {label or name.lower()} must be at most {MAX_ID_BYTES} bytes long")
    if "\x00" in value:
        raise _nul_error(label or name.lower())
    return str(value)


def optional_string(f: Fields, name: str) -> str | None:
    """A pointer field: absent or null means none; `""` is a real value."""
    value = f.get(name)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(name.lower(), value, "string")
    if "\x00" in value:
        raise _nul_error(name.lower())
    return str(value)


def int64(f: Fields, name: str, *, required: bool = False, minimum: int | None = None,
          label: str | None = None) -> int:
    label = label or name.lower()
    value = f.get(name)
    if value is _MISSING or value is None:
        value = 0
    elif isinstance(value, Text):
        text = value.strip()
        # only plain decimal digits, as Go's strconv (Python's int() would also take "1_000")
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not (digits.isascii() and digits.isdigit()):
            raise invalid(f"the field {label} must be a number")
        value = int(text, 10)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(label, value, "int64")
    if not INT64_MIN <= value <= INT64_MAX:
        raise invalid(f"the field {label} is out of the int64 range")
    if required and value == 0:
        raise invalid(f"The field {label} is required.")
    if minimum is not None and value < minimum:
        raise invalid(f"The field {label} must be be at least length {minimum}.")
    return value


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False", ""}


def boolean(f: Fields, name: str) -> bool:
    value = f.get(name)
    if value is _MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, Text):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise invalid(f'the field {name.lower()} must be a boolean: strconv.ParseBool: parsing "{value}": invalid syntax')
    raise _type_error(name.lower(), value, "bool")


def string_map(f: Fields, name: str) -> dict[str, str]:
    value = f.get(name)
    if value is _MISSING or value is None:
        return {}
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _type_error(name.lower(), value, "map[string]string")
    for k, v in value.items():
        if not isinstance(v, str):
            raise invalid(f"the field {name.lower()}[{k}] must be a string, not {_json_kind(v)}")
        if "\x00" in k or "\x00" in v:
            raise _nul_error(f"{name.lower()}[{k!r}]")
    return dict(value)


def value_field(f: Fields, name: str) -> Value:
    raw = f.get(name)
    if raw is _MISSING or raw is None:
        return Value()
    if isinstance(raw, Value):
        return raw
    if type(raw) is not dict and not isinstance(raw, Mapping):  # the ABC check only for other types
        raise _type_error(name.lower(), raw, "Value")
    sub = Fields(raw)
    headers = string_map(sub, "headers")
    data = sub.get("data")
    if data is _MISSING or data is None:
        blob = b""
    elif isinstance(data, (bytes, bytearray)):
        blob = bytes(data)
    elif isinstance(data, str):
        cleaned = data.replace("\r", "").replace("\n", "")
        try:
            blob = binascii.a2b_base64(cleaned, strict_mode=True)  # base64.b64decode(validate=True)'s core
        except (binascii.Error, ValueError):
            raise invalid(f"the field {name.lower()}.data must be standard base64 with padding") from None
    else:
        raise _type_error(f"{name.lower()}.data", data, "[]byte")
    return Value(headers=headers, data=blob)


def raw_json(f: Fields, name: str, *, label: str | None = None) -> str:
    """`recv`: any JSON value is accepted and stored as JSON text; only a missing key fails."""
    value = f.get(name)
    if value is _MISSING:
        raise invalid(f"The field {label or name.lower()} is required.")
    if isinstance(value, Text):
        return str(value)  # already raw JSON text (e.g. gRPC's string recv)
    return gojson.dumps(value)


def trace_head(f: Fields) -> dict[str, str]:
    """`traceparent` (and `tracestate` only with it) become the message head."""
    head: dict[str, str] = {}
    traceparent = optional_string(f, "traceparent")
    if traceparent:
        head["traceparent"] = traceparent
        tracestate = optional_string(f, "tracestate")
        if tracestate:
            head["tracestate"] = tracestate
    return check_head(head)


def fence(f: Fields) -> Fence | None:
    task_id = optional_string(f, "taskId")
    if not task_id:
        return None
    return Fence(task_id, int64(f, "taskCounter", label="task-counter"))


# ---------------------------------------------------------------------------------------------------
# Decoding each operation: transport fields -> typed request (one place for every transport)

SEARCH_LIMIT_MAX = 100  # results per search page at most, and the default (as the reference)
ALL_STATES = ["PENDING", "RESOLVED", "REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED"]
STATE_GROUPS = {"pending": ["PENDING"], "resolved": ["RESOLVED"],
                "rejected": ["REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED"]}


def _search_limit(f: Fields) -> int:
    limit = int64(f, "limit")
    if limit < 0:
        raise invalid("The field limit must be greater than or equal to 0.")
    if limit > SEARCH_LIMIT_MAX:
        raise invalid(f"The field limit must be less than or equal to {SEARCH_LIMIT_MAX}.")
    return limit or SEARCH_LIMIT_MAX


def _search_id(f: Fields) -> str | None:
    value = optional_string(f, "id")
    if value == "":
        raise invalid("The field id must be be at least length 1.")
    return value


def _cursor_next(f: Fields) -> dict | None:
    token = optional_string(f, "cursor")
    if not token:
        return None
    try:
        return cursorlib.decode_cursor(token)
    except cursorlib.CursorError as e:
        raise invalid(str(e)) from None


def _cursor_int(nxt: dict, key: str) -> int:
    value = nxt.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"the cursor field {key} must be an integer")
    return value


def _cursor_tags(nxt: dict) -> dict[str, str]:
    tags = nxt.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise invalid("the cursor field tags must be a map of strings")
    return tags


def _cursor_id(nxt: dict) -> str:
    value = nxt.get("id")
    if not isinstance(value, str) or value == "":
        raise invalid("the field id is required")  # a forged cursor with an empty id crashed the reference
    return value


def decode_search_promises(f: Fields) -> SearchPromises:
    search_id = _search_id(f)
    state = optional_string(f, "state")
    if state is not None and state.lower() not in STATE_GROUPS:
        raise invalid("The field state must be one of pending, resolved, or rejected.")
    tags = string_map(f, "tags")
    limit = _search_limit(f)
    nxt = _cursor_next(f)
    if nxt is not None:
        states = nxt.get("states") or []
        if not isinstance(states, list) or not all(isinstance(s, str) and s.upper() in ALL_STATES for s in states):
            raise invalid("the cursor field states must list promise states")
        limit = _cursor_int(nxt, "limit")
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise invalid(f"the field limit must be between 1 and {SEARCH_LIMIT_MAX}")
        return SearchPromises(id=_cursor_id(nxt), states=[s.upper() for s in states], tags=_cursor_tags(nxt),
                              limit=limit, sort_id=_cursor_int(nxt, "sortId"))
    if search_id is None:
        raise invalid("the field id is required")
    states = STATE_GROUPS[state.lower()] if state is not None else list(ALL_STATES)
    return SearchPromises(id=search_id, states=states, tags=tags, limit=limit)


def decode_search_schedules(f: Fields) -> SearchSchedules:
    search_id = _search_id(f)
    tags = string_map(f, "tags")
    limit = _search_limit(f)
    nxt = _cursor_next(f)
    if nxt is not None:
        limit = _cursor_int(nxt, "limit")
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise invalid(f"the field limit must be between 1 and {SEARCH_LIMIT_MAX}")
        return SearchSchedules(id=_cursor_id(nxt), tags=_cursor_tags(nxt), limit=limit,
                               sort_id=_cursor_int(nxt, "sortId"))
    if search_id is None:
        raise invalid("the field id is required")
    return SearchSchedules(id=search_id, tags=tags, limit=limit)


def _decode_create_fields(promise: Fields, headers: Fields) -> CreatePromise:
    return CreatePromise(
        id=string(promise, "id", required=True),
        param=value_field(promise, "param"),
        timeout=int64(promise, "timeout"),
        tags=check_routed_tags(string_map(promise, "tags")),
        idempotency_key=optional_string(headers, "idempotencyKey"),
        strict=boolean(headers, "strict"),
        head=trace_head(headers),
    )


def decode_create_promise(f: Fields) -> CreatePromise:
    req = _decode_create_fields(f, f)
    req.fence = fence(f)
    return req


def decode_create_promise_and_task(f: Fields) -> CreatePromiseAndTask:
    promise = _decode_create_fields(f.sub("promise"), f)
    task = f.sub("task")
    process_id = string(task, "processId", required=True)
    ttl = int64(task, "ttl", minimum=0)
    return CreatePromiseAndTask(promise=promise, process_id=process_id, ttl=ttl)


_COMPLETION_STATES = ("RESOLVED", "REJECTED", "REJECTED_CANCELED")


def decode_complete_promise(f: Fields) -> CompletePromise:
    promise_id = string(f, "id", required=True)
    state = f.get("state")
    if state is None or state == "" or not f.has("state"):
        raise invalid("The field state is required.")
    if not isinstance(state, str):
        raise invalid("the field state must be a string")
    upper = state.upper()
    if upper not in ALL_STATES:
        raise invalid(f"invalid state '{state}'")
    if upper not in _COMPLETION_STATES:
        raise invalid("the field state must be one of resolved, rejected, rejected_canceled")
    return CompletePromise(id=promise_id, state=upper, value=value_field(f, "value"),
                           idempotency_key=optional_string(f, "idempotencyKey"), strict=boolean(f, "strict"),
                           fence=fence(f))


def decode_create_callback(f: Fields) -> CreateCallback:
    promise_id = string(f, "promiseId", required=True)
    root = string(f, "rootPromiseId", required=True)
    recv = check_recv(raw_json(f, "recv"))
    timeout = int64(f, "timeout")
    if promise_id == root:
        # the reference reports this one as a server-kind error with a 40000 code
        raise ApiError(INVALID, ErrorKind.SERVER, ["promise and root promise must be different"])
    return CreateCallback(promise_id=promise_id, root_promise_id=root, recv=recv, timeout=timeout,
                          head=trace_head(f), fence=fence(f))


def decode_create_subscription(f: Fields) -> CreateSubscription:
    return CreateSubscription(id=string(f, "id", required=True), promise_id=string(f, "promiseId", required=True),
                              recv=check_recv(raw_json(f, "recv")), timeout=int64(f, "timeout"), head=trace_head(f))


def decode_create_schedule(f: Fields) -> CreateSchedule:
    schedule_id = string(f, "id", required=True)
    cron = string(f, "cron", required=True)
    try:
        cronlib.parse_cron(cron)
    except cronlib.CronError:
        raise invalid("the field cron must be a valid cron expression") from None
    return CreateSchedule(id=schedule_id, description=string(f, "desc"), cron=cron, tags=string_map(f, "tags"),
                          promise_id=string(f, "promiseId", required=True),
                          promise_timeout=int64(f, "promiseTimeout"), promise_param=value_field(f, "promiseParam"),
                          promise_tags=check_routed_tags(string_map(f, "promiseTags"), "promiseTags"),
                          idempotency_key=optional_string(f, "idempotencyKey"))


def decode_claim_task(f: Fields) -> ClaimTask:
    return ClaimTask(id=string(f, "id", required=True), counter=int64(f, "counter", required=True),
                     process_id=string(f, "processId", required=True), ttl=int64(f, "ttl", minimum=0))

DECODERS: dict[str, Callable[[Fields], Any]] = {
    "promises.read": lambda f: ReadPromise(string(f, "id", required=True)),
    "promises.search": decode_search_promises,
    "promises.create": decode_create_promise,
    "promises.createtask": decode_create_promise_and_task,
    "promises.complete": decode_complete_promise,
    "promises.callback": decode_create_callback,
    "promises.subscribe": decode_create_subscription,
    "schedules.read": lambda f: ReadSchedule(string(f, "id", required=True)),
    "schedules.search": decode_search_schedules,
    "schedules.create": decode_create_schedule,
    "schedules.delete": lambda f: DeleteSchedule(string(f, "id", required=True)),
    "locks.acquire": lambda f: AcquireLock(
        resource_id=string(f, "resourceId", required=True), execution_id=string(f, "executionId", required=True),
        process_id=string(f, "processId", required=True), ttl=int64(f, "ttl", minimum=0)),
    "locks.release": lambda f: ReleaseLock(resource_id=string(f, "resourceId", required=True),
                                           execution_id=string(f, "executionId", required=True)),
    "locks.heartbeat": lambda f: HeartbeatLocks(string(f, "processId", required=True)),
    "tasks.claim": decode_claim_task,
    "tasks.complete": lambda f: CompleteTask(id=string(f, "id", required=True),
                                             counter=int64(f, "counter", required=True)),
    "tasks.read": lambda f: ReadTask(string(f, "id", required=True)),
    "tasks.drop": lambda f: DropTask(id=string(f, "id", required=True), counter=int64(f, "counter", required=True)),
    "tasks.heartbeat": lambda f: HeartbeatTasks(string(f, "processId", required=True)),
}


def decode(operation: str, fields: Mapping[str, Any] | None) -> Any:
    """Transport fields -> typed request; raises ApiError(INVALID) naming the field on bad input."""
    decoder = DECODERS.get(operation)
    if decoder is None:
        raise invalid(f"unknown operation: {operation}")
    return decoder(Fields(fields))
