"""The `kafka` plugin: produce task messages to a Kafka topic (grpc-kafka.md section 4).

Recipients `kafka://topic?key=k` and `{"type":"kafka","data":{"topic","key","headers"}}` resolve to an
address `{topic, key?, headers?}` (keys matched case-insensitively, as Go decodes them). The message
value is the task message JSON, the key the address key, the headers the address headers plus the
message head (trace context). Success means the broker acknowledged the record (acks=all).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

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


_partitioner_class = None


def crc32_partitioner():
    """librdkafka's `consistent_random`: CRC-32 of the key modulo the partition count; no key -> random.

    Replies then land where librdkafka clients (kcat, confluent-kafka, the reference) put the same key;
    kafka-python's default murmur2 would not. Built on first use, so importing this module does not
    import kafka-python.
    """
    global _partitioner_class
    if _partitioner_class is None:
        from kafka.partitioner import Partitioner

        class Crc32Partitioner(Partitioner):
            def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
                partitions = cluster.partitions_for_topic(topic)
                if partitions is None:
                    raise ValueError(f"Topic {topic} not found in ClusterMetadata")
                ordered = sorted(partitions)
                if serialized_key:
                    return ordered[zlib.crc32(serialized_key) % len(ordered)]
                available = list(cluster.available_partitions_for_topic(topic))
                return random.choice(available or ordered)

        _partitioner_class = Crc32Partitioner
    return _partitioner_class()


@dataclass(frozen=True)
class KafkaSecurity:
    """How a Kafka client authenticates: the protocol, SASL credentials and the TLS CA file."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""

    def client_options(self) -> dict:
        """kafka-python keyword arguments for producers, consumers and admin clients."""
        options: dict = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.sasl_mechanism or "PLAIN", sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        if self.protocol.endswith("SSL") and self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def security_from(protocol: str, mechanism: str, username: str, password_file: str, password_env: str,
                  cafile: str) -> KafkaSecurity:
    """Validated security settings; the password comes from a file or an environment variable, never a flag."""
    protocol = (protocol or "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(f"security protocol {protocol!r}: expected one of {', '.join(SECURITY_PROTOCOLS)}")
    mechanism = (mechanism or "").upper()
    password = ""
    if protocol.startswith("SASL"):
        mechanism = mechanism or "PLAIN"
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(f"SASL mechanism {mechanism!r}: expected one of {', '.join(SASL_MECHANISMS)}")
        if not username:
            raise ValueError("SASL needs a username")
        if password_file:
            with open(password_file, encoding="utf-8") as f:
                password = f.read().rstrip("\r\n")
        elif password_env:
            if password_env not in os.environ:
                raise ValueError(f"SASL password: environment variable {password_env} is not set")
            password = os.environ[password_env]
        else:
            raise ValueError("SASL needs a password file or a password environment variable")
    if cafile and not os.path.isfile(cafile):
        raise ValueError(f"TLS CA file {cafile!r} does not exist")
    return KafkaSecurity(protocol, mechanism, username, password, cafile)


class KafkaPlugin:
    name = "kafka"
    schemes = ("kafka",)

    def __init__(self, brokers: list[str], *, timeout_ms: int = 30_000, ttr_ms: int = 15_000, ttc_ms: int = 0,
                 size: int = 100, workers: int = 1, compression: str = "none",
                 security: KafkaSecurity | None = None):
        self.brokers = list(brokers)
        self.timeout_ms = timeout_ms
        self.ttr_ms = ttr_ms
        self.ttc_ms = ttc_ms
        self.compression = None if compression in ("", "none") else compression
        self.security = security or KafkaSecurity()
        self._producer = None
        self._producer_lock = threading.Lock()
        # `workers` threads send (kafka-python blocks while it looks up a new topic: kept off the event
        # loop's default executor); at most `size` more sends wait for one (v0.8.2's submission buffer)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="resonate-kafka-plugin")
        self._room = asyncio.Semaphore(size + workers)
        self._counts_lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_config(cls, cfg) -> "KafkaPlugin":
        return cls(cfg.kafka_plugin_brokers, timeout_ms=cfg.kafka_plugin_timeout_ms, ttr_ms=cfg.kafka_plugin_ttr_ms,
                   ttc_ms=cfg.kafka_plugin_ttc_ms, size=cfg.kafka_plugin_size, workers=cfg.kafka_plugin_workers,
                   compression=cfg.kafka_plugin_compression, security=plugin_security(cfg))

    def _get_producer(self):
        # created lazily: a broker that is down when the server starts only fails sends (retried after ttr)
        with self._producer_lock:
            if self._producer is None:
                from kafka import KafkaProducer
                self._producer = KafkaProducer(
                    bootstrap_servers=self.brokers, acks="all", enable_idempotence=False, max_block_ms=self.timeout_ms,
                    request_timeout_ms=min(self.timeout_ms, 30_000),
                    delivery_timeout_ms=max(self.timeout_ms, min(self.timeout_ms, 30_000) + 1),
                    reconnect_backoff_max_ms=2_000, partitioner=crc32_partitioner(), client_id="resonate-sender",
                    compression_type=self.compression, **self.security.client_options())
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
            async with self._room:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._send_blocking, topic, value,
                                                                 key_bytes, headers)
        except Exception as e:  # noqa: BLE001 - any failure is retried by the dispatcher after ttr
            with self._counts_lock:
                self.failed += 1
            log.info("kafka recipient %s: not delivered: %s", topic, e)
            return False
        with self._counts_lock:
            self.sent += 1
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close(timeout=1)
                self._producer = None


def plugin_security(cfg) -> KafkaSecurity:
    """The outbound plugin's security settings: its own flags, falling back to the API's."""
    def pick(name: str) -> str:
        return getattr(cfg, f"kafka_plugin_{name}", "") or getattr(cfg, f"kafka_{name}", "")

    return security_from(pick("security_protocol"), pick("sasl_mechanism"), pick("sasl_username"),
                         pick("sasl_password_file"), pick("sasl_password_env"), pick("ssl_cafile"))
