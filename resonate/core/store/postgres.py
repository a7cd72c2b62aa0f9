"""PostgreSQL store: the reference's schema, several writer connections, group commit, safe scale-out.

Every statement is `SqlTx`'s (resonate/core/store/sql.py); this module only sets the dialect: `%s`
placeholders, JSONB containment for tags, DISTINCT ON for enqueueable tasks, and row locks that make
several server processes on one database do each piece of background work once (docs/scaling-out.md).

Transactions run at READ COMMITTED: a conditional write that loses a race waits for the winner, then
re-checks its condition against the committed row and affects nothing, which the operations turn into
`StaleRead` (re-run the request against the new state). Serialization failures and deadlocks roll back
the whole batch and the kernel runs it again. The schema comes from tables.py through migrations.py.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import zlib
from typing import Any, Iterator

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from .. import gojson, template
from ..model import Promise, Schedule, Task
from . import tables
from .base import Connection, RejectedValue, RetryableStoreError, StaleRead, Store, StoreError
from .pg_notify import DEADLINE_CHANNEL, server_id
from .sql import PENDING, TASK_CLAIMED, TASK_COLUMNS, TASK_INIT, TASK_SENT_OR_CLAIMED, SqlTx, task_from_row

log = logging.getLogger("resonate.store.postgres")

# one key for every server sharing the database: schema changes happen one server at a time
MIGRATION_LOCK_KEY = zlib.crc32(b"resonate-migrations")

# A server that stops answering (frozen, cut off) while holding row locks would stall the other
# servers; PostgreSQL ends such a transaction after this long (the reference's tx-timeout, 10s).
IDLE_IN_TRANSACTION_TIMEOUT = "10s"

# A btree index entry holds at most 2704 bytes: longer ids cannot be stored (SQLite has no such
# limit). The core limits every id to 1024 bytes (requests.MAX_ID_BYTES), which keeps ids and the
# callback and task ids built from two of them in bounds; only the ids a schedule's promiseId
# template expands to can grow past it, so that is checked when the schedule is created.
MAX_KEY_BYTES = 2600
NUL_MESSAGE = "text fields (ids, tags, headers, keys) must not contain the NUL character \\u0000 on PostgreSQL"


def _check_key(field: str, value: str | None, reserve: int = 0) -> None:
    if value is not None and len(value.encode()) + reserve > MAX_KEY_BYTES:
        raise RejectedValue(f"the field {field} must be at most {MAX_KEY_BYTES - reserve} bytes long")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


# conflicts between transactions, which may pass, and the reason each is counted under
_RETRYABLE = {pg_errors.SerializationFailure: "serialization", pg_errors.DeadlockDetected: "deadlock",
              pg_errors.LockNotAvailable: "lock_not_available"}


def store_error(e: psycopg.Error) -> StoreError:
    """The one place PostgreSQL failures are classified: conflicts between transactions may pass."""
    for kind, reason in _RETRYABLE.items():
        if isinstance(e, kind):
            return RetryableStoreError(str(e), reason)
    return StoreError(str(e))


class PostgresTx(SqlTx):
    placeholder = "%s"
    _converted: dict[str, str] = {}
    driver_error = psycopg.Error
    store_error = staticmethod(store_error)

    # rows of due background work are locked, and rows another server holds are skipped: each piece of
    # work goes to exactly one server, and the values read stay true until this transaction commits
    LOCK_DUE = " FOR UPDATE SKIP LOCKED"

    # the reference's DISTINCT ON, wrapped so the rows can be locked (FOR UPDATE forbids DISTINCT);
    # the outer conditions are re-checked against the latest row version once it is locked
    ENQUEUEABLE = (
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ("
        f" SELECT DISTINCT ON (root_promise_id) id FROM tasks t1 WHERE state = {TASK_INIT} AND expires_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM tasks t2 WHERE t2.root_promise_id = t1.root_promise_id"
        f" AND t2.state IN {TASK_SENT_OR_CLAIMED})"
        " ORDER BY root_promise_id, sort_id LIMIT ?)"
        f" AND state = {TASK_INIT} AND expires_at <= ? ORDER BY root_promise_id FOR UPDATE SKIP LOCKED")

    # -- plumbing: PostgreSQL text cannot hold NUL; say so (400) instead of failing the statement (500)
    def execute(self, sql: str, params=()) -> int:
        return super().execute(sql, _text_params(params))

    def one(self, sql: str, params=()):
        return super().one(sql, _text_params(params))

    def all(self, sql: str, params=()):
        return super().all(sql, _text_params(params))

    def read_enqueueable_tasks(self, now: int, limit: int) -> list[Task]:
        return [task_from_row(r) for r in self.all(self.ENQUEUEABLE, (now, limit, now))]

    def blob(self, data: bytes) -> Any:
        return bytes(data)

    def json_value(self, text: str) -> Any:
        if "\\u0000" in text and _has_nul(json.loads(text)):
            raise RejectedValue(NUL_MESSAGE)
        return Jsonb(text, dumps=_already_json)

    def tag_filter(self, tags: dict[str, str]) -> tuple[str, list]:
        # flat keys, exact values (spec 4.2): containment, served by JSONB
        if _has_nul(tags):
            raise RejectedValue(NUL_MESSAGE)
        return "tags @> ?::jsonb", [gojson.dumps(dict(sorted(tags.items())))]

    def search_promises(self, pattern: str, *args, **kwargs) -> list[Promise]:
        return super().search_promises(_like_pattern(pattern), *args, **kwargs)

    def search_schedules(self, pattern: str, *args, **kwargs) -> list[Schedule]:
        return super().search_schedules(_like_pattern(pattern), *args, **kwargs)

    def insert_schedule(self, s: Schedule) -> bool:
        try:  # the promises it will create must fit too, or every later firing would fail
            longest = template.expand_promise_id(s.promise_id, {"id": s.id, "timestamp": "9" * 20})
        except template.TemplateError:
            longest = None  # skipped at each firing, as on SQLite
        _check_key("promiseId", longest, reserve=len("__invoke:"))
        return super().insert_schedule(s)

    # A heartbeat locks the process's rows in key order first, as batches lock rows (operations.ROW_LOCKED_BY):
    # its UPDATE alone locks them in the table's order, and held the last of them while a batch completing
    # two of them held the first.
    def heartbeat_tasks(self, process_id: str, now: int) -> int:
        self.execute(f"SELECT 1 FROM tasks WHERE process_id = ? AND state = {TASK_CLAIMED}"
                     " ORDER BY id FOR NO KEY UPDATE", (process_id,))
        return super().heartbeat_tasks(process_id, now)

    def heartbeat_locks(self, process_id: str, now: int) -> int:
        self.execute("SELECT 1 FROM locks WHERE process_id = ? ORDER BY resource_id FOR NO KEY UPDATE",
                     (process_id,))
        return super().heartbeat_locks(process_id, now)

    def insert_callback(self, cb) -> bool:
        # Lock the promise against completion first. Without it a completion committing meanwhile on
        # another connection would not see this callback, which would then never become a task. The lock
        # is the one the completion's UPDATE takes, not a shared one: two batches each registering a
        # callback and completing the promise would each hold a shared lock and wait for the other's,
        # a deadlock PostgreSQL breaks only after deadlock_timeout by failing one of the batches.
        row = self.one("SELECT state FROM promises WHERE id = ? FOR NO KEY UPDATE", (cb.promise_id,))
        if row is None or row[0] != PENDING:
            raise StaleRead()  # completed since the operation read it: answer from the new state
        return super().insert_callback(cb)

    server_id = ""  # set per connection from its store

    def publish_deadlines(self, deadlines: dict[str, int]) -> None:
        # sent by PostgreSQL when (and only if) this transaction commits
        payload = json.dumps({"s": self.server_id, "d": deadlines}, separators=(",", ":"))
        self.execute("SELECT pg_notify(?, ?)", (DEADLINE_CHANNEL, payload))

    def read_reply(self, key: str) -> bytes | None:
        # Two servers handed the same deduplicated request (a Kafka redelivery during a rebalance)
        # take turns on its key: the second waits for the first to commit, then replays its reply.
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,))
        return super().read_reply(key)


def _already_json(text: str) -> str:
    return text


def _text_params(params) -> tuple:
    params = tuple(params)
    for value in params:
        if isinstance(value, str) and "\x00" in value:
            raise RejectedValue(NUL_MESSAGE)
    return params


def _like_pattern(pattern: str) -> str:
    """`\\` escapes in PostgreSQL's LIKE; a lone one at the end (an error there) matches itself."""
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return pattern + "\\" if trailing % 2 else pattern


class PostgresConnection(Connection):
    def __init__(self, store: "PostgresStore"):
        self.store = store
        self.conn: psycopg.Connection | None = None
        self.tx: PostgresTx | None = None
        self._open()

    def _open(self) -> None:
        self.conn = self.store.open_connection()
        self.tx = PostgresTx(self.conn.cursor())
        self.tx.server_id = self.store.server_id

    def _run(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except psycopg.Error as e:
            raise store_error(e) from e

    def begin(self) -> None:
        if self.conn is None or self.conn.broken or self.conn.closed:
            try:  # the database restarted or the network dropped: reconnect, and let the kernel retry
                self._open()
            except psycopg.OperationalError as e:
                raise RetryableStoreError(f"cannot reach PostgreSQL: {e}", "connection") from e
        try:
            self.conn.execute("BEGIN")
        except psycopg.OperationalError as e:
            self._discard()
            raise RetryableStoreError(f"cannot reach PostgreSQL: {e}", "connection") from e

    def commit(self) -> None:
        # a commit lost with the connection is not retried: it may have happened
        self._run("COMMIT")

    def rollback(self) -> None:
        if self.conn is None or self.conn.broken or self.conn.closed:
            return
        try:
            self.conn.execute("ROLLBACK")
        except psycopg.OperationalError:
            self._discard()

    def savepoint(self) -> None:
        self._run("SAVEPOINT request")

    def release_savepoint(self) -> None:
        self._run("RELEASE SAVEPOINT request")

    def rollback_to_savepoint(self) -> None:
        self._run("ROLLBACK TO SAVEPOINT request")
        self._run("RELEASE SAVEPOINT request")

    def _discard(self) -> None:
        try:
            self.conn.close()
        except psycopg.Error as e:  # already broken: closing it is all that is left to do
            log.debug("closing a broken PostgreSQL connection failed: %s", e)
        self.store.forget(self.conn)

    def close(self) -> None:
        if self.conn is not None:
            self._discard()


class PostgresStore(Store):
    dialect = tables.POSTGRES
    runs_in_lock_order = True  # several writer connections, and servers, on one database

    def __init__(self, conninfo: str, workers: int = 4, reset: bool = False):
        self.conninfo = conninfo
        self.workers = workers
        self.reset = reset
        self._open: set[psycopg.Connection] = set()
        self._lock = threading.Lock()
        self.server_id = server_id()  # this server among those sharing the database (pg_notify.py)

    @classmethod
    def from_config(cls, cfg) -> "PostgresStore":
        params = {"host": cfg.postgres_host, "port": cfg.postgres_port, "dbname": cfg.postgres_database}
        if cfg.postgres_username:
            params["user"] = cfg.postgres_username
        if cfg.postgres_password:
            params["password"] = cfg.postgres_password
        params.update(cfg.postgres_query)  # e.g. sslmode=disable, connect_timeout=5
        return cls(make_conninfo(**params), workers=cfg.postgres_workers, reset=cfg.postgres_reset)

    def writers(self) -> int:
        return self.workers

    def where(self) -> str:
        """The database, for messages: host:port/dbname, never the password."""
        d = conninfo_to_dict(self.conninfo)
        return f"{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')}"

    def open_connection(self) -> psycopg.Connection:
        conn = psycopg.connect(self.conninfo, autocommit=True, application_name="resonate",
                               **self._connect_timeout())
        conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")
        with self._lock:
            self._open.add(conn)
        return conn

    def forget(self, conn: psycopg.Connection) -> None:
        with self._lock:
            self._open.discard(conn)

    def _connect_timeout(self) -> dict:
        # an unreachable host must fail a writer's reconnect in seconds, not after the OS gives up
        return {} if "connect_timeout" in conninfo_to_dict(self.conninfo) else {"connect_timeout": 5}

    @contextlib.contextmanager
    def schema_session(self) -> Iterator["PostgresSchema"]:
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, application_name="resonate-migrate",
                                   **self._connect_timeout())
        except psycopg.OperationalError as e:
            raise StoreError(f"cannot connect to PostgreSQL at {self.where()}: {e}".strip()) from None
        with conn:
            # servers starting together take turns; the later ones find the schema in place
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            try:
                yield PostgresSchema(conn)
            except psycopg.Error as e:
                raise store_error(e) from e
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))

    def connect(self) -> Connection:
        return PostgresConnection(self)

    def close(self) -> None:
        with self._lock:
            leftovers, self._open = list(self._open), set()
        for conn in leftovers:
            try:
                conn.close()
            except psycopg.Error as e:
                log.warning("closing a PostgreSQL connection at shutdown failed: %s", e)
        if self.reset:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {', '.join(tables.TABLE_NAMES)}")


class PostgresSchema:
    """A migrations.SchemaSession on a connection holding the migration lock."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def version(self) -> int:
        if not self.conn.execute("SELECT to_regclass('migrations') IS NOT NULL").fetchone()[0]:
            return 0
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM migrations").fetchone()[0]

    def apply(self, migrations) -> None:
        with self.conn.transaction():
            for migration in migrations:
                for statement in migration.statements(tables.POSTGRES):
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO migrations (id) VALUES (%s) ON CONFLICT (id) DO NOTHING",
                                  (migration.version,))
        log.info("PostgreSQL schema migrated to version %d", migrations[-1].version)
