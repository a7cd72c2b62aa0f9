"""The kernel: every request, from any transport or background loop, runs here.

Writer threads take whatever requests are queued (up to `batch_size`), open one transaction, run each
request inside its own savepoint against one clock reading, commit once (one fsync for the whole
batch), then resolve each caller's future and hand the batch's outgoing messages to delivery. A
request that fails rolls back only its own savepoint; its neighbours commit.

Due work (event-driven background, resonate/core/loops.py): the kernel keeps the earliest deadline of
each kind of background work (`deadlines`). A batch carrying client requests first runs every pass
whose deadline has passed, in the same transaction, so no request sees past-deadline work as pending;
and any batch whose own writes made work due at once (new tasks, a task to re-send) runs that pass
before it commits, so the messages leave right after the commit.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .background import BACKGROUND_EXECUTORS
from .codes import ApiError, invalid, server_error
from .deadlines import DeadlineBook
from .operations import EXECUTORS, READ_ONLY, ROW_LOCKED_BY, Context, CoreConfig, Outgoing, Result, Retry
from .store.base import RejectedValue, RetryableStoreError, Store, StoreError
from ..observability import metrics

log = logging.getLogger("resonate.kernel")

MAX_RETRIES = 8
RETRY_PAUSE_FIRST_S = 0.001  # a batch rerun after a transient store error waits about this, doubling per rerun
RETRY_PAUSE_CAP_S = 0.1


def retry_pause(attempt: int, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before rerunning a batch for the `attempt`-th time (from 0): between half and all
    of an exponential ceiling. The random half keeps servers whose batches failed together (a deadlock's
    survivors, a busy SQLite file) from rerunning in lockstep and colliding again."""
    ceiling = min(RETRY_PAUSE_FIRST_S * 2 ** attempt, RETRY_PAUSE_CAP_S)
    return ceiling / 2 + draw() * ceiling / 2


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Dedup(Protocol):
    """A caller's deduplication hook: the kernel stores the outcome under `key` in the request's own
    transaction, and replays the stored form when the key comes again. The caller owns the format."""

    key: str

    def stored_form(self, ok: bool, value: Any) -> bytes: ...

    def replay(self, stored: bytes) -> tuple[bool, Any]: ...


@dataclass(slots=True)
class _Item:
    request: Any
    future: Any  # a concurrent Future (submit), or an asyncio future of `loop` (submit_async)
    dedup: Dedup | None
    counted: bool
    loop: asyncio.AbstractEventLoop | None = None


def _settle(future: Any, ok: bool, value: Any) -> None:
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _settle_on_loop(results: list[tuple[Any, bool, Any]]) -> None:
    """Runs on the futures' event loop: one call per loop per batch sets every answer."""
    for future, ok, value in results:
        if not future.done():  # a caller that cancelled after a writer took its request: discarded
            _settle(future, ok, value)


_STOP = object()


class _NeedsSavepoints(Exception):
    """A request ran without a savepoint and must undo its own writes (Retry, a failure): the batch is
    rolled back and runs again with a savepoint per request."""


class Kernel:
    def __init__(self, store: Store, config: CoreConfig | None = None, *, batch_size: int = 1000,
                 queue_limit: int = 1000, clock: Callable[[], int] = wall_clock_ms):
        self.store = store
        self.config = config or CoreConfig()
        self.batch_size = batch_size
        self.queue_limit = queue_limit
        self.clock = clock
        self.on_commit: Callable[[list[Outgoing]], None] = lambda outgoing: None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._room = threading.Condition(self._pending_lock)  # signalled when a counted request leaves
        self._waiting = 0  # callers waiting for room
        self._accepting = False  # changed under `_room`'s lock: nothing is queued after stop()
        self._threads: list[threading.Thread] = []
        # per event loop, what submit_answer admitted in the loop's current iteration (`_queue_held`)
        self._held: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Item]]" = weakref.WeakKeyDictionary()
        self.batches = 0  # for tests and benchmarks: how many transactions were committed
        self.deadlines = DeadlineBook()
        # kind -> request factory of the pass doing that kind's due work inside batches (set by the
        # event-driven loops; empty: passes run only when the loops submit them)
        self.due_work: dict[str, Callable[[], Any]] = {}
        self.after_client_batch: Callable[[], None] = lambda: None
        # deadlines nearer than this (ms from the batch's clock) are published to the other servers
        # on the same database inside the batch's transaction (0: none; PostgreSQL only)
        self.share_horizon_ms = 0
        # reads answered on the caller's thread from the store's read connections (`_read_now`)
        self.concurrent_reads = store.supports_concurrent_reads
        # odd while a batch whose passes replaced deadlines commits and books them: a read that overlaps it
        # goes to the writer (one writer thread where concurrent reads are on, so the increments do not race)
        self._commit_seq = 0

    # -- lifecycle
    def start(self) -> None:
        self.store.migrate()
        self._accepting = True
        for i in range(self.store.writers()):
            t = threading.Thread(target=self._writer, name=f"resonate-writer-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new requests, finish every queued one, then stop the writers."""
        with self._room:
            self._accepting = False
            self._room.notify_all()  # waiting callers see the stop at once
        self.concurrent_reads = False  # the store's read connections close with it
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        self._refuse_leftovers()
        self.store.close()

    def _refuse_leftovers(self) -> None:
        """Requests a writer did not take in time (it is stuck past the join timeout, or died) still get an
        answer: 50300, not executed. The stop markers go back, for a stuck writer that finishes later."""
        stops = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stops += 1
                continue
            if item.counted:
                self._release()
            if item.loop is not None:
                self._settle_async({item.loop: [(item.future, False, server_error(50300))]})
            elif item.future.set_running_or_notify_cancel():
                item.future.set_exception(server_error(50300))
        for _ in range(stops):
            self._queue.put(_STOP)

    @property
    def accepting(self) -> bool:
        return self._accepting

    # -- submission
    def submit(self, request: Any, dedup: Dedup | None = None, *, background: bool = False,
               wait: bool = False) -> Future:
        """Queue a request. When the queue is full: 50301, or with `wait` block until there is room
        (back-pressure for transports that can hold their input back, such as Kafka)."""
        future: Future = Future()
        if dedup is None and not background and type(request) in READ_ONLY and self.concurrent_reads:
            outcome = self._read_now(request)
            if outcome is not None:
                _settle(future, *outcome)
                return future
        refused = self._enqueue(_Item(request, future, dedup, not background), wait)
        if refused is not None:
            future.set_exception(refused)
        return future

    def submit_async(self, request: Any, dedup: Dedup | None = None) -> "asyncio.Future":
        """`submit` for callers on an event loop: the answer arrives as a future of the running loop.
        Cancelling it before a writer takes the request drops the request; after that it runs anyway.
        The writer sets a batch's answers with one call per loop, not one thread hand-off per request."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if dedup is None and type(request) in READ_ONLY and self.concurrent_reads:
            outcome = self._read_now(request)
            if outcome is not None:
                _settle(future, *outcome)
                return future
        refused = self._enqueue(_Item(request, future, dedup, True, loop), False)
        if refused is not None:
            future.set_exception(refused)
        return future

    def submit_answer(self, request: Any, answer: Any, loop: asyncio.AbstractEventLoop) -> None:
        """`submit_async` for a caller on `loop` that takes its answer as a call rather than a future (no
        future, no done-callback hand-off: a few microseconds per request). On `loop`, once, the writer
        calls `answer.set_result(result)` or `answer.set_exception(error)` (at once when refused); it asks
        `answer.done()` before, and `answer.cancelled()` when a writer takes the request, and both must
        say False for the answer to be given. A read answered beside the writer (`answer_now`) is answered
        before this returns. Must be called on `loop`: admitted at once, a request for the writers reaches
        them with the others the loop submits in the same iteration, together (one wake-up of a writer, one
        larger batch)."""
        if type(request) in READ_ONLY and self.concurrent_reads:
            outcome = self._read_now(request)
            if outcome is not None:
                _settle(answer, *outcome)
                return
        item = _Item(request, answer, None, True, loop)
        with self._pending_lock:
            refused = self._admit(item, False)
        if refused is not None:
            answer.set_exception(refused)
            return
        held = self._held.get(loop)
        if held is None:
            held = self._held[loop] = []
        if not held:
            loop.call_soon(self._queue_held, held)
        held.append(item)

    def _queue_held(self, held: list[_Item]) -> None:
        """On the loop, at the end of the iteration: its admitted requests to the writers; refused with
        50300 if the kernel stopped meanwhile (nothing is queued after stop())."""
        items = held[:]
        held.clear()
        with self._pending_lock:
            if self._accepting:
                for item in items:
                    self._queue.put(item)
                return
        self._release(len(items))
        for item in items:
            item.future.set_exception(server_error(50300))

    def answer_now(self, request: Any) -> tuple[bool, Any] | None:
        """(ok, result or ApiError) for a read answered on the caller's thread, exactly as `submit` or
        `submit_async` would answer it, or None when the request must be submitted. For an event-loop
        caller it saves the future (and, on Python 3.11, the getpid() of `asyncio.get_running_loop`)."""
        if type(request) in READ_ONLY and self.concurrent_reads:
            return self._read_now(request)
        return None

    def _read_now(self, request: Any) -> tuple[bool, Any] | None:
        """Answers a read on the caller's thread, or None when the writer must: the kernel is refusing or
        full (it answers 50300/50301 as before), due work is waiting (the writer runs it first), the read
        would write (a lazy timeout), or a batch whose passes replaced deadlines committed meanwhile. So the
        answer is the one the writer would give at this clock reading, and a read after an answered write
        sees that write."""
        seq = self._commit_seq
        if seq & 1 or not self._accepting or self._pending >= self.queue_limit or self._waiting:
            return None
        now = self.clock()
        started = time.perf_counter()
        try:
            reader = self.store.reader()
        except StoreError:  # no read connection could be opened: the writer answers
            return None
        if reader is None:  # every read connection is in use
            return None
        try:
            ctx = Context(reader, now, self.config, [])  # tx, now, config, outbox
            outcome: tuple[bool, Any] = (True, EXECUTORS[type(request)](ctx, request))
        except ApiError as e:
            outcome = (False, e)
        except StoreError:  # a write needed (NeedsWriter), or the read could not start: the writer answers
            return None
        finally:
            self.store.release_reader(reader)
        # checked after the read: every commit it saw had booked the deadlines it wrote before committing
        due_work = self.due_work
        if due_work and self.deadlines.due(now, due_work):
            return None
        if self._commit_seq != seq:
            return None
        metrics.store_read(time.perf_counter() - started)  # one store submission, as a batch is
        return outcome

    def _enqueue(self, item: _Item, wait: bool) -> ApiError | None:
        """Admission and queueing under one lock; returns the refusal (50300, 50301) or None."""
        with self._pending_lock:  # `_room`'s lock, taken without the Condition's Python-level wrapper
            refused = self._admit(item, wait)
            if refused is None:
                self._queue.put(item)  # checked and queued together: nothing is queued after stop()
        return refused

    def _admit(self, item: _Item, wait: bool) -> ApiError | None:
        """Admission, under `_pending_lock`: the refusal (50300, 50301), or None with the request counted."""
        if item.counted:
            if wait:
                self._waiting += 1
                while self._pending >= self.queue_limit and self._accepting:
                    self._room.wait(0.1)
                self._waiting -= 1
            if not self._accepting:
                return server_error(50300)
            # room freed while callers wait is theirs: a caller that does not wait would take it first
            if self._pending >= self.queue_limit or (self._waiting and not wait):
                return server_error(50301)
            self._pending += 1
        elif not self._accepting:
            return server_error(50300)
        return None

    def _release(self, count: int = 1) -> None:
        with self._pending_lock:
            self._pending -= count
            if self._waiting:
                self._room.notify(count)

    def call(self, request: Any, timeout: float | None = 30) -> Result:
        """Synchronous submit, for tests, benchmarks and loops."""
        return self.submit(request).result(timeout)

    # -- writer
    def _writer(self) -> None:
        conn = self.store.connect()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                batch = [item]
                stop_after = False
                while len(batch) < self.batch_size:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop_after = True
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
                if stop_after:
                    break
        finally:
            conn.close()

    def _run_batch(self, conn, batch: list[_Item]) -> None:
        # a caller that gave up before its request started is dropped; a running future cannot be
        # cancelled any more, so setting its result below is always safe
        live, dropped = [], 0
        for item in batch:
            if item.loop is None:
                taken = item.future.set_running_or_notify_cancel()
            else:  # cancelled on its loop after this check: it runs, and its answer is discarded
                taken = not item.future.cancelled()
            if taken:
                live.append(item)
            elif item.counted:
                dropped += 1
        if dropped:
            self._release(dropped)
        batch = live
        if not batch:
            return
        outcomes: list[tuple[bool, Any]] = []
        outgoing: list[Outgoing] = []
        started, committed = time.perf_counter(), False
        carries_client = any(item.counted for item in batch)
        # per-request savepoints only when needed (a request rolling back its own writes): two statements
        # fewer per request; stores that must always guard each request say so
        guarded = self.store.savepoint_each_request
        if self.store.runs_in_lock_order:
            batch = self._in_lock_order(batch)
        for attempt in range(MAX_RETRIES):
            now = self.clock()
            outcomes, outgoing = [], []
            seen = self.deadlines.versions()
            due_work = self.due_work
            try:
                conn.begin()
                conn.tx.begin_deadlines()  # after begin: a reconnect there replaces conn.tx
                if carries_client and due_work:
                    self._run_due(conn, now, outgoing, self.deadlines.due(now, due_work), guarded)
                for item in batch:
                    outcomes.append(self._run_one(conn, item, now, outgoing, guarded))
                if due_work:
                    self._run_due(conn, now, outgoing, [k for k, at in conn.tx.deadlines.items()
                                                        if at <= now and k in due_work], guarded)
                if self.share_horizon_ms:
                    near = {k: at for k, at in conn.tx.deadlines.items() if at < now + self.share_horizon_ms}
                    if near:
                        conn.tx.publish_deadlines(near)
                # deadlines this batch wrote are booked before its commit: a read that sees its rows sees
                # their deadlines (booked early, a failed commit costs at most a pass for nothing). Those a
                # pass replaced can only be booked after; meanwhile reads go to the writer (`_read_now`).
                self._note_deadlines(conn.tx)
                replaced = bool(conn.tx.replaced)
                if replaced:
                    self._commit_seq += 1
                try:
                    conn.commit()
                    self.batches += 1
                    committed = True
                    self._replace_deadlines(conn.tx, seen)
                finally:
                    if replaced:
                        self._commit_seq += 1
                break
            except _NeedsSavepoints:
                conn.rollback()
                guarded = True
            except RetryableStoreError as e:
                conn.rollback()
                metrics.kernel_batch_retried(e.reason)
                log.info("batch retried after a transient store error: %s", e)
                time.sleep(retry_pause(attempt))
            except Exception as e:  # the transaction failed as a whole: nothing was written
                log.exception("store transaction failed")
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is broken; the batch already failed
                    log.warning("rollback after a failed transaction failed too", exc_info=True)
                outcomes = [(False, server_error(50004, str(e)))] * len(batch)
                outgoing = []
                break
        else:
            outcomes = [(False, server_error(50004, "the store stayed busy; try again"))] * len(batch)
            outgoing = []
        if metrics.enabled():
            metrics.kernel_batch([(i.request, ok, v) for i, (ok, v) in zip(batch, outcomes)], len(batch),
                                 time.perf_counter() - started, ok=committed)
        counted = sum(item.counted for item in batch)
        if counted:
            self._release(counted)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
        for item, (ok, value) in zip(batch, outcomes):
            if item.loop is None:
                _settle(item.future, ok, value)
            else:
                results = by_loop.get(item.loop)
                if results is None:
                    results = by_loop[item.loop] = []
                results.append((item.future, ok, value))
        if by_loop:
            self._settle_async(by_loop)
        if outgoing:
            try:
                self.on_commit(outgoing)
            except Exception:
                log.exception("delivery hand-off failed")
        if carries_client:
            try:
                self.after_client_batch()
            except Exception:
                log.exception("waking the background loops failed")

    @staticmethod
    def _in_lock_order(batch: list[_Item]) -> list[_Item]:
        """The batch with the requests that lock a row (`ROW_LOCKED_BY`) in (table, key) order, in the places
        those requests had (the others stay where they were, requests on one row keep their order). Any
        order of a batch is one the clients could have seen: none of its requests was answered before
        another was sent."""
        places, locking = [], []
        for place, item in enumerate(batch):
            key = ROW_LOCKED_BY.get(type(item.request))
            if key is not None:
                places.append(place)
                locking.append((key(item.request), place, item))
        if len(locking) < 2:
            return batch
        locking.sort(key=lambda entry: (entry[0], entry[1]))
        ordered = list(batch)
        for place, (_, _, item) in zip(places, locking):
            ordered[place] = item
        return ordered

    @staticmethod
    def _settle_async(by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]]) -> None:
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_on_loop, results)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting for these answers
                log.debug("%d answers for a closed event loop dropped", len(results))

    def _run_due(self, conn, now: int, outgoing: list[Outgoing], kinds: list[str], guarded: bool) -> None:
        """Runs the passes of `kinds` inside the open transaction, each as one request of the batch."""
        for kind in kinds:
            item = _Item(self.due_work[kind](), Future(), None, False)
            ok, value = self._run_one(conn, item, now, outgoing, guarded)
            if not ok:
                log.warning("due %s work failed: %s", kind, value)

    def _note_deadlines(self, tx) -> None:
        for kind, at in tx.deadlines.items():
            if kind not in tx.replaced:
                self.deadlines.note(kind, at)

    def _replace_deadlines(self, tx, seen: dict[str, int]) -> None:
        for kind in tx.replaced:
            self.deadlines.replace(kind, tx.deadlines[kind], seen)

    def _run_one(self, conn, item: _Item, now: int, outgoing: list[Outgoing], guarded: bool = True
                 ) -> tuple[bool, Any]:
        tx = conn.tx
        executor = EXECUTORS.get(type(item.request)) or BACKGROUND_EXECUTORS.get(type(item.request))
        if executor is None:
            return False, server_error(50000, f"unknown request {type(item.request).__name__}")
        if not guarded:
            return self._run_unguarded(tx, item, now, outgoing, executor)
        conn.savepoint()
        try:
            if item.dedup is not None:
                stored = tx.read_reply(item.dedup.key)
                if stored is not None:
                    conn.release_savepoint()
                    return item.dedup.replay(stored)
            for _ in range(MAX_RETRIES):
                local: list[Outgoing] = []
                ctx = Context(tx=tx, now=now, config=self.config, outbox=local)
                try:
                    result = executor(ctx, item.request)
                    outcome = (True, result)
                except Retry:
                    conn.rollback_to_savepoint()
                    conn.savepoint()
                    continue
                except ApiError as e:  # a decided outcome: writes made before it (lazy timeouts) stay
                    outcome = (False, e)
                except RejectedValue as e:  # a value the database cannot hold: a bad request
                    outcome = (False, invalid(str(e)))
                if item.dedup is not None:
                    tx.insert_reply(item.dedup.key, item.dedup.stored_form(*outcome), now)
                conn.release_savepoint()
                outgoing.extend(local)
                return outcome
            conn.rollback_to_savepoint()
            return False, server_error(50004, "the operation kept conflicting with concurrent writes")
        except RetryableStoreError:
            raise
        except Exception as e:
            log.exception("request %s failed", type(item.request).__name__)
            conn.rollback_to_savepoint()
            return False, server_error(50004, str(e))

    def _run_unguarded(self, tx, item: _Item, now: int, outgoing: list[Outgoing], executor) -> tuple[bool, Any]:
        """`_run_one` without a savepoint. The outcomes that keep the request's writes (a result, an
        ApiError after a lazy timeout, a rejected value) are the same; anything that would roll them back
        raises _NeedsSavepoints."""
        try:
            if item.dedup is not None:
                stored = tx.read_reply(item.dedup.key)
                if stored is not None:
                    return item.dedup.replay(stored)
            local: list[Outgoing] = []
            try:
                outcome: tuple[bool, Any] = (True, executor(Context(tx=tx, now=now, config=self.config,
                                                                    outbox=local), item.request))
            except ApiError as e:
                outcome = (False, e)
            except RejectedValue as e:
                outcome = (False, invalid(str(e)))
            if item.dedup is not None:
                tx.insert_reply(item.dedup.key, item.dedup.stored_form(*outcome), now)
        except RetryableStoreError:
            raise
        except Exception as e:  # Retry, or a failure: only a savepoint can undo this request alone
            raise _NeedsSavepoints() from e
        outgoing.extend(local)
        return outcome
