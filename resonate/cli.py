"""`resonate serve` and `resonate dev`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .config import Config, add_flags, from_args
from .migrate import add_migrate_command, run_migrate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resonate", description="Resonate durable promises server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server", allow_abbrev=False)
    add_flags(serve)
    dev = commands.add_parser("dev", help="run the server for development (in-memory database)",
                              allow_abbrev=False)
    add_flags(dev)
    add_migrate_command(commands)  # `resonate migrate up|status|dry-run`
    from .client import add_client_commands
    add_client_commands(commands)  # promises, schedules, tasks, invoke, tree
    return parser


def main(argv: list[str] | None = None) -> None:
    ns = build_parser().parse_args(argv)
    if ns.command == "migrate":
        sys.exit(run_migrate(ns))
    if getattr(ns, "client_run", None):
        sys.exit(ns.client_run(ns))
    base = Config()
    if ns.command == "dev":
        base.sqlite_path = ":memory:"
        base.postgres_query = {"sslmode": "disable"}
    cfg = from_args(ns, base)
    level = {"warn": "WARNING"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .app import Server
    try:
        asyncio.run(Server(cfg).run_until_signal())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
