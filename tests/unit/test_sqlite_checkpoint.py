"""WAL checkpoints off the request path (resonate/core/store/sqlite.py): the writer's COMMIT never
checkpoints; the store's checkpointer thread does, on its own connection, and keeps the WAL bounded."""
from __future__ import annotations

import os
import threading

import pytest

from resonate.core.store import sqlite as sqlite_store
from resonate.core.store.sqlite import SqliteStore
from tests.infra.wait import wait_until

PAGE = 4096


def write(conn, pages: int) -> None:
    """One transaction through the store's connection, about `pages` pages of WAL."""
    conn.begin()
    conn.conn.execute("CREATE TABLE IF NOT EXISTS filler (data BLOB)")
    conn.conn.executemany("INSERT INTO filler VALUES (?)", [(os.urandom(PAGE - 200),) for _ in range(pages)])
    conn.commit()


def wal_bytes(path) -> int:
    return os.path.getsize(f"{path}-wal") if os.path.exists(f"{path}-wal") else 0


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "wal.db"))
    s.migrate()
    yield s
    s.close()


def test_the_writer_connection_never_checkpoints_and_a_thread_of_the_store_does(store):
    conn = store.connect()
    try:
        assert conn.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert any(t.name == "resonate-wal-checkpoint" for t in threading.enumerate())
        write(conn, 50)
        wait_until(lambda: store.checkpointer.last_result is not None and store.checkpointer.last_result[2] > 0,
                   "a checkpoint by the checkpointer thread")
        busy, frames, copied = store.checkpointer.last_result
        assert busy == 0 and copied == frames >= 50
    finally:
        conn.close()


def test_commits_past_sqlites_threshold_leave_the_wal_to_the_checkpointer(store, monkeypatch):
    """SQLite's own auto-checkpoint would have run inside the COMMIT past 1000 pages and restarted the log;
    with the checkpointer held back, the WAL keeps every frame: nothing checkpointed on the writer."""
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL_S", 3600)
    conn = store.connect()
    try:
        for _ in range(3):
            write(conn, 600)
        assert wal_bytes(store.path) > 1800 * PAGE
        assert store.checkpointer.checkpoints == 0
    finally:
        conn.close()


def restart_past_the_cap(store, conn) -> None:
    """Writes past a cap of 300 frames, waits for the RESTART checkpoint, then for the log to start over."""
    write(conn, 400)
    wait_until(lambda: store.checkpointer.restarts >= 1, "a RESTART checkpoint past the cap")
    write(conn, 5)  # starts the log from the beginning
    wait_until(lambda: store.checkpointer.last_result is not None and store.checkpointer.last_result[1] < 300,
               "the WAL to start again from its beginning")


def test_a_wal_past_the_cap_is_restarted(store, monkeypatch):
    monkeypatch.setattr(sqlite_store, "WAL_CAP_FRAMES", 300)
    conn = store.connect()
    try:
        restart_past_the_cap(store, conn)
    finally:
        conn.close()


def test_close_stops_the_checkpointer_and_keeps_every_commit(tmp_path):
    path = str(tmp_path / "closed.db")
    store = SqliteStore(path)
    store.migrate()
    conn = store.connect()
    write(conn, 20)
    conn.close()
    store.close()
    assert not any(t.name == "resonate-wal-checkpoint" for t in threading.enumerate())
    assert wal_bytes(path) == 0  # the last connection to close checkpointed the rest
    reopened = SqliteStore(path)
    again = reopened.connect()
    try:
        assert again.conn.execute("SELECT COUNT(*) FROM filler").fetchone()[0] == 20
    finally:
        again.close()
        reopened.close()


def test_without_the_checkpointer_sqlite_checkpoints_in_commit_as_before(tmp_path, monkeypatch):
    monkeypatch.setattr(SqliteStore, "checkpoint_off_request_path", False)
    store = SqliteStore(str(tmp_path / "plain.db"))
    store.migrate()
    conn = store.connect()
    try:
        assert conn.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert store.checkpointer is None
    finally:
        conn.close()
        store.close()


def read_filler(store) -> int:
    """One read on a pooled read connection, which keeps its read transaction open afterwards."""
    tx = store.reader()
    try:
        return tx.one("SELECT COUNT(*) FROM filler")[0]
    finally:
        store.release_reader(tx)


def test_an_idle_read_connection_does_not_hold_back_the_checkpoint(store):
    """A read connection keeps its snapshot between reads; a commit after it would leave it holding an old
    snapshot, which keeps a checkpoint from copying past it. The checkpointer ends idle ones first."""
    conn = store.connect()
    try:
        write(conn, 50)
        assert read_filler(store) == 50
        (held,) = store._free_readers
        assert held.conn.in_transaction  # idle in the pool, snapshot at the first 50 pages
        write(conn, 50)
        wait_until(lambda: store.checkpointer.last_result is not None and store.checkpointer.last_result[1] >= 100,
                   "a checkpoint after the second write")
        busy, frames, copied = store.checkpointer.last_result
        assert busy == 0 and copied == frames  # nothing held back by the idle reader
        assert not held.conn.in_transaction
        assert read_filler(store) == 100
    finally:
        conn.close()


def test_a_wal_past_the_cap_is_restarted_while_reads_hold_snapshots(store, monkeypatch):
    """A RESTART checkpoint waits for every reader (and blocks the writer meanwhile): reads must not keep a
    snapshot past it. Reads keep running during the checkpoints; the log still starts from the beginning."""
    monkeypatch.setattr(sqlite_store, "WAL_CAP_FRAMES", 300)
    conn = store.connect()
    stop = threading.Event()
    counts: list[int] = []

    def keep_reading():
        while not stop.is_set():
            counts.append(read_filler(store))

    write(conn, 1)
    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        restart_past_the_cap(store, conn)
        wait_until(lambda: counts and counts[-1] == 406, "a read to see the last write")
    finally:
        stop.set()
        reader.join(30)
        conn.close()
