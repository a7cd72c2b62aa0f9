"""The `kafka` plugin: produce task messages to a Kafka topic (grpc-kafka.md section 4).

Recipients `kafka://topic?key=k` and `{"type":"kafka","data":{"topic","key","headers"}}` resolve to an
address `{topic, key?, headers?}` (keys matched case-insensitively, as Go decodes them). The message
value is the task message JSON, the key the address key, the headers the address headers plus the
message head (trace context). Success means the broker acknowledged the record (acks=all).
"""
from __future__ import annotations

import asyncio
import logging
import random
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka.partitioner import Partitioner

from .. import gojson

log = logging.getLogger("resonate.kafka_plugin")


def _lookup(address: dict, name: str) -> Any:
    if name in address:
        return address[name]
    found = None
    for k, v in address.items():
        if isinstance(k, str) and k.lower() == name.lower():
            found = v
    return found


class Crc32Partitioner(Partitioner):
    """librdkafka's `consistent_random`: CRC-32 of the key modulo the partition count; no key -> random.

    Replies then land where librdkafka clients (kcat, confluent-kafka, the reference) put the same key;
    kafka-python's default murmur2 would not.
    """

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        ordered = sorted(partitions)
        if serialized_key:
            return ordered[zlib.crc32(serialized_key) % len(ordered)]
        available = list(cluster.available_partitions_for_topic(topic))
        return random.choice(available or ordered)


class KafkaPlugin:
    name = "kafka"
    schemes = ("kafka",)

    def __init__(self, brokers: list[str], *, timeout_ms: int = 30_000, ttr_ms: int = 15_000, ttc_ms: int = 0):
        self.brokers = list(brokers)
        self.timeout_ms = timeout_ms
        self.ttr_ms = ttr_ms
        self.ttc_ms = ttc_ms
        self._producer = None
        self._producer_lock = threading.Lock()
        # kafka-python blocks while it looks up a new topic: keep that off the event loop's default executor
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="resonate-kafka-plugin")
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_config(cls, cfg) -> "KafkaPlugin":
        return cls(cfg.kafka_plugin_brokers, timeout_ms=cfg.kafka_plugin_timeout_ms, ttr_ms=cfg.kafka_plugin_ttr_ms,
                   ttc_ms=cfg.kafka_plugin_ttc_ms)

    def _get_producer(self):
        # created lazily: a broker that is down when the server starts only fails sends (retried after ttr)
        with self._producer_lock:
            if self._producer is None:
                from kafka import KafkaProducer
                self._producer = KafkaProducer(
                    bootstrap_servers=self.brokers, acks="all", enable_idempotence=False, max_block_ms=self.timeout_ms,
                    request_timeout_ms=min(self.timeout_ms, 30_000),
                    delivery_timeout_ms=max(self.timeout_ms, min(self.timeout_ms, 30_000) + 1),
                    reconnect_backoff_max_ms=2_000, partitioner=Crc32Partitioner(), client_id="resonate-sender")
            return self._producer

    def _send_blocking(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        producer = self._get_producer()
        producer.send(topic, value=value, key=key, headers=headers).get(timeout=self.timeout_ms / 1000)

    async def send(self, address: Any, body: dict, head: dict[str, str]) -> bool:
        if not isinstance(address, dict):
            log.warning("kafka recipient without an address object: %r", address)
            return False
        topic = _lookup(address, "topic")
        if not isinstance(topic, str) or not topic:
            log.warning("kafka recipient: topic required")
            return False
        key = _lookup(address, "key")
        key_bytes = key.encode() if isinstance(key, str) and key else None
        headers = [(str(k), str(v).encode()) for k, v in head.items()]
        extra = _lookup(address, "headers")
        if isinstance(extra, dict):
            headers += [(str(k), str(v).encode()) for k, v in extra.items()]
        value = gojson.dumps(body).encode()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._send_blocking, topic, value,
                                                             key_bytes, headers)
        except Exception as e:  # noqa: BLE001 - any failure is retried by the dispatcher after ttr
            self.failed += 1
            log.info("kafka recipient %s: not delivered: %s", topic, e)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close(timeout=1)
                self._producer = None
