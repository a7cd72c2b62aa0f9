"""`resonate serve`, `resonate dev` and `resonate --version`."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

from .config import Config, add_flags, from_args
from .migrate import add_migrate_command, run_migrate
from .config_sources import apply_sources, defer_defaults

REFERENCE_VERSION = "0.8.2"  # the Go server release whose flags, config file, metrics and wire we match
SERVE_DESCRIPTION = "Start Resonate server"
DEV_DESCRIPTION = ("Start Resonate server with development-friendly defaults (in-memory SQLite store).\n\n"
                   "This command is an alias for: resonate serve --aio-store-sqlite-path ':memory:' "
                   "--aio-store-postgres-query 'sslmode=disable'")
CONFIG_NAMES = {"serve": "resonate", "dev": "resonate-dev"}
# Garbage collection in the server process (docs/performance.md sections 4 and 10): the start-up heap
# (~108k objects: FastAPI, pydantic, grpc, ...) made every full collection take 60-80 ms under load.
# Once started, `serve` and `dev` move it out of the collected generations (gc.freeze) and collect the
# young generation less often. Never applied to resonate.embedded, which runs in the user's process.
GC_YOUNG_THRESHOLD = 50_000  # objects allocated between young collections (CPython's default: 700)


def version_text() -> str:
    try:
        from importlib.metadata import version
        ours = version("resonate")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        ours = "unknown"
    return f"resonate-py {ours} (matches resonate server v{REFERENCE_VERSION})"


def dev_defaults() -> Config:
    base = Config()
    base.sqlite_path = ":memory:"
    base.postgres_query = {"sslmode": "disable"}
    return base


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resonate", description="Resonate durable promises server")
    parser.add_argument("--version", action="version", version=version_text())
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server", description=SERVE_DESCRIPTION,
                                allow_abbrev=False)
    serve.add_argument("-c", "--config", default=None,
                       help="config file (default resonate.{json,yaml,yml} in . then $HOME)")
    add_flags(serve)
    serve.add_argument("--ignore-asserts", dest="ignore_asserts", action="store_true", default=None,
                       help="ignore-asserts mode (no effect here)")
    dev = commands.add_parser("dev", help="run the server for development (in-memory database)",
                              description=DEV_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                              allow_abbrev=False)
    dev.add_argument("-c", "--config", default=None,
                     help="config file (default resonate-dev.{json,yaml,yml} in . then $HOME)")
    add_flags(dev, dev_defaults())
    parser._resonate_commands = {"serve": serve, "dev": dev}  # type: ignore[attr-defined]
    add_migrate_command(commands)  # `resonate migrate up|status|dry-run`
    from .client import add_client_commands
    add_client_commands(commands)  # promises, schedules, tasks, invoke, tree
    return parser


def parse(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = build_parser()
    for sub in parser._resonate_commands.values():  # type: ignore[attr-defined]
        defer_defaults(sub)
    return parser, parser.parse_args(argv)


def config_from(parser: argparse.ArgumentParser, ns: argparse.Namespace, environ=None) -> Config:
    """Command line > environment > config file > defaults, as the reference (`serve` and `dev`)."""
    sub = parser._resonate_commands[ns.command]  # type: ignore[attr-defined]
    apply_sources(sub, ns, CONFIG_NAMES[ns.command], environ)
    base = dev_defaults() if ns.command == "dev" else Config()
    return from_args(ns, base)


def load_config(argv: list[str] | None = None, environ=None) -> Config:
    parser, ns = parse(argv)
    return config_from(parser, ns, environ)


def tune_garbage_collector() -> None:
    """Called once the server has started: what exists then lives as long as the process."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    logging.getLogger("resonate").debug("garbage collector tuned", extra={"fields": {
        "frozen_objects": gc.get_freeze_count(), "thresholds": ",".join(map(str, gc.get_threshold()))}})


def main(argv: list[str] | None = None) -> None:
    parser, ns = parse(argv)
    if ns.command == "migrate":
        sys.exit(run_migrate(ns))
    if getattr(ns, "client_run", None):
        sys.exit(ns.client_run(ns))
    handler = getattr(ns, "handler", None)
    if ns.command not in CONFIG_NAMES and handler is not None:  # commands other modules add
        sys.exit(handler(ns))
    cfg = config_from(parser, ns)
    from .observability.logs import configure_logging
    configure_logging(cfg.log_level, cfg.log_format)
    from .app import Server
    try:
        asyncio.run(Server(cfg).run_until_signal(after_start=tune_garbage_collector))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
