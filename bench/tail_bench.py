"""The tail as the store grows (issue 13, item 4): `resonate serve` on a file SQLite (synchronous=FULL by
default) with 0, 100k and 1M promises already stored, with their callbacks and tasks, measured in one run.

For each store size a fresh server starts on a copy of a seeded database (pinned to core 0; the load
generator, the raw keep-alive client of bench/http_bench.py, on core 1) and runs read, create and complete
at 1 and at 64 clients for a fixed short time each. Prints p50, p99, p99/p50, the worst latency, and
whether each cell meets the issue's bar: at 1 client p99 <= 3x p50, at 64 clients p99 <= 2x p50.

Seeding is fast: the schema comes from the server's own migrations, then rows are bulk-inserted in the
real schema (executemany, big transactions). The mix per ten promises (one root, nine children):
85% completed, 15% pending with far timeouts; a resume callback on each pending child; an invoke task per
root (completed roots: COMPLETED; pending roots: INIT waiting for a retry, ENQUEUED, CLAIMED, all with far
expiries, or TIMEDOUT); a COMPLETED resume task per completed child. Seeded files are cached under
$TMPDIR/resonate-tail-bench (keyed by size and schema version) and copied for each server start.

Variants (compared in the same run, each a fresh server):
  --variants baseline   also runs the server with the fixes undone (gc defaults, SQLite's own
                        auto-checkpoint inside COMMIT, no migration-004 indexes), to show what they change;
  --variants "no gc tuning,checkpoint in commit"   each fix alone undone;
  --synchronous NORMAL  also runs each size with `--aio-store-sqlite-synchronous NORMAL`.
`--explain` prints EXPLAIN QUERY PLAN and the time of every background query on the 1M database.
`--commits N` times the writer's COMMITs in-process over N creates, checkpoints off the request path
against SQLite's auto-checkpoint inside COMMIT (alternating, `--repeat` times).

Figures on this shared 2-core machine are noisy: compare variants within one run, and repeat.

Usage: python bench/tail_bench.py [--sizes 0,100000,1000000] [--seconds S] [--variants baseline]
                                  [--synchronous FULL,NORMAL] [--explain]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.ceiling_bench import pin_load_generator, pinned  # noqa: E402
from bench.common import percentile, run_for  # noqa: E402
from bench.http_bench import FAR, RawHttpConnection, promise_operation  # noqa: E402

SIZES = (0, 100_000, 1_000_000)
CELLS = [("read", 1), ("create", 1), ("complete", 1), ("read", 64), ("create", 64), ("complete", 64)]
BAR = {1: 3.0, 64: 2.0}  # the bound on p99/p50 at that many clients
WARMUP_S = 0.5
SEED_CHUNK = 50_000  # rows per executemany transaction
CACHE_DIR = os.path.join(tempfile.gettempdir(), "resonate-tail-bench")
DAY_MS = 24 * 3600 * 1000

# the server as `resonate serve` runs it, but with the fixes undone: the "before" (GC defaults, SQLite's
# auto-checkpoint inside the writer's COMMIT, and no migration-004 indexes on the copied database)
BASELINE_PRELUDE = """
import sqlite3, sys, resonate.cli, resonate.core.store.sqlite as s
resonate.cli.tune_garbage_collector = lambda: None
s.SqliteStore.checkpoint_off_request_path = False
db = sqlite3.connect(sys.argv[sys.argv.index("--aio-store-sqlite-path") + 1])
db.execute("DROP INDEX IF EXISTS idx_tasks_timed")
db.execute("DROP INDEX IF EXISTS idx_replies_created_on")
db.close()
resonate.cli.main(sys.argv[1:])
"""
# each fix alone undone, to tell their effects apart
ONE_UNDONE = {
    "no gc tuning": "import sys, resonate.cli\nresonate.cli.tune_garbage_collector = lambda: None\n"
                    "resonate.cli.main(sys.argv[1:])\n",
    "checkpoint in commit": "import sys, resonate.cli, resonate.core.store.sqlite as s\n"
                            "s.SqliteStore.checkpoint_off_request_path = False\nresonate.cli.main(sys.argv[1:])\n",
}
PRELUDE = "import sys, resonate.cli\nresonate.cli.main(sys.argv[1:])\n"

# prepended to every variant: the server's garbage-collection pauses, counted from SIGUSR1 (sent when the
# cells start) and reported at exit as a GCSTATS line in its log
GC_STATS = """
import atexit, gc, signal, sys, time
_gc = {"start": 0.0, "pauses": []}
def _gc_callback(phase, info):
    if phase == "start":
        _gc["start"] = time.perf_counter()
    else:
        _gc["pauses"].append(((time.perf_counter() - _gc["start"]) * 1000, info["generation"]))
gc.callbacks.append(_gc_callback)
signal.signal(signal.SIGUSR1, lambda *_: _gc["pauses"].clear())
def _gc_report():
    p = _gc["pauses"]
    full = [ms for ms, gen in p if gen == 2]
    print(f"GCSTATS collections={len(p)} full={len(full)} max_ms={max((ms for ms, _ in p), default=0):.1f} "
          f"total_ms={sum(ms for ms, _ in p):.0f} over_10ms={sum(ms > 10 for ms, _ in p)}", file=sys.stderr, flush=True)
atexit.register(_gc_report)
"""
STARTUP_SETTLE_S = 1.0
SLOW_COMMIT_S = (0.025, 0.05, 0.1)  # kernel transactions slower than these are counted (metrics buckets)


# --- seeding ----------------------------------------------------------------------------------------

def schema_version() -> int:
    from resonate.core.store.migrations import LATEST
    return LATEST


def seeded_path(size: int) -> str:
    os.makedirs(CACHE_DIR, exist_ok=True)
    path = os.path.join(CACHE_DIR, f"seed-{size}-v{schema_version()}.db")
    if not os.path.exists(path):
        started = time.perf_counter()
        seed(path + ".tmp", size)
        os.replace(path + ".tmp", path)
        print(f"seeded {size:,} promises in {time.perf_counter() - started:.1f} s -> {path} "
              f"({os.path.getsize(path) / 1e6:.0f} MB)", flush=True)
    return path


def seed(path: str, size: int) -> None:
    from resonate.core.store.sqlite import SqliteStore
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    SqliteStore(path).migrate()  # the server's own schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1000)
    far = now + 30 * DAY_MS
    rnd = random.Random(13)
    promises, callbacks, tasks = [], [], []

    def flush(final: bool = False) -> None:
        if len(promises) < SEED_CHUNK and not final:
            return
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO promises (id, state, param_headers, param_data, value_headers, value_data,"
                         " timeout, idempotency_key_for_create, idempotency_key_for_complete, tags, created_on,"
                         " completed_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", promises)
        conn.executemany("INSERT INTO callbacks (id, promise_id, root_promise_id, recv, mesg, timeout, created_on)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", callbacks)
        conn.executemany("INSERT INTO tasks (id, process_id, state, root_promise_id, recv, mesg, timeout, counter,"
                         " attempt, ttl, expires_at, created_on, completed_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                         " ?, ?, ?)", tasks)
        conn.execute("COMMIT")
        promises.clear()
        callbacks.clear()
        tasks.clear()

    recv = b'"poll://any@default"'
    param = (b'{"content-type":"application/json"}', b'{"args":[1,2,3],"func":"work"}')
    for i in range(size):
        root = f"seed-{i - i % 10}"
        pid = f"seed-{i}" if i % 10 else root
        created = now - rnd.randrange(30 * DAY_MS)
        completed = rnd.random() < 0.85
        tags = b'{"resonate:invoke":"poll://any@default"}' if i % 10 == 0 else b"{}"
        if completed:
            state = 2 if rnd.random() < 0.9 else 4
            promises.append((pid, state, *param, b"{}", b'{"ok":true}', far, f"ik-{i}", f"ikc-{i}", tags, created,
                             created + 1000))
        else:
            promises.append((pid, 1, *param, None, None, far, f"ik-{i}", None, tags, created, None))
        if i % 10 == 0:  # the root's invoke task
            mesg = json.dumps({"type": "invoke", "root": pid, "leaf": pid}).encode()
            if completed:
                tasks.append((f"__invoke:{pid}", None, 8, pid, recv, mesg, far, 1, 0, 0, 0, created, created + 900))
            else:
                state = rnd.choice((1, 2, 4, 16))
                process = f"worker-{i % 97}" if state == 4 else None
                expires = far if state in (1, 2, 4) else 0
                tasks.append((f"__invoke:{pid}", process, state, pid, recv, mesg, far, 2, 1,
                              60_000 if state == 4 else 0, expires, created, created if state == 16 else None))
        else:
            mesg = json.dumps({"type": "resume", "root": root, "leaf": pid}).encode()
            if completed:  # its resume callback became a task, long done
                tasks.append((f"__resume:{root}:{pid}", None, 8, root, recv, mesg, far, 1, 0, 0, 0, created,
                              created + 900))
            else:
                callbacks.append((f"__resume:{root}:{pid}", pid, root, recv, mesg, far, created))
        flush()
    flush(final=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def copy_synced(source: str, target: str) -> None:
    """A copy of a seeded file, flushed to disk: otherwise the server's first fsyncs would also write out the
    copy's hundreds of MB of dirty pages (a 100+ ms COMMIT that is the benchmark's, not the server's)."""
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seeded_ids(path: str, count: int = 20_000) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        n = conn.execute("SELECT MAX(sort_id) FROM promises").fetchone()[0] or 0
        if not n:
            return []
        picks = random.Random(7).sample(range(1, n + 1), min(count, n))
        return [f"seed-{k - 1}" for k in picks]
    finally:
        conn.close()


# --- the server -------------------------------------------------------------------------------------

def server_for(db_path: str, prelude: str, flags: list[str]):
    from tests.server import ServerProcess

    class PinnedServer(ServerProcess):
        def command(self) -> list[str]:
            cmd = super().command()
            assert cmd[1:3] == ["-m", "resonate.cli"], cmd
            return pinned([cmd[0], "-c", prelude, *cmd[3:]])

    return PinnedServer(*flags, db_path=db_path)


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc schedstat): time taken by
    other processes on the server's core, which no change to the server can remove."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except OSError:
            pass
    return total / 1e9


def commit_buckets(metrics_url: str) -> dict[float, float]:
    """Cumulative counts of the kernel's transactions by duration bucket (le -> count), and +Inf."""
    import httpx
    out: dict[float, float] = {}
    for line in httpx.get(metrics_url, timeout=10).text.splitlines():
        if line.startswith("resonate_kernel_commit_duration_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


# --- the load ---------------------------------------------------------------------------------------

class Cell:
    def __init__(self, operation: str, clients: int, latencies: list[float], seconds: float):
        self.operation, self.clients, self.latencies, self.seconds = operation, clients, latencies, seconds
        self.p50 = percentile(latencies, 0.5)
        self.p99 = percentile(latencies, 0.99)
        self.worst = max(latencies, default=0.0)

    @property
    def ratio(self) -> float:
        return self.p99 / self.p50 if self.p50 else 0.0

    @property
    def meets(self) -> bool:
        return self.ratio <= BAR[self.clients]


async def run_cell(url: str, operation: str, clients: int, seconds: float, read_ids: list[str],
                   pending: list[str]) -> Cell:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    conns = [await RawHttpConnection.open(host, int(port)) for _ in range(clients)]
    # reads stride over the ids (seeded ones first) so consecutive reads do not hit neighbouring rows
    one = promise_operation(conns, operation, read_ids, pending, f"tail-{uuid.uuid4().hex[:8]}", read_stride=7919)
    latencies: list[float] = []
    if operation != "complete":
        await run_for(clients, one, WARMUP_S)
    elapsed = await run_for(clients, one, seconds, latencies)
    for c in conns:
        c.close()
    return Cell(operation, clients, latencies, elapsed)


async def top_up(url: str, pending: list[str], wanted: int, read_ids: list[str]) -> None:
    """Unmeasured creates until `wanted` promises are pending (so a complete cell never runs dry)."""
    while len(pending) < wanted:
        await run_cell(url, "create", 64, 0.5, read_ids, pending)


async def measure_server(url: str, seconds: float, seeded: list[str]) -> list[Cell]:
    read_ids = list(seeded)
    pending: list[str] = []
    cells = []
    if not read_ids:  # an empty store: something to read first (unmeasured)
        await run_cell(url, "create", 16, 0.5, read_ids, pending)
    for op, clients in CELLS:
        if op == "complete":
            await top_up(url, pending, int(seconds * (1500 if clients == 1 else 6000)), read_ids)
        cells.append(await run_cell(url, op, clients, seconds, read_ids, pending))
    return cells


def run_one(size: int, label: str, prelude: str, flags: list[str], seconds: float, tmp: str) -> list[Cell]:
    source = seeded_path(size)
    db = os.path.join(tmp, f"run-{uuid.uuid4().hex[:6]}.db")
    copy_synced(source, db)
    ids = seeded_ids(db)
    server = server_for(db, GC_STATS + prelude, flags).start(timeout=120)
    try:
        # /ping answers before the server's last start-up step (its one gc.collect() before gc.freeze()):
        # let that pass, then count GC pauses from here
        time.sleep(STARTUP_SETTLE_S)
        os.kill(server.proc.pid, signal.SIGUSR1)
        before = commit_buckets(server.metrics_url)
        waited, started = run_queue_wait_s(server.proc.pid), time.perf_counter()
        cells = asyncio.run(measure_server(server.url, seconds, ids))
        waited, elapsed = run_queue_wait_s(server.proc.pid) - waited, time.perf_counter() - started
        after = commit_buckets(server.metrics_url)
    finally:
        server.stop()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
    total = after[float("inf")] - before.get(float("inf"), 0)
    slow = ", ".join(f"> {int(b * 1000)} ms: {total - (after[b] - before.get(b, 0)):.0f}" for b in SLOW_COMMIT_S)
    gc_line = next((line.split("GCSTATS ", 1)[1] for line in server.log_tail(400).splitlines() if "GCSTATS" in line),
                   "no GCSTATS line")
    SERVER_NOTES.append(f"{size:>9,} {label:<22} transactions {total:.0f} ({slow}); GC {gc_line}; "
                        f"waiting for a CPU {waited / elapsed:.0%} of the time")
    return cells


SERVER_NOTES: list[str] = []


def print_cells(results: list[tuple[int, str, list[Cell]]], seconds: float) -> None:
    print(f"\ntail as the store grows: {seconds:g} s per cell, server on core 0, load on core 1; "
          "bar: p99 <= 3x p50 at 1 client, <= 2x at 64")
    print(f"{'stored':>9} {'variant':<22} {'op':<9} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p99/p50':>7} {'max ms':>7}  bar")
    for size, label, cells in results:
        for c in cells:
            print(f"{size:>9,} {label:<22} {c.operation:<9} {c.clients:>7} {len(c.latencies) / c.seconds:>7.0f} "
                  f"{c.p50:>7.2f} {c.p99:>7.2f} {c.ratio:>7.2f} {c.worst:>7.1f}  {'ok' if c.meets else 'MISSED'}")
    missed = sum(not c.meets for _, _, cells in results for c in cells)
    total = sum(len(cells) for _, _, cells in results)
    print(f"{total - missed} of {total} cells meet the bar")
    print("\nper server, over all its cells: kernel transactions (from /metrics) by duration; GC pauses (gc.callbacks)")
    for note in SERVER_NOTES:
        print(note)


# --- EXPLAIN QUERY PLAN of the background queries ---------------------------------------------------

class ExplainingCursor:
    """A cursor that records each statement's query plan and time before returning its rows."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.cur = conn.cursor()
        self.seen: list[tuple[str, list[str], float]] = []

    def execute(self, sql: str, params=()):
        plan = [row[3] for row in self.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        start = time.perf_counter()
        self.cur.execute(sql, params)
        rows = self.cur.fetchall()
        self.seen.append((sql, plan, (time.perf_counter() - start) * 1000))
        self._rows = iter(rows)
        self.rowcount = self.cur.rowcount if self.cur.rowcount >= 0 else len(rows)
        return self

    def fetchone(self):
        return next(self._rows, None)

    def fetchall(self):
        return list(self._rows)


def explain(size: int) -> None:
    from resonate.core import deadlines as dl
    from resonate.core.store.sqlite import SqliteTx
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "explain.db")
        shutil.copyfile(seeded_path(size), db)
        conn = sqlite3.connect(db, isolation_level=None)
        cur = ExplainingCursor(conn)
        tx = SqliteTx(cur)
        now = int(time.time() * 1000)
        conn.execute("BEGIN")
        tx.read_expired_promises(now, 100)
        tx.read_expired_tasks(now, 100)
        tx.read_enqueueable_tasks(now, 100)
        tx.read_due_schedules(now, 100)
        tx.timeout_locks(now)
        tx.delete_replies_before(now - DAY_MS, 1000)
        for kind in dl.KINDS:
            tx.next_deadline(kind, now)
        pending_child = conn.execute("SELECT promise_id, root_promise_id FROM callbacks LIMIT 1").fetchone()
        if pending_child:  # what completing a promise with a callback runs
            tx.complete_tasks_by_root(pending_child[1], now)
            tx.create_tasks_from_callbacks(pending_child[0], now)
            tx.delete_callbacks(pending_child[0])
        conn.execute("ROLLBACK")
        print(f"\nbackground queries on {size:,} stored promises (EXPLAIN QUERY PLAN, time of one run)")
        for sql, plan, ms in cur.seen:
            print(f"{ms:8.2f} ms  {' '.join(sql.split())[:150]}")
            for step in plan:
                print(f"              {step}")


# --- the writer's COMMIT with and without SQLite's auto-checkpoint inside it (in-process) ---------------

def commit_times(size: int, off_request_path: bool, creates: int, tmp: str, synchronous: str = "FULL") -> list[float]:
    """Durations (ms) of the writer's COMMITs while `creates` promises are created 64 at a time."""
    from concurrent.futures import wait
    from resonate.core.kernel import Kernel
    from resonate.core.operations import decode
    from resonate.core.store import sqlite as sqlite_store
    db = os.path.join(tmp, f"commits-{uuid.uuid4().hex[:6]}.db")
    copy_synced(seeded_path(size), db)
    times: list[float] = []
    original = sqlite_store.SqliteConnection.commit

    def timed_commit(self):
        start = time.perf_counter()
        original(self)
        times.append((time.perf_counter() - start) * 1000)

    sqlite_store.SqliteConnection.commit = timed_commit
    sqlite_store.SqliteStore.checkpoint_off_request_path = off_request_path
    kernel = Kernel(sqlite_store.SqliteStore(db, synchronous=synchronous), batch_size=1000, queue_limit=100_000)
    kernel.start()
    try:
        prefix = uuid.uuid4().hex[:8]
        for start in range(0, creates, 64):
            wait([kernel.submit(decode("promises.create", {"id": f"c-{prefix}-{i}", "timeout": FAR}))
                  for i in range(start, min(start + 64, creates))])
    finally:
        kernel.stop()
        sqlite_store.SqliteConnection.commit = original
        sqlite_store.SqliteStore.checkpoint_off_request_path = True
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
    return times


def checkpoint_ab(sizes: list[int], creates: int, repeat: int) -> None:
    print(f"\nthe writer's COMMIT, {creates} creates 64 at a time, in-process (kernel + file SQLite)")
    print(f"{'stored':>9} {'synchronous, checkpoints':<30} {'commits':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'> 10 ms':>7}")
    with tempfile.TemporaryDirectory(prefix="resonate-commits-") as tmp:
        for size in sizes:
            for _ in range(repeat):
                for off, mode, label in ((True, "FULL", "FULL, off the request path"),
                                         (False, "FULL", "FULL, in COMMIT (SQLite's)"),
                                         (True, "NORMAL", "NORMAL, off the request path")):
                    t = commit_times(size, off, creates, tmp, mode)
                    print(f"{size:>9,} {label:<30} {len(t):>7} {percentile(t, 0.5):>7.2f} {percentile(t, 0.99):>7.2f} "
                          f"{max(t):>7.1f} {sum(x > 10 for x in t):>7}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="stored promises, comma-separated")
    parser.add_argument("--seconds", type=float, default=2.5, help="measured seconds per cell")
    parser.add_argument("--variants", default="", help="comma-separated: baseline (every fix undone), "
                        + ", ".join(ONE_UNDONE) + " (that fix alone undone)")
    parser.add_argument("--synchronous", default="FULL", help="FULL, NORMAL or FULL,NORMAL")
    parser.add_argument("--repeat", type=int, default=1, help="run every server this many times")
    parser.add_argument("--explain", action="store_true", help="query plans of the background queries at 1M")
    parser.add_argument("--commits", type=int, default=0, metavar="N",
                        help="only time the writer's COMMITs over N creates, checkpoints off vs in COMMIT")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.explain:
        explain(max(sizes))
        return
    if args.commits:
        checkpoint_ab(sizes, args.commits, args.repeat)
        return
    for size in sizes:
        seeded_path(size)  # seed (or find cached) before any server runs
    pin_load_generator()
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    variants = [("tuned", PRELUDE)] + [(v, BASELINE_PRELUDE if v == "baseline" else ONE_UNDONE[v]) for v in wanted]
    modes = [m.strip().upper() for m in args.synchronous.split(",") if m.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="resonate-tail-") as tmp:
        for size in sizes:
            for _ in range(args.repeat):
                for mode in modes:
                    for name, prelude in variants:
                        label = f"{name}, {mode}"
                        flags = ["--aio-store-sqlite-synchronous", mode]
                        results.append((size, label, run_one(size, label, prelude, flags, args.seconds, tmp)))
                        print(f"  done: {size:,} {label}", flush=True)
    print_cells(results, args.seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
