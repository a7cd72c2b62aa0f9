"""The Kafka request/reply transport: `KafkaServer(kernel, cfg)` with `async start()` / `async stop()`."""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from ...core.delivery.kafka import security_from
from .consumer import KafkaPipeline, PipelineSettings

log = logging.getLogger("resonate.kafka")

GROUP_PREFIX = "resonate-servers."


def default_group(target: str) -> str:
    """Each target gets its own consumer group, so two targets on one topic both see every message.

    The mapping is one-to-one (percent-encoding, so `a b` and `a_b`, or an empty target and `default`,
    never share a group and split each other's partitions). The reference defaults every server to
    `resonate-servers`; servers with different targets then discard each other's messages.
    """
    return GROUP_PREFIX + quote(target, safe="")


def api_security(cfg):
    return security_from(cfg.kafka_security_protocol, cfg.kafka_sasl_mechanism, cfg.kafka_sasl_username,
                         cfg.kafka_sasl_password_file, cfg.kafka_sasl_password_env, cfg.kafka_ssl_cafile)


def settings_from_config(cfg) -> PipelineSettings:
    topics = list(cfg.kafka_topic) if not isinstance(cfg.kafka_topic, str) else [cfg.kafka_topic]
    return PipelineSettings(
        brokers=list(cfg.kafka_brokers), topics=topics, target=cfg.kafka_target,
        group=cfg.kafka_consumer_group or default_group(cfg.kafka_target),
        dead_letter_topic=cfg.kafka_dead_letter_topic or f"{topics[0]}.dlq",
        reply_timeout_ms=cfg.kafka_timeout_ms, auto_offset_reset=cfg.kafka_auto_offset_reset,
        security=api_security(cfg))


class KafkaServer:
    name = "kafka"
    address = None  # nothing is bound: the transport consumes --api-kafka-topic

    def __init__(self, kernel, cfg):
        self.cfg = cfg
        self.pipeline = KafkaPipeline(kernel, settings_from_config(cfg))

    @property
    def stats(self):
        return self.pipeline.stats

    async def start(self) -> None:
        """Starts the consumer threads; a broker that is not up yet is retried in the background."""
        self.pipeline.start()

    def health(self) -> bool:
        threads = self.pipeline._threads
        return bool(threads) and all(t.is_alive() for t in threads)

    async def stop(self) -> None:
        await asyncio.to_thread(self.pipeline.stop, self.cfg.kafka_timeout_ms / 1000)
