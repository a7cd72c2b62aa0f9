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
    if kind == "sqlite":
        return SqliteStore(str(tmp_path_factory.mktemp("inprocess") / "resonate.db"))
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
        assert isinstance(sqlite_store_error(busy.value), RetryableStoreError)
        with pytest.raises(sqlite3.OperationalError) as bad:
            waiter.execute("SELECT nothing FROM nowhere")
        error = sqlite_store_error(bad.value)
        assert isinstance(error, StoreError) and not isinstance(error, RetryableStoreError)
        waiter.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_postgres_conflicts_are_retryable_and_other_failures_are_not(postgres_dsn):
    for kind in (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.LockNotAvailable):
        assert isinstance(postgres_store_error(kind("conflict")), RetryableStoreError)
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
    assert any(isinstance(o, RetryableStoreError) for o in outcomes), outcomes
