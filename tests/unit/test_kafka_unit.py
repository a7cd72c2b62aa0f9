"""The Kafka adapter's in-process rules: deduplication keys and their pruning, back-pressure admission,
group names, security settings, and that importing the adapter does not import kafka-python."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from resonate.api.kafka.consumer import kafka_error_json
from resonate.api.kafka.dedup import KafkaDedup, reply_key
from resonate.api.kafka.server import default_group
from resonate.config import Config
from resonate.core.background import PruneReplies
from resonate.core.codes import invalid, request_error
from resonate.core.delivery.kafka import plugin_security, security_from
from resonate.core.kernel import Kernel
from resonate.core.operations import decode
from resonate.core.store.sqlite import SqliteStore

HOUR_MS = 3600 * 1000


class Clock:
    def __init__(self, now: int = 10**12):
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_kernel(tmp_path, **kw) -> Kernel:
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), **kw)
    kernel.start()
    return kernel


def create(pid: str):
    return decode("promises.create", {"id": pid, "timeout": 10**15})


def test_the_dedup_key_is_scoped_to_the_reply_destination(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        a = kernel.submit(create("p"), KafkaDedup(reply_key("srv", "replies.a", "app", "req-001"))).result(10)
        # same correlationId, another reply destination: a different request, run (and refused: it exists)
        b = kernel.submit(create("p"), KafkaDedup(reply_key("srv", "replies.b", "app", "req-001")))
        assert a.code == 20100 and b.exception(10).code == 40900
        # the first destination again: replayed, not run
        again = kernel.submit(create("p"), KafkaDedup(reply_key("srv", "replies.a", "app", "req-001"))).result(10)
        assert again.code == 20100
    finally:
        kernel.stop()


def test_reply_keys_never_collide():
    keys = {reply_key(*parts) for parts in [("a", "b:c", "d", "e"), ("a:b", "c", "d", "e"), ("a", "b", "c:d", "e"),
                                            ("a", "b", "c", "d:e"), ("", "", "", "")]}
    assert len(keys) == 5


def test_stored_replies_are_pruned_after_the_retention(tmp_path):
    clock = Clock()
    kernel = make_kernel(tmp_path, clock=clock)
    try:
        key = reply_key("srv", "replies", "app", "old")
        kernel.submit(create("old"), KafkaDedup(key)).result(10)
        clock.now += 2 * HOUR_MS
        kernel.submit(create("new"), KafkaDedup(reply_key("srv", "replies", "app", "new"))).result(10)
        pruned = kernel.submit(PruneReplies(retention_ms=HOUR_MS), background=True).result(10)
        assert pruned.body == 1
        tx = kernel.store.connect().tx
        assert tx.read_reply(key) is None
        assert tx.read_reply(reply_key("srv", "replies", "app", "new")) is not None
        # once pruned, the correlationId runs again (here: refused, the promise exists)
        assert kernel.submit(create("old"), KafkaDedup(key)).exception(10).code == 40900
    finally:
        kernel.stop()


def test_a_waiting_submit_gets_room_instead_of_50301(tmp_path):
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), queue_limit=2)  # not started: nothing leaves the queue
    kernel.store.migrate()
    kernel._accepting = True  # accept without writers, so the queue stays full
    kernel.submit(create("a"))
    kernel.submit(create("b"))
    assert kernel.submit(create("c")).exception(1).code == 50301
    waited = []
    waiter = threading.Thread(target=lambda: waited.append(kernel.submit(create("d"), wait=True)))
    waiter.start()
    assert not waited  # still waiting for room
    kernel._release()  # one request left the queue
    waiter.join(10)
    assert waited and not waited[0].done()  # queued, not refused
    kernel._accepting = False
    blocked = []
    with kernel._room:
        kernel._pending = kernel.queue_limit
    t = threading.Thread(target=lambda: blocked.append(kernel.submit(create("e"), wait=True)))
    t.start()
    t.join(10)
    assert blocked[0].exception(1).code == 50300  # a stopping kernel never leaves a waiter hanging
    kernel.store.close()


@pytest.mark.parametrize("a,b", [("a b", "a_b"), ("", "default"), ("a.b", "a_b"), ("x/y", "x_y")])
def test_group_names_are_one_to_one(a, b):
    assert default_group(a) != default_group(b)


def test_group_name_of_a_plain_target_is_readable():
    assert default_group("resonate.server") == "resonate-servers.resonate.server"


def test_validation_errors_name_the_field():
    doc = kafka_error_json(invalid("The field id is required."))
    assert doc["message"] == "validation error: id is required"
    assert doc["details"][0]["message"] == "The field id is required."
    assert kafka_error_json(request_error(40400))["message"] == request_error(40400).to_json()["message"]


def test_sasl_password_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    sec = security_from("sasl_plaintext", "scram-sha-256", "alice", str(secret), "", "")
    assert sec.client_options() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                                    "sasl_plain_username": "alice", "sasl_plain_password": "s3cret"}
    monkeypatch.setenv("KAFKA_PW", "from-env")
    assert security_from("SASL_SSL", "PLAIN", "bob", "", "KAFKA_PW", "").sasl_password == "from-env"
    for bad in [("SASL_PLAINTEXT", "PLAIN", "bob", "", "", ""), ("SASL_PLAINTEXT", "GSSAPI", "bob", str(secret), "", ""),
                ("SASL_PLAINTEXT", "PLAIN", "", str(secret), "", ""), ("TLS", "", "", "", "", ""),
                ("SSL", "", "", "", "", str(tmp_path / "missing.pem"))]:
        with pytest.raises(ValueError):
            security_from(*bad)


def test_the_plugin_falls_back_to_the_api_security_settings(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("pw")
    cfg = Config(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
                 kafka_sasl_password_file=str(secret))
    assert plugin_security(cfg).client_options()["sasl_plain_password"] == "pw"


def test_importing_the_kafka_modules_does_not_import_kafka_python():
    code = ("import sys, resonate.core.delivery.kafka, resonate.api.kafka.server; "
            "print('kafka' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("flags, message", [
    (["--api-kafka-security-protocol", "SASL_SSL", "--api-kafka-sasl-username", "u"], "password"),
    (["--api-kafka-security-protocol", "TLS"], "security protocol"),
    (["--api-kafka-auto-offset-reset", "middle"], "--api-kafka-auto-offset-reset"),
    (["--aio-kafka-compression", "brotli"], "--aio-kafka-compression"),
])
def test_bad_kafka_settings_stop_the_server_with_a_clear_message(flags, message):
    import argparse

    from resonate.config import add_flags, from_args

    parser = argparse.ArgumentParser()
    add_flags(parser)
    with pytest.raises(SystemExit) as e:
        from_args(parser.parse_args(["--api-kafka-enable", *flags]))
    assert message in str(e.value)


def test_request_topics_are_repeatable_and_default_to_both_names():
    import argparse

    from resonate.api.kafka.server import settings_from_config
    from resonate.config import add_flags, from_args

    parser = argparse.ArgumentParser()
    add_flags(parser)
    default = settings_from_config(from_args(parser.parse_args([])))
    assert default.topics == ["resonate", "resonate.requests"] and default.dead_letter_topic == "resonate.dlq"
    mine = settings_from_config(from_args(parser.parse_args(["--api-kafka-topic", "a", "--api-kafka-topic", "b,c"])))
    assert mine.topics == ["a", "b", "c"] and mine.dead_letter_topic == "a.dlq"


def test_a_poll_thread_stuck_in_a_step_gets_every_threads_stack_logged_once_per_stall(tmp_path, caplog):
    """The poll thread also keeps the group membership: stuck inside the Kafka client, the server stops
    consuming without an error. The worker thread's watchdog logs where every thread stands (once per
    stall), well before the group's session times out."""
    from resonate.api.kafka.consumer import POLL_STALL_WARN_S, KafkaPipeline, PipelineSettings

    kernel = make_kernel(tmp_path)
    try:
        pipeline = KafkaPipeline(kernel, PipelineSettings(brokers=["127.0.0.1:9"], topics=["t"], target="s",
                                                          group="g", dead_letter_topic="t.dlq"))
        started = pipeline._poll_step_at
        assert not pipeline._check_poll_progress(started + POLL_STALL_WARN_S + 1)  # not connected yet
        pipeline._consumer = object()  # connected (the client itself is never called here)
        assert not pipeline._check_poll_progress(started + POLL_STALL_WARN_S - 1)
        with caplog.at_level("WARNING", logger="resonate.kafka"):
            assert pipeline._check_poll_progress(started + POLL_STALL_WARN_S + 1)
            assert not pipeline._check_poll_progress(started + POLL_STALL_WARN_S + 60)  # the same stall
        [record] = [r for r in caplog.records if "has not come back" in r.getMessage()]
        assert "thread MainThread" in record.getMessage()
        assert "test_a_poll_thread_stuck_in_a_step" in record.getMessage()  # this thread's own frame
        pipeline._poll_step_at = started + 100  # a step finished, then the next one sticks
        assert not pipeline._check_poll_progress(started + 101)
        assert pipeline._check_poll_progress(started + 100 + POLL_STALL_WARN_S + 1)
        pipeline._poll_step_at = started + 200
        assert not pipeline._check_poll_progress(started + 201)
        pipeline._stopping.set()  # shutting down: a slow last step is not a stall
        assert not pipeline._check_poll_progress(started + 200 + 10 * POLL_STALL_WARN_S)
    finally:
        kernel.stop()
