"""The kernel's promises: group commit, per-request isolation, one clock per batch, replayed replies."""
from __future__ import annotations

import threading
from concurrent.futures import wait

import pytest

from resonate.api.kafka.dedup import KafkaDedup
from resonate.core import operations
from resonate.core.codes import ApiError
from resonate.core.kernel import Kernel
from resonate.core.operations import render
from resonate.core.requests import decode
from resonate.core.store.sqlite import SqliteStore


def make_kernel(tmp_path, **kw) -> Kernel:
    kernel = Kernel(SqliteStore(str(tmp_path / "k.db")), queue_limit=100_000, **kw)
    kernel.start()
    return kernel


def create(i: int, timeout: int = 10**15):
    return decode("promises.create", {"id": f"p{i}", "timeout": timeout})


def test_concurrent_requests_share_transactions(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        futures = [kernel.submit(create(i)) for i in range(2000)]
        wait(futures)
        assert all(f.result().code == 20100 for f in futures)
        assert kernel.batches < 2000 / 4, f"{kernel.batches} transactions for 2000 requests: no group commit"
    finally:
        kernel.stop()


def test_a_failing_request_rolls_back_only_itself(tmp_path, monkeypatch):
    kernel = make_kernel(tmp_path)
    original = operations.EXECUTORS[operations.CreatePromise]

    def explode_on_p13(ctx, req):
        result = original(ctx, req)  # writes the promise, then fails: the write must not survive
        if req.id == "p13":
            raise RuntimeError("boom")
        return result

    try:
        # EXECUTORS is the one table the kernel dispatches through
        monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, explode_on_p13)
        futures = [kernel.submit(create(i)) for i in range(30)]
        wait(futures)
        codes = {i: (f.exception().code if f.exception() else f.result().code) for i, f in enumerate(futures)}
        assert codes.pop(13) == 50004
        assert set(codes.values()) == {20100}
        monkeypatch.setitem(operations.EXECUTORS, operations.CreatePromise, original)
        with pytest.raises(ApiError) as e:
            kernel.call(decode("promises.read", {"id": "p13"}))
        assert e.value.code == 40400
        assert kernel.call(decode("promises.read", {"id": "p12"})).code == 20000
    finally:
        kernel.stop()


def test_one_clock_reading_per_batch(tmp_path):
    readings = []
    lock = threading.Lock()

    def clock():
        with lock:
            readings.append(len(readings))
            return 1_000_000 + len(readings)

    kernel = make_kernel(tmp_path, clock=clock)
    try:
        futures = [kernel.submit(create(i)) for i in range(500)]
        wait(futures)
        created_on = {f.result().body.created_on for f in futures}
        assert len(created_on) == kernel.batches == len(readings)
    finally:
        kernel.stop()


def test_lazy_timeout_writes_survive_an_error_answer(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        kernel.call(create(1, timeout=1))
        with pytest.raises(ApiError) as e:
            kernel.call(decode("promises.complete", {"id": "p1", "state": "RESOLVED", "strict": True}))
        assert e.value.code == 40304
        # the timeout that the failed call discovered was committed
        p = kernel.store.connect().tx.read_promise("p1")
        assert p.state.name == "REJECTED_TIMEDOUT"
    finally:
        kernel.stop()


def test_deduplicated_request_is_answered_from_the_store(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        first = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c1")).result()
        again = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c1")).result()
        assert first.code == again.code == 20100  # not 409: the stored reply is replayed
        assert render(again.body) == render(first.body)
        fresh = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c2"))
        assert fresh.exception().code == 40900
        replay = kernel.submit(create(7), dedup=KafkaDedup("kafka:t:c2"))
        assert replay.exception().to_json() == fresh.exception().to_json()
    finally:
        kernel.stop()


def test_stopped_kernel_refuses_with_50300(tmp_path):
    kernel = make_kernel(tmp_path)
    kernel.stop()
    with pytest.raises(ApiError) as e:
        kernel.call(create(1))
    assert e.value.code == 50300


def test_cancelled_callers_do_not_stop_the_writer(tmp_path):
    kernel = make_kernel(tmp_path)
    try:
        futures = [kernel.submit(create(i)) for i in range(200)]
        for f in futures[::3]:
            f.cancel()
        wait([f for f in futures if not f.cancelled()])
        assert kernel.call(decode("promises.create", {"id": "after", "timeout": 10**15})).code == 20100
    finally:
        kernel.stop()
