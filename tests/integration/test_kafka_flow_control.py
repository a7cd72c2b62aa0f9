"""Back-pressure and ordering of the Kafka pipeline, run in-process on a real kernel (SQLite) and a real
broker, with a small per-partition bound so that a burst must pause fetching."""
import json
import os
import tempfile
import uuid

from resonate.api.kafka.consumer import KafkaPipeline, PipelineSettings
from resonate.core.kernel import Kernel
from resonate.core.store.sqlite import SqliteStore
from tests.scenarios.kafka_runner import KafkaRunner

FUTURE = 10**15


def test_a_burst_pauses_fetching_and_every_request_is_answered_in_order(kafka_broker):
    topic = f"flow-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", "flow.server", timeout=60)
    sent = []
    for i in range(300):  # queued before the pipeline starts: one partition, a backlog far above the bound
        env = runner.envelope("promises.create", {"id": f"{topic}-{i}", "timeout": FUTURE})
        runner.producer.send(topic, json.dumps(env).encode())
        sent.append(env["correlationId"])
    runner.producer.flush(30)

    kernel = Kernel(SqliteStore(os.path.join(tempfile.mkdtemp(prefix="resonate-flow-"), "flow.db")))
    kernel.start()
    pipeline = KafkaPipeline(kernel, PipelineSettings(
        brokers=[kafka_broker.bootstrap], topics=[topic], target="flow.server", group=f"{topic}-group",
        dead_letter_topic=f"{topic}.dlq", partition_high_water=20, pipeline_depth=4))
    pipeline.start()
    try:
        runner.collector.wait_all(sent, timeout=90)
    finally:
        pipeline.stop(5)
        kernel.stop()
        runner.close()
    assert pipeline.stats.pauses >= 1, pipeline.stats
    replies = [json.loads(r.value)["correlationId"] for r in runner.collector.records]
    assert replies == sent  # one partition: replies leave in request order, each exactly once
    assert pipeline.stats.replied == 300
