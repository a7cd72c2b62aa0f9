"""`resonate serve` and `resonate dev`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .config import Config, add_flags, from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resonate", description="Resonate durable promises server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server", allow_abbrev=False)
    add_flags(serve)
    dev = commands.add_parser("dev", help="run the server for development (in-memory database)",
                              allow_abbrev=False)
    add_flags(dev)
    return parser


def main(argv: list[str] | None = None) -> None:
    ns = build_parser().parse_args(argv)
    base = Config()
    if ns.command == "dev":
        base.sqlite_path = ":memory:"
        base.postgres_query = {"sslmode": "disable"}
    cfg = from_args(ns, base)
    level = {"warn": "WARNING"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if cfg.log_level != "debug":  # kafka-python logs every rebalance step at INFO: part of the log set-up
        logging.getLogger("kafka").setLevel(logging.WARNING)
    from .app import Server
    try:
        asyncio.run(Server(cfg).run_until_signal())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
