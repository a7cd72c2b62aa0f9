"""HTTP create/complete on PostgreSQL with one and with three server processes, in the same run.

Each configuration gets a fresh database on one real PostgreSQL; clients spread requests round-robin
over the servers. Prints throughput and p50/p99 per operation, then the scaling factor (three servers'
throughput over one server's). The factor only means something when the machine has cores to spare
for the extra servers: the CPU count is printed with it.

Usage: python bench/postgres_bench.py [--requests N] [--clients C] [--dsn postgresql://...]
Without --dsn a throw-away PostgreSQL is started (tests/infra/postgres_server.py) and removed after.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row, print_table  # noqa: E402
from bench.http_bench import http_rows  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

FAR = 10**15
SERVER_COUNTS = (1, 3)


class Database:
    """Where the benchmark creates its databases: an existing server (dsn) or a throw-away one."""

    def __init__(self, dsn: str):
        parts = urlsplit(dsn)
        self.dsn = dsn
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432
        self.user, self.password = parts.username or "", parts.password or ""

    def flags(self, database: str) -> list[str]:
        flags = ["--aio-store-postgres-enable", "true", "--aio-store-postgres-host", self.host,
                 "--aio-store-postgres-port", str(self.port), "--aio-store-postgres-database", database]
        if self.user:
            flags += ["--aio-store-postgres-username", self.user]
        if self.password:
            flags += ["--aio-store-postgres-password", self.password]
        return flags

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_postgres_bench(dsn: str | None = None, requests: int = 2000, clients: int = 64) -> list[Row]:
    """The whole benchmark: returns the rows (and prints them with the scaling factor)."""
    provisioned = None
    if dsn is None:
        from tests.infra.postgres_server import PostgresServer
        provisioned = PostgresServer().start()
        dsn = provisioned.dsn
    db = Database(dsn)
    rows: list[Row] = []
    try:
        for count in SERVER_COUNTS:
            with db.fresh() as database:
                servers = [ServerProcess(store_flags=db.flags(database)) for _ in range(count)]
                with ThreadPoolExecutor(count) as starter:
                    list(starter.map(lambda s: s.start(), servers))
                try:
                    label = f"http, postgres, {count} server{'s' if count > 1 else ''}"
                    rows += asyncio.run(http_rows([s.url for s in servers], [clients], requests, label))
                finally:
                    for s in servers:
                        s.stop()
    finally:
        if provisioned is not None:
            provisioned.close()
    print_table(rows, f"HTTP on PostgreSQL, {requests} requests per cell, {clients} concurrent clients")
    by = {(r.transport.rsplit(", ", 1)[1], r.operation): r.throughput for r in rows}
    for op in ("create", "complete"):
        one, three = by[("1 server", op)], by[("3 servers", op)]
        print(f"scaling factor 1 -> 3 servers, {op}: {three / one:.2f}x "
              f"({one:.0f} -> {three:.0f} req/s; {os.cpu_count()} CPUs shared by clients, servers and PostgreSQL)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="promises created and completed per run")
    parser.add_argument("--clients", type=int, default=64, help="concurrent requests")
    parser.add_argument("--dsn", default=os.environ.get("RESONATE_BENCH_POSTGRES"),
                        help="an existing PostgreSQL to create databases on (default: start one)")
    args = parser.parse_args(argv if argv is not None else [])
    run_postgres_bench(args.dsn, args.requests, args.clients)


if __name__ == "__main__":
    main(sys.argv[1:])
