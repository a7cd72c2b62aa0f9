"""The two plug-in points of the server: transports (how requests arrive) and senders (how task
messages leave), both listed in one registry.

A transport turns its wire format into core requests (`resonate.core.operations.decode`) and submits
them to the kernel; a sender delivers the messages the kernel commits to the recipients (`recv`) it
handles. Both are built by a factory from the server's config, which returns None when the config
leaves it disabled. The built-in ones are listed below; third-party packages add theirs through the
entry-point groups `resonate.transports` and `resonate.senders` (name = factory), for example in
their pyproject.toml:

    [project.entry-points."resonate.transports"]
    nats = "resonate_nats:build_transport"
    [project.entry-points."resonate.senders"]
    sqs = "resonate_sqs:build_sender"

Nothing in the core or in app.py changes for a new one.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

log = logging.getLogger("resonate.plugins")

TRANSPORT_GROUP = "resonate.transports"
SENDER_GROUP = "resonate.senders"


@runtime_checkable
class Transport(Protocol):
    """A way requests reach the core. `start` binds and begins serving; `stop` refuses new requests,
    lets those in flight finish (within the server's grace period), then releases everything it owns."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> bool: ...

    @property
    def address(self) -> tuple[str, int] | None:
        """The address actually bound after start (port 0 resolved); None when nothing is bound."""


@runtime_checkable
class Sender(Protocol):
    """A way task messages leave. A recipient `{"type": name, "data": address}` goes to the sender of
    that name; a recipient URL whose scheme is in `schemes` arrives as the address `{"url": url}`
    (the built-in http, poll and kafka URLs are parsed by the core). `send` answers whether the message
    was delivered: on False the task is offered again after `ttr_ms`; on True a claim is awaited for
    `ttc_ms` (0: none). A sender may also have `async start()`; `close()` may be sync or async."""

    name: str
    schemes: tuple[str, ...]
    ttr_ms: int
    ttc_ms: int

    async def send(self, address: Any, body: dict, head: dict[str, str]) -> bool: ...

    def close(self) -> Any: ...


@dataclass
class Services:
    """What a factory is given: the config, the kernel, and the senders built so far (by name)."""

    cfg: Any
    kernel: Any
    senders: dict[str, Sender] = field(default_factory=dict)
    authenticator: Any = None  # resonate.auth.Authenticator: credentials every transport checks


TransportFactory = Callable[[Services], "Transport | None"]
SenderFactory = Callable[[Services], "Sender | None"]

# name -> "module:factory", imported only when the server starts (gRPC and Kafka are heavy)
BUILTIN_SENDERS: dict[str, str] = {
    "poll": "resonate.api.http.transport:build_poll_sender",
    "http": "resonate.plugins:build_http_sender",
    "kafka": "resonate.plugins:build_kafka_sender",
}
# started in this order: gRPC listens before HTTP answers its first /ping, which is what clients and
# orchestrators take as "the server is up"
BUILTIN_TRANSPORTS: dict[str, str] = {
    "grpc": "resonate.plugins:build_grpc_transport",
    "http": "resonate.api.http.transport:build_http_transport",
    "kafka": "resonate.plugins:build_kafka_transport",
}


def _load(ref: str | EntryPoint | Callable) -> Callable:
    if isinstance(ref, EntryPoint):
        return ref.load()
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry:
    """Transports and senders by name, in start order (senders first, so a transport can serve one)."""

    def __init__(self) -> None:
        self.senders: dict[str, str | EntryPoint | SenderFactory] = {}
        self.transports: dict[str, str | EntryPoint | TransportFactory] = {}

    @classmethod
    def default(cls, *, discover: bool = True) -> "Registry":
        registry = cls()
        for name, ref in BUILTIN_SENDERS.items():
            registry.add_sender(name, ref)
        for name, ref in BUILTIN_TRANSPORTS.items():
            registry.add_transport(name, ref)
        if discover:
            registry.discover()
        return registry

    def add_sender(self, name: str, factory: str | SenderFactory) -> None:
        self.senders[name] = factory

    def add_transport(self, name: str, factory: str | TransportFactory) -> None:
        self.transports[name] = factory

    def discover(self) -> None:
        """Adds the installed packages' entry points; one named like a built-in replaces it."""
        for group, table in ((SENDER_GROUP, self.senders), (TRANSPORT_GROUP, self.transports)):
            for ep in entry_points(group=group):
                if ep.name in table:
                    log.info("%s %r from %s replaces the built-in one", group, ep.name, ep.value)
                table[ep.name] = ep

    def build_senders(self, services: Services) -> Iterator[tuple[str, Sender]]:
        return self._build(self.senders, services)

    def build_transports(self, services: Services) -> Iterator[tuple[str, Transport]]:
        return self._build(self.transports, services)

    @staticmethod
    def _build(table: dict, services: Services) -> Iterator:
        """Builds lazily, so the caller starts each before the next is built (and sees it in services)."""
        for name, ref in list(table.items()):
            component = _load(ref)(services)
            if component is not None:
                yield name, component


async def start_component(component: Any) -> None:
    start = getattr(component, "start", None)
    if start is not None:
        await _call(start)


async def close_component(component: Any, method: str = "close") -> None:
    """Calls `close` (or `stop`) whether it is a coroutine or a blocking call (run off the event loop)."""
    close = getattr(component, method, None)
    if close is not None:
        await _call(close)


async def _call(fn: Callable) -> None:
    if inspect.iscoroutinefunction(fn):
        await fn()
        return
    result = await asyncio.to_thread(fn)
    if inspect.isawaitable(result):
        await result


# -- built-in factories that need no module of their own

def build_http_sender(services: Services):
    if not services.cfg.http_plugin_enable:
        return None
    from .core.delivery.http_push import HttpPlugin
    return HttpPlugin.from_config(services.cfg)


def build_kafka_sender(services: Services):
    if not services.cfg.kafka_plugin_enable:
        return None
    from .core.delivery.kafka import KafkaPlugin
    return KafkaPlugin.from_config(services.cfg)


def build_grpc_transport(services: Services):
    cfg = services.cfg
    if not cfg.grpc_enable:
        return None
    # unlike the reference, gRPC checks the same credentials (basic and JWT) in its metadata
    from .api.grpc.server import GrpcServer
    return GrpcServer(services.kernel, cfg, services.authenticator)


def build_kafka_transport(services: Services):
    if not services.cfg.kafka_enable:
        return None
    from .api.kafka.server import KafkaServer
    kafka = KafkaServer(services.kernel, services.cfg)
    authenticator = services.authenticator
    if authenticator is not None and authenticator.jwt_enabled:  # the envelope's metadata.Authorization
        kafka.pipeline.authenticator = authenticator
    return kafka
