"""HTTP create/complete throughput and latency against a real server process, and two in-process
baselines measured in the same run: the core without HTTP (group commit), and the core with one
SQLite commit per request (batch size 1)."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row, make_row, run_concurrently  # noqa: E402
from resonate.core.kernel import Kernel  # noqa: E402
from resonate.core.operations import decode  # noqa: E402
from resonate.core.store.sqlite import SqliteStore  # noqa: E402

FAR = 10**15


async def http_rows(base_url: str, levels: list[int], n: int, label: str = "http") -> list[Row]:
    rows = []
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        for c in levels:
            prefix = f"bench-{uuid.uuid4().hex[:8]}"

            async def create(i):
                r = await client.post("/promises", json={"id": f"{prefix}-{i}", "timeout": FAR})
                assert r.status_code == 201, r.text

            async def complete(i):
                r = await client.patch(f"/promises/{prefix}-{i}", json={"state": "RESOLVED"})
                assert r.status_code == 201, r.text

            seconds, lat = await run_concurrently(create, n, c)
            rows.append(make_row(label, "create", c, seconds, lat))
            seconds, lat = await run_concurrently(complete, n, c)
            rows.append(make_row(label, "complete", c, seconds, lat))
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
