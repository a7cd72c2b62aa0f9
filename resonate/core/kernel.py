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

import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from . import gojson
from .background import BACKGROUND_EXECUTORS
from .codes import ApiError, ErrorKind, server_error
from .deadlines import DeadlineBook
from .operations import EXECUTORS, Context, CoreConfig, Outgoing, Result, Retry, render
from .store.base import RetryableStoreError, Store

log = logging.getLogger("resonate.kernel")

MAX_RETRIES = 8


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Rendered:
    """A response body already in its JSON form (a stored reply being replayed)."""

    __slots__ = ("json",)

    def __init__(self, json_body: Any):
        self.json = json_body

    def to_json(self) -> Any:
        return self.json


class ReplayedError(ApiError):
    """A stored error reply, replayed verbatim."""

    def __init__(self, stored: dict):
        super().__init__(stored.get("code", 50000), ErrorKind.SERVER)
        self.stored = stored

    def to_json(self) -> dict:
        return self.stored


@dataclass(slots=True)
class _Item:
    request: Any
    future: Future
    dedup_key: str | None
    counted: bool


_STOP = object()


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
        self._accepting = False
        self._threads: list[threading.Thread] = []
        self.batches = 0  # for tests and benchmarks: how many transactions were committed
        self.deadlines = DeadlineBook()
        # kind -> request factory of the pass doing that kind's due work inside batches (set by the
        # event-driven loops; empty: passes run only when the loops submit them)
        self.due_work: dict[str, Callable[[], Any]] = {}
        self.after_client_batch: Callable[[], None] = lambda: None
        # deadlines nearer than this (ms from the batch's clock) are published to the other servers
        # on the same database inside the batch's transaction (0: none; PostgreSQL only)
        self.share_horizon_ms = 0

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
        self._accepting = False
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        self.store.close()

    @property
    def accepting(self) -> bool:
        return self._accepting

    # -- submission
    def submit(self, request: Any, dedup_key: str | None = None, *, background: bool = False) -> Future:
        future: Future = Future()
        if not self._accepting:
            future.set_exception(server_error(50300))
            return future
        counted = not background
        if counted:
            with self._pending_lock:
                if self._pending >= self.queue_limit:
                    future.set_exception(server_error(50301))
                    return future
                self._pending += 1
        self._queue.put(_Item(request, future, dedup_key, counted))
        return future

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
        live = []
        for item in batch:
            if item.future.set_running_or_notify_cancel():
                live.append(item)
            elif item.counted:
                with self._pending_lock:
                    self._pending -= 1
        batch = live
        if not batch:
            return
        outcomes: list[tuple[bool, Any]] = []
        outgoing: list[Outgoing] = []
        carries_client = any(item.counted for item in batch)
        for attempt in range(MAX_RETRIES):
            now = self.clock()
            outcomes, outgoing = [], []
            seen = self.deadlines.versions()
            due_work = self.due_work
            try:
                conn.begin()
                conn.tx.begin_deadlines()  # after begin: a reconnect there replaces conn.tx
                if carries_client and due_work:
                    self._run_due(conn, now, outgoing, self.deadlines.due(now, due_work))
                for item in batch:
                    outcomes.append(self._run_one(conn, item, now, outgoing))
                if due_work:
                    self._run_due(conn, now, outgoing, [k for k, at in conn.tx.deadlines.items()
                                                        if at <= now and k in due_work])
                if self.share_horizon_ms:
                    near = {k: at for k, at in conn.tx.deadlines.items() if at < now + self.share_horizon_ms}
                    if near:
                        conn.tx.publish_deadlines(near)
                conn.commit()
                self.batches += 1
                self._record_deadlines(conn.tx, seen)
                break
            except RetryableStoreError as e:
                conn.rollback()
                log.info("batch retried after a transient store error: %s", e)
                time.sleep(min(0.001 * 2 ** attempt, 0.1))
            except Exception as e:  # the transaction failed as a whole: nothing was written
                log.exception("store transaction failed")
                try:
                    conn.rollback()
                except Exception:
                    pass
                outcomes = [(False, server_error(50004, str(e)))] * len(batch)
                outgoing = []
                break
        else:
            outcomes = [(False, server_error(50004, "the store stayed busy; try again"))] * len(batch)
            outgoing = []
        for item, (ok, value) in zip(batch, outcomes):
            if item.counted:
                with self._pending_lock:
                    self._pending -= 1
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)
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

    def _run_due(self, conn, now: int, outgoing: list[Outgoing], kinds: list[str]) -> None:
        """Runs the passes of `kinds` inside the open transaction, each in its own savepoint."""
        for kind in kinds:
            item = _Item(self.due_work[kind](), Future(), None, False)
            ok, value = self._run_one(conn, item, now, outgoing)
            if not ok:
                log.warning("due %s work failed: %s", kind, value)

    def _record_deadlines(self, tx, seen: dict[str, int]) -> None:
        for kind, at in tx.deadlines.items():
            if kind in tx.replaced:
                self.deadlines.replace(kind, at, seen)
            else:
                self.deadlines.note(kind, at)

    def _run_one(self, conn, item: _Item, now: int, outgoing: list[Outgoing]) -> tuple[bool, Any]:
        tx = conn.tx
        executor = EXECUTORS.get(type(item.request)) or BACKGROUND_EXECUTORS.get(type(item.request))
        if executor is None:
            return False, server_error(50000, f"unknown request {type(item.request).__name__}")
        conn.savepoint()
        try:
            if item.dedup_key is not None:
                stored = tx.read_reply(item.dedup_key)
                if stored is not None:
                    conn.release_savepoint()
                    return _replay(stored)
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
                if item.dedup_key is not None:
                    tx.insert_reply(item.dedup_key, _stored_form(outcome), now)
                conn.release_savepoint()
                outgoing.extend(local)
                return outcome
            conn.rollback_to_savepoint()
            return False, server_error(50004, "the operation kept conflicting with concurrent writes")
        except RetryableStoreError:
            raise
        except Exception as e:
            if _is_transient(e):
                raise RetryableStoreError(str(e)) from e
            log.exception("request %s failed", type(item.request).__name__)
            conn.rollback_to_savepoint()
            return False, server_error(50004, str(e))


def _is_transient(e: Exception) -> bool:
    name = type(e).__name__
    return name in ("SerializationFailure", "DeadlockDetected", "LockNotAvailable") or "database is locked" in str(e)


def _stored_form(outcome: tuple[bool, Any]) -> bytes:
    ok, value = outcome
    if ok:
        return gojson.dumps({"code": value.code, "body": render(value.body)}).encode()
    return gojson.dumps({"code": value.code, "error": value.to_json()}).encode()


def _replay(stored: bytes) -> tuple[bool, Any]:
    doc = json.loads(stored)
    if "error" in doc:
        return False, ReplayedError(doc["error"])
    body = doc.get("body")
    return True, Result(doc["code"], Rendered(body) if body is not None else None)
