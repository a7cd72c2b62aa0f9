"""SQL statements per create, read and complete (issue 13): the kernel in-process on a file SQLite, every
statement traced with sqlite3's trace callback; one request per transaction (batch size 1) and 64 requests
submitted at once (one group-commit batch). Reads are answered from the store's read connection beside the
writer (traced too: they show no transaction statements).

Usage: python bench/sql_statements.py
"""
from __future__ import annotations

import collections
import os
import re
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.http_bench import FAR  # noqa: E402
from resonate.core.kernel import Kernel  # noqa: E402
from resonate.core.operations import decode  # noqa: E402
from resonate.core.store.sqlite import SqliteStore  # noqa: E402

REQUESTS = 64
SHOWN_PREFIX = 40  # statements are grouped by their first characters (bound values differ)

traced: list[str] = []
_connect = sqlite3.connect


def _traced_connect(*args, **kwargs):
    conn = _connect(*args, **kwargs)
    conn.set_trace_callback(traced.append)
    return conn


def request(op: str, i: int):
    if op == "create":
        return decode("promises.create", {"id": f"p{i}", "timeout": FAR})
    if op == "read":
        return decode("promises.read", {"id": f"p{i}"})
    return decode("promises.complete", {"id": f"p{i}", "state": "RESOLVED"})


def main() -> None:
    sqlite3.connect = _traced_connect
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size, label in ((1, "one per transaction"), (1000, f"{REQUESTS} submitted at once")):
            kernel = Kernel(SqliteStore(os.path.join(tmp, f"batch{batch_size}.db")), batch_size=batch_size,
                            queue_limit=100_000)
            kernel.start()
            try:
                for op in ("create", "read", "complete"):
                    traced.clear()
                    for f in [kernel.submit(request(op, i)) for i in range(REQUESTS)]:
                        f.result(30)
                    groups = collections.Counter(re.sub(r"\s+", " ", s.strip())[:SHOWN_PREFIX] for s in traced
                                                 if not s.startswith("PRAGMA"))
                    print(f"\n{op} ({label}): {sum(groups.values()) / REQUESTS:.2f} statements per request")
                    for statement, n in groups.most_common():
                        print(f"  {n / REQUESTS:5.2f}  {statement}")
            finally:
                kernel.stop()


if __name__ == "__main__":
    main()
