"""HTTP create/complete throughput and latency against a real server process, and two in-process
baselines measured in the same run: the core without HTTP (group commit), and the core with one
SQLite commit per request (batch size 1)."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row, make_row, run_concurrently  # noqa: E402
from resonate.core.kernel import Kernel  # noqa: E402
from resonate.core.operations import decode  # noqa: E402
from resonate.core.store.sqlite import SqliteStore  # noqa: E402

FAR = 10**15


class RawHttpConnection:
    """A minimal keep-alive HTTP/1.1 client, so the load generator costs far less than the server."""

    def __init__(self, reader, writer, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> "RawHttpConnection":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    async def request(self, method: str, path: str, body: bytes) -> int:
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self):
        self.writer.close()


def promise_operation(conns: list[RawHttpConnection], operation: str, ids: list[str], pending: list[str],
                      prefix: str, read_stride: int = 1):
    """One call of a timed cell (bench.common.run_for) over connection `worker`: a create appends its id to
    `ids` and `pending`, a read picks from `ids` (`read_stride` spreads consecutive reads over them), a
    complete takes from `pending` and returns False once it is empty."""
    counter = iter(range(10**9))

    async def one(worker: int) -> bool:
        conn = conns[worker]
        i = next(counter)
        if operation == "create":
            pid = f"{prefix}-{i}"
            status = await conn.request("POST", "/promises", json.dumps({"id": pid, "timeout": FAR}).encode())
            assert status == 201, status
            ids.append(pid)
            pending.append(pid)
        elif operation == "read":
            status = await conn.request("GET", f"/promises/{ids[(i * read_stride) % len(ids)]}", b"")
            assert status == 200, status
        else:
            if not pending:
                return False
            status = await conn.request("PATCH", f"/promises/{pending.pop()}", b'{"state":"RESOLVED"}')
            assert status == 201, status
        return True

    return one


async def http_rows(base_url: str | list[str], levels: list[int], n: int, label: str = "http") -> list[Row]:
    """Creates then completes `n` promises per level; with several servers, request i goes to server
    i mod k for the create and to the next server for the complete (writes must be visible everywhere)."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    addresses = [u.split("//", 1)[1].rsplit(":", 1) for u in urls]
    rows = []
    for c in levels:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        pools = []
        for host, port in addresses:
            pool: asyncio.Queue = asyncio.Queue()
            for _ in range(c):
                pool.put_nowait(await RawHttpConnection.open(host, int(port)))
            pools.append(pool)

        async def send(server, method, path, payload):
            pool = pools[server % len(pools)]
            conn = await pool.get()
            try:
                return await conn.request(method, path, json.dumps(payload).encode())
            finally:
                pool.put_nowait(conn)

        async def create(i):
            status = await send(i, "POST", "/promises", {"id": f"{prefix}-{i}", "timeout": FAR})
            assert status == 201, status

        async def complete(i):
            status = await send(i + 1, "PATCH", f"/promises/{prefix}-{i}", {"state": "RESOLVED"})
            assert status == 201, status

        seconds, lat = await run_concurrently(create, n, c)
        rows.append(make_row(label, "create", c, seconds, lat))
        seconds, lat = await run_concurrently(complete, n, c)
        rows.append(make_row(label, "complete", c, seconds, lat))
        for pool in pools:
            while not pool.empty():
                pool.get_nowait().close()
    return rows


async def core_rows(levels: list[int], n: int, batch_size: int, label: str) -> list[Row]:
    """The kernel in-process on a file database with synchronous=FULL, callers as asyncio tasks."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kernel = Kernel(SqliteStore(os.path.join(tmp, "bench.db")), batch_size=batch_size, queue_limit=100_000)
        kernel.start()
        try:
            for c in levels:
                prefix = f"core-{uuid.uuid4().hex[:8]}"

                async def create(i):
                    await asyncio.wrap_future(kernel.submit(decode("promises.create",
                                                                   {"id": f"{prefix}-{i}", "timeout": FAR})))

                async def complete(i):
                    await asyncio.wrap_future(kernel.submit(decode("promises.complete",
                                                                   {"id": f"{prefix}-{i}", "state": "RESOLVED"})))

                seconds, lat = await run_concurrently(create, n, c)
                rows.append(make_row(label, "create", c, seconds, lat))
                seconds, lat = await run_concurrently(complete, n, c)
                rows.append(make_row(label, "complete", c, seconds, lat))
        finally:
            kernel.stop()
    return rows
