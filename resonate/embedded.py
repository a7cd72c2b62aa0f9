"""The real server inside the calling process, for tests: `EmbeddedServer`.

    from resonate.embedded import EmbeddedServer

    with EmbeddedServer(grpc_enable=True, signal_timeout_ms=10) as server:
        httpx.post(f"{server.http_url}/promises", json={"id": "p", "timeout": deadline})

It runs the same composition root as `resonate serve` (`resonate.app.Server`) on its own event loop in
a dedicated thread, so it works from synchronous code and from inside a running event loop alike.
Settings are the `Config` fields behind the CLI flags (`resonate serve --help`), same names, typed;
`EmbeddedServer.from_flags([...])` takes the flags themselves. Stopping drains in-flight work and
leaves no thread, socket or file behind.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import logging
import os
import threading
import time
import typing
import uuid
import weakref
from typing import Any, Iterable, TypedDict, Unpack

from .config import Config, add_flags, from_args, parse_addr

__all__ = ["EmbeddedServer", "EmbeddedServerError", "ServerSettings", "embedded_config"]

log = logging.getLogger("resonate.embedded")

LOOPBACK_ANY_PORT = ("127.0.0.1", 0)  # port 0: the OS picks a free port, read back after binding
TEST_SIGNAL_TIMEOUT_MS = 100  # a test wants timeouts and task delivery soon, not after the CLI's 1s
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
LOG_LINES_KEPT = 10_000  # per server: a long session keeps its latest lines
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# the server's modules, relative to the package (the SDK's live beside them when both are installed)
_SERVER_SOURCES = {"app.py", "cli.py", "config.py", "embedded.py", "core", "api", "observability"}


class ServerSettings(TypedDict, total=False):
    """The keyword arguments of EmbeddedServer, for type checkers and editors: the `Config` fields (one per
    `resonate serve` flag). Addresses also take "host:port", broker lists "a:1,b:2". A setting missing
    here but present on `Config` is still accepted at run time."""

    log_level: str
    system_url: str
    signal_timeout_ms: int
    promise_batch_size: int
    schedule_batch_size: int
    task_batch_size: int
    api_size: int
    http_enable: bool
    http_addr: tuple[str, int] | str
    http_timeout_ms: int
    http_auth: dict[str, str]
    http_cors_allow_origin: list[str] | str
    http_task_frequency_ms: int
    grpc_enable: bool
    grpc_addr: tuple[str, int] | str
    kafka_enable: bool
    kafka_brokers: list[str] | str
    kafka_topic: list[str] | str
    kafka_target: str
    kafka_consumer_group: str
    kafka_timeout_ms: int
    kafka_dead_letter_topic: str
    sqlite_enable: bool
    sqlite_path: str
    sqlite_batch_size: int
    sqlite_synchronous: str
    sqlite_reset: bool
    postgres_enable: bool
    postgres_host: str
    postgres_port: int
    postgres_username: str
    postgres_password: str
    postgres_database: str
    postgres_query: dict[str, str]
    postgres_batch_size: int
    postgres_workers: int
    postgres_reset: bool
    poll_enable: bool
    poll_auth: dict[str, str]
    poll_addr: tuple[str, int] | str
    poll_buffer_size: int
    poll_max_connections: int
    poll_ttr_ms: int
    poll_ttc_ms: int
    poll_disconnect_after_ms: int
    http_plugin_enable: bool
    http_plugin_workers: int
    http_plugin_timeout_ms: int
    http_plugin_conn_timeout_ms: int
    http_plugin_ttr_ms: int
    http_plugin_ttc_ms: int
    kafka_plugin_enable: bool
    kafka_plugin_brokers: list[str] | str
    kafka_plugin_timeout_ms: int
    kafka_plugin_ttr_ms: int
    kafka_plugin_ttc_ms: int


class EmbeddedServerError(RuntimeError):
    """The embedded server could not start (bad settings, a port or store it could not open)."""


def embedded_defaults() -> dict[str, Any]:
    """Where an embedded server differs from `resonate serve`: loopback port 0, an in-memory store, a
    short background period, and a Kafka topic and target of its own so servers never share requests."""
    suffix = uuid.uuid4().hex[:12]
    return {"http_addr": LOOPBACK_ANY_PORT, "grpc_addr": LOOPBACK_ANY_PORT, "poll_addr": LOOPBACK_ANY_PORT,
            "sqlite_path": ":memory:", "signal_timeout_ms": TEST_SIGNAL_TIMEOUT_MS,
            "metrics_addr": "",  # no metrics endpoint unless asked for (e.g. "127.0.0.1:0")
            "postgres_query": {"sslmode": "disable"},
            "kafka_topic": [f"resonate-embedded-{suffix}"], "kafka_target": f"resonate.embedded.{suffix}"}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """One setting, checked against its Config type; a wrong type names the setting."""
    origin = typing.get_origin(kind) or kind
    if origin is bool:
        if isinstance(value, bool):
            return value
    elif origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif origin is str:
        if isinstance(value, str):
            return value
    elif origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif origin is tuple:  # an address
        if isinstance(value, str):
            try:
                return parse_addr(value)
            except argparse.ArgumentTypeError as e:
                raise ValueError(f"{name}: {e}") from None
        if (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)
                and isinstance(value[1], int) and 0 <= value[1] <= 65535):
            return (value[0], value[1])
    elif origin is list:
        if isinstance(value, str):
            return [item for item in value.split(",") if item]
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return list(value)
    elif origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return dict(value)
    else:
        return value
    raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")


def embedded_config(settings: dict[str, Any] | None = None, flags: Iterable[str] = ()) -> Config:
    """The Config of an embedded server: its defaults, then `flags` (CLI syntax), then `settings`
    (Config field names). Unknown names, wrong types and invalid values raise TypeError/ValueError."""
    cfg = Config(**embedded_defaults())
    flags = list(flags)
    if flags:
        cfg = _parse_flags(flags, cfg)
    hints = typing.get_type_hints(Config)
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise TypeError(f"unknown resonate setting(s) {', '.join(unknown)}; settings are the Config field names "
                        f"behind the `resonate serve` flags, e.g. http_enable, grpc_addr, signal_timeout_ms")
    for name, value in (settings or {}).items():
        setattr(cfg, name, _coerce(name, hints[name], value))
    try:
        return from_args(argparse.Namespace(), cfg)  # the CLI's own checks (a store enabled, log level, ...)
    except SystemExit as e:
        raise ValueError(str(e.code)) from None


class _FlagParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise ValueError(f"resonate flags: {message}")


def _parse_flags(flags: list[str], base: Config) -> Config:
    parser = _FlagParser(prog="EmbeddedServer", add_help=False, allow_abbrev=False)
    add_flags(parser)
    try:
        return from_args(parser.parse_args(flags), base)
    except SystemExit as e:
        raise ValueError(str(e.code)) from None


def _is_server_record(record: logging.LogRecord) -> bool:
    """The Resonate Python SDK installs into the same `resonate` package and logs under `resonate.*` too:
    keep the records that come from the server's own modules."""
    try:
        relative = os.path.relpath(record.pathname, _PACKAGE_DIR)
    except ValueError:  # another drive (Windows)
        return False
    return relative.split(os.sep, 1)[0] in _SERVER_SOURCES


class _LogBuffer(logging.Handler):
    """The server's log: the server's `resonate.*` records while this server runs, kept for test reports."""

    def __init__(self, level: int):
        super().__init__(level)
        self.setFormatter(logging.Formatter(_LOG_FORMAT))
        self.addFilter(_is_server_record)
        self.records: collections.deque[tuple[float, str]] = collections.deque(maxlen=LOG_LINES_KEPT)
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad log call must not break the server
            line = f"{record.levelname} {record.name}: {record.msg!r} (unformattable)"
        with self._records_lock:
            self.records.append((record.created, line))

    def text_since(self, since: float = 0.0) -> str:
        with self._records_lock:
            return "\n".join(line for created, line in self.records if created >= since)


class _ResonateLoggerLevel:
    """Lowers the `resonate` logger's level while embedded servers need it, restoring it after the last."""

    def __init__(self):
        self._lock = threading.Lock()
        self._holders: dict[int, int] = {}
        self._original: int | None = None

    def acquire(self, key: int, level: int) -> None:
        logger = logging.getLogger("resonate")
        with self._lock:
            if not self._holders:
                self._original = logger.level
            self._holders[key] = level
            self._apply(logger)

    def release(self, key: int) -> None:
        logger = logging.getLogger("resonate")
        with self._lock:
            self._holders.pop(key, None)
            if self._holders:
                self._apply(logger)
            elif self._original is not None:
                logger.setLevel(self._original)
                self._original = None

    def _apply(self, logger: logging.Logger) -> None:
        wanted = min(self._holders.values())
        original = self._original if self._original else logging.getLogger().getEffectiveLevel()
        logger.setLevel(min(wanted, original))


_logger_level = _ResonateLoggerLevel()
_every_server: "weakref.WeakSet[EmbeddedServer]" = weakref.WeakSet()  # the pytest plugin reports their logs


def run_background_passes(loops, timeout: float) -> None:
    """Every background pass once, each to completion (again while its batch came back full)."""
    loops.run_once(timeout=timeout)


class EmbeddedServer:
    """A real resonate server in this process. Use `with` / `async with`, or `start()` and `stop()`.

    Keyword arguments are `Config` fields (`resonate.config.Config`, the typed form of the
    `resonate serve` flags): `http_enable`, `grpc_enable`, `kafka_enable`, `kafka_brokers`,
    `postgres_enable`, `postgres_host`, ..., `signal_timeout_ms`. Unknown names are refused.
    Defaults differ from the CLI only in `embedded_defaults()`: loopback port 0, in-memory SQLite,
    a 100ms background period, a Kafka topic and target of its own.
    """

    def __init__(self, *, flags: Iterable[str] = (), start_timeout: float = START_TIMEOUT_S,
                 **settings: Unpack[ServerSettings]):
        self.config: Config = embedded_config(settings, flags)
        self.start_timeout = start_timeout
        self.app = None  # the resonate.app.Server while running (kernel, loops, store: for advanced tests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._bound: dict[str, tuple[str, int]] = {}
        self._lifecycle = threading.Lock()
        self._log = _LogBuffer(_LOG_LEVELS.get(self.config.log_level, logging.INFO))
        _every_server.add(self)

    @classmethod
    def from_flags(cls, flags: Iterable[str], **settings: Unpack[ServerSettings]) -> "EmbeddedServer":
        """`EmbeddedServer.from_flags(["--api-kafka-enable", "--system-signal-timeout", "10ms"])`."""
        return cls(flags=flags, **settings)

    # -- lifecycle
    def start(self) -> "EmbeddedServer":
        with self._lifecycle:
            if self._thread is not None:
                raise EmbeddedServerError("this EmbeddedServer is already running")
            self._ready.clear()
            self._start_error = None
            logging.getLogger("resonate").addHandler(self._log)
            _logger_level.acquire(id(self), self._log.level)
            self._thread = threading.Thread(target=self._run, name=f"resonate-embedded-{id(self):x}", daemon=True)
            self._thread.start()
            if not self._ready.wait(self.start_timeout):
                self._stop_locked()
                raise EmbeddedServerError(f"the server did not start within {self.start_timeout}s\n"
                                          f"{self.log_text()}")
            if self._start_error is not None:
                error = self._start_error
                self._stop_locked()
                raise EmbeddedServerError(f"the server could not start: {error}\n{self.log_text()}") from error
        return self

    def stop(self) -> None:
        """Drains (in-flight requests finish, the kernel commits what it queued), then releases every
        thread, socket and file. Safe to call twice."""
        with self._lifecycle:
            self._stop_locked()

    def _stop_locked(self) -> None:
        thread = self._thread
        if thread is None:
            return
        loop, stop_requested = self._loop, self._stop_requested
        if loop is not None and stop_requested is not None:
            try:
                loop.call_soon_threadsafe(stop_requested.set)
            except RuntimeError:
                pass  # the loop already ended (start failed)
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            log.error("the embedded server did not stop within %ss", STOP_TIMEOUT_S)
        self._thread = self._loop = self._stop_requested = None
        self.app = None
        _logger_level.release(id(self))
        logging.getLogger("resonate").removeHandler(self._log)

    def _run(self) -> None:
        # asyncio.run: on exit it cancels leftovers and joins the default executor's threads
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to the starting thread
            if not self._ready.is_set():
                self._start_error = e
            else:
                log.exception("the embedded server's event loop failed")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from .app import Server  # imported here: the pytest plugin must load fast
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        server = Server(self.config)
        try:
            await server.start()
        except BaseException as e:  # SystemExit on a port in use: never exit the caller's process
            self._start_error = e if isinstance(e, Exception) else EmbeddedServerError(str(e))
            await self._stop_quietly(server)
            return
        self.app = server
        self._bound = dict(server.bound)
        log.info("embedded server ready: http %s, poll %s, grpc %s, kafka topic %s", self.http_url, self.poll_url,
                 self.grpc_target, self.kafka_topic)
        self._ready.set()
        await self._stop_requested.wait()
        await server.stop()

    @staticmethod
    async def _stop_quietly(server) -> None:
        try:
            await server.stop()
        except Exception:
            log.exception("cleaning up after a failed start")

    @property
    def running(self) -> bool:
        return self._thread is not None and self.app is not None

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> "EmbeddedServer":
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.stop)

    # -- where to reach it
    def _address(self, name: str) -> tuple[str, int] | None:
        address = self._bound.get(name)
        if address is None:
            return None
        host, port = address
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        return (f"[{host}]" if ":" in host else host), port

    @property
    def http_url(self) -> str | None:
        """`http://127.0.0.1:<port>` of the HTTP API (None when it is off)."""
        address = self._address("http")
        return address and f"http://{address[0]}:{address[1]}"

    @property
    def poll_url(self) -> str | None:
        """`http://127.0.0.1:<port>` of the poll streams (`GET {poll_url}/{group}/{id}`)."""
        address = self._address("poll")
        return address and f"http://{address[0]}:{address[1]}"

    @property
    def grpc_target(self) -> str | None:
        """`127.0.0.1:<port>`, for `grpc.insecure_channel` (None when gRPC is off)."""
        address = self._address("grpc")
        return address and f"{address[0]}:{address[1]}"

    @property
    def http_port(self) -> int | None:
        return self._bound["http"][1] if "http" in self._bound else None

    @property
    def poll_port(self) -> int | None:
        return self._bound["poll"][1] if "poll" in self._bound else None

    @property
    def kafka_topic(self) -> str | None:
        """The (first) request topic of the Kafka API (None when it is off)."""
        return self.config.kafka_topic[0] if self.config.kafka_enable else None

    @property
    def kafka_topics(self) -> list[str]:
        """Every request topic the Kafka API serves (empty when it is off)."""
        return list(self.config.kafka_topic) if self.config.kafka_enable else []

    @property
    def kafka_target(self) -> str | None:
        """This server's target name: the `target` of the request envelopes it answers."""
        return self.config.kafka_target if self.config.kafka_enable else None

    @property
    def kafka_dead_letter_topic(self) -> str | None:
        """Where the Kafka API puts requests it cannot read (None when it is off)."""
        if not self.config.kafka_enable:
            return None
        return self.config.kafka_dead_letter_topic or f"{self.config.kafka_topic[0]}.dlq"

    @property
    def kafka_brokers(self) -> list[str]:
        return list(self.config.kafka_brokers)

    # -- test helpers
    def run_background(self, timeout: float = 10.0) -> None:
        """Runs every background pass now (promise and task timeouts, schedules, task delivery, lock
        expiry), each until its backlog is clear, then waits for the messages they produced to be
        handed to their recipients. Blocking: from async code, `await server.arun_background()`."""
        app, loop = self.app, self._loop
        if app is None or loop is None:
            raise EmbeddedServerError("the server is not running")
        deadline = time.monotonic() + timeout
        run_background_passes(app.loops, timeout)
        if app.dispatcher is not None:
            remaining = max(0.0, deadline - time.monotonic())
            asyncio.run_coroutine_threadsafe(app.dispatcher.drain(remaining), loop).result(remaining + 1)

    async def arun_background(self, timeout: float = 10.0) -> None:
        """`run_background()` for async tests: the caller's event loop keeps running meanwhile."""
        await asyncio.to_thread(self.run_background, timeout)

    def log_text(self, since: float = 0.0) -> str:
        """The server's log (records of the `resonate` loggers while it ran), from `since` (epoch s)."""
        return self._log.text_since(since)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedServer {state} http={self.http_url} grpc={self.grpc_target}>"
