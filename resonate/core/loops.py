"""Background loops: each pass of background work is submitted to the kernel as an ordinary request.

Event-driven (the default, `mode="event"`): a pass runs
- after every kernel batch that carried a client request (as the reference's tick, which resets the
  background timers whenever a request arrived), when it has due work: the kernel's deadline book
  knows every deadline written, so a deadline-driven pass with nothing due could change nothing and
  is not run (a pass without a deadline kind, such as housekeeping, runs on the period and wake()),
- when the earliest deadline of its kind falls due (resonate/core/deadlines.py), so a timeout fires
  at its deadline rather than at the next period,
- and at least once per period when idle.
Runs of one pass are coalesced: never two at once, and one asked for while it runs runs once more
right after it. A pass that leaves a full batch behind goes again at once (v0.8.2).

The kernel also runs due passes inside its own batches (see kernel.py), so the loops are the idle path.

`mode="period"` keeps the old behaviour (each pass once per period, nothing else), for baselines.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import deadlines as dl
from .background import EnqueueTasks, PruneReplies, SchedulePromises, TimeoutLocks, TimeoutPromises, TimeoutTasks
from .codes import ApiError

log = logging.getLogger("resonate.loops")

EVENT, PERIOD = "event", "period"
MODES = (EVENT, PERIOD)
PASS_TIMEOUT_S = 60.0  # a pass not done by then is logged and the loop goes on


@dataclass
class LoopConfig:
    period_s: float = 1.0
    promise_batch_size: int = 100
    schedule_batch_size: int = 100
    task_batch_size: int = 100
    reply_retention_ms: int = 24 * 3600 * 1000  # stored replies of deduplicated (Kafka) requests
    reply_batch_size: int = 1000
    mode: str = EVENT


@dataclass(frozen=True)
class Pass:
    name: str  # for the deadline-driven passes, their deadline kind (deadlines.py)
    make: Callable[[], Any]  # the request the kernel runs
    limit: int | None  # a pass that did this many goes again at once (None: always done in one go)


class BackgroundLoops:
    def __init__(self, kernel, config: LoopConfig | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic):
        self.kernel = kernel
        self.config = config or LoopConfig()
        if self.config.mode not in MODES:
            raise ValueError(f"unknown background mode {self.config.mode!r} (one of {', '.join(MODES)})")
        self.monotonic = monotonic
        self.passes: list[Pass] = self._passes()
        self._cond = threading.Condition()
        self._asked = {p.name: False for p in self.passes}
        self._pass_locks = {p.name: threading.Lock() for p in self.passes}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.runs = {p.name: 0 for p in self.passes}  # for tests: passes submitted per name

    def _passes(self) -> list[Pass]:
        """THE table of background passes: one row per pass (name, request factory, batch limit)."""
        c = self.config
        return [
            Pass(dl.TIMEOUT_PROMISES, lambda: TimeoutPromises(c.promise_batch_size), c.promise_batch_size),
            Pass(dl.SCHEDULE_PROMISES, lambda: SchedulePromises(c.schedule_batch_size), c.schedule_batch_size),
            Pass(dl.TIMEOUT_LOCKS, TimeoutLocks, None),
            Pass(dl.ENQUEUE_TASKS, lambda: EnqueueTasks(c.task_batch_size), c.task_batch_size),
            Pass(dl.TIMEOUT_TASKS, lambda: TimeoutTasks(c.task_batch_size), c.task_batch_size),
            # housekeeping (no deadline kind): runs on the period and on wake()
            Pass("prune-replies", lambda: PruneReplies(c.reply_retention_ms, c.reply_batch_size), c.reply_batch_size),
        ]

    @property
    def event_driven(self) -> bool:
        return self.config.mode == EVENT

    # -- lifecycle
    def start(self) -> None:
        if self.event_driven:
            self.kernel.due_work = {p.name: p.make for p in self.passes if p.name in dl.KINDS}
            self.kernel.after_client_batch = self.wake_due
            self.kernel.deadlines.on_lowered = self._deadline_lowered
        for p in self.passes:
            t = threading.Thread(target=self._loop, args=(p,), name=f"resonate-{p.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """No new pass starts; waits (briefly) for running ones. Call off the event loop (it joins)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self.event_driven:
            self.kernel.due_work = {}
            self.kernel.after_client_batch = lambda: None
            self.kernel.deadlines.on_lowered = lambda kind, at: None
        for t in self._threads:
            t.join(5)
        self._threads.clear()

    close = stop

    # -- asking
    def wake(self) -> None:
        """Asks every pass to run soon (at once if idle, else once more right after its current run)."""
        with self._cond:
            for name in self._asked:
                self._asked[name] = True
            self._cond.notify_all()

    def wake_due(self) -> None:
        """After a client batch: asks the deadline-driven passes that have due work."""
        now = self.kernel.clock()
        book = self.kernel.deadlines
        if book.earliest() > now:  # the common case after a batch: nothing due, one min() over the kinds
            return
        due = [p.name for p in self.passes if p.name in dl.KINDS and book.at(p.name) <= now]
        if due:
            with self._cond:
                for name in due:
                    self._asked[name] = True
                self._cond.notify_all()

    def _deadline_lowered(self, kind: str, at: int) -> None:
        if kind in self._asked:
            with self._cond:
                self._cond.notify_all()  # the waiting loops recompute how long to wait

    def run_once(self, timeout: float = PASS_TIMEOUT_S) -> None:
        """Runs every pass once to completion (until no backlog is left), in the caller's thread."""
        for p in self.passes:
            self._run_pass(p, timeout)

    # -- the loops
    def wait_s(self, name: str, last_start: float, held: bool = False) -> float:
        """How long the loop of `name` waits before its next run: the period after its last start, or
        its kind's next deadline when sooner (event mode; `held` after a failure: the period only)."""
        wait = last_start + self.config.period_s - self.monotonic()
        if self.event_driven and not held:
            at = self.kernel.deadlines.at(name)
            if at != dl.NEVER:
                wait = min(wait, (at - self.kernel.clock()) / 1000)
        return wait

    def _loop(self, p: Pass) -> None:
        last_start, held = float("-inf"), False
        while True:
            with self._cond:
                while not self._stop.is_set() and not self._asked[p.name]:
                    wait = self.wait_s(p.name, last_start, held)
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stop.is_set():
                    return
                self._asked[p.name] = False
            last_start, held = self.monotonic(), False
            try:
                self._run_pass(p, PASS_TIMEOUT_S)
            except ApiError as e:
                if e.code == 50300:
                    return  # the kernel is stopping
                log.warning("background pass %s failed: %s", p.name, e)
                held = True
            except Exception:
                log.exception("background pass %s failed", p.name)
                held = True  # its deadline may stay past: wait the period rather than spin

    def _run_pass(self, p: Pass, timeout: float) -> None:
        with self._pass_locks[p.name]:
            while True:
                self.runs[p.name] += 1
                done = self.kernel.submit(p.make(), background=True).result(timeout)
                if p.limit is None or done.body < p.limit:
                    return
