"""Server configuration: the reference's flags (spec 6), parsed once into one typed object."""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> int:
    """Go duration syntax (`1s`, `1m30s`, `100ms`) -> milliseconds."""
    text = text.strip()
    if text in ("0", ""):
        return 0
    pos, total = 0, 0.0
    sign = 1
    if text[0] in "+-":
        sign, pos = (-1 if text[0] == "-" else 1), 1
    if pos == len(text):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use Go syntax such as 1s, 500ms, 1m30s)")
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    return sign * int(total)


def parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (use true or false)")


def parse_addr(text: str) -> tuple[str, int]:
    """`:8001`, `127.0.0.1:8001`, `[::1]:8001` -> (host, port); an empty host listens everywhere."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid address {text!r} (expected host:port, e.g. :8001)")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in address {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in address {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, number


def parse_map(text: str) -> dict[str, str]:
    out = {}
    for pair in filter(None, text.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"invalid key=value pair {pair!r}")
        out[key] = value
    return out


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


@dataclass
class Config:
    log_level: str = "info"
    system_url: str = ""
    signal_timeout_ms: int = 1000
    promise_batch_size: int = 100
    schedule_batch_size: int = 100
    task_batch_size: int = 100
    api_size: int = 1000

    http_enable: bool = True
    http_addr: tuple[str, int] = ("0.0.0.0", 8001)
    http_timeout_ms: int = 10_000
    http_auth: dict[str, str] = field(default_factory=dict)
    http_cors_allow_origin: list[str] = field(default_factory=list)
    http_task_frequency_ms: int = 60_000

    grpc_enable: bool = True
    grpc_addr: tuple[str, int] = ("0.0.0.0", 50051)

    kafka_enable: bool = False
    kafka_brokers: list[str] = field(default_factory=lambda: ["localhost:9092"])
    kafka_topic: str = "resonate"
    kafka_target: str = "resonate.server"
    kafka_consumer_group: str = ""  # empty: derived from the target, so tenants never share a group
    kafka_timeout_ms: int = 10_000
    kafka_dead_letter_topic: str = ""  # empty: "<kafka_topic>.dlq"

    sqlite_enable: bool = True
    sqlite_path: str = "resonate.db"
    sqlite_batch_size: int = 1000
    sqlite_synchronous: str = "FULL"
    sqlite_reset: bool = False

    postgres_enable: bool = False
    postgres_host: str = "localhost"
    postgres_port: int = 5432
    postgres_username: str = ""
    postgres_password: str = ""
    postgres_database: str = "resonate"
    postgres_query: dict[str, str] = field(default_factory=dict)
    postgres_batch_size: int = 1000
    postgres_workers: int = 4
    postgres_reset: bool = False

    poll_enable: bool = True
    poll_auth: dict[str, str] = field(default_factory=dict)
    poll_addr: tuple[str, int] = ("0.0.0.0", 8002)
    poll_buffer_size: int = 100
    poll_max_connections: int = 1000
    poll_ttr_ms: int = 15_000
    poll_ttc_ms: int = 60_000
    poll_disconnect_after_ms: int = 0

    http_plugin_enable: bool = True
    http_plugin_workers: int = 3
    http_plugin_timeout_ms: int = 180_000
    http_plugin_conn_timeout_ms: int = 10_000
    http_plugin_ttr_ms: int = 15_000
    http_plugin_ttc_ms: int = 60_000

    kafka_plugin_enable: bool = False
    kafka_plugin_brokers: list[str] = field(default_factory=lambda: ["localhost:9092"])
    kafka_plugin_timeout_ms: int = 30_000
    kafka_plugin_ttr_ms: int = 15_000
    kafka_plugin_ttc_ms: int = 0

    # background work (issue 8): "event" (default) or "period", the old period-only passes (baselines)
    background_mode: str = "event"

    @property
    def base_url(self) -> str:
        if self.system_url:
            return self.system_url.rstrip("/")
        host, port = self.http_addr
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        return f"http://{host}:{port}"


# flag -> (Config attribute, parser, help)
FLAGS: list[tuple[str, str, object, str]] = [
    ("--log-level", "log_level", str, "debug, info, warn or error"),
    ("--system-url", "system_url", str, "base URL used in task links (default http://localhost:<http port>)"),
    ("--system-signal-timeout", "signal_timeout_ms", parse_duration_ms, "period of the background loops"),
    ("--system-promise-batch-size", "promise_batch_size", positive_int, "promises timed out per pass"),
    ("--system-schedule-batch-size", "schedule_batch_size", positive_int, "schedules fired per pass"),
    ("--system-task-batch-size", "task_batch_size", positive_int, "tasks enqueued or timed out per pass"),
    ("--api-size", "api_size", positive_int, "requests queued at most before 503 (50301)"),
    ("--api-http-enable", "http_enable", parse_bool, "serve the HTTP API"),
    ("--api-http-addr", "http_addr", parse_addr, "HTTP API address"),
    ("--api-http-timeout", "http_timeout_ms", parse_duration_ms, "graceful shutdown timeout"),
    ("--api-http-auth", "http_auth", parse_map, "basic auth users, user=password,... (disables gRPC, as the reference)"),
    ("--api-http-cors-allow-origin", "http_cors_allow_origin", str, "allowed CORS origin (repeatable; * for any)"),
    ("--api-http-task-frequency", "http_task_frequency_ms", parse_duration_ms, "lease of GET task claims"),
    ("--api-grpc-enable", "grpc_enable", parse_bool, "serve the gRPC API"),
    ("--api-grpc-addr", "grpc_addr", parse_addr, "gRPC API address"),
    ("--api-kafka-enable", "kafka_enable", parse_bool, "serve the Kafka request/reply API"),
    ("--api-kafka-brokers", "kafka_brokers", str, "Kafka bootstrap servers (repeatable, or comma separated)"),
    ("--api-kafka-topic", "kafka_topic", str, "request topic"),
    ("--api-kafka-target", "kafka_target", str, "this server's target name"),
    ("--api-kafka-consumer-group", "kafka_consumer_group", str, "consumer group (default: derived from target)"),
    ("--api-kafka-timeout", "kafka_timeout_ms", parse_duration_ms, "graceful shutdown timeout"),
    ("--api-kafka-dead-letter-topic", "kafka_dead_letter_topic", str, "dead-letter topic (default <topic>.dlq)"),
    ("--aio-store-sqlite-enable", "sqlite_enable", parse_bool, "use the embedded SQLite store"),
    ("--aio-store-sqlite-path", "sqlite_path", str, "SQLite database file"),
    ("--aio-store-sqlite-batch-size", "sqlite_batch_size", positive_int, "requests per transaction at most"),
    ("--aio-store-sqlite-synchronous", "sqlite_synchronous", str,
     "SQLite synchronous mode: FULL (default, no acknowledged write lost on power loss) or NORMAL (faster)"),
    ("--aio-store-sqlite-reset", "sqlite_reset", parse_bool, "delete the database file on shutdown"),
    ("--aio-store-postgres-enable", "postgres_enable", parse_bool, "use PostgreSQL (takes precedence)"),
    ("--aio-store-postgres-host", "postgres_host", str, "PostgreSQL host"),
    ("--aio-store-postgres-port", "postgres_port", positive_int, "PostgreSQL port"),
    ("--aio-store-postgres-username", "postgres_username", str, "PostgreSQL user"),
    ("--aio-store-postgres-password", "postgres_password", str, "PostgreSQL password"),
    ("--aio-store-postgres-database", "postgres_database", str, "PostgreSQL database"),
    ("--aio-store-postgres-query", "postgres_query", parse_map, "connection options, k=v,k2=v2"),
    ("--aio-store-postgres-batch-size", "postgres_batch_size", positive_int, "requests per transaction at most"),
    ("--aio-store-postgres-workers", "postgres_workers", positive_int, "concurrent writer connections"),
    ("--aio-store-postgres-reset", "postgres_reset", parse_bool, "drop all tables on shutdown"),
    ("--aio-sender-plugin-poll-enable", "poll_enable", parse_bool, "serve the poll event streams"),
    ("--aio-sender-plugin-poll-auth", "poll_auth", parse_map, "basic auth users of the poll streams, user=password,..."),
    ("--aio-sender-plugin-poll-addr", "poll_addr", parse_addr, "poll server address"),
    ("--aio-sender-plugin-poll-buffer-size", "poll_buffer_size", positive_int, "messages buffered per stream"),
    ("--aio-sender-plugin-poll-max-connections", "poll_max_connections", positive_int, "open streams at most"),
    ("--aio-sender-plugin-poll-ttr", "poll_ttr_ms", parse_duration_ms, "retry delay after a failed delivery"),
    ("--aio-sender-plugin-poll-ttc", "poll_ttc_ms", parse_duration_ms, "claim window after a delivery"),
    ("--aio-sender-plugin-poll-disconnect-after", "poll_disconnect_after_ms", parse_duration_ms,
     "close streams after this long (0: never)"),
    ("--aio-sender-plugin-http-enable", "http_plugin_enable", parse_bool, "deliver to http(s) recipients"),
    ("--aio-sender-plugin-http-workers", "http_plugin_workers", positive_int, "concurrent deliveries"),
    ("--aio-sender-plugin-http-timeout", "http_plugin_timeout_ms", parse_duration_ms, "request timeout"),
    ("--aio-sender-plugin-http-conn-timeout", "http_plugin_conn_timeout_ms", parse_duration_ms, "connect timeout"),
    ("--aio-sender-plugin-http-ttr", "http_plugin_ttr_ms", parse_duration_ms, "retry delay after a failure"),
    ("--aio-sender-plugin-http-ttc", "http_plugin_ttc_ms", parse_duration_ms, "claim window after a delivery"),
    ("--aio-sender-plugin-kafka-enable", "kafka_plugin_enable", parse_bool, "deliver to kafka:// recipients"),
    ("--aio-sender-plugin-kafka-brokers", "kafka_plugin_brokers", str, "Kafka bootstrap servers"),
    ("--aio-sender-plugin-kafka-timeout", "kafka_plugin_timeout_ms", parse_duration_ms, "produce timeout"),
    ("--aio-sender-plugin-kafka-ttr", "kafka_plugin_ttr_ms", parse_duration_ms, "retry delay after a failure"),
    ("--aio-sender-plugin-kafka-ttc", "kafka_plugin_ttc_ms", parse_duration_ms, "claim window after a delivery"),
]


# -- background work (kernel, issue 8): hidden, for baselines and benchmarks
def parse_background_mode(text: str) -> str:
    if text not in ("event", "period"):
        raise argparse.ArgumentTypeError(f"invalid background mode {text!r} (event or period)")
    return text


FLAGS += [
    ("--system-background-mode", "background_mode", parse_background_mode, argparse.SUPPRESS),
]
# -- end background work

_LISTS = {"kafka_brokers", "kafka_plugin_brokers", "http_cors_allow_origin"}


def add_flags(parser: argparse.ArgumentParser) -> None:
    for flag, attr, parse, help_text in FLAGS:
        if parse is parse_bool:
            parser.add_argument(flag, dest=attr, type=parse_bool, nargs="?", const=True, default=None,
                                metavar="BOOL", help=help_text)
        elif attr in _LISTS:
            parser.add_argument(flag, dest=attr, action="append", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=attr, type=parse, default=None, help=help_text)


def from_args(ns: argparse.Namespace, base: Config | None = None) -> Config:
    cfg = base or Config()
    for _, attr, _, _ in FLAGS:
        value = getattr(ns, attr, None)
        if value is None:
            continue
        if attr in _LISTS:
            value = [b for item in value for b in item.split(",") if b]
        setattr(cfg, attr, value)
    if not cfg.sqlite_enable and not cfg.postgres_enable:
        raise SystemExit("resonate: no store enabled (enable --aio-store-sqlite-enable or --aio-store-postgres-enable)")
    if cfg.log_level not in ("debug", "info", "warn", "error"):
        raise SystemExit(f"resonate: invalid --log-level {cfg.log_level!r} (debug, info, warn or error)")
    if cfg.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise SystemExit(f"resonate: invalid --aio-store-sqlite-synchronous {cfg.sqlite_synchronous!r}")
    return cfg
