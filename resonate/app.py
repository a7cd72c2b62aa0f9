"""The composition root: builds the store, kernel, loops, delivery and the enabled transports."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from .config import Config
from .core.delivery import Dispatcher
from .core.delivery.http_push import HttpPlugin
from .core.delivery.poll import PollPlugin
from .core.kernel import Kernel
from .core.loops import BackgroundLoops, LoopConfig
from .core.operations import CoreConfig
from .core.store.base import Store

log = logging.getLogger("resonate")


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def build_store(cfg: Config) -> Store:
    if cfg.postgres_enable:
        from .core.store.postgres import PostgresStore
        return PostgresStore.from_config(cfg)
    from .core.store.sqlite import SqliteStore
    return SqliteStore(cfg.sqlite_path, synchronous=cfg.sqlite_synchronous, reset=cfg.sqlite_reset)


class Server:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.store = build_store(cfg)
        batch = cfg.postgres_batch_size if cfg.postgres_enable else cfg.sqlite_batch_size
        self.kernel = Kernel(self.store, CoreConfig(system_url=cfg.base_url), batch_size=batch,
                             queue_limit=cfg.api_size)
        self.loops = BackgroundLoops(self.kernel, LoopConfig(
            period_s=cfg.signal_timeout_ms / 1000, promise_batch_size=cfg.promise_batch_size,
            schedule_batch_size=cfg.schedule_batch_size, task_batch_size=cfg.task_batch_size,
            mode=cfg.background_mode))
        self.poll: PollPlugin | None = None
        self.dispatcher: Dispatcher | None = None
        self._uvicorn: list[_QuietServer] = []
        self._serving: list[asyncio.Task] = []
        self._transports: list = []  # gRPC and Kafka servers: objects with async start() and stop()
        self.stopped = asyncio.Event()
        self._cluster = None  # kernel (issue 8): LISTEN/NOTIFY with the other servers on PostgreSQL

    async def start(self) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.kernel.start()
        self.dispatcher = Dispatcher(self.kernel, loop)
        self.kernel.on_commit = self.dispatcher.hand_off
        if cfg.poll_enable:
            self.poll = PollPlugin(buffer_size=cfg.poll_buffer_size, max_connections=cfg.poll_max_connections,
                                   ttr_ms=cfg.poll_ttr_ms, ttc_ms=cfg.poll_ttc_ms,
                                   disconnect_after_s=cfg.poll_disconnect_after_ms / 1000)
            self.dispatcher.add_plugin(self.poll)
        if cfg.http_plugin_enable:
            self.dispatcher.add_plugin(HttpPlugin(
                workers=cfg.http_plugin_workers, timeout_s=cfg.http_plugin_timeout_ms / 1000,
                connect_timeout_s=cfg.http_plugin_conn_timeout_ms / 1000, ttr_ms=cfg.http_plugin_ttr_ms,
                ttc_ms=cfg.http_plugin_ttc_ms))
        if cfg.kafka_plugin_enable:
            from .core.delivery.kafka import KafkaPlugin
            self.dispatcher.add_plugin(KafkaPlugin.from_config(cfg))

        # -- kernel (issue 8): servers on one PostgreSQL database hear each other's deadlines and poll streams
        if cfg.postgres_enable and cfg.background_mode == "event":
            from .core.delivery.relay import wire_postgres_cluster
            self._cluster = wire_postgres_cluster(self.kernel, self.store, self.dispatcher, self.poll, loop,
                                                  horizon_ms=cfg.signal_timeout_ms)
            self._cluster.start()
        # -- end kernel

        from .api.http.routes import HttpSettings
        from .api.http.server import create_http_app, create_poll_app
        if cfg.http_enable:
            app = create_http_app(self.kernel, HttpSettings(task_frequency_ms=cfg.http_task_frequency_ms),
                                  poll=self.poll, auth=cfg.http_auth,
                                  cors_origins=cfg.http_cors_allow_origin)
            await self._serve_asgi(app, cfg.http_addr, cfg.http_timeout_ms)
        if self.poll is not None:
            await self._serve_asgi(create_poll_app(self.poll, auth=cfg.poll_auth), cfg.poll_addr, cfg.http_timeout_ms)
        if cfg.grpc_enable and cfg.http_auth:
            # gRPC has no credentials check: serving it would bypass the API's basic auth (as the reference)
            log.warning("--api-http-auth is set: the gRPC API is not started")
        elif cfg.grpc_enable:
            from .api.grpc.server import GrpcServer
            self._transports.append(GrpcServer(self.kernel, cfg))
        if cfg.kafka_enable:
            from .api.kafka.server import KafkaServer
            self._transports.append(KafkaServer(self.kernel, cfg))
        for transport in self._transports:
            await transport.start()
        self.loops.start()
        log.info("resonate serving: http %s, grpc %s, kafka %s, poll %s", cfg.http_enable and cfg.http_addr,
                 cfg.grpc_enable and cfg.grpc_addr, cfg.kafka_enable and cfg.kafka_topic,
                 cfg.poll_enable and cfg.poll_addr)

    async def _serve_asgi(self, app, addr: tuple[str, int], timeout_ms: int) -> None:
        config = uvicorn.Config(app, host=addr[0], port=addr[1], log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=max(1, timeout_ms // 1000))
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()  # raises the bind error
                raise SystemExit(f"resonate: could not listen on {addr[0]}:{addr[1]}")
            await asyncio.sleep(0.01)
        self._uvicorn.append(server)
        self._serving.append(task)

    async def stop(self) -> None:
        """In-flight requests finish; new ones are refused; then the kernel drains and the store closes."""
        await asyncio.to_thread(self.loops.stop)  # joins its threads: off the event loop
        if self._cluster is not None:  # kernel (issue 8)
            await asyncio.to_thread(self._cluster.stop)
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
