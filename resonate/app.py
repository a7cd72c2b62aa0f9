"""The composition root: builds the store, kernel, loops, delivery, and every transport and sender the
registry (resonate.plugins) lists and the config enables; starts them in order and closes them in
reverse order."""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Callable

from .auth import Authenticator
from .config import Config, parse_addr
from .core.delivery import DEFAULT_TARGETS, Destination, Dispatcher
from .core.kernel import Kernel
from .core.loops import BackgroundLoops, LoopConfig
from .core.operations import CoreConfig
from .core.router import Router, TagSource
from .core.store.base import Store
from .observability import metrics
from .plugins import Registry, Sender, Services, Transport, close_component, start_component

log = logging.getLogger("resonate")

DELIVERY_DRAIN_S = 2.0  # at shutdown, messages being handed to senders get this long


def build_store(cfg: Config) -> Store:
    if cfg.postgres_enable:
        from .core.store.postgres import PostgresStore
        return PostgresStore.from_config(cfg)
    from .core.store.sqlite import SqliteStore
    return SqliteStore(cfg.sqlite_path, synchronous=cfg.sqlite_synchronous, reset=cfg.sqlite_reset)


class _NoRouting:
    """--aio-router-enable=false: promises never get invoke tasks."""

    def route(self, tags: dict[str, str]) -> None:
        return None


def build_router(cfg: Config):
    """The config file's `aio.subsystems.router.config.sources` (tag sources, in order)."""
    if not cfg.router_enable:
        return _NoRouting()
    return Router([TagSource(s["name"], s["data"]["key"]) for s in cfg.router_sources])


def build_targets(cfg: Config) -> dict[str, Destination]:
    """The config file's `aio.subsystems.sender.config.targets`; one named `default` replaces the built-in."""
    targets = dict(DEFAULT_TARGETS)
    for target in cfg.sender_targets:
        targets[target["name"]] = Destination(target["type"], target["data"])
    return targets


def _show(address) -> str:
    return f"{address[0]}:{address[1]}" if address else "on"


class Server:
    """Start order: kernel, dispatcher, senders, transports, background loops; `stop` reverses it."""

    def __init__(self, cfg: Config, registry: Registry | None = None):
        self.cfg = cfg
        self.registry = registry if registry is not None else Registry.default()
        self.store = build_store(cfg)
        batch = cfg.postgres_batch_size if cfg.postgres_enable else cfg.sqlite_batch_size
        self.authenticator = Authenticator.from_config(cfg)  # fails start-up on an unreadable key
        self.kernel = Kernel(self.store, CoreConfig(system_url=cfg.base_url, router=build_router(cfg)),
                             batch_size=batch, queue_limit=cfg.api_size)
        self.loops = BackgroundLoops(self.kernel, LoopConfig(
            period_s=cfg.signal_timeout_ms / 1000, promise_batch_size=cfg.promise_batch_size,
            schedule_batch_size=cfg.schedule_batch_size, task_batch_size=cfg.task_batch_size,
            reply_retention_ms=cfg.kafka_dedupe_retention_ms,
            mode=cfg.background_mode))
        self.dispatcher: Dispatcher | None = None
        self.senders: dict[str, Sender] = {}
        self.transports: dict[str, Transport] = {}
        self._kernel_started = False
        self._loops_started = False
        self._metrics_server = None  # (http server, thread) of --metrics-addr
        self.metrics_port: int | None = None
        self._cluster = None  # LISTEN/NOTIFY with the other servers sharing a PostgreSQL database

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

    def _start_metrics(self) -> None:
        cfg = self.cfg
        if not cfg.metrics_addr:
            return
        host, port = parse_addr(cfg.metrics_addr)
        try:
            self._metrics_server = metrics.serve(host, port)
        except OSError as e:
            raise SystemExit(f"resonate: could not listen for metrics on {cfg.metrics_addr}: {e.strerror or e}") \
                from None
        self.metrics_port = self._metrics_server[0].server_port
        metrics.enable()

    def _close_metrics(self) -> None:
        http_server, thread = self._metrics_server
        self._metrics_server = None
        http_server.shutdown()  # returns once its loop noticed (at most half a second)
        http_server.server_close()
        thread.join(5)

    def _watch_gauges(self) -> None:
        """Gauges read at scrape time from the running parts."""
        cfg = self.cfg
        if self._metrics_server is None:
            return
        metrics.watch(metrics.kernel_queue_depth, lambda: self.kernel._pending)
        store_kind = "store:postgres" if cfg.postgres_enable else "store:sqlite"
        metrics.watch(metrics.aio_worker_count.labels(store_kind), self.store.writers)
        if self.poll is not None:
            poll = self.poll
            metrics.watch(metrics.poll_connections, lambda: poll.connection_count)
            metrics.watch(metrics.aio_plugin_connections.labels("sender:poll"), lambda: poll.connection_count)
        if cfg.http_plugin_enable:
            metrics.aio_worker_count.labels("sender:http").set(cfg.http_plugin_workers)

    async def start(self) -> None:
        """Starts everything; when one part fails to start, what was started is closed again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.cfg
        self._start_metrics()
        self.kernel.start()
        self._kernel_started = True
        self.dispatcher = Dispatcher(self.kernel, asyncio.get_running_loop(), targets=build_targets(cfg))
        if cfg.sender_enable:
            self.kernel.on_commit = self.dispatcher.hand_off
        else:  # as the reference without its sender subsystem: tasks are created but never sent
            log.info("sender disabled (--aio-sender-enable=false): task messages are not delivered")
        services = Services(cfg=cfg, kernel=self.kernel, senders=self.senders, authenticator=self.authenticator)
        for name, sender in self.registry.build_senders(services):
            await start_component(sender)
            self.senders[name] = sender
            self.dispatcher.add_plugin(sender)
        if cfg.postgres_enable and cfg.background_mode == "event":
            # servers on one PostgreSQL database hear each other's deadlines and poll streams
            from .core.delivery.relay import wire_postgres_cluster
            self._cluster = wire_postgres_cluster(self.kernel, self.store, self.dispatcher, self.poll,
                                                  asyncio.get_running_loop(), horizon_ms=cfg.signal_timeout_ms)
            self._cluster.start()
        for name, transport in self.registry.build_transports(services):
            await transport.start()
            self.transports[name] = transport
        self._name_bound_http_port()
        self._watch_gauges()
        self.loops.start()
        self._loops_started = True
        log.info("resonate serving", extra={"fields": {
            **{name: _show(t.address) for name, t in self.transports.items()},
            **{f"sender:{name}": _show(getattr(s, "address", None)) for name, s in self.senders.items()},
            "metrics": cfg.metrics_addr or "off",
            "store": "postgres" if cfg.postgres_enable else f"sqlite:{cfg.sqlite_path}",
            "auth": ",".join(a for a, on in (("basic", bool(cfg.http_auth)),
                                             ("jwt", self.authenticator.jwt_enabled)) if on) or "none"}})

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
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.stop)
            self._cluster = None
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
        if self._metrics_server is not None:
            await asyncio.to_thread(self._close_metrics)
        log.info("resonate stopped")

    async def run_until_signal(self, after_start: Callable[[], None] = lambda: None) -> None:
        """`resonate serve`: runs until SIGINT or SIGTERM; `after_start` runs once everything listens."""
        await self.start()
        after_start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await self.stop()
