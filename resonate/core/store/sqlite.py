"""SQLite store: WAL, synchronous=FULL by default, one writer connection that group-commits."""
from __future__ import annotations

import os
import sqlite3
import threading

from sqlalchemy import create_engine, event
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from . import tables
from .base import Connection, RetryableStoreError, Store
from .sql import DEADLINE_INDEXES, SqlTx


class SqliteStore(Store):
    def __init__(self, path: str = "resonate.db", synchronous: str = "FULL", reset: bool = False):
        self.path = path
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"invalid sqlite synchronous mode: {synchronous}")
        self.reset = reset
        self._memory = path == ":memory:" or path == ""
        self._shared: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._memory:
            # one shared connection: an in-memory database lives and dies with it
            with self._lock:
                if self._shared is None:
                    self._shared = self._configure(sqlite3.connect(":memory:", isolation_level=None,
                                                                   check_same_thread=False))
                return self._shared
        return self._configure(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                               timeout=30))

    def _configure(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def migrate(self) -> None:
        conn = self._open()
        engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)
        with engine.begin() as c:
            has_table = c.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='migrations'").first()
            current = 0
            if has_table:
                row = c.exec_driver_sql("SELECT MAX(id) FROM migrations").first()
                current = row[0] or 0
            if current > tables.SCHEMA_VERSION:
                raise RuntimeError(f"the database schema version {current} is newer than this server's "
                                   f"({tables.SCHEMA_VERSION}); upgrade the server")
        if current < tables.SCHEMA_VERSION:
            SQLModel.metadata.create_all(engine)  # creates what is missing, in one go
            with engine.begin() as c:
                for version in range(current + 1, tables.SCHEMA_VERSION + 1):
                    c.exec_driver_sql("INSERT INTO migrations (id) VALUES (?)", (version,))
        with engine.begin() as c:
            for statement in DEADLINE_INDEXES:  # kernel: next-deadline queries (idempotent)
                c.exec_driver_sql(statement)
        if not self._memory:
            engine.dispose()
            conn.close()

    def connect(self) -> Connection:
        return SqliteConnection(self._open(), owned=not self._memory)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        if self.reset and not self._memory:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(self.path + suffix)
                except FileNotFoundError:
                    pass


class SqliteConnection(Connection):
    def __init__(self, conn: sqlite3.Connection, owned: bool):
        self.conn = conn
        self.owned = owned
        self.tx = SqlTx(conn.cursor())

    def _run(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise RetryableStoreError(str(e)) from e
            raise

    def begin(self) -> None:
        self._run("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._run("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT request")

    def release_savepoint(self) -> None:
        self.conn.execute("RELEASE request")

    def rollback_to_savepoint(self) -> None:
        self.conn.execute("ROLLBACK TO request")
        self.conn.execute("RELEASE request")

    def close(self) -> None:
        if self.owned:
            self.conn.close()
