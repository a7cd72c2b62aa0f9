"""The one schema of both stores, as SQLModel models; migrations.py compiles it for each dialect.

Columns, uniqueness and indexes follow the reference's migrations (spec 1.11). Where the two
dialects differ the difference is declared here, once:
- headers and tags are JSON text in a BLOB on SQLite and JSONB on PostgreSQL (`JSON_TEXT`);
- an index that exists in only one dialect names it in `info["dialects"]`.

Each table and index says in `info["since"]` which schema version added it (1 when absent): that is
what migration N creates. Version 2 added, for speed or safety (docs/decisions.md): indexes on
tasks.root_promise_id, tasks.state and callbacks.promise_id (completing a promise otherwise scans both
tables), and the `replies` table, which stores the reply to a deduplicated request (Kafka correlation
ids) with the state change. Version 4 added two indexes for background passes that scanned whole tables
(docs/performance.md section 10): `idx_tasks_timed`, a partial index over the tasks a worker holds
(ENQUEUED or CLAIMED, the timeout pass's `(state & 6) != 0`, in its ORDER BY, with the expiry columns
it filters on), and `idx_replies_created_on` for pruning stored replies.

An index a later version drops says so in `info["until"]`: migration N drops what is marked `until: N`.
Version 5 drops SQLite's `idx_promises_id` and `idx_schedules_id`, copies of the index SQLite already
keeps for `id UNIQUE`: each create wrote its id into both (about 30% of a create batch's WAL pages).
Version 6 replaces `idx_promises_state_timeout` (every promise, by state and timeout) with
`idx_promises_pending_timeout` (pending promises only, by timeout): what the deadline queries read. A
completed promise used to move to another place of the index (two pages written); it now leaves it.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, text

from ..model import PromiseState, TaskState
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

SQLITE = "sqlite"
POSTGRES = "postgresql"

# JSON maps (headers, tags): text in a BLOB on SQLite, JSONB on PostgreSQL (tag search uses @>)
JSON_TEXT = LargeBinary().with_variant(JSONB(), POSTGRES)


def _col(type_, **kw):
    return Field(default=None, sa_column=Column(type_, **kw))


def _defaulted(type_, value: int):
    return Field(default=value, sa_column=Column(type_, server_default=text(str(value))))


def _sort_id():
    # insertion order, never reused: INTEGER PRIMARY KEY AUTOINCREMENT on SQLite, SERIAL on PostgreSQL
    return Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))


def _only(dialect: str, since: int = 1, until: int | None = None) -> dict:
    info = {"dialects": (dialect,), "since": since}
    if until is not None:
        info["until"] = until
    return {"info": info}


ID_COPIES_DROPPED = 5  # the schema version that dropped SQLite's copies of the `id UNIQUE` indexes
PENDING_INDEX_ONLY = 6  # the version that indexes the timeouts of pending promises only
# pending promises, written exactly as the queries test them (SqlTx): a partial index is used only when
# the query repeats its condition
PROMISE_PENDING = text(f"state = {int(PromiseState.PENDING)}")


class Migration(SQLModel, table=True):
    __tablename__ = "migrations"
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class PromiseRow(SQLModel, table=True):
    __tablename__ = "promises"
    __table_args__ = (Index("idx_promises_id", "id", **_only(SQLITE, until=ID_COPIES_DROPPED)),
                      Index("idx_promises_sort_id", "sort_id", **_only(POSTGRES)),
                      Index("idx_promises_state_timeout", "state", "timeout",
                            info={"since": 3, "until": PENDING_INDEX_ONLY}),
                      # the next-deadline query (SqlTx.NEXT_DEADLINE) and the timeout pass's reads, which
                      # only ask for pending promises: a completed promise leaves the index
                      Index("idx_promises_pending_timeout", "timeout", sqlite_where=PROMISE_PENDING,
                            postgresql_where=PROMISE_PENDING, info={"since": PENDING_INDEX_ONLY}),
                      {"sqlite_autoincrement": True})
    sort_id: Optional[int] = _sort_id()
    id: Optional[str] = _col(Text, unique=True)
    state: Optional[int] = _defaulted(Integer, 1)
    param_headers: Optional[bytes] = _col(JSON_TEXT)
    param_data: Optional[bytes] = _col(LargeBinary)
    value_headers: Optional[bytes] = _col(JSON_TEXT)
    value_data: Optional[bytes] = _col(LargeBinary)
    timeout: Optional[int] = _col(BigInteger)
    idempotency_key_for_create: Optional[str] = _col(Text)
    idempotency_key_for_complete: Optional[str] = _col(Text)
    tags: Optional[bytes] = _col(JSON_TEXT)
    created_on: Optional[int] = _col(BigInteger)
    completed_on: Optional[int] = _col(BigInteger)


class CallbackRow(SQLModel, table=True):
    __tablename__ = "callbacks"
    __table_args__ = (Index("idx_callbacks_promise_id", "promise_id", info={"since": 2}),)
    id: str = Field(sa_column=Column(Text, primary_key=True))
    promise_id: Optional[str] = _col(Text)
    root_promise_id: Optional[str] = _col(Text)
    recv: Optional[bytes] = _col(LargeBinary)
    mesg: Optional[bytes] = _col(LargeBinary)
    timeout: Optional[int] = _col(BigInteger)
    created_on: Optional[int] = _col(BigInteger)


class ScheduleRow(SQLModel, table=True):
    __tablename__ = "schedules"
    __table_args__ = (Index("idx_schedules_id", "id", **_only(SQLITE, until=ID_COPIES_DROPPED)),
                      Index("idx_schedules_sort_id", "sort_id", **_only(POSTGRES)),
                      Index("idx_schedules_next_run_time", "next_run_time"), {"sqlite_autoincrement": True})
    sort_id: Optional[int] = _sort_id()
    id: Optional[str] = _col(Text, unique=True)
    description: Optional[str] = _col(Text)
    cron: Optional[str] = _col(Text)
    tags: Optional[bytes] = _col(JSON_TEXT)
    promise_id: Optional[str] = _col(Text)
    promise_timeout: Optional[int] = _col(BigInteger)
    promise_param_headers: Optional[bytes] = _col(JSON_TEXT)
    promise_param_data: Optional[bytes] = _col(LargeBinary)
    promise_tags: Optional[bytes] = _col(JSON_TEXT)
    last_run_time: Optional[int] = _col(BigInteger)
    next_run_time: Optional[int] = _col(BigInteger)
    idempotency_key: Optional[str] = _col(Text)
    created_on: Optional[int] = _col(BigInteger)


class LockRow(SQLModel, table=True):
    __tablename__ = "locks"
    __table_args__ = (Index("idx_locks_id", "resource_id", "execution_id"),
                      Index("idx_locks_process_id", "process_id"), Index("idx_locks_expires_at", "expires_at"))
    resource_id: str = Field(sa_column=Column(Text, primary_key=True))
    execution_id: Optional[str] = _col(Text)
    process_id: Optional[str] = _col(Text)
    ttl: Optional[int] = _col(BigInteger)
    expires_at: Optional[int] = _col(BigInteger)


# the tasks a worker holds (ENQUEUED or CLAIMED), written exactly as the timeout pass's query tests them
# (SqlTx.read_expired_tasks): a partial index is used only when the query repeats its condition
TASK_HELD = text(f"(state & {int(TaskState.ENQUEUED | TaskState.CLAIMED)}) != 0")


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (Index("idx_tasks_process_id", "process_id"), Index("idx_tasks_expires_at", "expires_at"),
                      Index("idx_tasks_root_promise_id", "root_promise_id", info={"since": 2}),
                      Index("idx_tasks_state", "state", info={"since": 2}),
                      # the next-deadline queries of the enqueue and task-timeout passes
                      Index("idx_tasks_state_expires_at", "state", "expires_at", info={"since": 3}),
                      Index("idx_tasks_state_timeout", "state", "timeout", info={"since": 3}),
                      # the timeout pass reads held tasks in this order; without it, it scans every task
                      Index("idx_tasks_timed", "root_promise_id", "sort_id", "expires_at", "timeout",
                            sqlite_where=TASK_HELD, postgresql_where=TASK_HELD, info={"since": 4}),
                      {"sqlite_autoincrement": True})
    sort_id: Optional[int] = _sort_id()
    id: Optional[str] = _col(Text, unique=True)
    process_id: Optional[str] = _col(Text)
    state: Optional[int] = _defaulted(Integer, 1)
    root_promise_id: Optional[str] = _col(Text)
    recv: Optional[bytes] = _col(LargeBinary)
    mesg: Optional[bytes] = _col(LargeBinary)
    timeout: Optional[int] = _col(BigInteger)
    counter: Optional[int] = _defaulted(Integer, 1)
    attempt: Optional[int] = _defaulted(Integer, 0)
    ttl: Optional[int] = _defaulted(BigInteger, 0)
    expires_at: Optional[int] = _defaulted(BigInteger, 0)
    created_on: Optional[int] = _col(BigInteger)
    completed_on: Optional[int] = _col(BigInteger)


class ReplyRow(SQLModel, table=True):
    __tablename__ = "replies"
    __table_args__ = (Index("idx_replies_created_on", "created_on", info={"since": 4}),  # pruning by age
                      {"info": {"since": 2}})
    key: str = Field(sa_column=Column(Text, primary_key=True))
    reply: Optional[bytes] = _col(LargeBinary)
    created_on: Optional[int] = _col(BigInteger)


SCHEMA = SQLModel.metadata
TABLE_NAMES = tuple(SCHEMA.tables)  # creation order
