"""The composition root: builds the store, kernel, loops, delivery, and every transport and sender the
registry (resonate.plugins) lists and the config enables; starts them in order and closes them in
reverse order."""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from .config import Config
from .core.delivery import Dispatcher
from .core.kernel import Kernel
from .core.loops import BackgroundLoops, LoopConfig
from .core.operations import CoreConfig
from .core.store.base import Store
from .plugins import Registry, Sender, Services, Transport, close_component, start_component

log = logging.getLogger("resonate")

DELIVERY_DRAIN_S = 2.0  # at shutdown, messages being handed to senders get this long


def build_store(cfg: Config) -> Store:
    if cfg.postgres_enable:
        from .core.store.postgres import PostgresStore
        return PostgresStore.from_config(cfg)
    from .core.store.sqlite import SqliteStore
    return SqliteStore(cfg.sqlite_path, synchronous=cfg.sqlite_synchronous, reset=cfg.sqlite_reset)


class Server:
    """Start order: kernel, dispatcher, senders, transports, background loops; `stop` reverses it."""

    def __init__(self, cfg: Config, registry: Registry | None = None):
        self.cfg = cfg
        self.registry = registry if registry is not None else Registry.default()
        self.store = build_store(cfg)
        batch = cfg.postgres_batch_size if cfg.postgres_enable else cfg.sqlite_batch_size
        self.kernel = Kernel(self.store, CoreConfig(system_url=cfg.base_url), batch_size=batch,
                             queue_limit=cfg.api_size)
        self.loops = BackgroundLoops(self.kernel, LoopConfig(
            period_s=cfg.signal_timeout_ms / 1000, promise_batch_size=cfg.promise_batch_size,
            schedule_batch_size=cfg.schedule_batch_size, task_batch_size=cfg.task_batch_size))
        self.dispatcher: Dispatcher | None = None
        self.senders: dict[str, Sender] = {}
        self.transports: dict[str, Transport] = {}
        self._kernel_started = False
        self._loops_started = False

    @property
    def poll(self):
        """The poll sender, when enabled (its streams are also served by the HTTP API under /poll)."""
        return self.senders.get("poll")

    def addresses(self) -> dict[str, Any]:
        """Bound address of every started transport and sender that listens (ports resolved, e.g. port 0)."""
        found = {}
        for kind, table in (("transport", self.transports), ("sender", self.senders)):
            for name, component in table.items():
                address = getattr(component, "address", None)
                if address is not None:
                    found[f"{kind}:{name}"] = address
        return found

    @property
    def bound(self) -> dict[str, tuple[str, int]]:
        """Bound address by part name ("http", "grpc", "poll"), for an embedding caller."""
        found = {}
        for key, address in self.addresses().items():
            found.setdefault(key.split(":", 1)[1], address)  # transports first: a listener's own name wins
        return found

    def health(self) -> dict[str, bool]:
        status = {}
        for kind, table in (("transport", self.transports), ("sender", self.senders)):
            for name, component in table.items():
                check = getattr(component, "health", None)
                status[f"{kind}:{name}"] = bool(check()) if check is not None else True
        return status

    async def start(self) -> None:
        """Starts everything; when one part fails to start, what was started is closed again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.kernel.start()
        self._kernel_started = True
        self.dispatcher = Dispatcher(self.kernel, asyncio.get_running_loop())
        self.kernel.on_commit = self.dispatcher.hand_off
        services = Services(cfg=self.cfg, kernel=self.kernel, senders=self.senders)
        for name, sender in self.registry.build_senders(services):
            await start_component(sender)
            self.senders[name] = sender
            self.dispatcher.add_plugin(sender)
        for name, transport in self.registry.build_transports(services):
            await transport.start()
            self.transports[name] = transport
        self._name_bound_http_port()
        self.loops.start()
        self._loops_started = True
        log.info("resonate serving: %s", ", ".join(
            f"{name} {self.transports[name].address or ''}".strip() for name in self.transports) or "no transport")

    def _name_bound_http_port(self) -> None:
        """With the HTTP API on port 0 and no --system-url, task links must name the port actually bound."""
        http = self.transports.get("http")
        address = getattr(http, "address", None)
        if address is None or self.cfg.http_addr[1] != 0 or self.cfg.system_url:
            return
        host = "localhost" if address[0] in ("0.0.0.0", "::", "") else address[0]
        self.kernel.config.system_url = f"http://{f'[{host}]' if ':' in host else host}:{address[1]}"

    async def stop(self) -> None:
        """Loops stop; transports refuse new requests and finish those in flight; deliveries under way are
        finished (or cancelled after their grace); senders close; then the kernel drains and the store closes."""
        if self._loops_started:
            await asyncio.to_thread(self.loops.stop)  # joins its threads: never on the event loop
            self._loops_started = False
        for name, transport in reversed(list(self.transports.items())):
            try:
                await transport.stop()
            except Exception:  # noqa: BLE001 - one transport failing to stop must not keep the rest open
                log.exception("transport %s failed to stop", name)
        self.transports.clear()
        if self.dispatcher is not None:
            await self.dispatcher.drain(DELIVERY_DRAIN_S)
        for name, sender in reversed(list(self.senders.items())):
            try:
                await close_component(sender)
            except Exception:  # noqa: BLE001 - as above
                log.exception("sender %s failed to close", name)
        self.senders.clear()
        if self._kernel_started:
            await asyncio.to_thread(self.kernel.stop)
            self._kernel_started = False

    async def run_until_signal(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await self.stop()
