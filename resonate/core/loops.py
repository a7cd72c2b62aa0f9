"""Background loops: each submits its pass to the kernel every period, and again at once while its
backlog is not clear (v0.8.2). A pass never overlaps with itself."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from .background import EnqueueTasks, PruneReplies, SchedulePromises, TimeoutLocks, TimeoutPromises, TimeoutTasks
from .codes import ApiError

log = logging.getLogger("resonate.loops")


@dataclass
class LoopConfig:
    period_s: float = 1.0
    promise_batch_size: int = 100
    schedule_batch_size: int = 100
    task_batch_size: int = 100
    reply_retention_ms: int = 24 * 3600 * 1000  # stored replies of deduplicated (Kafka) requests
    reply_batch_size: int = 1000


class BackgroundLoops:
    def __init__(self, kernel, config: LoopConfig | None = None):
        self.kernel = kernel
        self.config = config or LoopConfig()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _passes(self):
        c = self.config
        return [
            ("timeout-promises", lambda: TimeoutPromises(c.promise_batch_size), c.promise_batch_size),
            ("schedule-promises", lambda: SchedulePromises(c.schedule_batch_size), c.schedule_batch_size),
            ("timeout-locks", TimeoutLocks, None),
            ("enqueue-tasks", lambda: EnqueueTasks(c.task_batch_size), c.task_batch_size),
            ("timeout-tasks", lambda: TimeoutTasks(c.task_batch_size), c.task_batch_size),
            ("prune-replies", lambda: PruneReplies(c.reply_retention_ms, c.reply_batch_size), c.reply_batch_size),
        ]

    def start(self) -> None:
        for name, make, limit in self._passes():
            t = threading.Thread(target=self._run, args=(make, limit), name=f"resonate-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, make, limit) -> None:
        while not self._stop.is_set():
            try:
                done = self.kernel.submit(make(), background=True).result(timeout=60)
                if limit is not None and done.body >= limit:
                    continue  # backlog not clear: go again at once
            except ApiError as e:
                if e.code == 50300:
                    return
                log.warning("background pass failed: %s", e)
            except Exception:
                log.exception("background pass failed")
            self._stop.wait(self.config.period_s)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._threads.clear()
