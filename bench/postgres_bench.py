"""HTTP create/complete on PostgreSQL with one and with two server processes, in the same run.

Each configuration gets a fresh database on one real PostgreSQL; clients spread requests round-robin
over the servers. Prints throughput and p50/p99 per operation, then the scaling factor (N servers'
throughput over one server's), with the CPU the servers and PostgreSQL used per request. The factor
only means something when the machine has cores to spare for the extra servers: the CPU count is
printed with it. `--repeat` alternates the configurations (1, 2, 1, 2, ...) so noise hits both.

Usage: python bench/postgres_bench.py [--requests N] [--clients C] [--servers 1,2] [--repeat R]
                                      [--dsn postgresql://...]
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
SERVER_COUNTS = (1, 2)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (all their threads), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def postgres_pids() -> list[int]:
    """Every PostgreSQL backend process on this machine (the throw-away server's and any other)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() in ("postgres", "postmaster"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


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


def run_postgres_bench(dsn: str | None = None, requests: int = 2000, clients: int = 64,
                       counts: tuple[int, ...] = SERVER_COUNTS, repeat: int = 1) -> list[Row]:
    """The whole benchmark: returns the rows (and prints them with the scaling factor)."""
    provisioned = None
    if dsn is None:
        from tests.infra.postgres_server import PostgresServer
        provisioned = PostgresServer().start()
        dsn = provisioned.dsn
    db = Database(dsn)
    rows: list[Row] = []
    cpu: list[tuple[float, float]] = []  # per run: (server CPU s, PostgreSQL CPU s) over its rows' requests
    try:
        for _ in range(repeat):
            for count in counts:
                with db.fresh() as database:
                    servers = [ServerProcess("--api-grpc-enable=false", store_flags=db.flags(database))
                               for _ in range(count)]
                    with ThreadPoolExecutor(count) as starter:
                        list(starter.map(lambda s: s.start(), servers))
                    try:
                        label = f"http, postgres, {count} server{'s' if count > 1 else ''}"
                        pids = [s.proc.pid for s in servers]
                        before = cpu_seconds(pids), cpu_seconds(postgres_pids())
                        rows += asyncio.run(http_rows([s.url for s in servers], [clients], requests, label))
                        cpu.append((cpu_seconds(pids) - before[0], cpu_seconds(postgres_pids()) - before[1]))
                    finally:
                        for s in servers:
                            s.stop()
    finally:
        if provisioned is not None:
            provisioned.close()
    print_table(rows, f"HTTP on PostgreSQL, {requests} requests per cell, {clients} concurrent clients")
    print("\nCPU per request (create + complete), servers' processes and PostgreSQL's, from /proc:")
    for i, (server_s, pg_s) in enumerate(cpu):
        label = rows[2 * i].transport
        print(f"  {label:<30} servers {server_s * 1e6 / (2 * requests):>5.0f} us, "
              f"postgres {pg_s * 1e6 / (2 * requests):>5.0f} us")
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r.transport.rsplit(", ", 1)[1], r.operation), []).append(r.throughput)
    base = "1 server"
    for count in counts:
        if count == 1 or f"{count} servers" not in {k[0] for k in by}:
            continue
        for op in ("create", "complete"):
            one = sum(by[(base, op)]) / len(by[(base, op)])
            many = sum(by[(f"{count} servers", op)]) / len(by[(f"{count} servers", op)])
            print(f"scaling factor 1 -> {count} servers, {op}: {many / one:.2f}x ({one:.0f} -> {many:.0f} req/s, "
                  f"mean of {repeat}; {os.cpu_count()} CPUs shared by clients, servers and PostgreSQL)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="promises created and completed per run")
    parser.add_argument("--clients", type=int, default=64, help="concurrent requests")
    parser.add_argument("--servers", default=",".join(map(str, SERVER_COUNTS)),
                        help="server process counts to compare, comma-separated (1 first: the baseline)")
    parser.add_argument("--repeat", type=int, default=1, help="alternate the configurations this many times")
    parser.add_argument("--dsn", default=os.environ.get("RESONATE_BENCH_POSTGRES"),
                        help="an existing PostgreSQL to create databases on (default: start one)")
    args = parser.parse_args(argv if argv is not None else [])
    counts = tuple(int(c) for c in args.servers.split(",") if c)
    run_postgres_bench(args.dsn, args.requests, args.clients, counts, args.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
