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

No request holds back another: a reply that cannot be delivered (its topic does not exist, it is
larger than the broker accepts, the broker refuses it) is given up on within a bound, dead-lettered
with the reason, counted and logged; an oversized reply is replaced by an error reply that fits.
Every failure on a record's path finishes the record, so no exception stops a partition.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable

from ...core.codes import ApiError, ErrorKind
from ...core.delivery.kafka import KafkaSecurity, crc32_partitioner
from ...core.operations import decode, render
from ...core.requests import Fields
from ...observability import metrics
from ...observability.logs import thread_stacks
from ...observability.requests import future_finished
from .dedup import KafkaDedup, reply_key
from .envelope import (Envelope, EnvelopeError, ReplyTo, Undecodable, error_json, load_json,
                       parse_envelope, parse_reply_to, peek_target, reply_value)
from .operations import OPERATIONS, canonical_fields

log = logging.getLogger("resonate.kafka")


@dataclass
class PipelineSettings:
    brokers: list[str]
    topics: list[str]
    target: str
    group: str
    dead_letter_topic: str
    reply_timeout_ms: int = 10_000  # how long one reply is retried while the broker is reachable
    partition_high_water: int = 500  # unfinished records of one partition that pause its fetching
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    slow_lane_threads: int = 16  # topics being looked up or retried at once
    pipeline_depth: int = 32  # requests of one partition in the kernel at once (single-writer stores)
    auto_offset_reset: str = "earliest"  # where a new group starts
    topic_refresh_ms: int = 3_000  # how soon a request topic created after start is consumed
    security: KafkaSecurity = field(default_factory=KafkaSecurity)


@dataclass
class Stats:
    """Counters, updated from the worker, poll, slow-lane and producer threads (hence `add`)."""

    replied: int = 0
    skipped_other_target: int = 0
    dead_lettered: int = 0
    reply_failures: int = 0  # replies given up on (dead-lettered, offsets committed)
    replaced_oversized: int = 0  # oversized replies replaced by an error reply
    dead_letter_failures: int = 0
    commits: int = 0
    pauses: int = 0  # times a partition's fetching was paused for back-pressure
    retried_unstored: int = 0  # requests run again after an error the store did not keep
    guarded_failures: int = 0  # exceptions caught on a record's path (the record was still finished)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


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
    """A record to produce (a reply, a dead-letter record, or a replacement reply) and what to do once
    it is settled. `done` runs exactly once; if it raises, `finish` still finishes the request's offset."""

    topic: str
    value: bytes
    key: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]]
    done: Callable[[bool], None]
    kind: str  # "reply", "dead-letter" or "replacement", for logs and counters
    finish: Callable[[], None]
    request: Any = None  # the request record (a reply that cannot be delivered is dead-lettered with it)
    replacement: "Callable[[str], bytes] | None" = None  # an error reply that fits, for an oversized reply
    context: str = ""  # requestId/correlationId, for logs
    first_attempt: float = 0.0
    settled: bool = False
    sent_alone: bool = False  # an oversized batch fails all its records: each is retried alone first


COMMIT_STALE_S = 5.0  # a commit without an answer by then is sent again
COMMIT_INTERVAL_S = 0.05  # finished offsets are committed at most this often (and on revocation and stop)
EXISTING_TOPIC_PATIENCE = 6  # a reply to a topic that exists is given up on after 6 x --api-kafka-timeout
MISSING_TOPIC_MEMORY_S = 10.0
PROBE_WAIT_S = 5.0  # how long a lane waits for the answer to "does this topic exist?"
PROBE_ABANDON_S = 30.0  # a lookup pending this long is abandoned  # a reply topic found missing: later replies to it are given up on at once
UNSTORED_RETRIES = 3  # a server error the store did not keep: the request runs again, as a redelivery would
UNSTORED_RETRY_DELAY_S = 0.2
FRAGMENT_HINT_INTERVAL_S = 60.0  # the "send one envelope per line" hint is logged at most this often
POLL_FAILURE_BACKOFF_MAX_S = 5.0
# the poll thread not back from a poll step for this long: every thread's stack is logged (once per stall),
# so a consumer stuck inside the Kafka client can be read from the log; well under the group's
# session timeout
POLL_STALL_WARN_S = 20.0
OVERSIZED_CODE = 50000


class KafkaPipeline:
    def __init__(self, kernel, settings: PipelineSettings):
        self.kernel = kernel
        self.s = settings
        self.stats = Stats()
        self.authenticator = None  # resonate.auth.Authenticator: JWT from the envelope's metadata.Authorization
        self._lock = threading.Lock()
        self._parts: dict[Any, PartitionWork] = {}
        self._revoked: dict[Any, PartitionWork] = {}  # revoked, until the assignment that follows
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._known_topics: set[str] = set()  # topics with a delivered record: sends never block on metadata
        self._missing_topics: dict[str, float] = {}  # reply topic -> until when it is taken as missing
        self._lanes: dict[str, deque] = {}  # topic -> records waiting on the slow lane, in order
        self._lanes_lock = threading.Lock()
        self._slow_lane = ThreadPoolExecutor(settings.slow_lane_threads, thread_name_prefix="resonate-kafka-slow")
        self._stopping = threading.Event()
        self._last_commit = 0.0
        self._poll_step_at = time.monotonic()  # when the poll thread started its current step (watchdog)
        self._stall_reported = False
        self._fragment_hint_at = -FRAGMENT_HINT_INTERVAL_S
        self._producer = None
        self._consumer = None
        self._admin = None  # used on the probe thread only
        self._admin_lock = threading.Lock()
        self._probe_pool = ThreadPoolExecutor(1, thread_name_prefix="resonate-kafka-probe")
        self._probe_future: Future | None = None
        self._probe_started = 0.0
        self._listener = None
        self._subscribed: list[str] = []
        self._next_topic_check = 0.0
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
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        for name, client in (("producer", self._producer), ("admin", self._admin)):
            if client is None:
                continue
            try:
                client.close(timeout=timeout_s) if name == "producer" else client.close()
            except Exception:  # noqa: BLE001 - closing at shutdown: nothing else to do
                log.exception("kafka %s close failed", name)
        log.info("kafka stopped: %s", self.stats)

    # ------------------------------------------------------------------ clients
    def _refresh_subscription(self) -> None:
        """Subscribe to the request topics that exist, checked every `topic_refresh_ms`: a topic created
        after start is consumed within seconds, and no topic is ever created by asking for it. Once every
        request topic is subscribed nothing is asked any more: kafka-python's `consumer.topics()` waits for
        its metadata answer without a time limit, and the poll thread must not stop polling for a question
        whose answer cannot change anything. (Asked through the consumer, not the admin client: the answer
        also gives the consumer the topics' partitions, which the group's assignment needs at once.)"""
        if self._subscribed == self.s.topics:
            return
        now = time.monotonic()
        if now < self._next_topic_check:
            return
        self._next_topic_check = now + self.s.topic_refresh_ms / 1000
        existing = set(self._consumer.topics())
        # only ever added to: a metadata answer missing a topic (a broker restarting) unsubscribes nothing
        wanted = [t for t in self.s.topics if t in existing or t in self._subscribed]
        if wanted == self._subscribed:
            return
        missing = [t for t in self.s.topics if t not in wanted]
        self._consumer.subscribe(wanted, listener=self._listener)
        self._subscribed = wanted
        log.info("kafka: subscribed to %s%s", wanted or "no topic",
                 f" ({', '.join(missing)} not created yet)" if missing else "")

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

        security = self.s.security.client_options()
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                if self._producer is None:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.s.brokers, acks="all", linger_ms=0, enable_idempotence=False,
                        partitioner=crc32_partitioner(), max_block_ms=self.s.reply_timeout_ms,
                        request_timeout_ms=5_000, delivery_timeout_ms=max(10_000, self.s.reply_timeout_ms),
                        reconnect_backoff_max_ms=2_000, client_id=f"resonate-{self.s.target}", **security)
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.s.brokers, group_id=self.s.group, enable_auto_commit=False,
                    auto_offset_reset=self.s.auto_offset_reset, isolation_level="read_committed",
                    session_timeout_ms=self.s.session_timeout_ms, heartbeat_interval_ms=self.s.heartbeat_interval_ms,
                    max_poll_records=max(1, min(500, self.s.partition_high_water)), fetch_max_wait_ms=100,
                    reconnect_backoff_max_ms=2_000, metadata_max_age_ms=self.s.topic_refresh_ms,
                    request_timeout_ms=max(30_000, self.s.session_timeout_ms + 5_000),
                    allow_auto_create_topics=False, client_id=f"resonate-{self.s.target}", **security)
                self._listener = Rebalance()  # subscribed by the poll loop, to the topics that exist
                self.ready.set()
                log.info("kafka: consuming %s as group %s (target %s)", ", ".join(self.s.topics), self.s.group,
                         self.s.target)
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
        backoff = 0.2
        while not self._stopping.is_set():
            self._poll_step_at = time.monotonic()
            try:
                self._poll_once()
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - broker trouble or a bug: keep polling, keep serving
                log.warning("kafka: poll step failed (%r); retrying in %.1fs", e, backoff, exc_info=True)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, POLL_FAILURE_BACKOFF_MAX_S)
        self._shutdown_consumer()

    def _poll_once(self) -> None:
        self._refresh_subscription()
        if not self._subscribed:  # no request topic exists yet
            self._stopping.wait(0.1)
            return
        batches = self._consumer.poll(timeout_ms=100)
        for tp, records in batches.items():
            self._accept(tp, records)
            if records and metrics.enabled():  # the fetch response's high watermark: no broker call
                highwater = self._consumer.highwater(tp)
                if highwater is not None:
                    metrics.kafka_partition_lag(tp.topic, tp.partition, highwater - records[-1].offset - 1)
        self._flow_control()
        if time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
            self._last_commit = time.monotonic()
            self._commit(sync=False)

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
            self.stats.add("pauses", len(pause))
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
                self.stats.add("commits")

        try:
            if sync:
                self._consumer.commit(offsets)
                done(offsets, None)
            else:
                self._consumer.commit_async(offsets, callback=done)
        except Exception as e:  # noqa: BLE001
            done(offsets, e)

    def _on_assigned(self, assigned) -> None:
        """A partition assigned again keeps its fetch position in kafka-python, so its revoked work
        (queued records included) carries on; the unstarted records of partitions that went to another
        member are dropped (that member fetches them from the committed offset)."""
        resumed = []
        with self._lock:
            for tp in assigned:
                work = self._revoked.pop(tp, None)
                if work is not None:
                    work.revoked = False
                    resumed.append(work)
                self._parts[tp] = work if work is not None else PartitionWork(tp)
            for work in self._revoked.values():
                _drop_queued(work)
            self._revoked.clear()
        for work in resumed:
            self._events.put(lambda w=work: self._advance(w))
        log.info("kafka: assigned %s of %s", sorted(str(tp.partition) for tp in assigned),
                 sorted({tp.topic for tp in assigned}))

    def _on_revoked(self, revoked) -> None:
        """Stop starting the revoked partitions' records and commit what finished. This runs on
        kafka-python's I/O thread, which must not block (a blocking commit there fails, and waiting
        stalls heartbeats): work still in flight finishes, uncommitted, and its next owner gets the
        same replies from the store (deduplication)."""
        with self._lock:
            leaving = [self._parts.pop(tp) for tp in revoked if tp in self._parts]
            for work in leaving:
                work.revoked = True  # nothing more starts until it is assigned again (or dropped)
                self._revoked[work.tp] = work
        self._commit(sync=False, parts=leaving)

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
            try:
                event = self._events.get(timeout=POLL_STALL_WARN_S / 4)
            except queue.Empty:
                self._check_poll_progress()
                continue
            if event is None:
                return
            try:
                event()
            except Exception:  # noqa: BLE001 - one bad record never stops the pipeline
                log.exception("kafka: event failed")

    def _check_poll_progress(self, now: float | None = None) -> bool:
        """Logs every thread's stack when the poll thread has been in one step for POLL_STALL_WARN_S (once
        per stall); True if it did."""
        stalled = (time.monotonic() if now is None else now) - self._poll_step_at
        if stalled < POLL_STALL_WARN_S:
            self._stall_reported = False
            return False
        if self._stall_reported or self._stopping.is_set() or self._consumer is None:
            return False
        self._stall_reported = True
        log.warning("kafka: the poll thread has not come back for %.0fs (nothing is fetched meanwhile); "
                    "every thread's stack:\n%s", stalled, thread_stacks())
        return True

    def _advance(self, work: PartitionWork) -> None:
        """Start the partition's next records, as many as its pipeline depth allows."""
        while True:
            with self._lock:
                if (len(work.started) >= self.depth or work.revoked or not work.queued
                        or self._stopping.is_set()):
                    return
                slot = Slot(work.queued.popleft())
                work.started.append(slot)
            self._guarded(work, slot, self._handle, work, slot)

    def _guarded(self, work: PartitionWork, slot: Slot, step: Callable, *args) -> None:
        """Run one step of a record's path; if it raises, the record is dead-lettered (or, failing that,
        finished) so that its partition keeps committing."""
        try:
            step(*args)
        except Exception as e:  # noqa: BLE001 - a bug must not wedge the partition
            self.stats.add("guarded_failures")
            log.exception("kafka: record %s:%s:%s failed", slot.record.topic, slot.record.partition,
                          slot.record.offset)
            if slot.ready:
                return self._finish(work, slot.record.offset)
            try:
                self._dead_letter(work, slot, f"internal error: {e!r}")
            except Exception:  # noqa: BLE001
                log.exception("kafka: dead-lettering %s failed; the record is skipped", slot.record.offset)
                self._emit(work, slot, None)

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
                continue
            try:
                self._produce(done.outbound)
            except Exception:  # noqa: BLE001 - the record is given up on, never left unfinished
                self.stats.add("guarded_failures")
                log.exception("kafka: producing for %s:%s failed", work.tp, done.record.offset)
                self._settle(done.outbound, False)
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
            return self._undecodable(work, slot, e)
        if (target if target is not None else "") != self.s.target:  # a missing target is "", as in Go
            self.stats.add("skipped_other_target")
            if log.isEnabledFor(logging.DEBUG):
                log.debug("kafka: %s:%s:%s %s skipped: target %r is not this server's (%r)", record.topic,
                          record.partition, record.offset, _context(doc), target, self.s.target)
            return self._emit(work, slot, None)
        try:
            reply_to = parse_reply_to(doc)
        except Undecodable as e:
            return self._dead_letter(work, slot, str(e), _context(doc))
        if not reply_to.topic:
            return self._dead_letter(work, slot, "the envelope has no replyTo.topic", _context(doc))
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
            log.info("kafka: %s %s refused: %s", _context(doc), doc_operation(doc), _message(e))
            return self._reply(work, slot, reply_to, doc_correlation_id(doc), doc_operation(doc), _context(doc),
                               error=kafka_error_json(e))
        self._submit(work, slot, env, request, attempt=0)

    def _submit(self, work: PartitionWork, slot: Slot, env: Envelope, request, attempt: int) -> None:
        dedup = KafkaDedup(reply_key(self.s.target, env.reply_to.topic, env.reply_to.target, env.correlation_id),
                           topic=slot.record.topic)
        # wait=True: a full kernel holds this worker (and so fetching) back instead of answering 50301
        future = self.kernel.submit(request, dedup, wait=True)
        if attempt == 0:
            future_finished("kafka", env.operation, future, env.correlation_id)
        future.add_done_callback(lambda f: self._events.put(
            lambda: self._guarded(work, slot, self._on_result, work, slot, env, request, dedup, attempt, f)))

    def _on_result(self, work: PartitionWork, slot: Slot, env: Envelope, request, dedup: KafkaDedup,
                   attempt: int, future: Future) -> None:
        context = f"requestId={env.request_id!r} correlationId={env.correlation_id!r}"
        try:
            result = future.result()
        except ApiError as e:
            if e.code == 50300:  # the kernel is stopping: no reply; the record is consumed again later
                log.info("kafka: %s not run: the server is stopping", context)
                return
            if not dedup.stored and e.kind is ErrorKind.SERVER and attempt < UNSTORED_RETRIES:
                # not stored, so a redelivery would run it again: do that now instead of replying an error
                self.stats.add("retried_unstored")
                log.info("kafka: %s failed (%s); running it again", context, e.code)
                timer = threading.Timer(UNSTORED_RETRY_DELAY_S * (attempt + 1), lambda: self._events.put(
                    lambda: self._guarded(work, slot, self._submit, work, slot, env, request, attempt + 1)))
                timer.daemon = True
                return timer.start()
            return self._reply(work, slot, env.reply_to, env.correlation_id, env.operation, context,
                               error=kafka_error_json(e))
        except Exception as e:  # noqa: BLE001
            return self._reply(work, slot, env.reply_to, env.correlation_id, env.operation, context,
                               error=kafka_error_json(e))
        self._reply(work, slot, env.reply_to, env.correlation_id, env.operation, context,
                    response=render(result.body))

    def _undecodable(self, work: PartitionWork, slot: Slot, error: Undecodable) -> None:
        """Not JSON: dead-lettered. A piece of a JSON document is usually a multi-line envelope sent by
        kcat or rpk (one message per line): say once, not once per fragment, how to send it."""
        value = slot.record.value or b""
        if _looks_like_fragment(value):
            now = time.monotonic()
            if now - self._fragment_hint_at >= FRAGMENT_HINT_INTERVAL_S:
                self._fragment_hint_at = now
                log.warning("kafka: messages on %s are pieces of a JSON document (dead-lettered to %s): kcat and "
                            "rpk send one message per input line, so send each envelope on ONE line (for example "
                            "`jq -c . request.json | kcat -P ...`), or set kcat's delimiter (`-D`) to a character "
                            "that is not in the envelope", slot.record.topic, self.s.dead_letter_topic)
            return self._dead_letter(work, slot, str(error), quiet=True)
        self._dead_letter(work, slot, str(error))

    # ------------------------------------------------------------------ producing
    def _reply(self, work, slot: Slot, reply_to: ReplyTo, correlation_id: str, operation: str, context: str,
               **outcome) -> None:
        record = slot.record
        value = reply_value(reply_to, correlation_id, operation, **outcome)
        key = reply_to.key.encode() if reply_to.key is not None else None

        def done(ok: bool) -> None:
            if ok:
                self.stats.add("replied")
                metrics.kafka_replied(reply_to.topic)
            self._finish(work, record.offset)

        def replacement(reason: str) -> bytes:
            error = ApiError(OVERSIZED_CODE, ErrorKind.SERVER, [reason]).to_json()
            error["message"] = reason
            return reply_value(reply_to, correlation_id, operation, error=error)

        self._emit(work, slot, Outbound(reply_to.topic, value, key, reply_to.partition, [], done, "reply",
                                        lambda: self._finish(work, record.offset), request=record,
                                        replacement=replacement, context=context))

    def _dead_letter(self, work, slot: Slot, reason: str, context: str = "", quiet: bool = False) -> None:
        record = slot.record
        if not quiet:
            log.warning("kafka: %s:%s:%s %sdead-lettered: %s", record.topic, record.partition, record.offset,
                        f"{context} " if context else "", reason)
        out = self._dead_letter_outbound(record, reason, lambda ok: self._finish(work, record.offset),
                                         lambda: self._finish(work, record.offset))
        self._emit(work, slot, out)

    def _dead_letter_outbound(self, record, reason: str, then: Callable[[bool], None],
                              finish: Callable[[], None]) -> Outbound:
        headers = list(record.headers or []) + [
            ("resonate.dlq.reason", reason.encode()), ("resonate.dlq.topic", record.topic.encode()),
            ("resonate.dlq.partition", str(record.partition).encode()),
            ("resonate.dlq.offset", str(record.offset).encode())]

        def done(ok: bool) -> None:
            self.stats.add("dead_lettered" if ok else "dead_letter_failures")
            if ok:
                metrics.kafka_dead_lettered(record.topic)
            then(ok)

        return Outbound(self.s.dead_letter_topic, record.value if record.value is not None else b"", record.key,
                        None, headers, done, "dead-letter", finish)

    def _settle(self, out: Outbound, ok: bool) -> None:
        """Run an outbound's completion exactly once; whatever it raises, its request is finished."""
        with self._lanes_lock:
            if out.settled:
                return
            out.settled = True
        try:
            out.done(ok)
        except Exception:  # noqa: BLE001
            self.stats.add("guarded_failures")
            log.exception("kafka: completing a %s to %s failed; the request is finished anyway", out.kind, out.topic)
            out.finish()

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
        except Exception as e:  # noqa: BLE001 - permanent: given up on; otherwise retried on the slow lane
            return self._give_up(out, e) if _is_permanent(e) else self._retry(out)
        future.add_callback(lambda _meta: self._on_ack(out))
        # a failure is handled on the worker thread, not kafka-python's I/O thread (it produces again)
        future.add_errback(lambda e: self._events.put(lambda: self._on_nack(out, e)))

    def _on_ack(self, out: Outbound) -> None:
        """The producer's delivery callback (its I/O thread): guarded, so the request is always settled."""
        try:
            self._delivered(out)
        except Exception:  # noqa: BLE001
            self.stats.add("guarded_failures")
            log.exception("kafka: delivery callback for %s failed", out.topic)
            self._settle(out, True)

    def _on_nack(self, out: Outbound, error: Exception) -> None:
        try:
            if _is_oversized(error) and not out.sent_alone:
                out.sent_alone = True  # the batch was too large, maybe not this record: it goes alone
                return self._retry(out)
            self._give_up(out, error) if _is_permanent(error) else self._retry(out)
        except Exception:  # noqa: BLE001
            self.stats.add("guarded_failures")
            log.exception("kafka: delivery error callback for %s failed", out.topic)
            self._settle(out, False)

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
            try:
                self._deliver_blocking(out)
            except Exception as e:  # noqa: BLE001 - never leave a lane (and its requests) stuck
                log.exception("kafka: delivering to %s failed", topic)
                self._settle(out, False) if out.kind != "reply" else self._give_up(out, e)
            with self._lanes_lock:
                lane.popleft()

    def _delivered(self, out: Outbound) -> None:
        with self._lanes_lock:
            self._known_topics.add(out.topic)
        self._settle(out, True)

    def _probe(self, topic: str) -> tuple[bool, bool]:
        """(the broker answered, the topic exists), asked through the admin client's public API. The
        lookup runs on its own thread, bounded: an admin client stuck on an unreachable broker only
        means "no answer" (and a lookup pending too long is abandoned for a fresh one)."""
        with self._admin_lock:
            now = time.monotonic()
            if self._probe_future is None or now - self._probe_started > PROBE_ABANDON_S:
                if self._probe_future is not None:  # stuck: leave it, start over with a new client
                    self._probe_pool.shutdown(wait=False)
                    self._probe_pool = ThreadPoolExecutor(1, thread_name_prefix="resonate-kafka-probe")
                    self._admin = None
                self._probe_future, self._probe_started = self._probe_pool.submit(self._list_topics), now
            future = self._probe_future
        try:
            topics = future.result(timeout=PROBE_WAIT_S)
        except FutureTimeout:
            return False, False
        except Exception as e:  # noqa: BLE001 - no answer: the broker is away, keep waiting
            log.info("kafka: broker did not answer a topic lookup (%s)", e)
            topics = None
        with self._admin_lock:
            if self._probe_future is future:
                self._probe_future = None  # the next probe asks again
        return (False, False) if topics is None else (True, topic in topics)

    def _list_topics(self) -> set[str]:
        try:
            if self._admin is None:
                from kafka import KafkaAdminClient
                self._admin = KafkaAdminClient(bootstrap_servers=self.s.brokers, request_timeout_ms=3_000,
                                               client_id=f"resonate-{self.s.target}-admin",
                                               **self.s.security.client_options())
            return set(self._admin.list_topics())
        except Exception:
            admin, self._admin = self._admin, None
            if admin is not None:
                try:
                    admin.close()
                except Exception:  # noqa: BLE001
                    pass
            raise

    def _topic_missing(self, topic: str) -> bool:
        with self._lanes_lock:
            until = self._missing_topics.get(topic)
            if until is not None and time.monotonic() >= until:
                del self._missing_topics[topic]
                until = None
        return until is not None

    def _give_up(self, out: Outbound, error: Exception | str) -> None:
        """A record that cannot be delivered: counted, logged, and (a reply) dead-lettered with the reason;
        an oversized reply is then replaced by an error reply that fits."""
        reason = error if isinstance(error, str) else _describe(error)
        log.error("kafka: %s to %s not delivered, given up%s: %s", out.kind, out.topic,
                  f" ({out.context})" if out.context else "", reason)
        if out.kind != "reply" or out.request is None:
            return self._settle(out, False)
        self.stats.add("reply_failures")
        oversized = _is_oversized(error)

        def after_dead_letter(_ok: bool) -> None:
            if oversized and out.replacement is not None:
                self.stats.add("replaced_oversized")
                value = out.replacement(f"the reply ({len(out.value)} bytes) is larger than the broker accepts; "
                                        f"the request was dead-lettered to {self.s.dead_letter_topic}")
                replacement = Outbound(out.topic, value, out.key, out.partition, [],
                                       lambda _ok: self._settle(out, False), "replacement", out.finish)
                self._events.put(lambda: self._produce(replacement))  # maybe on the I/O thread here
            else:
                self._settle(out, False)

        self._produce(self._dead_letter_outbound(out.request, f"reply to {out.topic} not delivered: {reason}",
                                                 after_dead_letter, out.finish))

    def _deliver_blocking(self, out: Outbound) -> None:
        """Deliver with retries. Given up on at once for a topic found missing, and after the bound when
        the broker answers (during an outage the record waits, so no acknowledged request loses its reply)."""
        backoff = 0.1
        while not self._stopping.is_set():
            if self._topic_missing(out.topic):
                return self._give_up(out, f"the topic {out.topic} does not exist")
            try:
                self._producer.send(out.topic, value=out.value, key=out.key, partition=out.partition,
                                    headers=out.headers).get(timeout=max(1.0, self.s.reply_timeout_ms / 1000))
                return self._delivered(out)
            except Exception as e:  # noqa: BLE001
                if _is_permanent(e):
                    return self._give_up(out, e)
                overdue = time.monotonic() - out.first_attempt > self.s.reply_timeout_ms / 1000
                if overdue:
                    answered, exists = self._probe(out.topic)
                    if answered and not exists:
                        with self._lanes_lock:
                            self._missing_topics[out.topic] = time.monotonic() + MISSING_TOPIC_MEMORY_S
                        return self._give_up(out, f"the topic {out.topic} does not exist")
                    very_overdue = (time.monotonic() - out.first_attempt
                                    > EXISTING_TOPIC_PATIENCE * self.s.reply_timeout_ms / 1000)
                    if answered and very_overdue:  # the topic exists, yet the broker keeps failing it
                        return self._give_up(out, e)
                log.info("kafka: %s to %s failed (%s); retrying", out.kind, out.topic, e)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 2.0)


def _is_permanent(error: BaseException) -> bool:
    """Errors a retry cannot fix: a bad topic name or partition, a record too large, a refusal."""
    if isinstance(error, (ValueError, TypeError)):
        return True
    from kafka.errors import KafkaError
    return isinstance(error, KafkaError) and not error.retriable


def _is_oversized(error: BaseException | str) -> bool:
    if isinstance(error, str):
        return False
    from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
    return isinstance(error, (MessageSizeTooLargeError, RecordListTooLargeError))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _looks_like_fragment(value: bytes) -> bool:
    text = value.strip()
    return bool(text) and (text[:1] in b'{}[]"' or text[-1:] in b",{[")


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


def _context(doc: dict) -> str:
    """requestId and correlationId of an envelope, for log lines."""
    fields = Fields(doc)
    request_id, correlation_id = fields.get("requestId"), fields.get("correlationId")
    return (f"requestId={request_id if isinstance(request_id, str) else ''!r} "
            f"correlationId={correlation_id if isinstance(correlation_id, str) else ''!r}")


def _message(error: Exception) -> str:
    return kafka_error_json(error).get("message", str(error))


def kafka_error_json(error: Exception) -> dict:
    """The reply's error object. A validation error's message names the field, as the README shows
    (`validation error: id is required`); the details keep the full text."""
    doc = error_json(error)
    if isinstance(error, ApiError) and error.kind is ErrorKind.VALIDATION and error.details:
        doc = dict(doc, message="validation error: " + "; ".join(_plain(d) for d in error.details))
    return doc


def _plain(detail: str) -> str:
    """"The field id is required." -> "id is required"."""
    text = detail.strip().rstrip(".")
    return text[len("The field "):] if text.startswith("The field ") else text
