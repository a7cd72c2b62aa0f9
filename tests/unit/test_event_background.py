"""Event-driven background work (issue 8), in process with an injected clock: the deadline book, due
work done inside batches, and the loops' wake-up and coalescing rules."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from resonate.core import deadlines as dl
from resonate.core.background import TimeoutPromises
from resonate.core.codes import ApiError, server_error
from resonate.core.kernel import Kernel
from resonate.core.loops import PERIOD, BackgroundLoops, LoopConfig
from resonate.core.operations import Result, decode
from resonate.core.store.sqlite import SqliteStore

T0 = 1_700_000_000_000


class Clock:
    def __init__(self, now: int = T0):
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_kernel(tmp_path, clock: Clock, *, due_work: bool = True) -> tuple[Kernel, list]:
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), clock=clock)
    sent: list = []
    kernel.on_commit = sent.extend
    kernel.start()
    if due_work:  # what the event-driven loops install, without their threads
        loops = BackgroundLoops(kernel)
        kernel.due_work = {p.name: p.make for p in loops.passes}
    return kernel, sent


def call(kernel: Kernel, op: str, **fields):
    try:
        return kernel.call(decode(op, fields))
    except ApiError as e:
        return e


def test_the_book_knows_each_deadline_written(tmp_path):
    clock = Clock()
    kernel, _ = make_kernel(tmp_path, clock, due_work=False)
    try:
        call(kernel, "promises.create", id="late", timeout=T0 + 5000)
        call(kernel, "promises.create", id="soon", timeout=T0 + 300)
        call(kernel, "locks.acquire", resourceId="r", executionId="e", processId="p", ttl=700)
        assert kernel.deadlines.at(dl.TIMEOUT_PROMISES) == T0 + 300
        assert kernel.deadlines.at(dl.TIMEOUT_LOCKS) == T0 + 700
        assert kernel.deadlines.at(dl.SCHEDULE_PROMISES) == dl.NEVER
        # the pass replaces its kind's deadline with the store's next one
        clock.now = T0 + 300
        assert kernel.call(TimeoutPromises(100)).body == 1
        assert kernel.deadlines.at(dl.TIMEOUT_PROMISES) == T0 + 5000
    finally:
        kernel.stop()


def test_due_work_is_done_before_the_batchs_requests(tmp_path):
    clock = Clock()
    kernel, _ = make_kernel(tmp_path, clock)
    try:
        assert call(kernel, "locks.acquire", resourceId="r", executionId="a", processId="p", ttl=100).code == 20100
        clock.now = T0 + 100  # the lock expired: no pass has run, yet the next request must not see it held
        assert call(kernel, "locks.acquire", resourceId="r", executionId="b", processId="q", ttl=100).code == 20100
    finally:
        kernel.stop()


def test_without_due_work_the_expired_lock_still_holds(tmp_path):
    """The same sequence on the period-only design: the comparison that makes the test above mean something."""
    clock = Clock()
    kernel, _ = make_kernel(tmp_path, clock, due_work=False)
    try:
        assert call(kernel, "locks.acquire", resourceId="r", executionId="a", processId="p", ttl=100).code == 20100
        clock.now = T0 + 100
        assert call(kernel, "locks.acquire", resourceId="r", executionId="b", processId="q", ttl=100).code == 40305
    finally:
        kernel.stop()


def test_a_task_created_by_a_commit_leaves_with_that_commit(tmp_path):
    clock = Clock()
    kernel, sent = make_kernel(tmp_path, clock)
    try:
        batches = kernel.batches
        created = call(kernel, "promises.create", id="job", timeout=T0 + 60_000,
                       tags={"resonate:invoke": "poll://any@workers"})
        assert created.code == 20100
        assert kernel.batches == batches + 1
        assert [(m.task_id, m.body["type"]) for m in sent] == [("__invoke:job", "invoke")]
        # a completion's callbacks become resume tasks, sent with the completion's commit too
        call(kernel, "promises.create", id="child", timeout=T0 + 60_000)
        call(kernel, "promises.callback", promiseId="child", rootPromiseId="job", recv="poll://any@workers",
             timeout=T0 + 60_000)
        call(kernel, "tasks.claim", id="__invoke:job", counter=1, processId="w", ttl=60_000)
        call(kernel, "tasks.complete", id="__invoke:job", counter=1)
        sent.clear()
        assert call(kernel, "promises.complete", id="child", state="RESOLVED").code == 20100
        assert [(m.task_id, m.body["type"]) for m in sent] == [("__resume:job:child", "resume")]
    finally:
        kernel.stop()


class FakeKernel:
    """Records the passes the loops submit; the test decides when each finishes."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.deadlines = dl.DeadlineBook()
        self.due_work: dict = {}
        self.after_client_batch = lambda: None
        self.submitted: dict[str, queue.Queue] = {}

    def submit(self, request, background=False) -> Future:
        future: Future = Future()
        self.submitted.setdefault(type(request).__name__, queue.Queue()).put(future)
        return future

    def next_run(self, kind: str, timeout: float = 5) -> Future:
        return self.submitted.setdefault(kind, queue.Queue()).get(timeout=timeout)


def test_wait_is_the_period_or_the_next_deadline_whichever_comes_first():
    clock, mono = Clock(), [100.0]
    kernel = FakeKernel(clock)
    loops = BackgroundLoops(kernel, LoopConfig(period_s=60), monotonic=lambda: mono[0])
    assert loops.wait_s(dl.TIMEOUT_PROMISES, last_start=100.0) == 60
    kernel.deadlines.note(dl.TIMEOUT_PROMISES, T0 + 200)
    assert loops.wait_s(dl.TIMEOUT_PROMISES, last_start=100.0) == 0.2
    assert loops.wait_s(dl.TIMEOUT_LOCKS, last_start=100.0) == 60  # another kind's deadline is not its own
    assert loops.wait_s(dl.TIMEOUT_PROMISES, last_start=100.0, held=True) == 60  # after a failure: no spin
    clock.now = T0 + 250
    assert loops.wait_s(dl.TIMEOUT_PROMISES, last_start=100.0) < 0  # due: runs at once
    period_only = BackgroundLoops(kernel, LoopConfig(period_s=60, mode=PERIOD), monotonic=lambda: mono[0])
    assert period_only.wait_s(dl.TIMEOUT_PROMISES, last_start=100.0) == 60


def test_the_book_keeps_a_deadline_noted_while_a_pass_was_replacing_it():
    book = dl.DeadlineBook()
    seen = book.versions()  # a pass's batch starts
    book.note(dl.ENQUEUE_TASKS, T0)  # another writer commits new work meanwhile
    book.replace(dl.ENQUEUE_TASKS, T0 + 30_000, seen)  # the pass did not see it
    assert book.at(dl.ENQUEUE_TASKS) == T0
    book.replace(dl.ENQUEUE_TASKS, T0 + 30_000, book.versions())
    assert book.at(dl.ENQUEUE_TASKS) == T0 + 30_000


def test_a_lowered_deadline_wakes_the_waiting_loop():
    clock = Clock()
    kernel = FakeKernel(clock)
    loops = BackgroundLoops(kernel, LoopConfig(period_s=3600))
    loops.start()
    try:
        kernel.next_run("TimeoutPromises").set_result(Result(200, 0))  # the first run, at start
        kernel.deadlines.note(dl.TIMEOUT_PROMISES, clock.now)  # due now: the sleeping loop must wake
        kernel.next_run("TimeoutPromises").set_result(Result(200, 0))
    finally:
        kernel.deadlines = dl.DeadlineBook()
        stop_and_release(loops, kernel)


def test_passes_are_coalesced_and_one_asked_for_while_running_runs_once_more():
    clock = Clock()
    kernel = FakeKernel(clock)
    loops = BackgroundLoops(kernel, LoopConfig(period_s=3600))
    loops.start()
    try:
        first = kernel.next_run("TimeoutLocks")
        for _ in range(3):
            loops.wake()  # asked three times while the first run is still going
        assert kernel.submitted["TimeoutLocks"].empty(), "a second run started while the first ran"
        first.set_result(Result(200, 0))
        kernel.next_run("TimeoutLocks").set_result(Result(200, 0))  # once more, right after
    finally:
        stop_and_release(loops, kernel)
    assert loops.runs["timeout-locks"] == 2


def test_a_full_batch_goes_again_at_once():
    clock = Clock()
    kernel = FakeKernel(clock)
    loops = BackgroundLoops(kernel, LoopConfig(period_s=3600, promise_batch_size=10))
    loops.start()
    try:
        kernel.next_run("TimeoutPromises").set_result(Result(200, 10))  # a full batch: backlog left
        kernel.next_run("TimeoutPromises").set_result(Result(200, 3))
    finally:
        stop_and_release(loops, kernel)
    assert loops.runs["timeout-promises"] == 2


def stop_and_release(loops: BackgroundLoops, kernel: FakeKernel) -> None:
    """Stops the loops; any pass still waiting on the fake kernel is answered so its thread can end."""
    stopper = threading.Thread(target=loops.stop)
    stopper.start()
    while stopper.is_alive():
        for q in kernel.submitted.values():
            try:
                q.get(timeout=0.05).set_exception(server_error(50300))
            except queue.Empty:
                pass
        stopper.join(0.05)


def test_after_a_client_batch_only_passes_with_due_work_are_asked():
    clock = Clock()
    kernel = FakeKernel(clock)
    loops = BackgroundLoops(kernel, LoopConfig(period_s=3600))  # not started: the asks are only recorded
    loops.wake_due()
    assert not any(loops._asked.values())  # nothing due: five empty passes per batch would cost throughput
    kernel.deadlines.note(dl.ENQUEUE_TASKS, clock.now)
    kernel.deadlines.note(dl.TIMEOUT_LOCKS, clock.now + 1)
    loops.wake_due()
    assert [name for name, asked in loops._asked.items() if asked] == [dl.ENQUEUE_TASKS]
    loops.wake()  # the agreed interface: every pass, due or not
    assert all(loops._asked.values())
