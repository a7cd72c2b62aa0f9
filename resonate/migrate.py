"""`resonate migrate up|status|dry-run`: the database schema's versions, as the reference's command.

A server migrates a fresh database itself but refuses one with pending migrations; this command is
how an operator sees and applies them. It takes the same flags (and so the same config) as `serve`.
"""
from __future__ import annotations

import argparse
import sys

from .config import Config, add_flags, from_args

ACTIONS = {
    "up": "Apply all pending migrations",
    "status": "Show current migration status",
    "dry-run": "Show which migrations would be applied",
}


def add_migrate_command(commands) -> None:
    migrate = commands.add_parser("migrate", help="Database migration commands",
                                  description="Manage database migrations for Resonate")
    actions = migrate.add_subparsers(dest="migrate_action", required=True, metavar="{up,status,dry-run}")
    for name, help_text in ACTIONS.items():
        add_flags(actions.add_parser(name, help=help_text, description=help_text, allow_abbrev=False))


def run_migrate(ns: argparse.Namespace, out=sys.stdout) -> int:
    from .app import build_store
    from .core.store import migrations
    from .core.store.base import StoreError

    cfg = from_args(ns, Config())
    store = build_store(cfg)
    where = _where(cfg)
    try:
        with store.schema_session() as session:
            if ns.migrate_action == "up":
                before, applied = migrations.up(session)
                for m in applied:
                    print(f"applied {_label(m)}", file=out)
                print(f"{where}: schema at version {applied[-1].version if applied else before}"
                      f" (was {before}, latest {migrations.LATEST})", file=out)
                return 0
            current = session.version()
            todo = migrations.pending(current)
        if ns.migrate_action == "status":
            print(f"{where}: schema at version {current}, latest {migrations.LATEST}", file=out)
            print(f"pending migrations: {len(todo)}", file=out)
            for m in todo:
                print(f"  {_label(m)}", file=out)
            return 0
        if not todo:
            print(f"{where}: no pending migrations (schema at version {current})", file=out)
            return 0
        print(f"{where}: {len(todo)} migration(s) would be applied (schema at version {current}):", file=out)
        for m in todo:
            print(f"-- {_label(m)}", file=out)
            for statement in m.statements(store.dialect):
                print(f"{statement};", file=out)
        return 0
    except StoreError as e:
        print(f"resonate: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _label(m) -> str:
    return f"{m.version:03d}_{m.name}"


def _where(cfg: Config) -> str:
    if cfg.postgres_enable:
        return f"postgres {cfg.postgres_host}:{cfg.postgres_port}/{cfg.postgres_database}"
    return f"sqlite {cfg.sqlite_path}"
