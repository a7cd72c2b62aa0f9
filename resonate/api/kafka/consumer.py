"""The Kafka request pipeline: consume, run through the kernel, reply, commit.

Threads (kafka-python is blocking and its consumer is not thread-safe):
- the *poll thread* owns the consumer: it fetches, hands records to their partition's queue, pauses
  partitions with too much unfinished work, handles rebalances and commits;
- the *worker thread* decodes envelopes, submits requests to the kernel and hands replies to the
  producer; kernel results and producer acknowledgements come back to it as events;
- the *slow lane* threads deliver what cannot be sent without blocking (a topic not seen yet, which
  may need a metadata round trip, or may not exist) and retry failed deliveries.

Per partition, requests run one after another in offset order (the next starts once the previous
reply has been handed to the producer); different partitions run concurrently, so their requests
share kernel transactions. An offset is committed only when its reply (or dead-letter record) was
acknowledged by the broker, or given up on after the retry bound, and only contiguously.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from ...core.codes import ApiError
from ...core.operations import decode, render
from ...core.requests import Fields
from ...core.delivery.kafka import Crc32Partitioner
from ...observability import metrics
from ...observability.requests import future_finished
from .envelope import (Envelope, EnvelopeError, ReplyTo, Undecodable, error_json, load_json,
                       parse_envelope, parse_reply_to, peek_target, reply_value)
from .operations import OPERATIONS, canonical_fields

log = logging.getLogger("resonate.kafka")


@dataclass
class PipelineSettings:
    brokers: list[str]
    topic: str
    target: str
    group: str
    dead_letter_topic: str
    reply_timeout_ms: int = 10_000  # how long one reply is retried while the broker is reachable
    partition_high_water: int = 500  # unfinished records of one partition that pause its fetching
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    revoke_wait_s: float = 5.0  # how long a revoked partition's in-flight work may finish
    slow_lane_threads: int = 16  # topics being looked up or retried at once
    pipeline_depth: int = 32  # requests of one partition in the kernel at once (single-writer stores)


@dataclass
class Stats:
    replied: int = 0
    skipped_other_target: int = 0
    dead_lettered: int = 0
    reply_failures: int = 0  # replies given up on after the retry bound (offsets committed)
    dead_letter_failures: int = 0
    commits: int = 0
    pauses: int = 0  # times a partition's fetching was paused for back-pressure


@dataclass(eq=False)
class PartitionWork:
    """One assigned partition: its queued records, and the offsets not committed yet."""

    tp: Any
    queued: deque = field(default_factory=deque)  # fetched records not started
    unfinished: deque = field(default_factory=deque)  # offsets in fetch order, not yet committable
    finished: set = field(default_factory=set)
    started: deque = field(default_factory=deque)  # Slots in offset order, until handed to the producer
    revoked: bool = False
    paused: bool = False
    position: int = -1  # next offset to commit: everything before it is finished
    committed: int = -1  # the position the broker confirmed
    committing_since: float = 0.0  # when the commit on its way (if any) was sent


@dataclass(eq=False)
class Slot:
    """A started record; its outcome (a record to produce, or nothing) is emitted in offset order."""

    record: Any
    ready: bool = False
    outbound: "Outbound | None" = None


@dataclass(eq=False)
class Outbound:
    """A record to produce (a reply or a dead-letter record) and what to do once it is settled."""

    topic: str
    value: bytes
    key: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]]
    on_settled: Callable[[bool], None]
    kind: str  # "reply" or "dead-letter", for logs and counters
    first_attempt: float = 0.0


COMMIT_STALE_S = 5.0  # a commit without an answer by then is sent again
COMMIT_INTERVAL_S = 0.05  # finished offsets are committed at most this often (and on revocation and stop)
BROKER_ALIVE_WINDOW_S = 3.0  # a reply is given up on only if the broker answered this recently
PERMANENT_ERRORS = (ValueError, TypeError)  # unknown partition, bad topic name, record too large


class KafkaPipeline:
    def __init__(self, kernel, settings: PipelineSettings):
        self.kernel = kernel
        self.s = settings
        self.stats = Stats()
        self.authenticator = None  # resonate.auth.Authenticator: JWT from the envelope's metadata.Authorization
        self._lock = threading.Lock()
        self._parts: dict[Any, PartitionWork] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._known_topics: set[str] = set()  # topics with a delivered record: sends never block on metadata
        self._lanes: dict[str, deque] = {}  # topic -> records waiting on the slow lane, in order
        self._lanes_lock = threading.Lock()
        self._slow_lane = ThreadPoolExecutor(settings.slow_lane_threads, thread_name_prefix="resonate-kafka-slow")
        self._stopping = threading.Event()
        self._broker_ok_at = 0.0  # last moment the broker acknowledged something
        self._last_commit = 0.0
        self._producer = None
        self._consumer = None
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()  # set once subscribed (for tests and logs)
        # Requests of one partition must run in offset order. A kernel with one writer runs requests in
        # submission order, so several of a partition may be queued in it at once; with several
        # writers (PostgreSQL) they could overtake each other, so one at a time.
        self.depth = settings.pipeline_depth if kernel.store.writers() == 1 else 1

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for name, target in (("resonate-kafka-poll", self._poll_loop), ("resonate-kafka-worker", self._work_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float) -> None:
        self._stopping.set()
        poll, worker = self._threads
        poll.join(timeout_s + 5)  # finishes started work, commits it and leaves the group
        self._events.put(None)
        worker.join(5)
        self._slow_lane.shutdown(wait=False, cancel_futures=True)
        if self._producer is not None:
            try:
                self._producer.close(timeout=timeout_s)
            except Exception:  # noqa: BLE001 - closing at shutdown: nothing else to do
                log.exception("kafka producer close failed")
        log.info("kafka stopped: %s", self.stats)

    # ------------------------------------------------------------------ clients
    def _connect(self) -> bool:
        """Create the producer and consumer; retried with back-off while the broker is away."""
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        pipeline = self

        class Rebalance(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pipeline._on_revoked(revoked)

            def on_partitions_assigned(self, assigned):
                pipeline._on_assigned(assigned)

        backoff = 0.2
        while not self._stopping.is_set():
            try:
                if self._producer is None:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.s.brokers, acks="all", linger_ms=0, enable_idempotence=False,
                        partitioner=Crc32Partitioner(), max_block_ms=self.s.reply_timeout_ms,
                        request_timeout_ms=5_000, delivery_timeout_ms=max(10_000, self.s.reply_timeout_ms),
                        reconnect_backoff_max_ms=2_000, client_id=f"resonate-{self.s.target}")
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.s.brokers, group_id=self.s.group, enable_auto_commit=False,
                    auto_offset_reset="earliest", isolation_level="read_committed",
                    session_timeout_ms=self.s.session_timeout_ms, heartbeat_interval_ms=self.s.heartbeat_interval_ms,
                    max_poll_records=max(1, min(500, self.s.partition_high_water)), fetch_max_wait_ms=100,
                    reconnect_backoff_max_ms=2_000,
                    request_timeout_ms=max(30_000, self.s.session_timeout_ms + 5_000),
                    client_id=f"resonate-{self.s.target}")
                self._consumer.subscribe([self.s.topic], listener=Rebalance())
                self.ready.set()
                log.info("kafka: consuming %s as group %s (target %s)", self.s.topic, self.s.group, self.s.target)
                return True
            except Exception as e:  # noqa: BLE001 - a broker outage at start-up is retried, never fatal
                log.warning("kafka: cannot connect to %s (%s); retrying in %.1fs", self.s.brokers, e, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        return False

    # ------------------------------------------------------------------ poll thread
    def _poll_loop(self) -> None:
        if not self._connect():
            return
        consumer = self._consumer
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                batches = consumer.poll(timeout_ms=100)
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - broker trouble: keep serving the other transports
                log.warning("kafka: poll failed (%s); retrying in %.1fs", e, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for tp, records in batches.items():
                self._accept(tp, records)
                if records and metrics.enabled():  # the fetch response's high watermark: no broker call
                    highwater = consumer.highwater(tp)
                    if highwater is not None:
                        metrics.kafka_partition_lag(tp.topic, tp.partition, highwater - records[-1].offset - 1)
            self._flow_control()
            if time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
                self._last_commit = time.monotonic()
                self._commit(sync=False)
        self._shutdown_consumer()

    def _accept(self, tp, records) -> None:
        with self._lock:
            work = self._parts.get(tp)
            if work is None or work.revoked:
                work = self._parts[tp] = PartitionWork(tp)
            for record in records:
                work.queued.append(record)
                work.unfinished.append(record.offset)
        self._events.put(lambda: self._advance(work))

    def _flow_control(self) -> None:
        """Pause fetching for partitions with too much unfinished work, instead of blocking the poll loop."""
        pause, resume = [], []
        with self._lock:
            for work in self._parts.values():
                backlog = len(work.unfinished)
                if not work.paused and backlog >= self.s.partition_high_water:
                    work.paused = True
                    pause.append(work.tp)
                elif work.paused and backlog < self.s.partition_high_water // 2:
                    work.paused = False
                    resume.append(work.tp)
        if pause:
            self.stats.pauses += len(pause)
            self._consumer.pause(*pause)
        if resume:
            self._consumer.resume(*resume)

    def _committable(self, parts, force: bool) -> dict:
        from kafka.structs import OffsetAndMetadata

        offsets = {}
        with self._lock:
            for work in parts:
                while work.unfinished and work.unfinished[0] in work.finished:
                    work.finished.discard(work.unfinished[0])
                    work.position = work.unfinished.popleft() + 1
                in_flight = time.monotonic() - work.committing_since < COMMIT_STALE_S
                if work.position > work.committed and (force or not in_flight):
                    work.committing_since = time.monotonic()
                    offsets[work.tp] = OffsetAndMetadata(work.position, "", -1)
        return offsets

    def _commit(self, sync: bool, parts=None) -> None:
        """Commit finished prefixes; a failed commit is simply tried again later (the position stays)."""
        if parts is None:
            with self._lock:
                parts = list(self._parts.values())
        by_tp = {w.tp: w for w in parts}
        offsets = self._committable(parts, force=sync)
        if not offsets:
            return

        def done(_offsets, response) -> None:
            failed = isinstance(response, Exception)
            with self._lock:
                for tp, meta in offsets.items():
                    work = by_tp[tp]
                    work.committing_since = 0.0
                    if not failed:
                        work.committed = max(work.committed, meta.offset)
            if failed:
                log.warning("kafka: commit failed (%s); it is retried, and redelivered requests are deduplicated",
                            response)
            else:
                self.stats.commits += 1
                self._broker_ok_at = time.monotonic()

        try:
            if sync:
                self._consumer.commit(offsets)
                done(offsets, None)
            else:
                self._consumer.commit_async(offsets, callback=done)
        except Exception as e:  # noqa: BLE001
            done(offsets, e)

    def _on_assigned(self, assigned) -> None:
        with self._lock:
            for tp in assigned:
                self._parts[tp] = PartitionWork(tp)
        log.info("kafka: assigned %s", sorted(str(tp.partition) for tp in assigned))

    def _on_revoked(self, revoked) -> None:
        """Finish (within a bound) the work of revoked partitions and commit what finished."""
        with self._lock:
            leaving = [self._parts.pop(tp) for tp in revoked if tp in self._parts]
            for work in leaving:
                work.revoked = True
                _drop_queued(work)  # not started: the next owner runs them
        self._wait_idle(leaving, self.s.revoke_wait_s)
        self._commit(sync=True, parts=leaving)

    def _wait_idle(self, parts, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                busy = any(w.started or any(o not in w.finished for o in w.unfinished) for w in parts)
            if not busy:
                return
            time.sleep(0.01)

    def _shutdown_consumer(self) -> None:
        """Let started work finish (bounded), commit it, leave the group."""
        with self._lock:
            parts = list(self._parts.values())
            for work in parts:
                _drop_queued(work)
        self._wait_idle(parts, self.s.reply_timeout_ms / 1000)
        self._commit(sync=True, parts=parts)
        try:
            self._consumer.close(autocommit=False)
        except Exception:  # noqa: BLE001
            log.exception("kafka consumer close failed")

    # ------------------------------------------------------------------ worker thread
    def _work_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            try:
                event()
            except Exception:  # noqa: BLE001 - one bad record never stops the pipeline
                log.exception("kafka: event failed")

    def _advance(self, work: PartitionWork) -> None:
        """Start the partition's next records, as many as its pipeline depth allows."""
        while True:
            with self._lock:
                if (len(work.started) >= self.depth or work.revoked or not work.queued
                        or self._stopping.is_set()):
                    return
                slot = Slot(work.queued.popleft())
                work.started.append(slot)
            try:
                self._handle(work, slot)
            except Exception as e:  # noqa: BLE001 - a bug must not wedge the partition
                log.exception("kafka: record %s:%s failed", work.tp, slot.record.offset)
                self._dead_letter(work, slot, f"internal error: {e}")

    def _emit(self, work: PartitionWork, slot: Slot, outbound: "Outbound | None") -> None:
        """A record's outcome is known; hand outcomes to the producer in offset order (worker thread)."""
        slot.ready, slot.outbound = True, outbound
        emitted = []
        with self._lock:
            while work.started and work.started[0].ready:
                emitted.append(work.started.popleft())
        for done in emitted:
            if done.outbound is None:
                self._finish(work, done.record.offset)
            else:
                self._produce(done.outbound)
        if emitted:
            self._events.put(lambda: self._advance(work))

    def _finish(self, work: PartitionWork, offset: int) -> None:
        with self._lock:
            work.finished.add(offset)

    def _handle(self, work: PartitionWork, slot: Slot) -> None:
        record = slot.record
        metrics.kafka_consumed(record.topic)
        try:
            doc = load_json(record.value)
            target = peek_target(doc)
        except Undecodable as e:
            return self._dead_letter(work, slot, str(e))
        if (target if target is not None else "") != self.s.target:  # a missing target is "", as in Go
            self.stats.skipped_other_target += 1
            return self._emit(work, slot, None)
        try:
            reply_to = parse_reply_to(doc)
        except Undecodable as e:
            return self._dead_letter(work, slot, str(e))
        if not reply_to.topic:
            return self._dead_letter(work, slot, "the envelope has no replyTo.topic")
        try:
            env = parse_envelope(doc, reply_to, record.headers)
            if not env.correlation_id:
                raise EnvelopeError("the field correlationId is required")
            if env.operation not in OPERATIONS:
                raise EnvelopeError(f"unknown operation: {env.operation}")
            if not env.has_payload:
                raise EnvelopeError("the field payload is required")
            request = decode(env.operation, canonical_fields(env.operation, env.payload, env.metadata))
            if self.authenticator is not None:
                denied = self.authenticator.check_jwt(
                    env.metadata.get("authorization") or env.metadata.get("Authorization"), request)
                if denied is not None:
                    raise denied
        except (EnvelopeError, ApiError) as e:
            correlation_id = doc_correlation_id(doc)
            operation = doc_operation(doc)
            return self._reply(work, slot, reply_to, correlation_id, operation, error=error_json(e))
        future = self.kernel.submit(request, dedup_key=f"kafka:{self.s.target}:{env.correlation_id}")
        future_finished("kafka", env.operation, future, env.correlation_id)
        future.add_done_callback(lambda f: self._events.put(lambda: self._on_result(work, slot, env, f)))

    def _on_result(self, work: PartitionWork, slot: Slot, env: Envelope, future: Future) -> None:
        try:
            result = future.result()
        except ApiError as e:
            return self._reply(work, slot, env.reply_to, env.correlation_id, env.operation, error=e.to_json())
        except Exception as e:  # noqa: BLE001
            return self._reply(work, slot, env.reply_to, env.correlation_id, env.operation, error=error_json(e))
        self._reply(work, slot, env.reply_to, env.correlation_id, env.operation, response=render(result.body))

    # ------------------------------------------------------------------ producing
    def _reply(self, work, slot: Slot, reply_to: ReplyTo, correlation_id: str, operation: str, **outcome) -> None:
        record = slot.record
        value = reply_value(reply_to, correlation_id, operation, **outcome)
        key = reply_to.key.encode() if reply_to.key is not None else None

        def settled(ok: bool) -> None:
            if ok:
                self.stats.replied += 1
                metrics.kafka_replied(reply_to.topic)
            else:
                self.stats.reply_failures += 1
            self._finish(work, record.offset)

        self._emit(work, slot, Outbound(reply_to.topic, value, key, reply_to.partition, [], settled, "reply"))

    def _dead_letter(self, work, slot: Slot, reason: str) -> None:
        record = slot.record
        headers = list(record.headers or []) + [
            ("resonate.dlq.reason", reason.encode()), ("resonate.dlq.topic", record.topic.encode()),
            ("resonate.dlq.partition", str(record.partition).encode()),
            ("resonate.dlq.offset", str(record.offset).encode())]
        log.warning("kafka: %s:%s:%s dead-lettered: %s", record.topic, record.partition, record.offset, reason)

        def settled(ok: bool) -> None:
            if ok:
                self.stats.dead_lettered += 1
                metrics.kafka_dead_lettered(record.topic)
            else:
                self.stats.dead_letter_failures += 1
            self._finish(work, record.offset)

        self._emit(work, slot, Outbound(self.s.dead_letter_topic, record.value if record.value is not None else b"",
                                        record.key, None, headers, settled, "dead-letter"))

    def _produce(self, out: Outbound) -> None:
        """Send without blocking when the topic is known; otherwise queue it on the topic's slow lane,
        where it is delivered in order with the topic's other waiting records."""
        out.first_attempt = time.monotonic()
        with self._lanes_lock:
            if out.topic in self._lanes or out.topic not in self._known_topics:
                return self._to_lane(out)
        try:
            future = self._producer.send(out.topic, value=out.value, key=out.key, partition=out.partition,
                                         headers=out.headers)
        except PERMANENT_ERRORS as e:
            return self._give_up(out, e)
        except Exception:  # noqa: BLE001 - retried on the slow lane
            return self._retry(out)
        future.add_callback(lambda _meta: self._delivered(out))
        future.add_errback(lambda _e: self._retry(out))

    def _retry(self, out: Outbound) -> None:
        with self._lanes_lock:
            self._to_lane(out)

    def _to_lane(self, out: Outbound) -> None:
        lane = self._lanes.get(out.topic)
        if lane is None:
            lane = self._lanes[out.topic] = deque()
            self._slow_lane.submit(self._drain_lane, out.topic)
        lane.append(out)

    def _drain_lane(self, topic: str) -> None:
        while not self._stopping.is_set():
            with self._lanes_lock:
                lane = self._lanes[topic]
                if not lane:
                    del self._lanes[topic]
                    return
                out = lane[0]
            self._deliver_blocking(out)
            with self._lanes_lock:
                lane.popleft()

    def _delivered(self, out: Outbound) -> None:
        self._broker_ok_at = time.monotonic()
        self._known_topics.add(out.topic)
        out.on_settled(True)

    def _broker_answered_within(self, window_s: float) -> bool:
        """Whether the broker answered anything lately: an ack, a commit, or a metadata response (which
        also comes back for a topic that does not exist). kafka-python exposes the last one only on its
        cluster metadata object, hence the defensive lookup."""
        metadata = getattr(self._producer, "_metadata", None)
        refreshed_ms = getattr(metadata, "_last_successful_refresh_ms", 0) or 0
        last = max(self._broker_ok_at, refreshed_ms / 1000)
        return time.monotonic() - last < window_s

    def _give_up(self, out: Outbound, error: Exception) -> None:
        log.error("kafka: %s to %s not delivered, given up: %s", out.kind, out.topic, error)
        out.on_settled(False)

    def _deliver_blocking(self, out: Outbound) -> None:
        """Deliver with retries; give up after the bound, but only while the broker is known to be up
        (during an outage the record waits, so that no acknowledged request loses its reply)."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._producer.send(out.topic, value=out.value, key=out.key, partition=out.partition,
                                    headers=out.headers).get(timeout=max(1.0, self.s.reply_timeout_ms / 1000))
                return self._delivered(out)
            except PERMANENT_ERRORS as e:
                return self._give_up(out, e)
            except Exception as e:  # noqa: BLE001
                overdue = time.monotonic() - out.first_attempt > self.s.reply_timeout_ms / 1000
                if overdue and self._broker_answered_within(BROKER_ALIVE_WINDOW_S):
                    return self._give_up(out, e)
                log.info("kafka: %s to %s failed (%s); retrying", out.kind, out.topic, e)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 2.0)


def _drop_queued(work: PartitionWork) -> None:
    """Forget records not started yet (their offsets stay uncommitted, so they are consumed again)."""
    dropped = {r.offset for r in work.queued}
    work.queued.clear()
    if dropped:
        work.unfinished = deque(o for o in work.unfinished if o not in dropped)


def doc_correlation_id(doc: dict) -> str:
    value = Fields(doc).get("correlationId")
    return value if isinstance(value, str) else ""


def doc_operation(doc: dict) -> str:
    value = Fields(doc).get("operation")
    return value if isinstance(value, str) else ""
