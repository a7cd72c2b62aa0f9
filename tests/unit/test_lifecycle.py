"""Shutdown answers every request: one queued behind a writer that is stuck past stop's join timeout gets
50300 instead of waiting forever, and submits racing stop are all answered."""
from __future__ import annotations

import threading
from concurrent.futures import wait
from dataclasses import dataclass

import pytest

from resonate.core import operations
from resonate.core.codes import ApiError
from resonate.core.kernel import Kernel
from resonate.core.operations import Result, decode
from resonate.core.store.sqlite import SqliteStore

ANSWER_S = 30  # generous bound on "was answered at all"; the checks wait on the futures, not on time


@dataclass
class Block:
    """A request whose execution waits until the test releases it."""

    started: threading.Event
    release: threading.Event


def run_block(ctx, req: Block) -> Result:
    req.started.set()
    req.release.wait(ANSWER_S)
    return Result(20000, None)


def test_requests_behind_a_stuck_writer_are_refused_at_stop(tmp_path, monkeypatch):
    monkeypatch.setitem(operations.EXECUTORS, Block, run_block)
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), batch_size=1)
    kernel.start()
    stuck = Block(threading.Event(), threading.Event())
    first = kernel.submit(stuck)
    assert stuck.started.wait(ANSWER_S)  # the only writer is inside the blocking request
    # writes queue behind it (reads would be answered beside the writer, from a read connection)
    queued = [kernel.submit(decode("promises.create", {"id": f"p{i}", "timeout": 10**15})) for i in range(5)]
    kernel.stop(timeout=0.1)  # the join gives up: the writer is still stuck
    for future in queued:
        with pytest.raises(ApiError) as refused:
            future.result(ANSWER_S)
        assert refused.value.code == 50300
    after = kernel.submit(decode("promises.create", {"id": "late", "timeout": 10**15}))
    with pytest.raises(ApiError) as late:
        after.result(ANSWER_S)
    assert late.value.code == 50300
    stuck.release.set()
    assert first.result(ANSWER_S).code == 20000  # the stuck request still finishes, and its writer exits


def test_submits_racing_stop_are_all_answered(tmp_path):
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), queue_limit=1_000_000)
    kernel.start()
    futures: list = []
    go = threading.Event()

    def flood(n: int) -> None:
        go.wait()
        for i in range(2000):
            futures.append(kernel.submit(decode("promises.create", {"id": f"t{n}-{i}", "timeout": 10**15})))

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    go.set()
    kernel.stop()
    for t in threads:
        t.join()
    done, not_done = wait(futures, timeout=ANSWER_S)
    assert not not_done
    codes = {f.result().code if f.exception() is None else f.exception().code for f in done}
    assert codes <= {20100, 50300}
