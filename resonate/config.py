"""Server configuration: the reference's flags (spec 6), parsed once into one typed object."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from .core.cron import parse_go_duration

def parse_duration_ms(text: str) -> int:
    """Go duration syntax (`1s`, `1m30s`, `100ms`) -> milliseconds, by the core's one Go duration parser."""
    text = text.strip()
    if text == "":
        return 0
    try:
        nanoseconds = parse_go_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (use Go syntax such as 1s, 500ms, 1m30s)") from None
    return -(-nanoseconds // 1_000_000) if nanoseconds < 0 else nanoseconds // 1_000_000  # truncated, as Go


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


class MergeMap(argparse.Action):
    """A stringToString flag: `k=v,k2=v2`, repeatable; later pairs add to (or override) earlier ones."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        merged = dict(current) if isinstance(current, dict) else {}
        merged.update(values)
        setattr(namespace, self.dest, merged)


@dataclass
class Config:
    log_level: str = "info"
    log_format: str = "text"
    metrics_addr: str = ":9090"  # empty: no metrics endpoint
    system_url: str = ""
    signal_timeout_ms: int = 1000
    promise_batch_size: int = 100
    schedule_batch_size: int = 100
    task_batch_size: int = 100
    api_size: int = 1000
    api_auth_public_key: str = ""
    ignore_asserts: bool = False

    # v0.8.2 flags tuning Go internals: accepted and kept, no effect here (docs/operating.md)
    aio_size: int = 1000
    system_completion_batch_size: int = 1000
    system_coroutine_max_size: int = 1000
    system_submission_batch_size: int = 1000
    system_promise_max_iterations: int = 1000
    system_schedule_max_iterations: int = 1000
    system_task_max_iterations: int = 1000

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
    kafka_topic: list[str] = field(default_factory=lambda: ["resonate", "resonate.requests"])  # code's and README's
    kafka_target: str = "resonate.server"
    kafka_consumer_group: str = ""  # empty: derived from the target, so tenants never share a group
    kafka_timeout_ms: int = 10_000
    kafka_dead_letter_topic: str = ""  # empty: "<first kafka_topic>.dlq"
    # -- Kafka in production (issue 11): dedup retention, group start, managed brokers, plugin tuning
    kafka_dedupe_retention_ms: int = 24 * 3600 * 1000  # keep it at most the request topic's retention.ms
    kafka_auto_offset_reset: str = "earliest"  # where a new consumer group starts: earliest or latest
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password_file: str = ""
    kafka_sasl_password_env: str = ""
    kafka_ssl_cafile: str = ""

    sqlite_enable: bool = True
    sqlite_path: str = "resonate.db"
    sqlite_batch_size: int = 1000
    sqlite_synchronous: str = "FULL"
    sqlite_reset: bool = False
    sqlite_size: int = 1000  # no effect here
    sqlite_tx_timeout_ms: int = 10_000  # no effect here

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
    postgres_size: int = 1000  # no effect here
    postgres_tx_timeout_ms: int = 10_000  # no effect here

    router_enable: bool = True
    router_size: int = 100  # no effect here
    router_workers: int = 1  # no effect here
    # config-file only (aio.subsystems.router.config.sources): [{name, type: tag, data: {key}}]
    router_sources: list[dict] = field(default_factory=list)
    sender_enable: bool = True
    sender_size: int = 100  # no effect here
    # config-file only (aio.subsystems.sender.config.targets): [{name, type, data}]
    sender_targets: list[dict] = field(default_factory=list)

    poll_enable: bool = True
    poll_auth: dict[str, str] = field(default_factory=dict)
    poll_addr: tuple[str, int] = ("0.0.0.0", 8002)
    poll_buffer_size: int = 100
    poll_max_connections: int = 1000
    poll_ttr_ms: int = 15_000
    poll_ttc_ms: int = 60_000
    poll_disconnect_after_ms: int = 0
    poll_cors_allow_origin: list[str] = field(default_factory=list)
    poll_timeout_ms: int = 10_000
    poll_size: int = 100  # no effect here

    http_plugin_enable: bool = True
    http_plugin_workers: int = 3
    http_plugin_timeout_ms: int = 180_000
    http_plugin_conn_timeout_ms: int = 10_000
    http_plugin_ttr_ms: int = 15_000
    http_plugin_ttc_ms: int = 60_000
    http_plugin_size: int = 100  # no effect here

    kafka_plugin_enable: bool = False
    kafka_plugin_brokers: list[str] = field(default_factory=lambda: ["localhost:9092"])
    kafka_plugin_timeout_ms: int = 30_000
    kafka_plugin_ttr_ms: int = 15_000
    kafka_plugin_ttc_ms: int = 0
    kafka_plugin_size: int = 100
    kafka_plugin_workers: int = 1
    kafka_plugin_compression: str = "none"

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


NO_EFFECT = "(no effect here)"

# flag -> (Config attribute, parser, help)
FLAGS: list[tuple[str, str, object, str]] = [
    # top level and system
    ("--log-level", "log_level", str, "can be one of: debug, info, warn, error"),
    ("--log-format", "log_format", str, "text (key=value lines) or json"),
    ("--metrics-addr", "metrics_addr", str, "prometheus metrics server address (empty: none)"),
    ("--system-url", "system_url", str,
     "resonate server url, used in task links (default http://localhost:<http port>)"),
    ("--system-signal-timeout", "signal_timeout_ms", parse_duration_ms, "period of the background loops"),
    ("--system-promise-batch-size", "promise_batch_size", positive_int, "promises timed out per pass"),
    ("--system-schedule-batch-size", "schedule_batch_size", positive_int, "schedules fired per pass"),
    ("--system-task-batch-size", "task_batch_size", positive_int, "tasks enqueued or timed out per pass"),
    ("--system-completion-batch-size", "system_completion_batch_size", positive_int,
     f"max completions processed per tick {NO_EFFECT}"),
    ("--system-coroutine-max-size", "system_coroutine_max_size", positive_int,
     f"max concurrent coroutines {NO_EFFECT}"),
    ("--system-submission-batch-size", "system_submission_batch_size", positive_int,
     f"max submissions processed per tick {NO_EFFECT}"),
    ("--system-promise-max-iterations", "system_promise_max_iterations", positive_int,
     f"max promise iterations per coroutine {NO_EFFECT}"),
    ("--system-schedule-max-iterations", "system_schedule_max_iterations", positive_int,
     f"max schedule iterations per coroutine {NO_EFFECT}"),
    ("--system-task-max-iterations", "system_task_max_iterations", positive_int,
     f"max task iterations per coroutine {NO_EFFECT}"),
    ("--api-size", "api_size", positive_int, "requests queued at most before 503 (50301)"),
    ("--api-auth-public-key", "api_auth_public_key", str,
     "public key path (PEM, RSA) used for jwt based authentication, on HTTP and gRPC"),
    ("--aio-size", "aio_size", positive_int, f"completion buffered channel size {NO_EFFECT}"),
    # HTTP API
    ("--api-http-enable", "http_enable", parse_bool, "serve the HTTP API"),
    ("--api-http-addr", "http_addr", parse_addr, "HTTP API address"),
    ("--api-http-timeout", "http_timeout_ms", parse_duration_ms, "graceful shutdown timeout"),
    ("--api-http-auth", "http_auth", parse_map, "basic auth users, user=password,... (HTTP and gRPC)"),
    ("--api-http-cors-allow-origin", "http_cors_allow_origin", str, "allowed CORS origin (repeatable; * for any)"),
    ("--api-http-task-frequency", "http_task_frequency_ms", parse_duration_ms, "lease of GET task claims"),
    # gRPC API
    ("--api-grpc-enable", "grpc_enable", parse_bool, "serve the gRPC API"),
    ("--api-grpc-addr", "grpc_addr", parse_addr, "gRPC API address"),
    # Kafka API
    ("--api-kafka-enable", "kafka_enable", parse_bool, "serve the Kafka request/reply API"),
    ("--api-kafka-brokers", "kafka_brokers", str, "Kafka bootstrap servers (repeatable, or comma separated)"),
    ("--api-kafka-topic", "kafka_topic", str, "request topic (repeatable)"),
    ("--api-kafka-target", "kafka_target", str, "this server's target name"),
    ("--api-kafka-consumer-group", "kafka_consumer_group", str, "consumer group (default: derived from target)"),
    ("--api-kafka-timeout", "kafka_timeout_ms", parse_duration_ms, "graceful shutdown timeout"),
    ("--api-kafka-dead-letter-topic", "kafka_dead_letter_topic", str, "dead-letter topic (default <topic>.dlq)"),
    # Kafka in production: dedup retention, group start, managed brokers (API and plugin), plugin tuning
    ("--api-kafka-dedupe-retention", "kafka_dedupe_retention_ms", parse_duration_ms,
     "how long replies are kept to answer redelivered requests (at most the topic's retention)"),
    ("--api-kafka-auto-offset-reset", "kafka_auto_offset_reset", str,
     "where a new consumer group starts: earliest or latest (take over without replaying)"),
    ("--api-kafka-security-protocol", "kafka_security_protocol", str,
     "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (API and the Kafka plugin)"),
    ("--api-kafka-sasl-mechanism", "kafka_sasl_mechanism", str, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    ("--api-kafka-sasl-username", "kafka_sasl_username", str, "SASL username"),
    ("--api-kafka-sasl-password-file", "kafka_sasl_password_file", str, "file holding the SASL password"),
    ("--api-kafka-sasl-password-env", "kafka_sasl_password_env", str, "environment variable holding the SASL password"),
    ("--api-kafka-ssl-cafile", "kafka_ssl_cafile", str, "CA certificate file (PEM) for TLS"),

    # stores
    ("--aio-store-sqlite-enable", "sqlite_enable", parse_bool, "use the embedded SQLite store"),
    ("--aio-store-sqlite-path", "sqlite_path", str, "SQLite database file"),
    ("--aio-store-sqlite-batch-size", "sqlite_batch_size", positive_int, "requests per transaction at most"),
    ("--aio-store-sqlite-synchronous", "sqlite_synchronous", str,
     "SQLite synchronous mode: FULL (default, no acknowledged write lost on power loss) or NORMAL (faster)"),
    ("--aio-store-sqlite-reset", "sqlite_reset", parse_bool, "delete the database file on shutdown"),
    ("--aio-store-sqlite-size", "sqlite_size", positive_int, f"submission buffered channel size {NO_EFFECT}"),
    ("--aio-store-sqlite-tx-timeout", "sqlite_tx_timeout_ms", parse_duration_ms,
     f"sqlite transaction timeout {NO_EFFECT}"),
    ("--aio-store-postgres-enable", "postgres_enable", parse_bool, "use PostgreSQL (takes precedence)"),
    ("--aio-store-postgres-host", "postgres_host", str, "PostgreSQL host"),
    ("--aio-store-postgres-port", "postgres_port", positive_int, "PostgreSQL port"),
    ("--aio-store-postgres-username", "postgres_username", str, "PostgreSQL user"),
    ("--aio-store-postgres-password", "postgres_password", str,
     "PostgreSQL password (better: AIO_SUBSYSTEMS_STORE_POSTGRES_CONFIG_PASSWORD or the config file)"),
    ("--aio-store-postgres-database", "postgres_database", str, "PostgreSQL database"),
    ("--aio-store-postgres-query", "postgres_query", parse_map, "connection options, k=v,k2=v2 (repeatable)"),
    ("--aio-store-postgres-batch-size", "postgres_batch_size", positive_int, "requests per transaction at most"),
    ("--aio-store-postgres-workers", "postgres_workers", positive_int, "concurrent writer connections"),
    ("--aio-store-postgres-reset", "postgres_reset", parse_bool, "drop all tables on shutdown"),
    ("--aio-store-postgres-size", "postgres_size", positive_int, f"submission buffered channel size {NO_EFFECT}"),
    ("--aio-store-postgres-tx-timeout", "postgres_tx_timeout_ms", parse_duration_ms,
     f"postgres transaction timeout {NO_EFFECT}"),
    # router and sender subsystems
    ("--aio-router-enable", "router_enable", parse_bool, "create invoke tasks from promise tags (router sources)"),
    ("--aio-router-size", "router_size", positive_int, f"submission buffered channel size {NO_EFFECT}"),
    ("--aio-router-workers", "router_workers", positive_int, f"number of workers {NO_EFFECT}"),
    ("--aio-sender-enable", "sender_enable", parse_bool, "deliver task messages through the plugins below"),
    ("--aio-sender-size", "sender_size", positive_int, f"submission buffered channel size {NO_EFFECT}"),
    # delivery plugins (v0.8.2 names; the pre-release --aio-sender-plugin-* names are hidden aliases)
    ("--aio-poll-enable", "poll_enable", parse_bool, "serve the poll event streams"),
    ("--aio-poll-auth", "poll_auth", parse_map, "basic auth users of the poll streams, user=password,..."),
    ("--aio-poll-addr", "poll_addr", parse_addr, "poll server address"),
    ("--aio-poll-buffer-size", "poll_buffer_size", positive_int, "messages buffered per stream"),
    ("--aio-poll-max-connections", "poll_max_connections", positive_int, "open streams at most"),
    ("--aio-poll-ttr", "poll_ttr_ms", parse_duration_ms, "retry delay after a failed delivery"),
    ("--aio-poll-ttc", "poll_ttc_ms", parse_duration_ms, "claim window after a delivery"),
    ("--aio-poll-disconnect-after", "poll_disconnect_after_ms", parse_duration_ms,
     "close streams after this long (0: never)"),
    ("--aio-poll-cors-allow-origin", "poll_cors_allow_origin", str,
     "allowed CORS origin of the poll streams (repeatable)"),
    ("--aio-poll-timeout", "poll_timeout_ms", parse_duration_ms, "poll server graceful shutdown timeout"),
    ("--aio-poll-size", "poll_size", positive_int, f"submission buffered channel size {NO_EFFECT}"),
    ("--aio-http-enable", "http_plugin_enable", parse_bool, "deliver to http(s) recipients"),
    ("--aio-http-workers", "http_plugin_workers", positive_int, "concurrent deliveries"),
    ("--aio-http-timeout", "http_plugin_timeout_ms", parse_duration_ms, "request timeout"),
    ("--aio-http-conn-timeout", "http_plugin_conn_timeout_ms", parse_duration_ms, "connect timeout"),
    ("--aio-http-ttr", "http_plugin_ttr_ms", parse_duration_ms, "retry delay after a failure"),
    ("--aio-http-ttc", "http_plugin_ttc_ms", parse_duration_ms, "claim window after a delivery"),
    ("--aio-http-size", "http_plugin_size", positive_int, f"submission buffered channel size {NO_EFFECT}"),
    ("--aio-kafka-enable", "kafka_plugin_enable", parse_bool, "deliver to kafka:// recipients"),
    ("--aio-kafka-brokers", "kafka_plugin_brokers", str, "Kafka bootstrap servers (repeatable)"),
    ("--aio-kafka-timeout", "kafka_plugin_timeout_ms", parse_duration_ms, "produce timeout"),
    ("--aio-kafka-ttr", "kafka_plugin_ttr_ms", parse_duration_ms, "retry delay after a failure"),
    ("--aio-kafka-ttc", "kafka_plugin_ttc_ms", parse_duration_ms, "claim window after a delivery"),
    ("--aio-kafka-size", "kafka_plugin_size", positive_int, "submission buffered channel size"),
    ("--aio-kafka-workers", "kafka_plugin_workers", positive_int, "number of workers"),
    ("--aio-kafka-compression", "kafka_plugin_compression", str, "compression type (none, gzip, snappy, lz4, zstd)"),
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

_LISTS = {"kafka_topic", "kafka_brokers", "kafka_plugin_brokers", "http_cors_allow_origin", "poll_cors_allow_origin"}
# pre-release plugin flag names, kept working but hidden from --help
_ALIAS_PREFIXES = {"--aio-poll-": "--aio-sender-plugin-poll-", "--aio-http-": "--aio-sender-plugin-http-",
                   "--aio-kafka-": "--aio-sender-plugin-kafka-"}
LOG_FORMATS = ("text", "json")
KAFKA_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def _aliases(flag: str) -> list[str]:
    return [old + flag[len(new):] for new, old in _ALIAS_PREFIXES.items() if flag.startswith(new)]


def show_default(value) -> str:
    """A Config value as --help shows it, close to the reference's spelling."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
        return f"{'' if host == '0.0.0.0' else host}:{port}"
    if isinstance(value, dict):
        return "[" + ",".join(f"{k}={v}" for k, v in value.items()) + "]"
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _show_duration(ms: int) -> str:
    if ms % 60_000 == 0 and ms:
        return f"{ms // 60_000}m0s"
    return f"{ms / 1000:g}s" if ms % 1000 == 0 or ms >= 1000 else f"{ms}ms"


_METAVARS = {parse_duration_ms: "DURATION", positive_int: "INT", parse_addr: "ADDR", str: "STRING"}


def add_flags(parser: argparse.ArgumentParser, defaults: Config | None = None) -> None:
    defaults = defaults or Config()
    for flag, attr, parse, help_text in FLAGS:
        value = getattr(defaults, attr, None)
        shown = _show_duration(value) if parse is parse_duration_ms else show_default(value)
        if value != "":  # like the reference, an empty string default is not shown
            help_text = help_text if help_text == argparse.SUPPRESS else f"{help_text} (default {shown})"
        for names, text in (([flag], help_text), (_aliases(flag), argparse.SUPPRESS)):
            if not names:
                continue
            if parse is parse_bool:
                parser.add_argument(*names, dest=attr, type=parse_bool, nargs="?", const=True, default=None,
                                    metavar="BOOL", help=text)
            elif attr in _LISTS:
                parser.add_argument(*names, dest=attr, action="append", default=None, metavar="STRING", help=text)
            elif parse is parse_map:
                parser.add_argument(*names, dest=attr, type=parse_map, action=MergeMap, default=None,
                                    metavar="K=V,...", help=text)
            else:
                parser.add_argument(*names, dest=attr, type=parse, default=None, metavar=_METAVARS.get(parse),
                                    help=text)


def from_args(ns: argparse.Namespace, base: Config | None = None) -> Config:
    cfg = base or Config()
    for _, attr, _, _ in FLAGS:
        value = getattr(ns, attr, None)
        if value is None:
            continue
        if attr in _LISTS:
            value = [b for item in value for b in item.split(",") if b]
        setattr(cfg, attr, value)
    for attr in ("router_sources", "sender_targets", "ignore_asserts"):  # set from the config file / serve only
        value = getattr(ns, attr, None)
        if value is not None:
            setattr(cfg, attr, value)
    if not cfg.sqlite_enable and not cfg.postgres_enable:
        raise SystemExit("resonate: no store enabled (enable --aio-store-sqlite-enable or --aio-store-postgres-enable)")
    if cfg.log_level not in ("debug", "info", "warn", "error"):
        raise SystemExit(f"resonate: invalid --log-level {cfg.log_level!r} (debug, info, warn or error)")
    if cfg.log_format not in LOG_FORMATS:
        raise SystemExit(f"resonate: invalid --log-format {cfg.log_format!r} (text or json)")
    if cfg.kafka_plugin_compression not in KAFKA_COMPRESSIONS:
        raise SystemExit(f"resonate: invalid --aio-kafka-compression {cfg.kafka_plugin_compression!r} "
                         f"({', '.join(KAFKA_COMPRESSIONS)})")
    if cfg.metrics_addr:
        try:
            parse_addr(cfg.metrics_addr)
        except argparse.ArgumentTypeError as e:
            raise SystemExit(f"resonate: invalid --metrics-addr: {e}") from None
    if cfg.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise SystemExit(f"resonate: invalid --aio-store-sqlite-synchronous {cfg.sqlite_synchronous!r}")
    if cfg.kafka_auto_offset_reset not in ("earliest", "latest"):
        raise SystemExit(f"resonate: invalid --api-kafka-auto-offset-reset {cfg.kafka_auto_offset_reset!r}")
    if cfg.kafka_enable or cfg.kafka_plugin_enable:
        from .core.delivery.kafka import security_from
        try:
            security_from(cfg.kafka_security_protocol, cfg.kafka_sasl_mechanism, cfg.kafka_sasl_username,
                          cfg.kafka_sasl_password_file, cfg.kafka_sasl_password_env, cfg.kafka_ssl_cafile)
        except (ValueError, OSError) as e:
            raise SystemExit(f"resonate: Kafka security settings (--api-kafka-security-protocol, "
                             f"--api-kafka-sasl-*, --api-kafka-ssl-cafile): {e}") from None
    return cfg
