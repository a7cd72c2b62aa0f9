"""The scenario table over Kafka, against a real server process and a real broker.

Same outcome per row as over HTTP, with one difference Kafka cannot avoid: a reply carries `success`
and no status, so 20000, 20100 and 20400 are compared as "success" (see kafka_runner.success_class).
Rows that need what the Kafka envelope cannot express are listed in `test_rows_kafka_cannot_express`.
"""
import uuid

import pytest

from tests.scenarios.kafka_runner import KafkaRunner, run_scenario_over_kafka
from tests.scenarios.table import SCENARIOS
from tests.server import ServerProcess

TARGET = "scenarios.server"
KAFKA_SCENARIOS = [s for s in SCENARIOS if s.needs <= KafkaRunner.features]

# Kafka has no task-id / task-counter fields (the reference reads fencing tokens from HTTP headers only)
NOT_EXPRESSIBLE = {"fencing token: invalid -> 412, valid -> proceeds"}


@pytest.fixture(scope="module")
def kafka_runner(kafka_broker):
    topic = f"scenarios-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 4)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    server = ServerProcess("--system-signal-timeout", "100ms", kafka_flags=[
        "--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap, "--api-kafka-topic", topic,
        "--api-kafka-target", TARGET]).start()
    runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", TARGET)
    yield runner
    runner.close()
    server.stop()


def test_rows_kafka_cannot_express():
    skipped = {s.name for s in SCENARIOS if not s.needs <= KafkaRunner.features}
    assert skipped == NOT_EXPRESSIBLE


@pytest.mark.parametrize("scenario", KAFKA_SCENARIOS, ids=[s.name for s in KAFKA_SCENARIOS])
def test_scenario_over_kafka(kafka_runner, scenario):
    problems = run_scenario_over_kafka(kafka_runner, scenario)
    assert not problems, "\n".join(problems)
