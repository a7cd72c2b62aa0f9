"""The gRPC drain accounting: calls in flight, refusal while draining, settling."""
from __future__ import annotations

import asyncio
import time

import pytest

from resonate.api.grpc.server import _Drain
from resonate.core.codes import SHUTTING_DOWN, ApiError

CALLS = 100


def test_calls_counted_in_and_out_return_to_zero():
    drain = _Drain()
    for _ in range(CALLS):
        drain.enter()
    assert drain.inflight == CALLS
    for _ in range(CALLS):
        drain.leave()
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
