"""SQLite store: WAL, synchronous=FULL by default, one writer connection that group-commits.

WAL checkpoints run off the request path: SQLite's own auto-checkpoint runs inside the COMMIT that
crosses its threshold, on the writer thread, copying the WAL into the database file and fsyncing it
while the batch's callers wait. A file store turns it off on its writer connections and a checkpointer
thread of its own, on its own connection, runs PASSIVE checkpoints (which never block the writer) twice a
second while commits happen. A WAL that still reaches WAL_CAP_FRAMES (a passive checkpoint
cannot reset the log while the writer keeps appending) gets one RESTART checkpoint, which waits for the
writer's current transaction and makes the next one start the log from the beginning: the WAL stays
bounded, and by then the passive checkpoints have copied nearly all of it, so the writer waits briefly.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import threading
from typing import Callable, ContextManager, Iterator

from . import tables
from .. import deadlines as dl
from .base import Connection, NeedsWriter, RetryableStoreError, Store, StoreError
from .sql import SqlTx

log = logging.getLogger("resonate.store")


def store_error(e: sqlite3.Error) -> StoreError:
    """The one place SQLite failures are classified: busy or locked may pass, the rest will not."""
    if isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e)):
        return RetryableStoreError(str(e), "busy")
    return StoreError(str(e))


class SqliteTx(SqlTx):
    driver_error = sqlite3.Error
    store_error = staticmethod(store_error)

    def move_callbacks_to_tasks(self, promise_id: str, created_on: int) -> int:
        # one statement when the promise has no callbacks (most completes), instead of an INSERT ... SELECT
        # and a DELETE; Python orders ids as SQLite's default (binary) collation does
        rows = self.all("DELETE FROM callbacks WHERE promise_id = ?"
                        " RETURNING id, recv, mesg, timeout, root_promise_id", (promise_id,))
        created = 0
        for row in sorted(rows):
            created += self.execute("INSERT INTO tasks (id, recv, mesg, timeout, root_promise_id, created_on)"
                                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", (*row, created_on))
        if created:
            self.note_deadline(dl.ENQUEUE_TASKS, 0)  # new INIT tasks: to be sent at once
        return created


class SqliteReadTx(SqliteTx):
    """A read connection's transaction object: reads as the writer's, every write refused.

    It keeps one read transaction open across reads (`held`: the store's commit count when it began, None
    when none is open), so consecutive reads share one snapshot instead of each taking and dropping SQLite's
    WAL read lock (two fcntl calls and the WAL-index checks per statement)."""

    def __init__(self, conn: sqlite3.Connection):
        super().__init__(conn.cursor())
        self.conn = conn
        self.held: int | None = None

    def execute(self, sql, params=()) -> int:
        raise NeedsWriter(sql.split(None, 1)[0])

    def hold(self, commits: int) -> None:
        """Begins a read transaction that sees at least every commit counted in `commits` (its snapshot is
        taken by the first read, after the caller read the count)."""
        self.end()
        self.cur.execute("BEGIN")
        self.held = commits

    def end(self) -> None:
        if self.held is not None:
            self.held = None
            self.cur.execute("ROLLBACK")  # read-only: nothing to undo, only the read lock to release


# how often the checkpointer copies new commits into the database file: about SQLite's own cadence under
# load (its auto-checkpoint every 1,000 pages), so no more fsyncs of the database file than before
CHECKPOINT_INTERVAL_S = 0.5
WAL_CAP_FRAMES = 8192  # pages (32 MiB at 4 KiB): past this the log is restarted (RESTART checkpoint)
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024  # a restarted WAL file larger than this is truncated to it
READERS_MAX = 8  # read connections beside the writer; more concurrent reads than this take the writer queue


class WalCheckpointer:
    """Checkpoints a WAL database from its own thread and connection (see the module's docstring)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], interval_s: float = CHECKPOINT_INTERVAL_S,
                 cap_frames: int = WAL_CAP_FRAMES,
                 readers_paused: Callable[[], ContextManager[None]] = contextlib.nullcontext):
        self._connect = connect
        # held read transactions ended and none held while a checkpoint runs (a RESTART waits for readers)
        self._readers_paused = readers_paused
        self.interval_s = interval_s
        self.cap_frames = cap_frames
        self._committed = threading.Event()  # set by each commit since the last checkpoint
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # for tests and benchmarks: checkpoints run, and of those RESTARTs
        self.restarts = 0
        self.last_result: tuple[int, int, int] | None = None  # (busy, WAL frames, frames checkpointed)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="resonate-wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._committed.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _run(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(self.interval_s):
                if self._committed.is_set():
                    self._committed.clear()
                    self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            with self._readers_paused():
                result = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.checkpoints += 1
                if result[1] >= self.cap_frames:
                    result = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                    self.restarts += 1
            self.last_result = tuple(result)
        except sqlite3.Error:  # e.g. busy past the timeout: the next round tries again
            log.warning("WAL checkpoint failed; retrying in %.2fs", self.interval_s, exc_info=True)


class SqliteStore(Store):
    dialect = tables.SQLITE
    checkpoint_off_request_path = True  # False: SQLite's own auto-checkpoint, inside the writer's COMMIT
    savepoint_each_request = False  # one writer: requests rarely conflict, a rare rerun is cheap

    def __init__(self, path: str = "resonate.db", synchronous: str = "FULL", reset: bool = False):
        self.path = path
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"invalid sqlite synchronous mode: {synchronous}")
        self.reset = reset
        self._memory = path == ":memory:" or path == ""
        self._shared: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.checkpointer: WalCheckpointer | None = None  # started with the first writer connection
        self._readers: list[sqlite3.Connection] = []  # every read connection opened (`reader`)
        self._free_readers: list[SqliteReadTx] = []  # those not in use
        self._no_holding = False  # set while a checkpoint runs: reads end their transactions at release
        # a new value after every commit through this store's connections (`_committed`); unique values, so
        # two connections committing at once cannot leave it unchanged
        self.commits = 0
        self._commit_numbers = itertools.count(1)

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
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextlib.contextmanager
    def schema_session(self) -> Iterator["SqliteSchema"]:
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock: servers starting together take turns
            try:
                yield SqliteSchema(conn)
                try:
                    conn.execute("COMMIT")
                finally:
                    self.commits = next(self._commit_numbers)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise store_error(e) from e
        finally:
            if not self._memory:
                conn.close()

    @property
    def supports_concurrent_reads(self) -> bool:
        # WAL lets readers run beside the writer; an in-memory database has one shared connection
        return not self._memory

    def reader(self) -> SqliteReadTx | None:
        """A free read connection's transaction object, or None when READERS_MAX are all in use (the read
        then goes to the writer). Pooled, not one per thread: a server with hundreds of handler threads
        (gRPC) keeps a few connections, file descriptors and page caches, not hundreds.

        A connection keeps its read transaction open while no commit has been counted since it began
        (`commits`, counted after each COMMIT returns, before any answer goes out): its snapshot, taken by
        its first read after the count was read, holds every commit answered so far, so a read never sees
        older state than a commit already answered."""
        commits = self.commits
        try:
            tx = self._free_readers.pop()  # atomic: two threads never get the same one
        except IndexError:
            tx = self._new_reader()
            if tx is None:
                return None
        if tx.held != commits or self._no_holding:
            try:
                tx.hold(commits)
            except sqlite3.Error as e:
                self._discard_reader(tx)
                raise store_error(e) from e
        return tx

    def _new_reader(self) -> SqliteReadTx | None:
        with self._lock:
            if len(self._readers) >= READERS_MAX:
                return None
            # no busy wait (timeout 0): a read that cannot start at once goes to the writer instead of
            # holding its caller's thread (often an event loop)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            try:
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error as e:
                conn.close()
                raise store_error(e) from e
            self._readers.append(conn)
        return SqliteReadTx(conn)

    def release_reader(self, tx: SqliteReadTx) -> None:
        """Back to the pool; its transaction stays open only while no commit has been counted since it began
        and no checkpoint runs, so an idle connection never holds back a checkpoint."""
        with self._lock:  # against `_readers_paused`: no transaction left held while a checkpoint waits
            if tx.held != self.commits or self._no_holding:
                try:
                    tx.end()
                except sqlite3.Error:  # the connection is broken: drop it, the pool opens another
                    log.warning("ending a read transaction failed; read connection closed", exc_info=True)
                    self._discard_reader(tx, locked=True)
                    return
            self._free_readers.append(tx)

    def _discard_reader(self, tx: SqliteReadTx, locked: bool = False) -> None:
        with contextlib.nullcontext() if locked else self._lock:
            if tx.conn in self._readers:
                self._readers.remove(tx.conn)
        tx.held = None
        tx.conn.close()

    @contextlib.contextmanager
    def _readers_paused(self) -> Iterator[None]:
        """While a checkpoint runs: the free read connections' transactions ended, and every read ends its
        own at release (a held snapshot would keep the checkpoint from copying past it, and a RESTART
        checkpoint would wait for it while blocking the writer)."""
        with self._lock:
            self._no_holding = True
            idle = []
            while True:  # popped, as `reader` pops them: a connection has one user at a time
                try:
                    idle.append(self._free_readers.pop())
                except IndexError:
                    break
            for tx in idle:
                try:
                    tx.end()
                except sqlite3.Error:
                    log.warning("ending a read transaction failed; read connection closed", exc_info=True)
                    self._discard_reader(tx, locked=True)
                else:
                    self._free_readers.append(tx)
        try:
            yield
        finally:
            self._no_holding = False

    def connect(self) -> Connection:
        conn = self._open()
        if self._memory or not self.checkpoint_off_request_path:
            return SqliteConnection(conn, owned=not self._memory, on_commit=self._committed)
        with self._lock:
            if self.checkpointer is None:
                self.checkpointer = WalCheckpointer(self._open, CHECKPOINT_INTERVAL_S, WAL_CAP_FRAMES,
                                                    self._readers_paused)
                self.checkpointer.start()
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer does it, off the request path
        return SqliteConnection(conn, owned=True, on_commit=self._committed)

    def _committed(self) -> None:
        self.commits = next(self._commit_numbers)  # before the batch's answers go out: reads renew
        checkpointer = self.checkpointer
        if checkpointer is not None:
            checkpointer.committed()

    def close(self) -> None:
        with self._lock:
            readers, self._readers = self._readers, []
            self._free_readers = []
        for conn in readers:
            conn.close()
        if self.checkpointer is not None:  # the last connection to close checkpoints what is left
            self.checkpointer.close()
            self.checkpointer = None
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        if self.reset and not self._memory:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(self.path + suffix)
                except FileNotFoundError:
                    pass


class SqliteSchema:
    """A migrations.SchemaSession inside the write transaction schema_session opened."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def version(self) -> int:
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'").fetchone():
            return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM migrations").fetchone()[0]
        return 0

    def apply(self, migrations) -> None:
        for migration in migrations:
            for statement in migration.statements(tables.SQLITE):
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO migrations (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
                              (migration.version,))


class SqliteConnection(Connection):
    def __init__(self, conn: sqlite3.Connection, owned: bool, on_commit: Callable[[], None] = lambda: None):
        self.conn = conn
        self.owned = owned
        self.on_commit = on_commit
        self.tx = SqliteTx(conn.cursor())

    def _run(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except sqlite3.Error as e:
            raise store_error(e) from e

    def begin(self) -> None:
        self._run("BEGIN IMMEDIATE")

    def commit(self) -> None:
        try:
            self._run("COMMIT")
        finally:  # counted even when COMMIT failed: whether it took effect, a read renews its snapshot
            self.on_commit()

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def savepoint(self) -> None:
        self._run("SAVEPOINT request")

    def release_savepoint(self) -> None:
        self._run("RELEASE request")

    def rollback_to_savepoint(self) -> None:
        self._run("ROLLBACK TO request")
        self._run("RELEASE request")

    def close(self) -> None:
        if self.owned:
            self.conn.close()
