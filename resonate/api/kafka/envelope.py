"""The Kafka request and reply envelopes, as the reference code reads them and as its README documents them.

Request (message value, JSON): `target`, `replyTo{topic, target, key | partitionKey, partition}`,
`correlationId`, `operation`, `requestId`, `metadata` (string map; `traceparent`/`tracestate`), `payload`.
Keys match case-insensitively, exact spelling preferred, later duplicates win (Go's encoding/json).
Reply: `target` (= replyTo.target), `correlationId`, `operation`, `success`, then `response` (omitted
when the operation has no body) or `error{code, message, details}` with the 5-digit code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...core import gojson
from ...core.codes import ApiError, ErrorKind
from ...core.requests import Fields

_MISSING = object()


class Undecodable(Exception):
    """The message cannot be read as an envelope at all (dead-lettered, never answered)."""


class EnvelopeError(Exception):
    """The envelope is readable and has a reply topic, but is unusable: answered with a 40000 error."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict:
        url = {"url": "https://docs.resonatehq.io/operate/errors#40000"}
        return {"code": 40000, "message": self.message,
                "details": [{"@type": "FieldValidationError", "message": self.message, "domain": "request",
                             "metadata": url}]}


@dataclass(slots=True)
class ReplyTo:
    topic: str = ""
    target: str = ""
    key: str | None = None
    partition: int | None = None


@dataclass(slots=True)
class Envelope:
    target: str
    reply_to: ReplyTo
    correlation_id: str | None
    operation: str
    request_id: str
    metadata: dict[str, str] = field(default_factory=dict)
    payload: Any = _MISSING

    @property
    def has_payload(self) -> bool:
        return self.payload is not _MISSING


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes | None) -> Any:
    if raw is None or not raw.strip():
        raise Undecodable("empty message value")
    try:
        return json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise Undecodable(f"the message value is not JSON: {e}") from None


def _get(f: Fields, name: str) -> Any:
    value = f.get(name)
    return None if value is _FIELDS_MISSING else value


_FIELDS_MISSING = Fields({}).get("x")  # the sentinel Fields returns for an absent key


def peek_target(doc: Any) -> Any:
    """The envelope's target, read before anything else so other tenants' messages are skipped cheaply."""
    if not isinstance(doc, dict):
        raise Undecodable(f"the message value must be a JSON object, not {type(doc).__name__}")
    return _get(Fields(doc), "target")


def _opt_str(f: Fields, name: str, where: str) -> str | None:
    value = _get(f, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Undecodable(f"the field {where} must be a string")
    return value


def parse_reply_to(doc: dict) -> ReplyTo:
    raw = _get(Fields(doc), "replyTo")
    if raw is None:
        return ReplyTo()
    if not isinstance(raw, dict):
        raise Undecodable("the field replyTo must be an object")
    f = Fields(raw)
    key = _opt_str(f, "key", "replyTo.key")
    if key is None:
        key = _opt_str(f, "partitionKey", "replyTo.partitionKey")  # the README's spelling
    partition = _get(f, "partition")
    if partition is not None:
        if isinstance(partition, bool) or not isinstance(partition, int) or not -1 <= partition < 2**31:
            raise Undecodable("the field replyTo.partition must be a partition number")
        if partition == -1:  # librdkafka's "unassigned"
            partition = None
    return ReplyTo(topic=_opt_str(f, "topic", "replyTo.topic") or "",
                   target=_opt_str(f, "target", "replyTo.target") or "", key=key, partition=partition)


def parse_envelope(doc: dict, reply_to: ReplyTo, headers: list[tuple[str, bytes]] | None) -> Envelope:
    """The rest of the envelope, once it is known to be ours and answerable; raises EnvelopeError."""
    f = Fields(doc)
    correlation_id = _get(f, "correlationId")
    if correlation_id is not None and not isinstance(correlation_id, str):
        raise EnvelopeError("the field correlationId must be a string")
    operation = _get(f, "operation")
    if operation is not None and not isinstance(operation, str):
        raise EnvelopeError("the field operation must be a string")
    request_id = _get(f, "requestId")
    if request_id is not None and not isinstance(request_id, str):
        raise EnvelopeError("the field requestId must be a string")
    metadata = _get(f, "metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise EnvelopeError("the field metadata must be a map of strings")
    metadata = dict(metadata)
    for name, value in headers or ():
        # trace context may also travel as record headers; the envelope's metadata wins
        if name.lower() in ("traceparent", "tracestate") and name.lower() not in metadata and value is not None:
            metadata[name.lower()] = value.decode("utf-8", errors="replace")
    payload = f.get("payload")
    return Envelope(target=_get(f, "target") or "", reply_to=reply_to, correlation_id=correlation_id,
                    operation=operation or "", request_id=request_id or "", metadata=metadata,
                    payload=_MISSING if payload is _FIELDS_MISSING else payload)


def reply_value(reply_to: ReplyTo, correlation_id: str, operation: str, *, response: Any = _MISSING,
                error: dict | None = None) -> bytes:
    doc: dict[str, Any] = {"target": reply_to.target, "correlationId": correlation_id, "operation": operation,
                           "success": error is None}
    if error is not None:
        doc["error"] = error
    elif response is not _MISSING and response is not None:
        doc["response"] = response
    return gojson.dumps(doc).encode()


def error_json(error: Exception) -> dict:
    if isinstance(error, (ApiError, EnvelopeError)):
        return error.to_json()
    return ApiError(50000, ErrorKind.SERVER, [str(error)]).to_json()
