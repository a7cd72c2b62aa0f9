"""Waiting on a condition, never on a fixed sleep: the one helper the tests share."""
from __future__ import annotations

import time
from typing import Callable

POLL_INTERVAL_S = 0.02  # how often the condition is looked at again


def wait_until(condition: Callable[[], object], what: str = "condition", timeout: float = 30.0,
               interval: float = POLL_INTERVAL_S) -> None:
    """Returns as soon as `condition()` is truthy; fails naming `what` after `timeout` seconds. `interval`
    is for conditions costly to look at (a whole subprocess each time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
