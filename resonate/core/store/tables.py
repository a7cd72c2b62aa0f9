"""The reference's tables (spec 1.11) as SQLModel models: the schema both stores create.

Columns, uniqueness and indexes follow the reference's SQLite migration. Two additions, both for
speed or safety and recorded in docs/decisions.md: indexes on tasks.root_promise_id, tasks.state and
callbacks.promise_id (completing a promise otherwise scans both tables), and the `replies` table,
which stores the reply to a deduplicated request (Kafka correlation ids) with the state change.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 2  # 1: the reference's schema; 2: + replies and lookup indexes


def _col(type_, **kw):
    return Field(default=None, sa_column=Column(type_, **kw))


class Migration(SQLModel, table=True):
    __tablename__ = "migrations"
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class PromiseRow(SQLModel, table=True):
    __tablename__ = "promises"
    __table_args__ = (Index("idx_promises_id", "id"), {"sqlite_autoincrement": True})
    sort_id: Optional[int] = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    id: Optional[str] = _col(Text, unique=True)
    state: Optional[int] = Field(default=1, sa_column=Column(Integer, server_default="1"))
    param_headers: Optional[bytes] = _col(LargeBinary)
    param_data: Optional[bytes] = _col(LargeBinary)
    value_headers: Optional[bytes] = _col(LargeBinary)
    value_data: Optional[bytes] = _col(LargeBinary)
    timeout: Optional[int] = _col(BigInteger)
    idempotency_key_for_create: Optional[str] = _col(Text)
    idempotency_key_for_complete: Optional[str] = _col(Text)
    tags: Optional[bytes] = _col(LargeBinary)
    created_on: Optional[int] = _col(BigInteger)
    completed_on: Optional[int] = _col(BigInteger)


class CallbackRow(SQLModel, table=True):
    __tablename__ = "callbacks"
    __table_args__ = (Index("idx_callbacks_promise_id", "promise_id"),)
    id: str = Field(sa_column=Column(Text, primary_key=True))
    promise_id: Optional[str] = _col(Text)
    root_promise_id: Optional[str] = _col(Text)
    recv: Optional[bytes] = _col(LargeBinary)
    mesg: Optional[bytes] = _col(LargeBinary)
    timeout: Optional[int] = _col(BigInteger)
    created_on: Optional[int] = _col(BigInteger)


class ScheduleRow(SQLModel, table=True):
    __tablename__ = "schedules"
    __table_args__ = (Index("idx_schedules_id", "id"), Index("idx_schedules_next_run_time", "next_run_time"),
                      {"sqlite_autoincrement": True})
    sort_id: Optional[int] = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    id: Optional[str] = _col(Text, unique=True)
    description: Optional[str] = _col(Text)
    cron: Optional[str] = _col(Text)
    tags: Optional[bytes] = _col(LargeBinary)
    promise_id: Optional[str] = _col(Text)
    promise_timeout: Optional[int] = _col(BigInteger)
    promise_param_headers: Optional[bytes] = _col(LargeBinary)
    promise_param_data: Optional[bytes] = _col(LargeBinary)
    promise_tags: Optional[bytes] = _col(LargeBinary)
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


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (Index("idx_tasks_process_id", "process_id"), Index("idx_tasks_expires_at", "expires_at"),
                      Index("idx_tasks_root_promise_id", "root_promise_id"), Index("idx_tasks_state", "state"),
                      {"sqlite_autoincrement": True})
    sort_id: Optional[int] = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    id: Optional[str] = _col(Text, unique=True)
    process_id: Optional[str] = _col(Text)
    state: Optional[int] = Field(default=1, sa_column=Column(Integer, server_default="1"))
    root_promise_id: Optional[str] = _col(Text)
    recv: Optional[bytes] = _col(LargeBinary)
    mesg: Optional[bytes] = _col(LargeBinary)
    timeout: Optional[int] = _col(BigInteger)
    counter: Optional[int] = Field(default=1, sa_column=Column(Integer, server_default="1"))
    attempt: Optional[int] = Field(default=0, sa_column=Column(Integer, server_default="0"))
    ttl: Optional[int] = Field(default=0, sa_column=Column(BigInteger, server_default="0"))
    expires_at: Optional[int] = Field(default=0, sa_column=Column(BigInteger, server_default="0"))
    created_on: Optional[int] = _col(BigInteger)
    completed_on: Optional[int] = _col(BigInteger)


class ReplyRow(SQLModel, table=True):
    __tablename__ = "replies"
    key: str = Field(sa_column=Column(Text, primary_key=True))
    reply: Optional[bytes] = _col(LargeBinary)
    created_on: Optional[int] = _col(BigInteger)
