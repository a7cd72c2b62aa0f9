"""The kernel's promises: group commit, per-request isolation, one clock per batch, replayed replies."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import wait

import pytest

from resonate.api.kafka.dedup import KafkaDedup
from resonate.core import operations
from resonate.core.codes import ApiError
from resonate.core.kernel import Kernel
from resonate.core.operations import render
from resonate.core.requests import decode
from resonate.core.store.sqlite import SqliteStore


def make_kernel(tmp_path, **kw) -> Kernel:
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), queue_limit=100_000, **kw)
    kernel.start()
    return kernel


def create(i: int, timeout: int = 10**15):
    return decode("promises.create", {"id": f"p{i}", "timeout": timeout})


def test_concurrent_requests_share_transactions(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        futures = [kernel.submit(create(i)) for i in range(2000)]
        wait(futures)
        assert all(f.result().code == 20100 for f in futures)
        assert kernel.batches < 2000 / 4, f"{kernel.batches} transactions for 2000 requests: no group commit"
    finally:
        kernel.stop()


def test_a_failing_request_rolls_back_only_itself(tmp_path, monkeypatch):
    kernel = make_kernel(tmp_path)
    original = operations.EXECUTORS[operations.CreatePromise]

    def explode_on_p13(ctx, req):
        result = original(ctx, req)  # writes the promise, then fails: the write must not survive
        if req.id == "p13":
            raise RuntimeError("boom")
        return result

    try:
        # EXECUTORS is the one table the kernel dispatches through
        monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, explode_on_p13)
        futures = [kernel.submit(create(i)) for i in range(30)]
        wait(futures)
        codes = {i: (f.exception().code if f.exception() else f.result().code) for i, f in enumerate(futures)}
        assert codes.pop(13) == 50004
        assert set(codes.values()) == {20100}
        monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, original)
        with pytest.raises(ApiError) as e:
            kernel.call(decode("promises.read", {"id": "p13"}))
        assert e.value.code == 40400
        assert kernel.call(decode("promises.read", {"id": "p12"})).code == 20000
    finally:
        kernel.stop()


def test_one_clock_reading_per_batch(tmp_path):
    readings = []
    lock = threading.Lock()

    def clock():
        with lock:
            readings.append(len(readings))
            return 1_000_000 + len(readings)

    kernel = make_kernel(tmp_path, clock=clock)
    try:
        futures = [kernel.submit(create(i)) for i in range(500)]
        wait(futures)
        created_on = {f.result().body.created_on for f in futures}
        assert len(created_on) == kernel.batches == len(readings)
    finally:
        kernel.stop()


def test_lazy_timeout_writes_survive_an_error_answer(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        kernel.call(create(1, timeout=1))
        with pytest.raises(ApiError) as e:
            kernel.call(decode("promises.complete", {"id": "p1", "state": "RESOLVED", "strict": True}))
        assert e.value.code == 40304
        # the timeout that the failed call discovered was committed
        p = kernel.store.connect().tx.read_promise("p1")
        assert p.state.name == "REJECTED_TIMEDOUT"
    finally:
        kernel.stop()


def test_deduplicated_request_is_answered_from_the_store(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        first = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c1")).result()
        again = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c1")).result()
        assert first.code == again.code == 20100  # not 409: the stored reply is replayed
        assert render(again.body) == render(first.body)
        fresh = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c2"))
        assert fresh.exception().code == 40900
        replay = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c2"))
        assert replay.exception().to_json() == fresh.exception().to_json()
    finally:
        kernel.stop()


def test_stopped_kernel_refuses_with_50300(tmp_path):
    kernel = make_kernel(tmp_path)
    kernel.stop()
    with pytest.raises(ApiError) as e:
        kernel.call(create(1))
    assert e.value.code == 50300


def test_cancelled_callers_do_not_stop_the_writer(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        futures = [kernel.submit(create(i)) for i in range(200)]
        for f in futures[::3]:
            f.cancel()
        wait([f for f in futures if not f.cancelled()])
        assert kernel.call(decode("promises.create", {"id": "after", "timeout": 10**15})).code == 20100
    finally:
        kernel.stop()


# -- submit_async: answers set on the caller's event loop, one hand-off per loop per batch

def named(pid: str):
    return decode("promises.create", {"id": pid, "timeout": 10**15})


def blocking_creates(monkeypatch, blocker_id: str):
    """Makes the create of `blocker_id` hold its writer until released: (entered, release) events."""
    entered, release = threading.Event(), threading.Event()
    original = operations.EXECUTORS[operations.CreatePromise]

    def create_or_block(ctx, req):
        if req.id == blocker_id:
            entered.set()
            assert release.wait(10), "the test never released the writer"
        return original(ctx, req)

    monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, create_or_block)
    return entered, release


def test_submit_async_cancelled_before_a_writer_takes_it_is_dropped(tmp_path, monkeypatch):
    kernel = make_kernel(tmp_path)
    entered, release = blocking_creates(monkeypatch, "blocker")

    async def scenario():
        blocker = kernel.submit_async(named("blocker"))
        await asyncio.to_thread(entered.wait, 10)  # the writer is busy: what comes next waits in the queue
        dropped = kernel.submit_async(named("dropped"))
        dropped.cancel()
        kept = kernel.submit_async(named("kept"))
        release.set()
        assert (await blocker).code == 20100
        assert (await kept).code == 20100
        assert dropped.cancelled()

    try:
        asyncio.run(scenario())
        assert kernel.call(named("after")).code == 20100  # one writer, FIFO: the dropped one was seen
        with pytest.raises(ApiError) as e:
            kernel.call(decode("promises.read", {"id": "dropped"}))
        assert e.value.code == 40400
        assert kernel._pending == 0  # its admission slot was released
    finally:
        release.set()
        kernel.stop()


def test_submit_async_cancelled_after_a_writer_took_it_runs_anyway(tmp_path, monkeypatch):
    kernel = make_kernel(tmp_path)
    entered, release = blocking_creates(monkeypatch, "taken")

    async def scenario():
        taken = kernel.submit_async(named("taken"))
        await asyncio.to_thread(entered.wait, 10)  # the writer runs it now
        taken.cancel()
        release.set()
        # the writer's answer comes after this create's (same loop, FIFO): the discarded one was set
        # aside without disturbing the loop or the cancelled future
        assert (await kernel.submit_async(named("next"))).code == 20100
        assert taken.cancelled()

    try:
        asyncio.run(scenario())
        assert kernel.call(decode("promises.read", {"id": "taken"})).code == 20000
        assert kernel._pending == 0
    finally:
        release.set()
        kernel.stop()


def test_submit_async_answers_reach_their_own_futures_on_two_loops(tmp_path):
    kernel = make_kernel(tmp_path)
    answers: dict[str, list] = {}

    async def client(prefix: str):
        ids = [f"{prefix}-{i}" for i in range(300)]
        futures = [kernel.submit_async(named(pid)) for pid in ids]
        for f in futures[::7]:
            f.cancel()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        answers[prefix] = [(pid, f, outcome) for pid, f, outcome in zip(ids, futures, outcomes)]

    try:
        threads = [threading.Thread(target=asyncio.run, args=(client(prefix),)) for prefix in ("left", "right")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert set(answers) == {"left", "right"}
        for prefix, rows in answers.items():
            for pid, future, outcome in rows:
                if future.cancelled():
                    continue
                assert outcome.code == 20100 and outcome.body.id == pid, (pid, outcome)
            assert sum(not f.cancelled() for _, f, _ in rows) >= 300 - 300 // 7 - 1
        assert kernel.call(named("flush")).code == 20100
        assert kernel._pending == 0
        assert kernel.batches < 600, "no group commit across the two loops"
    finally:
        kernel.stop()


def test_submit_async_refusals_arrive_on_the_future(tmp_path):
    kernel = make_kernel(tmp_path)
    kernel.stop()

    async def scenario():
        with pytest.raises(ApiError) as e:
            await kernel.submit_async(named("late"))
        assert e.value.code == 50300

    asyncio.run(scenario())


def test_a_request_that_retries_has_its_first_writes_undone(tmp_path, monkeypatch):
    """Requests run without savepoints until one must undo its writes: then the batch runs again with a
    savepoint per request, so the retried request starts from a clean state and its neighbours commit."""
    kernel = make_kernel(tmp_path)
    original = operations.EXECUTORS[operations.CreatePromise]
    retried = []

    def write_then_retry_once(ctx, req):
        result = original(ctx, req)
        if req.id == "p5" and not retried:
            retried.append(req.id)
            raise operations.Retry()  # as a lost race would, after this request wrote
        return result

    try:
        monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, write_then_retry_once)
        futures = [kernel.submit(create(i)) for i in range(20)]
        wait(futures)
        assert retried == ["p5"]
        # 20100, not 20000: the retry did not find the promise its first run had written
        assert [f.result().code for f in futures] == [20100] * 20
    finally:
        kernel.stop()


class Answer:
    """An answer object as submit_answer takes them, resolving an asyncio future."""

    def __init__(self, loop):
        self.future = loop.create_future()

    def done(self):
        return self.future.done()

    def cancelled(self):
        return False

    def set_result(self, result):
        self.future.set_result(result)

    def set_exception(self, error):
        self.future.set_exception(error)


def test_submit_answer_sends_one_loop_iterations_requests_to_the_writer_together(tmp_path, monkeypatch):
    kernel = make_kernel(tmp_path)
    entered, release = blocking_creates(monkeypatch, "blocker")

    async def scenario():
        loop = asyncio.get_running_loop()
        first = Answer(loop)
        kernel.submit_answer(named("blocker"), first, loop)
        while not entered.is_set():  # the writer holds the blocker's batch
            await asyncio.sleep(0.001)
        answers = [Answer(loop) for _ in range(50)]
        for i, answer in enumerate(answers):  # one loop iteration: held until its end
            kernel.submit_answer(named(f"together-{i}"), answer, loop)
        assert kernel._queue.qsize() == 0  # nothing reached the writers yet
        await asyncio.sleep(0)  # the iteration ends: all of them are queued at once
        assert kernel._queue.qsize() == 50
        batches = kernel.batches
        release.set()
        results = await asyncio.gather(first.future, *(a.future for a in answers))
        assert [r.code for r in results] == [20100] * 51
        assert kernel.batches == batches + 2  # the blocker's batch, then the fifty in one
        assert kernel._pending == 0

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        kernel.stop()


def test_submit_answer_held_when_the_kernel_stops_is_refused_with_50300(tmp_path):
    kernel = make_kernel(tmp_path)

    async def scenario():
        loop = asyncio.get_running_loop()
        answer = Answer(loop)
        kernel.submit_answer(named("admitted-then-stopped"), answer, loop)  # admitted, held to the iteration's end
        kernel.stop()
        with pytest.raises(ApiError) as e:
            await answer.future
        assert e.value.code == 50300
        assert kernel._pending == 0  # its admission was given back

    asyncio.run(scenario())


def test_submit_answer_answers_a_read_beside_the_writer_before_it_returns(tmp_path):
    kernel = make_kernel(tmp_path)

    async def scenario():
        loop = asyncio.get_running_loop()
        created = Answer(loop)
        kernel.submit_answer(named("read-me"), created, loop)
        assert (await created.future).code == 20100
        read, missing = Answer(loop), Answer(loop)
        kernel.submit_answer(decode("promises.read", {"id": "read-me"}), read, loop)
        kernel.submit_answer(decode("promises.read", {"id": "nowhere"}), missing, loop)
        assert read.done() and missing.done()  # answered on the spot, not queued for the writer
        assert read.future.result().body.id == "read-me"
        assert missing.future.exception().code == 40400
        assert kernel._pending == 0

    try:
        asyncio.run(scenario())
    finally:
        kernel.stop()


def test_a_batch_in_lock_order_runs_the_requests_that_lock_a_row_in_table_and_key_order():
    """Stores with several writers run a batch's requests that lock one row (a promise's reads, creations,
    completions, callbacks and subscriptions; a lock's acquisition; a task's claim) in (table, key) order,
    in the places those requests had; the others stay where they were, and requests on one row keep their
    order."""
    from resonate.core.kernel import _Item

    def batch(*requests):
        return [_Item(r, None, None, True) for r in requests]

    def complete(i, state="RESOLVED"):
        return decode("promises.complete", {"id": i, "state": state})

    def callback(i):
        return decode("promises.callback", {"promiseId": i, "rootPromiseId": "root", "recv": "r", "timeout": 1})

    def subscribe(i):
        return decode("promises.subscribe", {"id": "s", "promiseId": i, "recv": "r", "timeout": 1})
    create = decode("promises.create", {"id": "a-created", "timeout": 1})
    read = decode("promises.read", {"id": "b"})
    claim = decode("tasks.claim", {"id": "__invoke:a", "counter": 1, "processId": "p", "ttl": 1})
    acquire = decode("locks.acquire", {"resourceId": "z", "executionId": "e", "processId": "p", "ttl": 1})
    search = decode("promises.search", {"id": "*"})
    heartbeat = decode("tasks.heartbeat", {"processId": "p"})
    items = batch(claim, complete("c"), create, callback("a"), search, subscribe("b"), read,
                  complete("a", "REJECTED"), acquire, heartbeat)
    ordered = Kernel._in_lock_order(items)
    # locks, then promises, then tasks (a heartbeat's first), each by key; a search stays in place
    assert [item.request for item in ordered] == [acquire, callback("a"), complete("a", "REJECTED"), create, search,
                                                  subscribe("b"), read, complete("c"), heartbeat, claim]
    assert sorted(map(id, ordered)) == sorted(map(id, items))  # the same items, each once
    alone = batch(search, complete("z"), decode("schedules.read", {"id": "z"}))
    assert Kernel._in_lock_order(alone) is alone


def test_a_batch_run_again_after_a_failure_that_may_pass_is_counted_by_reason(tmp_path, monkeypatch):
    """resonate_kernel_batch_retries{reason}: what an operator watches for deadlocks between servers."""
    from resonate.core.store.base import RetryableStoreError
    from resonate.core.store.sqlite import SqliteConnection
    from resonate.observability import metrics

    def retries(reason: str) -> float:
        return metrics.REGISTRY.get_sample_value("resonate_kernel_batch_retries_total", {"reason": reason}) or 0

    commit, failed = SqliteConnection.commit, []

    def fail_once(self):
        if not failed:
            failed.append(True)
            raise RetryableStoreError("deadlock detected", "deadlock")
        commit(self)

    monkeypatch.setattr(SqliteConnection, "commit", fail_once)
    before, was_enabled = retries("deadlock"), metrics.enabled()
    metrics.enable()
    kernel = make_kernel(tmp_path)
    try:
        assert kernel.call(create(1)).code == 20100  # run again, and answered as if it had not failed
        assert failed == [True] and retries("deadlock") == before + 1
    finally:
        kernel.stop()
        if not was_enabled:
            metrics.disable()


def test_a_batch_rerun_waits_a_random_part_of_a_doubling_ceiling():
    """Two servers whose batches failed together (a deadlock's survivors) must not rerun in lockstep: the
    pause is half its ceiling plus a random part of the other half; the ceiling doubles up to a cap."""
    from resonate.core.kernel import RETRY_PAUSE_CAP_S, RETRY_PAUSE_FIRST_S, retry_pause

    assert retry_pause(0, lambda: 0.0) == RETRY_PAUSE_FIRST_S / 2
    assert retry_pause(0, lambda: 1.0) == RETRY_PAUSE_FIRST_S
    assert retry_pause(3, lambda: 0.5) == pytest.approx(0.75 * RETRY_PAUSE_FIRST_S * 8)
    assert retry_pause(30, lambda: 1.0) == RETRY_PAUSE_CAP_S  # capped, not 2**30 ms
    draws = {retry_pause(2) for _ in range(20)}
    assert len(draws) > 1 and all(2 * RETRY_PAUSE_FIRST_S <= d <= 4 * RETRY_PAUSE_FIRST_S for d in draws)
