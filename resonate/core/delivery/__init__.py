"""Delivery of task messages to recipients, after the transaction that produced them commits (spec 5.5).

The dispatcher resolves each recipient to a plugin and an address, sends through the plugin, and
reports every invoke/resume outcome back to the kernel as a background request, so the task's state
change (ENQUEUED with a claim window, or INIT with a retry delay) is itself group-committed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ...observability import metrics
from ..background import RecordSendOutcomes, SendOutcome
from ..operations import Outgoing

log = logging.getLogger("resonate.delivery")

SEND_ERROR_RETRY_MS = 15_000  # the reference's fixed delay after a send error (not a plugin failure)


class SendError(Exception):
    """The message could not be handed to any plugin (unknown recipient or plugin)."""


class Plugin(Protocol):
    name: str
    ttr_ms: int  # retry delay after a failed delivery
    ttc_ms: int  # claim window after a successful delivery (0 = none)

    async def send(self, address: Any, body: dict, head: dict[str, str]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Destination:
    plugin: str
    address: Any


DEFAULT_TARGETS = {"default": Destination("poll", {"cast": "any", "group": "default"})}


def resolve(recv: str, targets: dict[str, Destination] | None = None) -> Destination:
    """A stored recipient (raw JSON) -> plugin and address; raises SendError when unusable."""
    targets = DEFAULT_TARGETS if targets is None else targets
    try:
        value = json.loads(recv)
    except (ValueError, TypeError):
        raise SendError(f"unknown receiver {recv}") from None
    if isinstance(value, str):
        if value in targets:
            return targets[value]
        return _parse_url(value)
    if isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"]:
        return Destination(value["type"], value.get("data"))
    raise SendError(f"unknown receiver {recv}")


def _parse_url(url: str) -> Destination:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SendError(f"unknown receiver {url}") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return Destination("http", {"url": url})
    if scheme == "poll":
        cast, _, group = parts.netloc.rpartition("@")
        cast = (cast or "any").lower()
        if cast not in ("any", "uni") or not group:
            raise SendError(f"unknown receiver {url}")
        address: dict[str, str] = {"cast": cast, "group": group}
        ident = parts.path.lstrip("/")
        if ident:
            address["id"] = ident
        return Destination("poll", address)
    if scheme == "sqs+https":
        return Destination("sqs", {"url": "https://" + parts.netloc + parts.path})
    if scheme == "kafka":
        topic = parts.netloc
        if not topic:
            raise SendError(f"unknown receiver {url}")
        address = {"topic": topic}
        key = parse_qs(parts.query).get("key", [""])[0]
        if key:
            address["key"] = key
        return Destination("kafka", address)
    if scheme:  # another sender's scheme (resonate.plugins): it parses its own URLs
        return Destination(scheme, {"url": url})
    raise SendError(f"unknown receiver {url}")


class Dispatcher:
    def __init__(self, kernel, loop: asyncio.AbstractEventLoop, plugins: dict[str, Plugin] | None = None,
                 targets: dict[str, Destination] | None = None):
        self.kernel = kernel
        self.loop = loop
        self.plugins: dict[str, Plugin] = dict(plugins or {})
        self.targets = targets
        self._tasks: set[asyncio.Task] = set()
        self.sent = 0
        self.failed = 0
        self.relay = None  # PollRelay: poll streams held by other servers (delivery/relay.py)

    def add_plugin(self, plugin: Plugin) -> None:
        self.plugins[plugin.name] = plugin
        for scheme in getattr(plugin, "schemes", ()):  # recipient URLs of these schemes go to this plugin
            self.plugins.setdefault(scheme, plugin)

    def hand_off(self, outgoing: list[Outgoing]) -> None:
        """Called by the kernel's writer thread after commit."""
        try:
            self.loop.call_soon_threadsafe(self._start, outgoing)
        except RuntimeError:
            log.warning("event loop closed: %d messages not sent (they will be retried)", len(outgoing))

    def _start(self, outgoing: list[Outgoing]) -> None:
        for message in outgoing:
            task = self.loop.create_task(self._send(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, message: Outgoing) -> None:
        retry_after = SEND_ERROR_RETRY_MS
        delivered = False
        started = time.perf_counter()
        plugin_name = "unknown"
        try:
            destination = resolve(message.recv, self.targets)
            plugin_name = destination.plugin
            plugin = self.plugins.get(destination.plugin)
            if plugin is None:
                raise SendError(f"unknown plugin {destination.plugin}")
            delivered = await plugin.send(destination.address, message.body, message.head)
            if (not delivered and destination.plugin == "poll" and self.relay is not None
                    and self.relay.forward(destination.address, message)):
                return  # the server holding the stream delivers it and records the outcome
            retry_after = plugin.ttc_ms if delivered else plugin.ttr_ms
        except SendError as e:
            log.warning("task %s not sent: %s", message.task_id, e)
        except Exception:
            log.exception("task %s: plugin failed", message.task_id)
        metrics.send(plugin_name, delivered, time.perf_counter() - started)
        if delivered:
            self.sent += 1
        else:
            self.failed += 1
        if message.expects_outcome:
            outcome = SendOutcome(message.task_id, message.counter, delivered, retry_after)
            self.kernel.submit(RecordSendOutcomes([outcome]), background=True)

    async def drain(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
