"""The in-process tier: the scenario table (the operations' decision tables), the background passes
and the store contract, run against the kernel on BOTH stores (SQLite, and PostgreSQL from the test
fixture) with a clock the test moves. No server process: the whole module takes seconds.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import uuid

import psycopg
import pytest
from psycopg import errors as pg_errors

from resonate.core.background import EnqueueTasks, SchedulePromises, TimeoutLocks, TimeoutPromises, TimeoutTasks
from resonate.core.model import (INT64_MAX, Lock, Mesg, Promise, PromiseState, Schedule, Task, TaskState,
                                 Value)
from resonate.core.store.base import RejectedValue, RetryableStoreError, StoreError
from resonate.core.store.postgres import PostgresStore, PostgresTx
from resonate.core.store.postgres import store_error as postgres_store_error
from resonate.core.store.sqlite import SqliteStore
from resonate.core.store.sqlite import store_error as sqlite_store_error
from tests.infra.fixtures import postgres_server  # noqa: F401  (one shared server per session)
from tests.scenarios.inprocess_runner import InProcessRunner, ManualClock
from tests.scenarios.runner import run_scenario
from tests.scenarios.table import SCENARIOS

STORES = ["sqlite", "postgres"]


@pytest.fixture(scope="module")
def postgres_dsn(postgres_server):  # noqa: F811
    name = f"inprocess_{uuid.uuid4().hex[:8]}"
    dsn = postgres_server.create_database(name)
    yield dsn
    postgres_server.drop_database(name)


def make_store(kind: str, request, tmp_path_factory):
    if kind == "sqlite":  # a real file; no fsync per commit: durability is the crash tests' subject
        return SqliteStore(str(tmp_path_factory.mktemp("inprocess") / "resonate.db"), synchronous="OFF")
    return PostgresStore(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(scope="module", params=STORES)
def shared_runner(request, tmp_path_factory):
    """One kernel per store for the whole table: every scenario runs under its own id prefix."""
    runner = InProcessRunner(make_store(request.param, request, tmp_path_factory))
    yield runner
    runner.close()


@pytest.fixture(params=STORES)
def runner(request, tmp_path_factory):
    """A kernel of its own, for tests that move the clock or run background passes over everything."""
    r = InProcessRunner(make_store(request.param, request, tmp_path_factory))
    if request.param == "postgres":  # the shared database: start from empty tables
        conn = psycopg.connect(request.getfixturevalue("postgres_dsn"), autocommit=True)
        with conn:
            conn.execute("TRUNCATE promises, callbacks, schedules, locks, tasks, replies")
    yield r
    r.close()


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.needs <= InProcessRunner.features],
                         ids=lambda s: s.name)
def test_scenario_in_process(shared_runner, scenario):
    problems = run_scenario(shared_runner, scenario)
    assert not problems, "\n".join(problems)


def test_every_scenario_runs_in_process():
    assert all(s.needs <= InProcessRunner.features for s in SCENARIOS)


# -- background passes, on the injected clock ---------------------------------------------------------

def test_a_promise_times_out_when_the_clock_passes_its_deadline(runner):
    now = runner.clock()
    assert runner.call("promises.create", {"id": "p", "timeout": now + 1000})[0] == 20100
    assert runner.request(TimeoutPromises())[1] == 0  # not yet due
    runner.clock.advance(1000)
    assert runner.request(TimeoutPromises())[1] == 1
    code, body = runner.call("promises.read", {"id": "p"})
    assert (code, body["state"], body["completedOn"]) == (20000, "REJECTED_TIMEDOUT", now + 1000)


def test_a_schedule_fires_once_per_due_time(runner):
    code, body = runner.call("schedules.create", {"id": "s", "cron": "* * * * *", "promiseId": "run.{{.timestamp}}",
                                                  "promiseTimeout": 60_000})
    assert code == 20100
    first = body["nextRunTime"]
    assert runner.request(SchedulePromises())[1] == 0
    runner.clock.now_ms = first
    assert runner.request(SchedulePromises())[1] == 1
    assert runner.request(SchedulePromises())[1] == 0  # advanced: not due again at the same instant
    code, promise = runner.call("promises.read", {"id": f"run.{first}"})
    assert code == 20000 and promise["tags"]["resonate:schedule"] == "s"
    assert runner.call("schedules.read", {"id": "s"})[1]["nextRunTime"] == first + 60_000


def test_an_expired_lock_is_released_by_the_clock(runner):
    lock = {"resourceId": "r", "executionId": "e1", "processId": "p1", "ttl": 5000}
    assert runner.call("locks.acquire", lock)[0] == 20100
    assert runner.call("locks.acquire", {**lock, "executionId": "e2"})[0] == 40305
    runner.clock.advance(5000)
    assert runner.request(TimeoutLocks())[1] == 1
    assert runner.call("locks.acquire", {**lock, "executionId": "e2"})[0] == 20100


def test_a_callback_becomes_a_task_that_is_sent_then_retried_after_its_claim_lapses(runner):
    sent = []
    runner.kernel.on_commit = sent.extend
    now = runner.clock()
    assert runner.call("promises.create", {"id": "root", "timeout": now + 600_000})[0] == 20100
    assert runner.call("promises.create", {"id": "leaf", "timeout": now + 600_000})[0] == 20100
    assert runner.call("promises.callback", {"promiseId": "leaf", "rootPromiseId": "root",
                                             "recv": "poll://any@workers", "timeout": now + 600_000})[0] == 20100
    assert runner.call("promises.complete", {"id": "leaf", "state": "RESOLVED"})[0] == 20100
    assert runner.request(EnqueueTasks())[1] == 1
    assert [json.loads(m.recv) for m in sent] == ["poll://any@workers"] and sent[0].counter == 1
    task_id = sent[0].task_id
    claim = {"id": task_id, "counter": 1, "processId": "w", "ttl": 10_000}
    assert runner.call("tasks.claim", claim)[0] == 20100
    runner.clock.advance(10_000)
    assert runner.request(TimeoutTasks())[1] == 1  # the claim lapsed: back to INIT, counter 2
    assert runner.call("tasks.claim", claim)[0] == 40308
    assert runner.request(EnqueueTasks())[1] == 1
    assert sent[-1].task_id == task_id and sent[-1].counter == 2


# -- the store contract --------------------------------------------------------------------------------

def test_sqlite_busy_is_retryable_and_other_failures_are_not(tmp_path):
    path = str(tmp_path / "busy.db")
    SqliteStore(path).migrate()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as busy:
            waiter.execute("BEGIN IMMEDIATE")
        error = sqlite_store_error(busy.value)
        assert isinstance(error, RetryableStoreError) and error.reason == "busy"
        with pytest.raises(sqlite3.OperationalError) as bad:
            waiter.execute("SELECT nothing FROM nowhere")
        error = sqlite_store_error(bad.value)
        assert isinstance(error, StoreError) and not isinstance(error, RetryableStoreError)
        waiter.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_postgres_conflicts_are_retryable_and_other_failures_are_not(postgres_dsn):
    for kind, reason in ((pg_errors.SerializationFailure, "serialization"), (pg_errors.DeadlockDetected, "deadlock"),
                         (pg_errors.LockNotAvailable, "lock_not_available")):
        error = postgres_store_error(kind("conflict"))
        assert isinstance(error, RetryableStoreError) and error.reason == reason
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        tx = PostgresTx(conn.cursor())
        with pytest.raises(StoreError) as e:
            tx.one("SELECT nothing FROM nowhere")
        assert not isinstance(e.value, RetryableStoreError)
        assert isinstance(e.value.__cause__, pg_errors.UndefinedTable)


def test_postgres_refuses_a_value_it_cannot_hold_as_a_bad_request(postgres_dsn):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        tx = PostgresTx(conn.cursor())
        with pytest.raises(RejectedValue, match="NUL"):
            tx.tag_filter({"k": "v\x00"})


def test_a_real_deadlock_is_classified_retryable(postgres_dsn):
    """Two transactions lock two rows in opposite orders: PostgreSQL kills one of them (a deadlock), and
    the store classifies that as retryable, which the kernel answers by running the batch again."""
    clock = ManualClock()
    runner = InProcessRunner(PostgresStore(postgres_dsn), clock)
    try:
        for pid in ("dl-1", "dl-2"):
            assert runner.call("promises.create", {"id": pid, "timeout": clock() + 10**9})[0] in (20100, 20000)
    finally:
        runner.close()
    barrier = threading.Barrier(2)
    results = {}

    def lock_in_order(name, first, second):
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute("SELECT 1 FROM promises WHERE id = %s FOR UPDATE", (first,))
            barrier.wait(timeout=10)
            try:
                conn.execute("SELECT 1 FROM promises WHERE id = %s FOR UPDATE", (second,))
                results[name] = "locked"
            except psycopg.Error as e:
                results[name] = postgres_store_error(e)

    threads = [threading.Thread(target=lock_in_order, args=("x", "dl-1", "dl-2")),
               threading.Thread(target=lock_in_order, args=("y", "dl-2", "dl-1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = list(results.values())
    assert len(outcomes) == 2 and "locked" in outcomes, outcomes
    assert any(isinstance(o, RetryableStoreError) and o.reason == "deadlock" for o in outcomes), outcomes


# -- the store contract: each conditional write affects a row only when its condition holds --------------

@pytest.fixture(params=STORES)
def tx(request, tmp_path):
    """One open transaction on a migrated store, rolled back afterwards."""
    if request.param == "sqlite":
        store = SqliteStore(str(tmp_path / "contract.db"), synchronous="OFF")
    else:
        store = PostgresStore(request.getfixturevalue("postgres_dsn"))
    store.migrate()
    conn = store.connect()
    conn.begin()
    yield conn.tx
    conn.rollback()
    conn.close()
    store.close()


def _promise(pid: str, timeout: int = 10**15, tags=None) -> Promise:
    return Promise(id=pid, state=PromiseState.PENDING, param=Value({"h": "1"}, b"data"), value=Value(),
                   timeout=timeout, tags=tags or {}, created_on=1)


def _task(tid: str, root: str, state=TaskState.CLAIMED, counter: int = 1) -> Task:
    return Task(id=tid, state=state, root_promise_id=root, recv='"poll://any@w"',
                mesg=Mesg("invoke", root, root), timeout=10**15, counter=counter, ttl=1000, expires_at=5000,
                process_id="w")


def test_store_promises_insert_once_and_complete_once(tx):
    pid = f"c-{uuid.uuid4().hex[:8]}"
    assert tx.insert_promise(_promise(pid, tags={"k": "v"}))
    assert not tx.insert_promise(_promise(pid))  # a second insert of the id affects nothing
    stored = tx.read_promise(pid)
    assert (stored.param, stored.tags, stored.state) == (Value({"h": "1"}, b"data"), {"k": "v"}, PromiseState.PENDING)
    assert tx.update_promise(pid, PromiseState.RESOLVED, Value({}, b"v"), "ik", 7)
    assert not tx.update_promise(pid, PromiseState.REJECTED, Value(), None, 8)  # only a pending one completes
    done = tx.read_promise(pid)
    assert (done.state, done.value.data, done.idempotency_key_for_complete, done.completed_on) == (
        PromiseState.RESOLVED, b"v", "ik", 7)


def test_store_search_pages_newest_first_with_tags(tx):
    prefix = f"s-{uuid.uuid4().hex[:8]}-"
    for i in range(5):
        assert tx.insert_promise(_promise(f"{prefix}{i}", tags={"even": str(i % 2 == 0)}))
    mask = int(PromiseState.PENDING)
    page = tx.search_promises(f"{prefix}%", mask, {}, 2, None)
    assert [p.id for p in page] == [f"{prefix}4", f"{prefix}3"]
    rest = tx.search_promises(f"{prefix}%", mask, {}, 10, page[-1].sort_id)
    assert [p.id for p in rest] == [f"{prefix}2", f"{prefix}1", f"{prefix}0"]
    even = tx.search_promises(f"{prefix}%", mask, {"even": "True"}, 10, None)
    assert [p.id for p in even] == [f"{prefix}4", f"{prefix}2", f"{prefix}0"]
    assert tx.search_promises(f"{prefix}%", int(PromiseState.RESOLVED), {}, 10, None) == []


def test_store_task_updates_are_fenced_by_state_and_counter(tx):
    root = f"t-{uuid.uuid4().hex[:8]}"
    task = _task(f"__invoke:{root}", root)
    assert tx.insert_task(task)
    assert tx.valid_fence(task.id, 1) and not tx.valid_fence(task.id, 2)
    task.state = TaskState.COMPLETED
    assert not tx.update_task(task, TaskState.CLAIMED, 2)  # wrong counter
    assert not tx.update_task(task, TaskState.INIT, 1)  # wrong state
    assert tx.update_task(task, TaskState.CLAIMED, 1)
    assert tx.read_task(task.id).state is TaskState.COMPLETED


def test_store_heartbeat_clamps_at_int64(tx):
    root = f"h-{uuid.uuid4().hex[:8]}"
    task = _task(f"__invoke:{root}", root)
    task.ttl, task.process_id = INT64_MAX, f"proc-{root}"
    assert tx.insert_task(task)
    assert tx.heartbeat_tasks(task.process_id, 10**15) == 1
    assert tx.read_task(task.id).expires_at == INT64_MAX


def test_store_schedule_advances_only_from_the_expected_next_run(tx):
    sid = f"sch-{uuid.uuid4().hex[:8]}"
    schedule = Schedule(id=sid, description="", cron="* * * * *", tags={}, promise_id="p", promise_timeout=1,
                        promise_param=Value(), promise_tags={}, last_run_time=None, next_run_time=60_000,
                        idempotency_key=None, created_on=1)
    assert tx.insert_schedule(schedule)
    assert not tx.insert_schedule(schedule)
    assert not tx.update_schedule(sid, 0, 120_000)  # someone else advanced it: nothing happens
    assert tx.update_schedule(sid, 60_000, 120_000)
    stored = tx.read_schedule(sid)
    assert (stored.last_run_time, stored.next_run_time) == (60_000, 120_000)
    assert tx.delete_schedule(sid) and not tx.delete_schedule(sid)


def test_store_locks_belong_to_their_execution(tx):
    rid = f"l-{uuid.uuid4().hex[:8]}"
    assert tx.acquire_lock(Lock(rid, "e1", "p1", 100, 1100))
    assert tx.acquire_lock(Lock(rid, "e1", "p2", 100, 1200))  # the same execution re-acquires
    assert not tx.acquire_lock(Lock(rid, "e2", "p3", 100, 1300))
    assert not tx.release_lock(rid, "e2")
    assert tx.release_lock(rid, "e1")


def test_store_replies_are_kept_once(tx):
    key = f"r-{uuid.uuid4().hex[:8]}"
    assert tx.read_reply(key) is None
    tx.insert_reply(key, b"first", 1)
    tx.insert_reply(key, b"second", 2)
    assert tx.read_reply(key) == b"first"
