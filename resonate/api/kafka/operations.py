"""The Kafka operation table: envelope payload -> the core's canonical fields, one row per operation.

The core decodes and validates the fields exactly as for HTTP, so every transport answers the same
input with the same code. Rows only rename the spellings the reference code and its README disagree on
(decisions.md accepts both): `iKey`/`idempotencyKey`, `description`/`desc`, `ttl`/`expiryInMilliseconds`,
nested or flat `promises.createtask`. Trace context comes only from the envelope (metadata or record
header), and only invoke-creating operations use it, as in the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ...core.codes import invalid

# canonical fields HTTP carries in headers: never taken from a Kafka payload
_TRANSPORT_ONLY = {"idempotencykey", "ikey", "strict", "traceparent", "tracestate", "taskid", "taskcounter"}


def _lookup(payload: dict, *names: str) -> tuple[bool, Any]:
    """Case-insensitive key lookup over several spellings (exact spelling preferred, later keys win)."""
    for name in names:
        if name in payload:
            return True, payload[name]
    found, value = False, None
    lowered = {n.lower() for n in names}
    for k, v in payload.items():
        if isinstance(k, str) and k.lower() in lowered:
            found, value = True, v
    return found, value


def _without(payload: dict, *names: str) -> dict:
    drop = {n.lower() for n in names} | _TRANSPORT_ONLY
    return {k: v for k, v in payload.items() if not (isinstance(k, str) and k.lower() in drop)}


def _keyed(payload: dict, fields: dict) -> dict:
    """`iKey` (code) or `idempotencyKey` (README) and `strict`, from the payload's top level."""
    found, key = _lookup(payload, "iKey")
    if not found or key is None:
        found, key = _lookup(payload, "idempotencyKey")
    if found and key is not None:
        fields["idempotencyKey"] = key
    found, strict = _lookup(payload, "strict")
    if found:
        fields["strict"] = strict
    return fields


def _trace(metadata: dict[str, str], fields: dict) -> dict:
    for name in ("traceparent", "tracestate"):
        if metadata.get(name):
            fields[name] = metadata[name]
    return fields


def plain(payload: dict, metadata: dict[str, str]) -> dict:
    return _without(payload)


def keyed(payload: dict, metadata: dict[str, str]) -> dict:
    return _keyed(payload, _without(payload))


def create_promise(payload: dict, metadata: dict[str, str]) -> dict:
    return _trace(metadata, keyed(payload, metadata))


def create_promise_and_task(payload: dict, metadata: dict[str, str]) -> dict:
    has_nested, _ = _lookup(payload, "promise")
    if has_nested:
        fields = _without(payload)
    else:  # the README's flat form: {id, timeout, param, tags, taskProcessId, taskTtl}
        promise = _without(payload, "taskProcessId", "taskTtl", "taskTimeout")
        task = {}
        for source, target in (("taskProcessId", "processId"), ("taskTtl", "ttl")):
            found, value = _lookup(payload, source)
            if found:
                task[target] = value
        fields = {"promise": promise, "task": task}
    return _trace(metadata, _keyed(payload, fields))


def create_schedule(payload: dict, metadata: dict[str, str]) -> dict:
    fields = _keyed(payload, _without(payload, "description", "desc"))
    found, desc = _lookup(payload, "description", "desc")
    if found:
        fields["desc"] = desc
    return fields


def acquire_lock(payload: dict, metadata: dict[str, str]) -> dict:
    fields = _without(payload, "ttl", "expiryInMilliseconds")
    found, ttl = _lookup(payload, "ttl")
    if not found or ttl is None:
        found, ttl = _lookup(payload, "expiryInMilliseconds")
    if found:
        fields["ttl"] = ttl
    return fields


@dataclass(frozen=True, slots=True)
class KafkaOperation:
    name: str
    fields: Callable[[dict, dict[str, str]], dict]  # (payload, envelope metadata) -> canonical fields


OPERATIONS: dict[str, KafkaOperation] = {op.name: op for op in [
    KafkaOperation("promises.read", plain),
    KafkaOperation("promises.search", plain),
    KafkaOperation("promises.create", create_promise),
    KafkaOperation("promises.createtask", create_promise_and_task),
    KafkaOperation("promises.complete", keyed),
    KafkaOperation("promises.callback", plain),
    KafkaOperation("promises.subscribe", plain),
    KafkaOperation("schedules.read", plain),
    KafkaOperation("schedules.search", plain),
    KafkaOperation("schedules.create", create_schedule),
    KafkaOperation("schedules.delete", plain),
    KafkaOperation("locks.acquire", acquire_lock),
    KafkaOperation("locks.release", plain),
    KafkaOperation("locks.heartbeat", plain),
    KafkaOperation("tasks.claim", plain),
    KafkaOperation("tasks.complete", plain),
    KafkaOperation("tasks.drop", plain),
    KafkaOperation("tasks.heartbeat", plain),
]}


def canonical_fields(operation: str, payload: Any, metadata: dict[str, str]) -> dict:
    """Payload -> fields for `core.operations.decode`; a missing or null payload is an empty one."""
    op = OPERATIONS[operation]
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise invalid("the field payload must be a JSON object")
    return op.fields(payload, metadata)
