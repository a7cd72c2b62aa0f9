"""Deadlines: when each kind of background work next falls due.

A deadline's kind is the name of the background pass that handles it. The store transaction notes
every deadline it writes (`SqlTx.note_deadline`); a pass, once it has done its work, replaces its
kind's deadline with the store's next one (`SqlTx.next_deadline`). The kernel keeps the book below
from those, and the background loops wake at the earliest entry instead of once per period.
"""
from __future__ import annotations

import threading
from typing import Callable

from .model import INT64_MAX

TIMEOUT_PROMISES = "timeout-promises"  # pending promises' timeouts
SCHEDULE_PROMISES = "schedule-promises"  # schedules' next runs
TIMEOUT_LOCKS = "timeout-locks"  # locks' expiries
ENQUEUE_TASKS = "enqueue-tasks"  # INIT tasks' send times (0: now) and retry delays
TIMEOUT_TASKS = "timeout-tasks"  # ENQUEUED/CLAIMED tasks' lease expiries and timeouts

KINDS = (TIMEOUT_PROMISES, SCHEDULE_PROMISES, TIMEOUT_LOCKS, ENQUEUE_TASKS, TIMEOUT_TASKS)

NEVER = INT64_MAX


class DeadlineBook:
    """The earliest known deadline per kind, shared by the kernel's writer threads and the loops.

    `note` only lowers an entry. `replace` sets it to what a pass found next in the store; a note made
    meanwhile by another writer (which that pass's query may not have seen) is kept, so nothing noted
    is ever forgotten: at worst a pass runs once for nothing.
    """

    def __init__(self, on_lowered: Callable[[str, int], None] | None = None):
        self._lock = threading.Lock()
        self._at: dict[str, int] = {}
        self._version: dict[str, int] = {}
        self.on_lowered = on_lowered or (lambda kind, at: None)

    def at(self, kind: str) -> int:
        return self._at.get(kind, NEVER)

    def earliest(self) -> int:
        return min(self._at.values(), default=NEVER)

    def due(self, now: int, kinds=KINDS) -> list[str]:
        return [k for k in kinds if self._at.get(k, NEVER) <= now]

    def versions(self) -> dict[str, int]:
        with self._lock:
            return dict(self._version)

    def note(self, kind: str, at: int) -> None:
        with self._lock:
            self._version[kind] = self._version.get(kind, 0) + 1
            lowered = at < self._at.get(kind, NEVER)
            if lowered:
                self._at[kind] = at
        if lowered:
            self.on_lowered(kind, at)

    def replace(self, kind: str, at: int, seen_versions: dict[str, int]) -> None:
        with self._lock:
            if self._version.get(kind, 0) != seen_versions.get(kind, 0):
                at = min(at, self._at.get(kind, NEVER))  # noted by another writer meanwhile: keep it
            lowered = at < self._at.get(kind, NEVER)
            self._at[kind] = at
            self._version[kind] = self._version.get(kind, 0) + 1
        if lowered:
            self.on_lowered(kind, at)
