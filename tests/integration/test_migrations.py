"""Schema versions: a real version-1 database (SQLite file, PostgreSQL database) is refused by the
server, upgraded by `resonate migrate up`, and then has every index of the latest schema.

The version-1 schemas below are the reference's 001_initial_schema.sql (spec 1.11), written out as
a database created by an earlier version of this server (or the reference) has them.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid

import httpx
import psycopg
import pytest

from resonate.core import deadlines as dl
from resonate.core.store import migrations, tables
from resonate.core.store.base import SchemaError
from resonate.core.store.postgres import PostgresStore
from resonate.core.store.sqlite import SqliteStore
from tests.infra.fixtures import postgres_server  # noqa: F401
from tests.integration.test_postgres_scenarios import postgres_store_flags
from tests.server import ROOT, ServerProcess

SQLITE_V1 = """
CREATE TABLE migrations (id INTEGER, PRIMARY KEY (id));
CREATE TABLE promises (id TEXT UNIQUE, sort_id INTEGER PRIMARY KEY AUTOINCREMENT, state INTEGER DEFAULT 1,
  param_headers BLOB, param_data BLOB, value_headers BLOB, value_data BLOB, timeout INTEGER,
  idempotency_key_for_create TEXT, idempotency_key_for_complete TEXT, tags BLOB, created_on INTEGER,
  completed_on INTEGER);
CREATE INDEX idx_promises_id ON promises(id);
CREATE TABLE callbacks (id TEXT UNIQUE, promise_id TEXT, root_promise_id TEXT, recv BLOB, mesg BLOB,
  timeout INTEGER, created_on INTEGER);
CREATE TABLE schedules (id TEXT UNIQUE, sort_id INTEGER PRIMARY KEY AUTOINCREMENT, description TEXT, cron TEXT,
  tags BLOB, promise_id TEXT, promise_timeout INTEGER, promise_param_headers BLOB, promise_param_data BLOB,
  promise_tags BLOB, last_run_time INTEGER, next_run_time INTEGER, idempotency_key TEXT, created_on INTEGER);
CREATE INDEX idx_schedules_id ON schedules(id);
CREATE INDEX idx_schedules_next_run_time ON schedules(next_run_time);
CREATE TABLE locks (resource_id TEXT UNIQUE, execution_id TEXT, process_id TEXT, ttl INTEGER, expires_at INTEGER);
CREATE INDEX idx_locks_id ON locks(resource_id, execution_id);
CREATE INDEX idx_locks_process_id ON locks(process_id);
CREATE INDEX idx_locks_expires_at ON locks(expires_at);
CREATE TABLE tasks (id TEXT UNIQUE, sort_id INTEGER PRIMARY KEY AUTOINCREMENT, process_id TEXT,
  state INTEGER DEFAULT 1, root_promise_id TEXT, recv BLOB, mesg BLOB, timeout INTEGER, counter INTEGER DEFAULT 1,
  attempt INTEGER DEFAULT 0, ttl INTEGER DEFAULT 0, expires_at INTEGER DEFAULT 0, created_on INTEGER,
  completed_on INTEGER);
CREATE INDEX idx_tasks_process_id ON tasks(process_id);
CREATE INDEX idx_tasks_expires_at ON tasks(expires_at);
INSERT INTO migrations (id) VALUES (1);
INSERT INTO promises (id, state, param_headers, param_data, timeout, tags, created_on)
  VALUES ('kept', 1, '{}', x'', 9223372036854775807, '{}', 1);
"""

POSTGRES_V1 = [
    "CREATE TABLE migrations (id INTEGER, PRIMARY KEY (id))",
    """CREATE TABLE promises (id TEXT, sort_id SERIAL, state INTEGER DEFAULT 1, param_headers JSONB,
        param_data BYTEA, value_headers JSONB, value_data BYTEA, timeout BIGINT, idempotency_key_for_create TEXT,
        idempotency_key_for_complete TEXT, tags JSONB, created_on BIGINT, completed_on BIGINT, PRIMARY KEY (id))""",
    "CREATE INDEX idx_promises_sort_id ON promises (sort_id)",
    """CREATE TABLE callbacks (id TEXT UNIQUE, promise_id TEXT, root_promise_id TEXT, recv BYTEA, mesg BYTEA,
        timeout BIGINT, created_on BIGINT)""",
    """CREATE TABLE schedules (id TEXT, sort_id SERIAL, description TEXT, cron TEXT, tags JSONB, promise_id TEXT,
        promise_timeout BIGINT, promise_param_headers JSONB, promise_param_data BYTEA, promise_tags JSONB,
        last_run_time BIGINT, next_run_time BIGINT, idempotency_key TEXT, created_on BIGINT, PRIMARY KEY (id))""",
    "CREATE INDEX idx_schedules_sort_id ON schedules (sort_id)",
    "CREATE INDEX idx_schedules_next_run_time ON schedules (next_run_time)",
    """CREATE TABLE locks (resource_id TEXT, execution_id TEXT, process_id TEXT, ttl BIGINT, expires_at BIGINT,
        PRIMARY KEY (resource_id))""",
    "CREATE INDEX idx_locks_id ON locks (resource_id, execution_id)",
    "CREATE INDEX idx_locks_process_id ON locks (process_id)",
    "CREATE INDEX idx_locks_expires_at ON locks (expires_at)",
    """CREATE TABLE tasks (id TEXT, sort_id SERIAL, process_id TEXT, state INTEGER DEFAULT 1, root_promise_id TEXT,
        recv BYTEA, mesg BYTEA, timeout BIGINT, counter INTEGER DEFAULT 1, attempt INTEGER DEFAULT 0,
        ttl BIGINT DEFAULT 0, expires_at BIGINT DEFAULT 0, created_on BIGINT, completed_on BIGINT, PRIMARY KEY (id))""",
    "CREATE INDEX idx_tasks_process_id ON tasks (process_id)",
    "CREATE INDEX idx_tasks_expires_at ON tasks (expires_at)",
    "INSERT INTO migrations (id) VALUES (1)",
    """INSERT INTO promises (id, state, param_headers, param_data, timeout, tags, created_on)
        VALUES ('kept', 1, '{}', '', 9223372036854775807, '{}', 1)""",
]

V2_INDEXES = {"idx_tasks_root_promise_id", "idx_tasks_state", "idx_callbacks_promise_id"}


def resonate_migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resonate.cli", "migrate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def sqlite_indexes(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}


def sqlite_version(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT MAX(id) FROM migrations").fetchone()[0]


def test_the_version_2_indexes_are_part_of_the_latest_schema():
    for dialect in (tables.SQLITE, tables.POSTGRES):
        assert V2_INDEXES <= migrations.index_names(dialect)
    assert migrations.LATEST == 6
    deadline_indexes = {"idx_promises_pending_timeout", "idx_tasks_state_expires_at", "idx_tasks_state_timeout"}
    for dialect in (tables.SQLITE, tables.POSTGRES):
        assert deadline_indexes <= migrations.index_names(dialect)


def test_a_version_1_sqlite_file_is_refused_then_upgraded_with_every_index(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_V1)
    flags = ("--aio-store-sqlite-path", str(path))
    assert not V2_INDEXES & sqlite_indexes(path)

    # the server refuses to start on pending migrations, and changes nothing
    with pytest.raises(SchemaError, match="pending migrations, run `resonate migrate`"):
        SqliteStore(str(path)).migrate()
    server = ServerProcess(store_flags=flags)
    with pytest.raises(RuntimeError, match="pending migrations"):
        server.start(timeout=30)
    assert sqlite_version(path) == 1

    status = resonate_migrate("status", *flags)
    assert status.returncode == 0, status.stderr
    assert "schema at version 1, latest 6" in status.stdout and "002_replies_and_lookup_indexes" in status.stdout
    assert "003_deadline_indexes" in status.stdout and "004_background_scan_indexes" in status.stdout
    assert "005_drop_duplicate_id_indexes" in status.stdout and "006_pending_promise_timeout_index" in status.stdout

    dry = resonate_migrate("dry-run", *flags)
    assert dry.returncode == 0, dry.stderr
    assert "CREATE INDEX IF NOT EXISTS idx_tasks_state ON tasks (state);" in dry.stdout
    assert "DROP INDEX IF EXISTS idx_promises_id;" in dry.stdout
    assert "001_initial_schema" not in dry.stdout
    assert sqlite_version(path) == 1 and not V2_INDEXES & sqlite_indexes(path)  # a dry run changes nothing

    up = resonate_migrate("up", *flags)
    assert up.returncode == 0, up.stderr
    assert "applied 002_replies_and_lookup_indexes" in up.stdout and "applied 003_deadline_indexes" in up.stdout
    assert "applied 004_background_scan_indexes" in up.stdout and "applied 005_drop_duplicate_id_indexes" in up.stdout
    assert "applied 006_pending_promise_timeout_index" in up.stdout
    assert sqlite_version(path) == 6
    assert migrations.index_names(tables.SQLITE) <= sqlite_indexes(path)
    dropped = migrations.index_names(tables.SQLITE, dropped=True)
    assert {"idx_promises_id", "idx_schedules_id", "idx_promises_state_timeout"} <= dropped
    assert not dropped & sqlite_indexes(path)  # the reference's copies and the old deadline index

    again = resonate_migrate("up", *flags)
    assert again.returncode == 0 and "schema at version 6 (was 6" in again.stdout

    with ServerProcess(store_flags=flags) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/promises/kept").json()["state"] == "PENDING"  # the data survived the upgrade
        r = client.post("/promises", json={"id": "after", "timeout": 2**62, "param": {}})
        assert r.status_code == 201


def test_a_fresh_sqlite_file_is_migrated_by_the_server(tmp_path):
    path = tmp_path / "fresh.db"
    SqliteStore(str(path)).migrate()
    assert sqlite_version(path) == migrations.LATEST
    assert migrations.index_names(tables.SQLITE) <= sqlite_indexes(path)
    assert not migrations.index_names(tables.SQLITE, dropped=True) & sqlite_indexes(path)
    SqliteStore(str(path)).migrate()  # and starts again on it


def test_a_promise_or_schedule_is_found_by_id_through_the_unique_index(tmp_path):
    """Version 5 dropped the copies of the `id UNIQUE` indexes: lookups by id still search an index."""
    path = tmp_path / "lookups.db"
    SqliteStore(str(path)).migrate()
    with sqlite3.connect(path) as conn:
        for table in ("promises", "schedules"):
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE id = ?",
                                                               ("x",)))
            assert f"SEARCH {table} USING INDEX sqlite_autoindex_{table}_1 (id=?)" == plan, plan


class PlanRecorder:
    """A cursor that records SQLite's query plan of every statement a store transaction runs."""

    def __init__(self, conn):
        self.conn, self.cur, self.plans = conn, conn.cursor(), {}

    def execute(self, sql, params=()):
        self.plans[sql] = " | ".join(row[3] for row in self.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        self.cur.execute(sql, params)
        self.rowcount = self.cur.rowcount
        return self

    def fetchone(self):
        return self.cur.fetchone()

    def fetchall(self):
        return self.cur.fetchall()


def test_the_timeout_pass_and_reply_pruning_read_indexes_not_whole_tables(tmp_path):
    """Version 4: run every second, these two scanned every task / every stored reply (a latency spike
    that grew with the store, docs/performance.md section 10)."""
    from resonate.core.store.sqlite import SqliteTx
    path = tmp_path / "plans.db"
    SqliteStore(str(path)).migrate()
    with sqlite3.connect(path, isolation_level=None) as conn:
        recorder = PlanRecorder(conn)
        tx = SqliteTx(recorder)
        tx.read_expired_tasks(1000, 100)
        tx.delete_replies_before(1000, 100)
        plans = list(recorder.plans.values())
    # only the held tasks (the partial index), in the query's order; before: every task, by root
    assert plans[0] == "SCAN tasks USING INDEX idx_tasks_timed", plans[0]
    assert "SEARCH replies USING INDEX idx_replies_created_on (created_on<?)" in plans[1], plans[1]
    assert "SCAN replies" not in plans[1], plans[1]


def test_the_promise_deadline_queries_read_the_index_of_pending_promises(tmp_path):
    """Version 6: the next promise deadline and the timeout pass read only pending promises' timeouts."""
    from resonate.core.store.sqlite import SqliteTx
    path = tmp_path / "pending.db"
    SqliteStore(str(path)).migrate()
    with sqlite3.connect(path, isolation_level=None) as conn:
        recorder = PlanRecorder(conn)
        tx = SqliteTx(recorder)
        tx.next_deadline(dl.TIMEOUT_PROMISES, 1000)
        tx.read_expired_promises(1000, 100)
        plans = list(recorder.plans.values())
    assert plans == ["SEARCH promises USING INDEX idx_promises_pending_timeout (timeout>?)",
                     "SEARCH promises USING INDEX idx_promises_pending_timeout (timeout<?)"], plans


def test_a_newer_sqlite_schema_is_refused(tmp_path):
    path = tmp_path / "newer.db"
    SqliteStore(str(path)).migrate()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO migrations (id) VALUES (99)")
    with pytest.raises(SchemaError, match="schema version 99 is newer"):
        SqliteStore(str(path)).migrate()
    r = resonate_migrate("up", "--aio-store-sqlite-path", str(path))
    assert r.returncode == 1 and "schema version 99 is newer" in r.stderr


def _pg_indexes(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}


def test_a_version_1_postgres_database_is_refused_then_upgraded_with_every_index(postgres_server):  # noqa: F811
    name = "migrate_v1_" + uuid.uuid4().hex[:8]
    dsn = postgres_server.create_database(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in POSTGRES_V1:
                conn.execute(statement)
        flags = postgres_store_flags(postgres_server, name)
        with pytest.raises(SchemaError, match="pending migrations"):
            PostgresStore(dsn).migrate()
        status = resonate_migrate("status", *flags)
        assert status.returncode == 0 and "schema at version 1, latest 6" in status.stdout, status

        up = resonate_migrate("up", *flags)
        assert up.returncode == 0, up.stderr
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT MAX(id) FROM migrations").fetchone()[0] == 6
            assert migrations.index_names(tables.POSTGRES) <= _pg_indexes(conn)
            assert not migrations.index_names(tables.POSTGRES, dropped=True) & _pg_indexes(conn)
            assert conn.execute("SELECT to_regclass('replies')").fetchone()[0] is not None
        with ServerProcess(store_flags=flags) as server, httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/promises/kept").json()["state"] == "PENDING"
    finally:
        postgres_server.drop_database(name)


def test_a_fresh_postgres_database_is_migrated_by_the_server(postgres_server):  # noqa: F811
    name = "migrate_fresh_" + uuid.uuid4().hex[:8]
    dsn = postgres_server.create_database(name)
    try:
        PostgresStore(dsn).migrate()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT MAX(id) FROM migrations").fetchone()[0] == migrations.LATEST
            assert migrations.index_names(tables.POSTGRES) <= _pg_indexes(conn)
        dry = resonate_migrate("dry-run", *postgres_store_flags(postgres_server, name))
        assert dry.returncode == 0 and "no pending migrations" in dry.stdout, dry
    finally:
        postgres_server.drop_database(name)
