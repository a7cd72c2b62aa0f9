"""The gRPC drain accounting, which handler threads of grpcio's thread-pool server update concurrently."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from resonate.api.grpc.server import _Drain
from resonate.core.codes import SHUTTING_DOWN, ApiError

THREADS = 16
CALLS_PER_THREAD = 5000


def test_calls_counted_from_many_threads_return_to_zero():
    drain = _Drain()
    start = threading.Barrier(THREADS)

    def calls():
        start.wait()
        for _ in range(CALLS_PER_THREAD):
            drain.enter()
            drain.leave()

    threads = [threading.Thread(target=calls) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert drain.inflight == 0


def test_draining_refuses_new_calls_with_50300_and_settles_once_running_calls_leave():
    drain = _Drain()
    drain.enter()  # a call in flight when the drain starts

    async def scenario():
        settling = asyncio.ensure_future(drain.settle(time.monotonic() + 30))
        while not drain.draining:
            await asyncio.sleep(0)
        with pytest.raises(ApiError) as refused:
            drain.enter()
        assert refused.value.code == SHUTTING_DOWN
        assert not settling.done()
        drain.leave()
        return await settling

    assert asyncio.run(scenario()) is True
    assert drain.inflight == 0


def test_settle_gives_up_at_the_deadline_while_a_call_still_runs():
    drain = _Drain()
    drain.enter()
    assert asyncio.run(drain.settle(time.monotonic())) is False
    assert drain.inflight == 1
