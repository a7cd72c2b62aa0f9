"""The `poll` plugin: recipients hold a server-sent-event stream open and receive messages on it (spec 5.6)."""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import gojson

log = logging.getLogger("resonate.poll")


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_deep(v) for v in value]
    return value


@dataclass(eq=False)
class PollConnection:
    group: str
    id: str
    queue: asyncio.Queue
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class PollPlugin:
    name = "poll"

    def __init__(self, *, buffer_size: int = 100, max_connections: int = 1000, ttr_ms: int = 15_000,
                 ttc_ms: int = 60_000, disconnect_after_s: float = 0):
        self.buffer_size = buffer_size
        self.max_connections = max_connections
        self.ttr_ms = ttr_ms
        self.ttc_ms = ttc_ms
        self.disconnect_after_s = disconnect_after_s
        self.groups: dict[str, dict[str, PollConnection]] = {}
        # (group, id, connected): told to the other servers sharing the database (delivery/relay.py)
        self.on_presence: Callable[[str, str, bool], None] = lambda group, ident, up: None

    @property
    def connection_count(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def connect(self, group: str, ident: str) -> PollConnection | None:
        """Registers a stream; a new stream with the same group and id replaces the old one."""
        conns = self.groups.setdefault(group, {})
        old = conns.pop(ident, None)
        if old is not None:
            old.closed.set()
        if self.connection_count >= self.max_connections:
            return None
        conn = PollConnection(group, ident, asyncio.Queue(self.buffer_size))
        conns[ident] = conn
        self.on_presence(group, ident, True)
        return conn

    def disconnect(self, conn: PollConnection) -> None:
        conns = self.groups.get(conn.group)
        if conns is not None and conns.get(conn.id) is conn:
            del conns[conn.id]
            if not conns:
                del self.groups[conn.group]
            self.on_presence(conn.group, conn.id, False)
        conn.closed.set()

    def close_all(self) -> None:
        """Ends every stream, so a shutting-down server is not held open by listeners."""
        for conns in list(self.groups.values()):
            for conn in list(conns.values()):
                self.disconnect(conn)

    async def send(self, address: Any, body: dict, head: dict[str, str]) -> bool:
        if not isinstance(address, dict):
            return False
        group, cast, ident = address.get("group"), address.get("cast", "any"), address.get("id")
        conns = self.groups.get(group) if isinstance(group, str) else None
        if not conns:
            return False
        conn = conns.get(ident) if ident else None
        if conn is None:
            if cast != "any":
                return False
            conn = random.choice(list(conns.values()))
        if head:
            body = _sorted_deep({**body, "head": head})
        try:
            conn.queue.put_nowait(gojson.dumps(body))
        except asyncio.QueueFull:
            return False
        return True

    async def stream(self, conn: PollConnection):
        """The event stream of one connection: `data: <json>\\n\\n` per message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.disconnect_after_s if self.disconnect_after_s > 0 else None
        closed = asyncio.ensure_future(conn.closed.wait())
        try:
            yield ": connected\n\n"
            while not conn.closed.is_set():
                getter = asyncio.ensure_future(conn.queue.get())
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait({getter, closed}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield f"data: {getter.result()}\n\n"
                else:
                    getter.cancel()
                    break
        finally:
            closed.cancel()
            self.disconnect(conn)
