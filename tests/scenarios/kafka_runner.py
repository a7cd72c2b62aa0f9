"""Runs scenario steps over Kafka: (operation, canonical fields) -> envelope -> reply -> (code, JSON body).

A reply says only `success` or `error{code}`: Kafka cannot tell 20000 from 20100 (or 20400), so a
successful reply is compared by success class (any 2xxxx), and an error by its exact 5-digit code.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from . import Scenario, matches, substitute

# canonical field -> where the Kafka envelope carries it
_METADATA_FIELDS = {"traceparent", "tracestate"}
_PAYLOAD_RENAMES = {"idempotencyKey": "iKey", "desc": "description"}  # the reference code's spellings


def to_payload(op: str, fields: dict) -> tuple[dict, dict]:
    """Canonical fields -> (payload, metadata) as the reference's Kafka clients send them."""
    payload, metadata = {}, {}
    for k, v in fields.items():
        if k in _METADATA_FIELDS:
            metadata[k] = v
        elif k in ("taskId", "taskCounter"):
            raise ValueError("Kafka has no fencing-token fields")
        else:
            payload[_PAYLOAD_RENAMES.get(k, k)] = v
    return payload, metadata


class ReplyCollector:
    """Reads every reply on a topic (all partitions, from the end at start) and indexes them by correlationId."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      fetch_max_wait_ms=50, client_id="test-reply-collector")
        partitions = None
        deadline = time.monotonic() + 30
        while not partitions and time.monotonic() < deadline:
            partitions = self.consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.1)
        if not partitions:
            raise RuntimeError(f"reply topic {topic} has no partitions")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)  # resolve "end" now, before any request is sent
        self.replies: dict[str, list[dict]] = {}
        self.records: list[Any] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self.consumer.poll(timeout_ms=50)
            if not batches:
                continue
            with self._cond:
                for records in batches.values():
                    for r in records:
                        self.records.append(r)
                        try:
                            doc = json.loads(r.value)
                        except ValueError:
                            continue
                        if isinstance(doc, dict):
                            self.replies.setdefault(doc.get("correlationId", ""), []).append(doc)
                self._cond.notify_all()

    def wait(self, correlation_id: str, timeout: float = 30.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.replies.get(correlation_id, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply for correlationId {correlation_id!r} within {timeout}s")
                self._cond.wait(left)
            return list(self.replies[correlation_id])

    def wait_all(self, correlation_ids, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [c for c in correlation_ids if c not in self.replies]
                if not missing:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(missing)} requests unanswered, e.g. {missing[:3]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.consumer.close()


class KafkaRunner:
    name = "kafka"
    features = frozenset({"json-types"})

    def __init__(self, bootstrap: str, topic: str, reply_topic: str, target: str, timeout: float = 30.0):
        self.topic = topic
        self.reply_topic = reply_topic
        self.target = target
        self.timeout = timeout
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, client_id="test-kafka-runner")
        self.collector = ReplyCollector(bootstrap, reply_topic)

    def close(self) -> None:
        self.collector.close()
        self.producer.close()

    def envelope(self, op: str, payload: Any, metadata: dict | None = None, correlation_id: str | None = None) -> dict:
        return {"target": self.target, "replyTo": {"topic": self.reply_topic, "target": "test-client"},
                "correlationId": correlation_id or uuid.uuid4().hex, "operation": op,
                "metadata": metadata or {}, "payload": payload}

    def send(self, envelope: dict | bytes, key: bytes | None = None) -> None:
        value = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        self.producer.send(self.topic, value=value, key=key).get(timeout=30)

    def sentinels(self, partitions, targets=None, timeout: float = 60.0) -> None:
        """A positive signal that everything sent before was processed: a request on each partition (for
        each target), sent now, answered. A partition's requests are answered in offset order, so once
        every sentinel's reply is in, any reply to an earlier request would have arrived already."""
        waiting = []
        for target in targets or [self.target]:
            for partition in partitions:
                env = self.envelope("promises.read", {"id": f"sentinel-{uuid.uuid4().hex}"})
                env["target"] = target
                self.producer.send(self.topic, value=json.dumps(env).encode(), partition=partition).get(timeout=30)
                waiting.append(env["correlationId"])
        self.collector.wait_all(waiting, timeout)

    def request(self, envelope: dict) -> dict:
        self.send(envelope)
        return self.collector.wait(envelope["correlationId"], self.timeout)[0]

    def call(self, op: str, fields: dict) -> tuple[int, Any]:
        payload, metadata = to_payload(op, fields)
        reply = self.request(self.envelope(op, payload, metadata))
        assert reply["operation"] == op and reply["target"] == "test-client", reply
        if reply["success"]:
            assert "error" not in reply, reply
            return 20000, reply.get("response")
        error = reply["error"]
        assert isinstance(error["code"], int) and 10000 <= error["code"] < 60000, reply
        return error["code"], {"error": error}


def success_class(code: int) -> int:
    return 20000 if 20000 <= code < 30000 else code


def run_scenario_over_kafka(runner: KafkaRunner, scenario: Scenario) -> list[str]:
    """As tests/scenarios/runner.py, comparing successful codes by class (Kafka replies carry no status)."""
    prefix = f"{uuid.uuid4().hex[:8]}-"
    problems = []
    for i, step in enumerate(scenario.steps):
        if step.wait_ms:
            time.sleep(step.wait_ms / 1000)
        fields = substitute(step.fields, prefix)
        code, body = runner.call(step.op, fields)
        where = f"step {i} {step.op} {fields}"
        if code != success_class(step.code):
            problems.append(f"{where}: expected code {step.code}, got {code}: {body}")
            break
        if step.expect is not None:
            problems += [f"{where}: {p}" for p in matches(substitute(step.expect, prefix), body)]
    return problems
