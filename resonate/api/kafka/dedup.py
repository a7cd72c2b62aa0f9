"""Deduplication of Kafka requests by correlation id: the hook the adapter hands to `Kernel.submit`.

The kernel stores a request's outcome in the request's own transaction, under a key the adapter
chooses, in a form the adapter chooses; a redelivered request (same key) gets the stored outcome back
instead of running again. The key is the reply's destination (replyTo topic and target), this server's
target, and the correlationId: two clients, or two servers, that happen to use the same correlationId
never see each other's replies. Stored replies are pruned after `--api-kafka-dedupe-retention`.
"""
from __future__ import annotations

import json
from typing import Any

from ...core import gojson
from ...core.codes import ApiError, ErrorKind
from ...core.operations import Result, render
from ...observability import metrics


class StoredBody:
    """A response body already in its JSON form (a stored reply being replayed)."""

    __slots__ = ("json",)

    def __init__(self, json_body: Any):
        self.json = json_body

    def to_json(self) -> Any:
        return self.json


class StoredError(ApiError):
    """A stored error reply, replayed verbatim."""

    def __init__(self, stored: dict):
        super().__init__(stored.get("code", 50000), ErrorKind.SERVER)
        self.stored = stored

    def to_json(self) -> dict:
        return self.stored


def reply_key(server_target: str, reply_topic: str, reply_target: str, correlation_id: str) -> str:
    # JSON-encoded so that no choice of names makes two keys collide
    return "kafka:" + json.dumps([server_target, reply_topic, reply_target, correlation_id], separators=(",", ":"))


class KafkaDedup:
    """`core.kernel.Dedup` for one Kafka request; `stored` tells whether the outcome was written."""

    __slots__ = ("key", "stored", "topic")

    def __init__(self, key: str, topic: str = ""):
        self.key = key
        self.stored = False
        self.topic = topic  # the request's topic, for the deduplicated-records counter

    def stored_form(self, ok: bool, value: Any) -> bytes:
        self.stored = True
        if ok:
            return gojson.dumps({"code": value.code, "body": render(value.body)}).encode()
        return gojson.dumps({"code": value.code, "error": value.to_json()}).encode()

    def replay(self, stored: bytes) -> tuple[bool, Any]:
        self.stored = True
        metrics.kafka_deduplicated(self.topic)
        doc = json.loads(stored)
        if "error" in doc:
            return False, StoredError(doc["error"])
        body = doc.get("body")
        return True, Result(doc["code"], StoredBody(body) if body is not None else None)
