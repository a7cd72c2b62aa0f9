"""One typed request per operation, and the decoding of transport fields into them.

Every transport hands the core a flat mapping of fields (JSON body keys, plus path, query and header
values under their canonical names). Values that arrived as text (headers, query strings, path
segments) are wrapped in `Text`, so integers and booleans parse from them exactly as the reference's
HTTP binding does, while JSON bodies keep Go's strict typing. All validation lives here, so every
transport rejects the same inputs with the same code and message.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import gojson
from .codes import invalid
from .model import INT64_MAX, INT64_MIN, Value
from .recipient import check_head


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
        if not isinstance(raw, Mapping):
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


def _check_text(label: str, value: str) -> None:
    if "\x00" in value:
        raise invalid(f"the field {label} must not contain NUL characters")


def string(f: Fields, name: str, *, required: bool = False, label: str | None = None) -> str:
    """A string field; required ones are identifiers: non-empty and at most MAX_ID_BYTES."""
    label = label or name.lower()
    value = f.get(name)
    if value is _MISSING or value is None:
        value = ""
    elif not isinstance(value, str):
        raise _type_error(label, value, "string")
    if required:
        if value == "":
            raise invalid(f"The field {label} is required.")
        if len(value) > MAX_ID_BYTES // 4 and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise invalid(f"the field {label} must be at most {MAX_ID_BYTES} bytes long")
    _check_text(label, value)
    return str(value)


def optional_string(f: Fields, name: str) -> str | None:
    """A pointer field: absent or null means none; `""` is a real value."""
    value = f.get(name)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(name.lower(), value, "string")
    _check_text(name.lower(), value)
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
    if not isinstance(value, Mapping):
        raise _type_error(name.lower(), value, "map[string]string")
    for k, v in value.items():
        if not isinstance(v, str):
            raise invalid(f"the field {name.lower()}[{k}] must be a string, not {_json_kind(v)}")
        _check_text(f"{name.lower()}[{k!r}]", k + v)
    return dict(value)


def value_field(f: Fields, name: str) -> Value:
    raw = f.get(name)
    if raw is _MISSING or raw is None:
        return Value()
    if isinstance(raw, Value):
        return raw
    if not isinstance(raw, Mapping):
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
            blob = base64.b64decode(cleaned, validate=True)
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
