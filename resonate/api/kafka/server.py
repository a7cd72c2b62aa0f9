"""The Kafka request/reply transport: `KafkaServer(kernel, cfg)` with `async start()` / `async stop()`."""
from __future__ import annotations

import asyncio
import logging
import re

from .consumer import KafkaPipeline, PipelineSettings

log = logging.getLogger("resonate.kafka")


def default_group(target: str) -> str:
    """Each target gets its own consumer group, so two targets on one topic both see every message.

    (The reference defaults every server to `resonate-servers`; servers with different targets then
    split the partitions and discard each other's messages.)
    """
    return "resonate-servers." + re.sub(r"[^A-Za-z0-9._-]", "_", target or "default")


def settings_from_config(cfg) -> PipelineSettings:
    return PipelineSettings(
        brokers=list(cfg.kafka_brokers), topic=cfg.kafka_topic, target=cfg.kafka_target,
        group=cfg.kafka_consumer_group or default_group(cfg.kafka_target),
        dead_letter_topic=cfg.kafka_dead_letter_topic or f"{cfg.kafka_topic}.dlq",
        reply_timeout_ms=cfg.kafka_timeout_ms)


class KafkaServer:
    name = "kafka"
    address = None  # nothing is bound: the transport consumes --api-kafka-topic

    def __init__(self, kernel, cfg):
        self.cfg = cfg
        if getattr(cfg, "log_level", "info") != "debug":
            logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every rebalance step at INFO
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
