"""The composition root: builds the store, kernel, loops, delivery and the enabled transports."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from .auth import Authenticator
from .config import Config, parse_addr
from .core.delivery import DEFAULT_TARGETS, Destination, Dispatcher
from .core.delivery.http_push import HttpPlugin
from .core.delivery.poll import PollPlugin
from .core.kernel import Kernel
from .core.loops import BackgroundLoops, LoopConfig
from .core.operations import CoreConfig
from .core.router import Router, TagSource
from .core.store.base import Store
from .observability import metrics

log = logging.getLogger("resonate")


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    async def startup(self, sockets=None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:  # a bind failure, already logged: end serve() so start-up can report it
            self.should_exit = True


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


class Server:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.store = build_store(cfg)
        batch = cfg.postgres_batch_size if cfg.postgres_enable else cfg.sqlite_batch_size
        self.authenticator = Authenticator.from_config(cfg)  # fails start-up on an unreadable key
        self.kernel = Kernel(self.store, CoreConfig(system_url=cfg.base_url, router=build_router(cfg)),
                             batch_size=batch, queue_limit=cfg.api_size)
        self.loops = BackgroundLoops(self.kernel, LoopConfig(
            period_s=cfg.signal_timeout_ms / 1000, promise_batch_size=cfg.promise_batch_size,
            schedule_batch_size=cfg.schedule_batch_size, task_batch_size=cfg.task_batch_size))
        self.poll: PollPlugin | None = None
        self.dispatcher: Dispatcher | None = None
        self._uvicorn: list[_QuietServer] = []
        self._serving: list[asyncio.Task] = []
        self._transports: list = []  # gRPC and Kafka servers: objects with async start() and stop()
        self._metrics_server = None  # (http server, thread) of --metrics-addr
        self.metrics_port: int | None = None
        self.stopped = asyncio.Event()

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
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self._start_metrics()
        self.kernel.start()
        self.dispatcher = Dispatcher(self.kernel, loop, targets=build_targets(cfg))
        if cfg.sender_enable:
            self.kernel.on_commit = self.dispatcher.hand_off
        else:  # as the reference without its sender subsystem: tasks are created but never sent
            log.info("sender disabled (--aio-sender-enable=false): task messages are not delivered")
        if cfg.poll_enable:
            self.poll = PollPlugin(buffer_size=cfg.poll_buffer_size, max_connections=cfg.poll_max_connections,
                                   ttr_ms=cfg.poll_ttr_ms, ttc_ms=cfg.poll_ttc_ms,
                                   disconnect_after_s=cfg.poll_disconnect_after_ms / 1000)
            if cfg.sender_enable:
                self.dispatcher.add_plugin(self.poll)
        if cfg.http_plugin_enable and cfg.sender_enable:
            self.dispatcher.add_plugin(HttpPlugin(
                workers=cfg.http_plugin_workers, timeout_s=cfg.http_plugin_timeout_ms / 1000,
                connect_timeout_s=cfg.http_plugin_conn_timeout_ms / 1000, ttr_ms=cfg.http_plugin_ttr_ms,
                ttc_ms=cfg.http_plugin_ttc_ms))
        if cfg.kafka_plugin_enable and cfg.sender_enable:
            from .core.delivery.kafka import KafkaPlugin
            self.dispatcher.add_plugin(KafkaPlugin.from_config(cfg))

        from .api.http.routes import HttpSettings
        from .api.http.server import create_http_app, create_poll_app
        if cfg.http_enable:
            settings = HttpSettings(task_frequency_ms=cfg.http_task_frequency_ms,
                                    authenticator=self.authenticator if self.authenticator.jwt_enabled else None)
            app = create_http_app(self.kernel, settings, poll=self.poll, auth=cfg.http_auth,
                                  cors_origins=cfg.http_cors_allow_origin)
            await self._serve_asgi(app, cfg.http_addr, cfg.http_timeout_ms)
        if self.poll is not None:
            poll_app = create_poll_app(self.poll, auth=cfg.poll_auth, cors_origins=cfg.poll_cors_allow_origin)
            await self._serve_asgi(poll_app, cfg.poll_addr, cfg.poll_timeout_ms)
        if cfg.grpc_enable:
            # unlike the reference, gRPC checks the same credentials (basic and JWT) in its metadata
            from .api.grpc.server import GrpcServer
            self._transports.append(GrpcServer(self.kernel, cfg, self.authenticator))
        if cfg.kafka_enable:
            from .api.kafka.server import KafkaServer
            kafka = KafkaServer(self.kernel, cfg)
            if self.authenticator.jwt_enabled:  # the envelope's metadata.Authorization, as the reference
                kafka.pipeline.authenticator = self.authenticator
            self._transports.append(kafka)
        for transport in self._transports:
            await transport.start()
        self._watch_gauges()
        self.loops.start()
        show = lambda enabled, addr: f"{addr[0]}:{addr[1]}" if enabled else "off"  # noqa: E731
        log.info("resonate serving", extra={"fields": {
            "http": show(cfg.http_enable, cfg.http_addr), "grpc": show(cfg.grpc_enable, cfg.grpc_addr),
            "kafka": cfg.kafka_topic if cfg.kafka_enable else "off", "poll": show(cfg.poll_enable, cfg.poll_addr),
            "metrics": cfg.metrics_addr or "off",
            "store": "postgres" if cfg.postgres_enable else f"sqlite:{cfg.sqlite_path}",
            "auth": ",".join(a for a, on in (("basic", bool(cfg.http_auth)),
                                             ("jwt", self.authenticator.jwt_enabled)) if on) or "none"}})

    async def _serve_asgi(self, app, addr: tuple[str, int], timeout_ms: int) -> None:
        config = uvicorn.Config(app, host=addr[0], port=addr[1], log_level="warning", access_log=False,
                                log_config=None,  # uvicorn logs through our handler, on stdout
                                lifespan="off", timeout_graceful_shutdown=max(1, timeout_ms // 1000))
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():  # uvicorn logged the reason (e.g. address already in use)
                task.result()
                raise SystemExit(f"resonate: could not listen on {addr[0]}:{addr[1]}")
            await asyncio.sleep(0.01)
        self._uvicorn.append(server)
        self._serving.append(task)

    async def stop(self) -> None:
        """In-flight requests finish; new ones are refused; then the kernel drains and the store closes."""
        self.loops.stop()
        for transport in reversed(self._transports):
            with contextlib.suppress(Exception):
                await transport.stop()
        if self.poll is not None:
            self.poll.close_all()
        for server in self._uvicorn:
            server.should_exit = True
        if self._serving:
            await asyncio.wait(self._serving, timeout=self.cfg.http_timeout_ms / 1000 + 1)
        if self.dispatcher is not None:
            await self.dispatcher.drain(2)
        await asyncio.to_thread(self.kernel.stop)
        if self._metrics_server is not None:
            await asyncio.to_thread(self._close_metrics)
        log.info("resonate stopped")
        self.stopped.set()

    async def run_until_signal(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await self.stop()
