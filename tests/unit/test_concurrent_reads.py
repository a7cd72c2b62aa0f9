"""Reads beside the writer (issue 13): on a file SQLite the kernel answers point reads and searches from a
read connection on the caller's thread. The answer must be the one the writer would give: a read after
an answered write sees it; a read that would write (a lazy timeout) or that due work could change goes
through the writer, and the store agrees with the answer afterwards."""
from __future__ import annotations

import asyncio
import threading

from resonate.core.codes import PROMISE_NOT_FOUND, SCHEDULE_NOT_FOUND, TASK_NOT_FOUND, ApiError
from resonate.core import deadlines as dl
from resonate.core.background import TimeoutPromises
from resonate.core.kernel import Kernel
from resonate.core.loops import BackgroundLoops
from resonate.core.model import PromiseState
from resonate.core.operations import decode
from resonate.core.store.sqlite import SqliteConnection, SqliteStore

T0 = 1_700_000_000_000
FAR = 10**15


class Clock:
    def __init__(self, now: int = T0):
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_kernel(store, clock=None) -> Kernel:
    kernel = Kernel(store, queue_limit=100_000, **({"clock": clock} if clock else {}))
    kernel.start()
    return kernel


def call(kernel: Kernel, op: str, **fields):
    try:
        return kernel.call(decode(op, fields))
    except ApiError as e:
        return e


def stored_state(kernel: Kernel, promise_id: str) -> PromiseState:
    conn = kernel.store.connect()  # a fresh connection: what is committed
    try:
        return conn.tx.read_promise(promise_id).state
    finally:
        conn.close()


def test_reads_do_not_go_through_the_writer(tmp_path):
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")))
    try:
        assert kernel.concurrent_reads
        assert call(kernel, "promises.create", id="p", timeout=FAR, tags={"k": "v"}).code == 20100
        batches = kernel.batches
        assert call(kernel, "promises.read", id="p").body.id == "p"
        assert call(kernel, "promises.read", id="missing").code == PROMISE_NOT_FOUND
        assert [p.id for p in call(kernel, "promises.search", id="p*", tags={"k": "v"}).body["promises"]] == ["p"]
        assert call(kernel, "schedules.read", id="missing").code == SCHEDULE_NOT_FOUND
        assert call(kernel, "tasks.read", id="missing").code == TASK_NOT_FOUND
        assert kernel.batches == batches  # no transaction on the writer
    finally:
        kernel.stop()


def test_a_read_after_an_answered_write_sees_it(tmp_path):
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")))
    stop = threading.Event()

    def other_writes():  # batches commit all the time around the reads below
        i = 0
        while not stop.is_set():
            kernel.call(decode("promises.create", {"id": f"other-{i}", "timeout": FAR}))
            i += 1

    writer = threading.Thread(target=other_writes)
    writer.start()
    try:
        for i in range(300):
            assert call(kernel, "promises.create", id=f"p{i}", timeout=FAR).code == 20100
            assert call(kernel, "promises.read", id=f"p{i}").body.state is PromiseState.PENDING
            assert call(kernel, "promises.complete", id=f"p{i}", state="RESOLVED").code == 20100
            assert call(kernel, "promises.read", id=f"p{i}").body.state is PromiseState.RESOLVED
    finally:
        stop.set()
        writer.join(30)
        kernel.stop()


def test_an_expired_pending_promise_is_timed_out_by_the_writer_and_the_store_agrees(tmp_path):
    clock = Clock()
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")), clock)
    try:
        assert call(kernel, "promises.create", id="p", timeout=T0 + 100).code == 20100
        assert call(kernel, "promises.create", id="s", timeout=T0 + 100, tags={"k": "v"}).code == 20100
        clock.now = T0 + 100
        batches = kernel.batches
        read = call(kernel, "promises.read", id="p")
        assert read.code == 20000 and read.body.state is PromiseState.REJECTED_TIMEDOUT
        assert kernel.batches == batches + 1  # the lazy timeout was written by the writer
        assert stored_state(kernel, "p") is PromiseState.REJECTED_TIMEDOUT
        found = call(kernel, "promises.search", id="s*", tags={"k": "v"}).body["promises"]
        assert [(p.id, p.state) for p in found] == [("s", PromiseState.REJECTED_TIMEDOUT)]
        assert stored_state(kernel, "s") is PromiseState.REJECTED_TIMEDOUT
        batches = kernel.batches
        assert call(kernel, "promises.read", id="p").body.state is PromiseState.REJECTED_TIMEDOUT
        assert kernel.batches == batches  # nothing left to write: answered beside the writer again
    finally:
        kernel.stop()


def test_due_work_sends_reads_to_the_writer_which_does_it_first(tmp_path):
    clock = Clock()
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")), clock)
    kernel.due_work = {p.name: p.make for p in BackgroundLoops(kernel).passes}  # as the event-driven loops do
    try:
        assert call(kernel, "promises.create", id="expiring", timeout=T0 + 100).code == 20100
        assert call(kernel, "promises.create", id="other", timeout=FAR).code == 20100
        clock.now = T0 + 100  # the timeout pass is due; no loop thread runs it
        batches = kernel.batches
        assert call(kernel, "promises.read", id="other").code == 20000
        assert kernel.batches == batches + 1
        # the writer ran the due pass before the read: the promise nobody read is timed out
        assert stored_state(kernel, "expiring") is PromiseState.REJECTED_TIMEDOUT
    finally:
        kernel.stop()


def test_a_read_overlapping_a_commit_goes_to_the_writer(tmp_path):
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")))
    try:
        assert call(kernel, "promises.create", id="p", timeout=FAR).code == 20100
        kernel._commit_seq += 1  # as between a batch's COMMIT and the booking of its deadlines
        batches = kernel.batches
        assert call(kernel, "promises.read", id="p").code == 20000
        assert kernel.batches == batches + 1
    finally:
        kernel._commit_seq += 1
        kernel.stop()


def test_submit_async_answers_a_read_without_a_hand_off(tmp_path):
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")))

    async def scenario():
        assert (await kernel.submit_async(decode("promises.create", {"id": "p", "timeout": FAR}))).code == 20100
        read = kernel.submit_async(decode("promises.read", {"id": "p"}))
        assert read.done()  # answered on this thread, before any await
        assert (await read).body.id == "p"
        missing = kernel.submit_async(decode("promises.read", {"id": "missing"}))
        assert isinstance(missing.exception(), ApiError) and missing.exception().code == PROMISE_NOT_FOUND

    try:
        asyncio.run(scenario())
    finally:
        kernel.stop()


def test_in_memory_sqlite_reads_through_the_writer(tmp_path):
    kernel = make_kernel(SqliteStore(":memory:"))
    try:
        assert not kernel.concurrent_reads  # one shared connection: no reader beside the writer
        assert call(kernel, "promises.create", id="p", timeout=FAR).code == 20100
        batches = kernel.batches
        assert call(kernel, "promises.read", id="p").body.id == "p"
        assert kernel.batches == batches + 1
    finally:
        kernel.stop()


def test_a_full_or_stopped_kernel_refuses_reads_as_before(tmp_path):
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), queue_limit=1)
    kernel.start()
    try:
        with kernel._room:
            kernel._pending = kernel.queue_limit  # full
        assert call(kernel, "promises.read", id="p").code == 50301
        with kernel._room:
            kernel._pending = 0
        assert call(kernel, "promises.read", id="p").code == PROMISE_NOT_FOUND
    finally:
        kernel.stop()
    assert call(kernel, "promises.read", id="p").code == 50300


def test_a_batch_books_its_deadlines_before_committing_so_reads_meanwhile_stay_beside_the_writer(
        tmp_path, monkeypatch):
    """A batch's own deadlines are in the book before its rows can be seen, so an ordinary write batch
    does not send reads to the writer; a batch whose pass replaced a deadline (booked only after its
    commit) does."""
    clock = Clock()
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")), clock)
    during_commit: list[tuple[int, bool]] = []
    original_commit = SqliteConnection.commit

    def observing_commit(conn):
        read = kernel._read_now(decode("promises.read", {"id": "old"}))  # as another thread would, now
        during_commit.append((kernel.deadlines.at(dl.TIMEOUT_PROMISES), read is not None))
        original_commit(conn)

    try:
        assert call(kernel, "promises.create", id="old", timeout=FAR).code == 20100
        monkeypatch.setattr(SqliteConnection, "commit", observing_commit)
        assert call(kernel, "promises.create", id="new", timeout=T0 + 500).code == 20100
        assert during_commit == [(T0 + 500, True)]  # booked before the commit; the read was answered
        clock.now = T0 + 500
        assert kernel.submit(TimeoutPromises(100), background=True).result(30).body == 1
        assert during_commit[1] == (T0 + 500, False)  # the pass's replacement comes after: writer
        assert kernel.deadlines.at(dl.TIMEOUT_PROMISES) == FAR
    finally:
        monkeypatch.undo()
        kernel.stop()


def test_read_connections_are_pooled_and_bounded(tmp_path):
    """Many reading threads (gRPC handlers) share at most READERS_MAX connections; a read finding none
    free is answered by the writer, with the same answer."""
    from resonate.core.store.sqlite import READERS_MAX

    store = SqliteStore(str(tmp_path / "k.db"))
    kernel = make_kernel(store)
    try:
        assert call(kernel, "promises.create", id="p", timeout=FAR).code == 20100
        held = [store.reader() for _ in range(READERS_MAX)]
        assert all(tx is not None for tx in held) and store.reader() is None
        batches = kernel.batches
        assert call(kernel, "promises.read", id="p").body.id == "p"
        assert kernel.batches == batches + 1  # answered by the writer
        for tx in held:
            store.release_reader(tx)

        answers: list[str] = []

        def read_many():
            for _ in range(20):
                answers.append(call(kernel, "promises.read", id="p").body.id)

        threads = [threading.Thread(target=read_many) for _ in range(3 * READERS_MAX)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == ["p"] * (20 * 3 * READERS_MAX)
        assert len(store._readers) == READERS_MAX  # reused, never more
    finally:
        kernel.stop()


def test_consecutive_reads_share_one_read_transaction_until_a_commit(tmp_path):
    """A read connection keeps its snapshot across reads (no WAL read lock per statement) only while nothing
    was committed since it began: the first read after a commit starts a new one and sees the commit."""
    store = SqliteStore(str(tmp_path / "k.db"))
    kernel = make_kernel(store)
    try:
        assert call(kernel, "promises.create", id="p", timeout=FAR).code == 20100
        assert call(kernel, "promises.read", id="p").body.state is PromiseState.PENDING
        (tx,) = store._free_readers
        began = tx.held
        assert began == store.commits and tx.conn.in_transaction  # held after the read
        for _ in range(3):
            assert call(kernel, "promises.read", id="p").body.state is PromiseState.PENDING
        assert store._free_readers == [tx] and tx.held == began  # the same transaction, reused
        assert call(kernel, "promises.complete", id="p", state="RESOLVED").code == 20100
        assert store.commits != began
        assert call(kernel, "promises.read", id="p").body.state is PromiseState.RESOLVED
        assert tx.held == store.commits  # renewed at the commit's count
    finally:
        kernel.stop()


def test_a_commit_through_any_connection_of_the_store_renews_held_reads(tmp_path):
    store = SqliteStore(str(tmp_path / "k.db"))
    kernel = make_kernel(store)
    other = store.connect()  # a second writer connection: not the kernel's
    try:
        assert call(kernel, "promises.read", id="p").code == PROMISE_NOT_FOUND  # a snapshot held without p
        other.begin()
        other.conn.execute("INSERT INTO promises (id, state, timeout, created_on) VALUES ('p', 1, ?, 0)", (FAR,))
        other.commit()
        assert call(kernel, "promises.read", id="p").body.id == "p"
    finally:
        other.close()
        kernel.stop()


def test_a_read_in_progress_during_a_commit_ends_its_transaction_at_release(tmp_path):
    """A read that began before a commit may answer from its snapshot (it overlapped the write), but its
    connection goes back to the pool without that stale snapshot."""
    store = SqliteStore(str(tmp_path / "k.db"))
    kernel = make_kernel(store)
    try:
        assert call(kernel, "promises.create", id="p", timeout=FAR).code == 20100
        tx = store.reader()
        assert tx.read_promise("p").state is PromiseState.PENDING
        assert call(kernel, "promises.complete", id="p", state="RESOLVED").code == 20100
        assert tx.read_promise("p").state is PromiseState.PENDING  # its snapshot, as a read overlapping a write
        store.release_reader(tx)
        assert tx.held is None and not tx.conn.in_transaction
        assert call(kernel, "promises.read", id="p").body.state is PromiseState.RESOLVED
    finally:
        kernel.stop()


def test_answer_now_answers_reads_as_submit_and_leaves_the_rest_to_it(tmp_path):
    kernel = make_kernel(SqliteStore(str(tmp_path / "k.db")))
    try:
        create = decode("promises.create", {"id": "p", "timeout": FAR})
        assert kernel.answer_now(create) is None  # a write: submitted
        assert kernel.call(create).code == 20100
        ok, result = kernel.answer_now(decode("promises.read", {"id": "p"}))
        assert ok and result == kernel.call(decode("promises.read", {"id": "p"}))
        ok, error = kernel.answer_now(decode("promises.read", {"id": "missing"}))
        assert not ok and isinstance(error, ApiError) and error.code == PROMISE_NOT_FOUND
        with kernel._room:
            kernel._pending = kernel.queue_limit  # full: the writer path answers (50301)
        assert kernel.answer_now(decode("promises.read", {"id": "p"})) is None
        with kernel._room:
            kernel._pending = 0
    finally:
        kernel.stop()
