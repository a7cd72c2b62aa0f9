"""Numbered, versioned schema migrations, compiled for each dialect from the one schema (tables.py).

Migration N creates the tables and indexes that tables.py marks `since: N` (and drops the indexes it
marks `until: N`), so the schema is written
once and each dialect's DDL follows from it (`resonate migrate dry-run` prints it). A later change
that is not an addition (a new column, a rewrite) appends its own statements per dialect to
`Migration.extra`.

How a store uses them at start (as the reference, spec 1.11): a fresh database gets every migration
in one transaction; a database with pending migrations is refused until `resonate migrate up`; a
database newer than this server is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from . import tables
from .base import SchemaError

_DIALECTS = {tables.SQLITE: sqlite.dialect(), tables.POSTGRES: postgresql.dialect()}

PENDING_MESSAGE = "pending migrations, run `resonate migrate` for more information"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dialect -> statements after the DDL

    def statements(self, dialect: str) -> list[str]:
        compiler = _DIALECTS[dialect]
        out = [str(CreateTable(t, if_not_exists=True).compile(dialect=compiler)).strip()
               for t in tables.SCHEMA.sorted_tables if _since(t) == self.version]
        for t in tables.SCHEMA.sorted_tables:
            for index in sorted(t.indexes, key=lambda i: i.name):
                if dialect not in index.info.get("dialects", (dialect,)):
                    continue
                if _since(index) == self.version:
                    out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=compiler)).strip())
                if index.info.get("until") == self.version:
                    out.append(f"DROP INDEX IF EXISTS {index.name}")
        out.extend(self.extra.get(dialect, ()))
        return out


def _since(item) -> int:
    return item.info.get("since", 1)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial_schema"),  # the reference's 001_initial_schema.sql
    Migration(2, "replies_and_lookup_indexes"),
    Migration(3, "deadline_indexes"),  # event-driven background work: the next deadline of each pass
    Migration(4, "background_scan_indexes"),  # the timeout pass and reply pruning without table scans
    Migration(5, "drop_duplicate_id_indexes"),  # SQLite: fewer pages written per create (tables.py)
    Migration(6, "pending_promise_timeout_index"),  # fewer pages written per complete (tables.py)
)
LATEST = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1)), "migrations are numbered 1, 2, 3, ..."


def index_names(dialect: str, dropped: bool = False) -> set[str]:
    """Every index the latest schema has in this dialect (for checks and tests); with `dropped`, those an
    earlier schema had and a later migration dropped."""
    return {i.name for t in tables.SCHEMA.sorted_tables for i in t.indexes
            if dialect in i.info.get("dialects", (dialect,)) and ("until" in i.info) == dropped}


class SchemaSession(Protocol):
    """A store's exclusive hold on its schema (other servers wait): read the version, apply migrations."""

    def version(self) -> int: ...

    def apply(self, migrations: list[Migration]) -> None:
        """Run them and record their versions, in one transaction."""


def pending(current: int) -> list[Migration]:
    if current > LATEST:
        raise SchemaError(f"the database schema version {current} is newer than this server's ({LATEST});"
                          " upgrade the server")
    return [m for m in MIGRATIONS if m.version > current]


def on_start(session: SchemaSession) -> list[Migration]:
    """What a server does at start: migrate a fresh database, refuse one with pending migrations."""
    current = session.version()
    todo = pending(current)
    if todo and current > 0:
        raise SchemaError(f"{PENDING_MESSAGE} (database at version {current}, latest {LATEST})")
    if todo:
        session.apply(todo)
    return todo


def up(session: SchemaSession) -> tuple[int, list[Migration]]:
    """`resonate migrate up`: apply every pending migration; returns the version before and what ran."""
    current = session.version()
    todo = pending(current)
    if todo:
        session.apply(todo)
    return current, todo
