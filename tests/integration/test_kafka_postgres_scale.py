"""Three server processes on one PostgreSQL database and one Kafka consumer group; one is SIGKILLed.

The servers share the request topic's six partitions (same topic, target and consumer group). A
client streams creates and completions with distinct correlationIds; mid-stream one server is
killed, its partitions move to the survivors after the session timeout, and they re-run its
uncommitted requests. Afterwards every request has exactly one distinct reply, every acknowledged
create is in the database, and no promise was completed twice with different values.

Replies do not say which server answered, so the test pins each request to a partition and reads
who owned the partition from the servers' logs (`kafka: assigned [...]`, logged by every member on
every rebalance: the consumers use the eager protocol). The assignment is checked to be unchanged
between the moment the group was stable and the kill, so a reply to a request of partition p came
from p's owner.
"""
from __future__ import annotations

import ast
import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.infra.fixtures import kafka_broker, postgres_server  # noqa: F401  (one shared service per session)
from tests.infra.wait import wait_until
from tests.integration.test_postgres_scale import search_all
from tests.integration.test_postgres_scenarios import fresh_database, start_servers
from tests.scenarios.kafka_runner import KafkaRunner
from tests.scenarios.table import FUTURE
from tests.server import ServerProcess

PARTITIONS = 6
PROMISES = 100  # three envelopes each: create, complete A, complete B -> 300 requests
KILL_GATE = 180  # envelopes sent (in one burst) before the kill; the rest after it
_ASSIGNED = re.compile(r"kafka: assigned (\[[^\]]*\])")


def assignments(server: ServerProcess) -> list[frozenset[int]]:
    """Every partition set the server logged as assigned, oldest first."""
    text = Path(server.log_path).read_text(errors="replace")
    return [frozenset(int(p) for p in ast.literal_eval(m)) for m in _ASSIGNED.findall(text)]


def split(histories: list[list[frozenset[int]]]) -> dict[int, int] | None:
    """partition -> index of its server, if every server's latest logged assignment is non-empty and
    together they split the topic's partitions exactly; otherwise None (the group is still rebalancing)."""
    owners: dict[int, int] = {}
    for i, history in enumerate(histories):
        if not history or not history[-1]:
            return None
        for p in history[-1]:
            if p in owners:
                return None
            owners[p] = i
    return owners if set(owners) == set(range(PARTITIONS)) else None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def canonical(reply: dict) -> str:
    return json.dumps(reply, sort_keys=True)


def stream_of_envelopes(topic: str) -> list[tuple[str, str, int, dict]]:
    """Per promise: its create and completion A on its home partition, completion B on another's."""
    envelopes = []
    for i in range(PROMISES):
        pid = f"{topic}-{i:03d}"
        home = i % PARTITIONS
        other = (home + 3) % PARTITIONS  # another server's (the range assignor gives out 01, 23, 45)
        envelopes += [
            ("create", pid, home, {"id": pid, "timeout": FUTURE}),  # no iKey: a re-run would be 40900
            ("complete-a", pid, home, {"id": pid, "state": "RESOLVED", "value": {"data": b64(f"a-{pid}")},
                                       "iKey": f"a-{pid}"}),
            ("complete-b", pid, other, {"id": pid, "state": "REJECTED", "value": {"data": b64(f"b-{pid}")},
                                        "iKey": f"b-{pid}"}),
        ]
    return envelopes


@dataclass
class SigkillRun:
    sent: dict[str, tuple[str, str, int]]  # correlationId -> (kind, promise id, partition)
    replies: dict[str, list[dict]]  # correlationId -> every reply received for it
    stored: dict[str, dict]  # promise id -> the promise as the database has it afterwards
    stop_codes: list[int]  # exit codes of the two survivors
    logs: list[str]


@pytest.fixture(scope="module")
def sigkill_run(kafka_broker, postgres_server) -> SigkillRun:  # noqa: F811
    """Three servers share the partitions; one is SIGKILLed mid-stream; the survivors finish."""
    run = uuid.uuid4().hex[:8]
    topic, replies_topic = f"kpg-{run}", f"kpg-{run}.replies"
    target, group = "scale.server", f"scale-servers-{run}"
    kafka_broker.create_topic(topic, PARTITIONS)
    kafka_broker.create_topic(replies_topic, 1)
    kafka_flags = ("--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap, "--api-kafka-topic", topic,
                   "--api-kafka-target", target, "--api-kafka-consumer-group", group)

    with fresh_database(postgres_server, "kafkascale") as database:
        servers = start_servers(postgres_server, database, 3, *kafka_flags)
        victim_index = 1
        victim = servers[victim_index]
        runner = KafkaRunner(kafka_broker.bootstrap, topic, replies_topic, target, timeout=60)
        killed = threading.Event()
        producer_errors: list[BaseException] = []
        sent: dict[str, tuple[str, str, int]] = {}  # correlationId -> (kind, promise id, partition)
        stop_codes: list[int] = []
        try:
            # the three members split the six partitions between them before anything is sent
            owners: dict[int, int] = {}
            generations: list[int] = []

            def group_is_stable() -> bool:
                histories = [assignments(s) for s in servers]
                owners.clear()
                owners.update(split(histories) or {})
                generations[:] = [len(h) for h in histories]  # rebalances each server has logged
                return bool(owners)

            wait_until(group_is_stable, "the three servers to share the request topic's partitions", timeout=45)

            envelopes = stream_of_envelopes(topic)

            def send(batch) -> None:
                """Sends a burst (so that the servers have a backlog), then waits for the broker's acks."""
                acks = []
                for kind, pid, partition, payload in batch:
                    op = "promises.create" if kind == "create" else "promises.complete"
                    env = runner.envelope(op, payload, correlation_id=f"{kind}:{pid}")
                    sent[env["correlationId"]] = (kind, pid, partition)
                    acks.append(runner.producer.send(topic, value=json.dumps(env).encode(), partition=partition))
                for ack in acks:
                    ack.get(timeout=30)

            def produce() -> None:
                try:
                    send(envelopes[:KILL_GATE])
                    if not killed.wait(60):
                        raise AssertionError("the kill never happened")
                    for start in range(KILL_GATE, len(envelopes), 30):  # the rest while the group recovers
                        send(envelopes[start:start + 30])
                        time.sleep(0.2)
                except BaseException as e:  # noqa: BLE001 - reported by the main thread
                    producer_errors.append(e)

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()

            def answered_by() -> set[int]:
                replied = dict(runner.collector.replies)
                return {owners[sent[cid][2]] for cid in replied if cid in sent}

            # mid-stream: enough replies, and every server has answered requests of its own partitions
            wait_until(lambda: len(runner.collector.replies) >= 60 and len(answered_by()) == 3 or producer_errors,
                       "replies from all three servers", timeout=45)
            assert not producer_errors, producer_errors
            before_kill = answered_by()
            # no partition moved since the group was stable, so the owners above are the ones that answered
            # (a second rebalance that hands every member the same partitions again does happen, about a
            # second after the first assignment: seen in 2 of 15 runs here)
            histories = [assignments(s) for s in servers]
            assert all(set(h[g - 1:]) == {h[g - 1]} for h, g in zip(histories, generations)), histories
            victim.kill()  # SIGKILL: no shutdown, no commit, no leaving the group
            killed.set()
            assert len(before_kill) >= 2 and victim_index in before_kill, before_kill

            producer.join(60)
            assert not producer.is_alive() and not producer_errors, producer_errors
            assert len(sent) == len(envelopes)
            # the survivors take over the victim's partitions (after the session timeout) and answer the rest
            runner.collector.wait_all(list(sent), timeout=60)
            survivors = [s for s in servers if s is not victim]
            # the survivors split all six partitions between them now
            wait_until(lambda: split([assignments(s) for s in survivors]), "the survivors to share the partitions", timeout=30)
            # a second (possibly different) reply to any request would arrive before these sentinels' replies
            runner.sentinels(range(PARTITIONS))
            replies = {cid: list(runner.collector.replies[cid]) for cid in sent}
            with httpx.Client(base_url=survivors[0].url, timeout=30) as client:
                stored = {p["id"]: p for p in search_all(client, f"{topic}-*")}
        finally:
            killed.set()
            runner.close()
            for s in servers:
                if s is victim:
                    s.kill()
                else:
                    stop_codes.append(s.stop())
    return SigkillRun(sent, replies, stored, stop_codes, [s.log_tail() for s in servers if s is not victim])


def test_the_survivors_shut_down_cleanly(sigkill_run):
    assert sigkill_run.stop_codes == [0, 0], sigkill_run.logs


def test_every_request_has_exactly_one_distinct_reply(sigkill_run):
    replies = sigkill_run.replies
    different = {cid: rs for cid, rs in replies.items() if len({canonical(r) for r in rs}) != 1}
    assert not different, list(different.items())[:3]
    reply = {cid: rs[0] for cid, rs in replies.items()}
    for cid, r in reply.items():
        assert r["correlationId"] == cid and r["target"] == "test-client", r


def outcomes(run: SigkillRun) -> tuple[set[str], dict[str, list]]:
    """The creates acknowledged, and per promise the completions that won (checking every reply)."""
    sent, reply = run.sent, {cid: rs[0] for cid, rs in run.replies.items()}
    created: set[str] = set()
    wins: dict[str, list] = {}
    for cid, (kind, pid, _) in sent.items():
        r = reply[cid]
        if kind == "create":
            # a create run twice (redelivery without deduplication) would answer 40900
            assert r["success"] and r["response"]["id"] == pid and r["response"]["state"] == "PENDING", r
            created.add(pid)
        elif r["success"]:
            assert r["response"]["id"] == pid, r
            wins.setdefault(pid, []).append(
                (kind, r["response"]["state"], r["response"]["value"]["data"], r["response"].get(
                    "idempotencyKeyForComplete")))
        else:
            # the loser sees the winner's state; B may also run before the create (another partition)
            allowed = {40302} if kind == "complete-a" else {40301, 40400}
            assert r["error"]["code"] in allowed, r
    return created, wins


def test_every_acknowledged_create_is_stored(sigkill_run):
    created, _ = outcomes(sigkill_run)
    stored = sigkill_run.stored
    missing = created - set(stored)
    assert not missing, f"acknowledged creates missing: {sorted(missing)[:10]}"
    assert len(created) == PROMISES


def test_each_promise_was_completed_once_by_exactly_one_completion(sigkill_run):
    created, wins = outcomes(sigkill_run)
    stored = sigkill_run.stored
    for pid in created:
        promise = stored[pid]
        assert len(wins.get(pid, [])) == 1, (pid, wins.get(pid), promise)
        kind, state, data, ikey = wins[pid][0]
        letter = "a" if kind == "complete-a" else "b"
        expected = ("RESOLVED" if letter == "a" else "REJECTED", b64(f"{letter}-{pid}"), f"{letter}-{pid}")
        assert (state, data, ikey) == expected, (pid, wins[pid])
        assert (promise["state"], promise["value"]["data"], promise.get("idempotencyKeyForComplete")) == expected, \
            promise
