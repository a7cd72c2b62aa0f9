"""Poll streams across servers sharing one PostgreSQL database (docs/scaling-out.md).

A poll listener holds its stream open on one server, but the task for it may be sent by any server.
Each server tells the others which streams it holds (presence: up, down, hello, bye); a server with
no local stream for a message forwards it to one server that holds a matching stream. That server
alone delivers it and records the outcome (ENQUEUED with the claim window, or the retry delay), as if
it had sent it itself. A forward that is lost (the target died) leaves the task with its in-flight
guard, after which it is sent again: at least once, as every delivery.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable

from ..background import RecordSendOutcomes, SendOutcome
from ..operations import Outgoing

log = logging.getLogger("resonate.relay")


class PollRelay:
    def __init__(self, server: str, poll, publish: Callable[[dict], bool], record: Callable[[SendOutcome], None],
                 loop: asyncio.AbstractEventLoop):
        self.server = server
        self.poll = poll
        self.publish = publish
        self.record = record
        self.loop = loop
        self.remote: dict[str, dict[str, str]] = {}  # group -> stream id -> server holding it
        self.forwarded = 0
        self.received = 0
        self._tasks: set[asyncio.Task] = set()
        poll.on_presence = self._local_presence

    # -- presence
    def _local_presence(self, group: str, ident: str, up: bool) -> None:
        self.publish({"op": "up" if up else "down", "g": group, "i": ident})

    def announce(self) -> None:
        for group, conns in list(self.poll.groups.items()):
            for ident in list(conns):
                self.publish({"op": "up", "g": group, "i": ident})

    def hello(self) -> None:
        """(Re)joined: ask the others for their streams, and tell them ours."""
        self.publish({"op": "hello"})
        self.announce()

    def bye(self) -> None:
        self.publish({"op": "bye"})

    # -- forwarding
    def target(self, address: Any) -> str | None:
        if not isinstance(address, dict) or not isinstance(address.get("group"), str):
            return None
        holders = self.remote.get(address["group"])
        if not holders:
            return None
        ident = address.get("id")
        if ident and ident in holders:
            return holders[ident]
        if address.get("cast", "any") != "any":
            return None
        return random.choice(list(holders.values()))

    def forward(self, address: Any, message: Outgoing) -> bool:
        """True when handed to another server, which then delivers it and records the outcome."""
        target = self.target(address)
        if target is None:
            return False
        sent = self.publish({"op": "deliver", "to": target, "a": address, "b": message.body, "h": message.head,
                             "t": message.task_id, "c": message.counter, "x": message.expects_outcome})
        if sent:
            self.forwarded += 1
        return sent

    # -- receiving (on the event loop)
    def receive_threadsafe(self, message: dict) -> None:
        try:
            self.loop.call_soon_threadsafe(self.receive, message)
        except RuntimeError:
            pass  # the event loop is closed: shutting down

    def receive(self, message: dict) -> None:
        op, sender = message.get("op"), message.get("s")
        if op == "up":
            self.remote.setdefault(message["g"], {})[message["i"]] = sender
            log.debug("poll stream %s/%s is held by server %s", message["g"], message["i"], sender)
        elif op == "down":
            holders = self.remote.get(message["g"], {})
            if holders.get(message["i"]) == sender:
                del holders[message["i"]]
                if not holders:
                    self.remote.pop(message["g"], None)
        elif op == "bye":
            for group in list(self.remote):
                holders = self.remote[group]
                for ident in [i for i, s in holders.items() if s == sender]:
                    del holders[ident]
                if not holders:
                    del self.remote[group]
        elif op == "hello":
            self.announce()
        elif op == "deliver" and message.get("to") == self.server:
            task = self.loop.create_task(self._deliver(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, m: dict) -> None:
        self.received += 1
        delivered = await self.poll.send(m["a"], m["b"], m["h"])
        if m.get("x"):
            self.record(SendOutcome(m["t"], m["c"], delivered, self.poll.ttc_ms if delivered else self.poll.ttr_ms))


class PostgresCluster:
    """This server among the others on its PostgreSQL database: the notifier and the poll relay."""

    def __init__(self, notifier, relay: PollRelay | None):
        self.notifier = notifier
        self.relay = relay

    def start(self) -> None:
        self.notifier.start()

    def stop(self) -> None:
        """Call off the event loop (joins the listener thread)."""
        if self.relay is not None:
            self.relay.bye()
        self.notifier.stop()

    close = stop


def wire_postgres_cluster(kernel, store, dispatcher, poll, loop: asyncio.AbstractEventLoop,
                          horizon_ms: int) -> PostgresCluster:
    """Joins this server to the others on its PostgreSQL database (start/stop the result)."""
    from ..store.pg_notify import DEADLINE_CHANNEL, POLL_CHANNEL, PgNotifier

    def note_deadlines(message: dict) -> None:
        for kind, at in (message.get("d") or {}).items():
            if isinstance(at, int):
                kernel.deadlines.note(kind, at)

    handlers: dict[str, Callable[[dict], None]] = {DEADLINE_CHANNEL: note_deadlines}
    relay = None
    notifier = PgNotifier(store.conninfo, store.server_id, handlers)
    if poll is not None:
        relay = PollRelay(store.server_id, poll, lambda m: notifier.publish(POLL_CHANNEL, m),
                          lambda o: kernel.submit(RecordSendOutcomes([o]), background=True), loop)
        handlers[POLL_CHANNEL] = relay.receive_threadsafe
        notifier.on_connected = lambda: loop.call_soon_threadsafe(relay.hello)
        dispatcher.relay = relay
    kernel.share_horizon_ms = horizon_ms
    return PostgresCluster(notifier, relay)
