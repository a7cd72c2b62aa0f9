"""The scenario table over HTTP against a server on PostgreSQL: the same outcomes as on SQLite.

Also what only PostgreSQL does differently (spec 4.2: case-sensitive LIKE, `\\` escapes, JSONB tag
containment) and how the store starts: several servers migrating one empty database at once, and a
database whose schema is newer than the server.
"""
from __future__ import annotations

import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import httpx
import pytest

from tests.infra.fixtures import postgres_server  # noqa: F401  (one shared server per session)
from tests.scenarios.http_runner import HttpRunner
from tests.scenarios.runner import run_scenario
from tests.scenarios.table import FUTURE, SCENARIOS
from tests.server import ServerProcess
from resonate.core.kernel import Kernel
from resonate.core.requests import decode
from resonate.core.store.migrations import MIGRATIONS
from resonate.core.store.postgres import PostgresStore


def postgres_store_flags(pg, database: str, *extra: str) -> tuple[str, ...]:
    """The `resonate serve` flags that put a server on `database` of the test PostgreSQL."""
    flags = ["--aio-store-postgres-enable", "true", "--aio-store-postgres-host", pg.host,
             "--aio-store-postgres-port", str(pg.port), "--aio-store-postgres-database", database]
    if pg.user:
        flags += ["--aio-store-postgres-username", pg.user]
    if pg.password:
        flags += ["--aio-store-postgres-password", pg.password]
    return tuple(flags) + extra


@contextlib.contextmanager
def fresh_database(pg, purpose: str) -> Iterator[str]:
    """An empty database for one test (or module), dropped afterwards."""
    name = f"{purpose}_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    try:
        yield name
    finally:
        pg.drop_database(name)


@contextlib.contextmanager
def two_kernels(pg, database: str, workers: int) -> Iterator[list[Kernel]]:
    """Two kernels on one database, as two servers on it would have, stopped afterwards."""
    kernels = [Kernel(PostgresStore(pg.dsn_for(database), workers=workers)) for _ in range(2)]
    for kernel in kernels:
        kernel.start()
    try:
        yield kernels
    finally:
        for kernel in kernels:
            kernel.stop()


def deadlocks_retried(caplog) -> list[str]:
    """The kernel's reruns of a batch that PostgreSQL failed as a deadlock (logged at INFO)."""
    return [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage()]


def start_servers(pg, database: str, count: int, *flags: str) -> list[ServerProcess]:
    """`count` servers on one database, started at the same moment (they race to migrate it)."""
    servers = [ServerProcess(*flags, store_flags=postgres_store_flags(pg, database)) for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        started = [pool.submit(s.start) for s in servers]
    try:
        for f in started:
            f.result()
    except Exception:
        for s in servers:
            s.kill()
        raise
    return servers


@pytest.fixture(scope="module")
def postgres_resonate(postgres_server):  # noqa: F811
    with fresh_database(postgres_server, "scenarios") as database:
        server = ServerProcess("--system-signal-timeout", "100ms",
                               store_flags=postgres_store_flags(postgres_server, database)).start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def pg_runner(postgres_resonate):
    runner = HttpRunner(postgres_resonate.url)
    yield runner
    runner.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_on_postgres(pg_runner, scenario):
    problems = run_scenario(pg_runner, scenario)
    assert not problems, "\n".join(problems)


def _create(client: httpx.Client, promise_id: str, tags: dict | None = None) -> None:
    r = client.post("/promises", json={"id": promise_id, "timeout": FUTURE, "tags": tags or {}})
    assert r.status_code == 201, r.text


def _search_ids(client: httpx.Client, params) -> list[str]:
    r = client.get("/promises", params=params)
    assert r.status_code == 200, r.text
    return sorted(p["id"] for p in r.json()["promises"])


def test_id_patterns_are_case_sensitive_with_backslash_escapes(postgres_resonate):
    p = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=postgres_resonate.url, timeout=10) as client:
        for suffix in ("Abc", "abc", "a_c", "a%c", "a\\c"):
            _create(client, f"{p}-{suffix}")
        assert _search_ids(client, {"id": f"{p}-a*"}) == sorted(f"{p}-{s}" for s in ("abc", "a_c", "a%c", "a\\c"))
        assert _search_ids(client, {"id": f"{p}-A*"}) == [f"{p}-Abc"]
        # unescaped `_` is a wildcard; `\_` matches only the underscore itself
        assert _search_ids(client, {"id": f"{p}-a_c"}) == sorted(f"{p}-{s}" for s in ("abc", "a_c", "a%c", "a\\c"))
        assert _search_ids(client, {"id": f"{p}-a\\_c"}) == [f"{p}-a_c"]


def test_tags_match_flat_keys_by_containment(postgres_resonate):
    p = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=postgres_resonate.url, timeout=10) as client:
        _create(client, f"{p}-dotted", {"a.b": "1", "c": "2"})
        _create(client, f"{p}-nested", {"a": '{"b":"1"}', "c": "2"})
        assert _search_ids(client, {"id": f"{p}-*", "tags[a.b]": "1"}) == [f"{p}-dotted"]
        assert _search_ids(client, {"id": f"{p}-*", "tags[a.b]": "1", "tags[c]": "2"}) == [f"{p}-dotted"]
        assert _search_ids(client, {"id": f"{p}-*", "tags[c]": "2"}) == [f"{p}-dotted", f"{p}-nested"]
        assert _search_ids(client, {"id": f"{p}-*", "tags[c]": "3"}) == []


@pytest.fixture
def database(postgres_server):  # noqa: F811
    with fresh_database(postgres_server, "store") as name:
        yield name


def test_servers_starting_together_migrate_once(postgres_server, database):  # noqa: F811
    servers = start_servers(postgres_server, database, 3)
    try:
        with postgres_server.connect(database) as conn:
            versions = [row[0] for row in conn.execute("SELECT id FROM migrations ORDER BY id")]
            tables = {row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        assert versions == [m.version for m in MIGRATIONS]  # each recorded once, none missing
        assert {"promises", "callbacks", "schedules", "locks", "tasks", "replies", "migrations"} <= tables
        # every server writes to the shared schema and reads what the others wrote
        for i, server in enumerate(servers):
            with httpx.Client(base_url=server.url, timeout=10) as client:
                _create(client, f"migrate-{i}")
        for server in servers:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                assert [client.get(f"/promises/migrate-{i}").status_code for i in range(3)] == [200] * 3
    finally:
        for s in servers:
            s.stop()


def test_restart_keeps_data_and_schema(postgres_server, database):  # noqa: F811
    flags = postgres_store_flags(postgres_server, database)
    with ServerProcess(store_flags=flags) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        _create(client, "kept")
    with ServerProcess(store_flags=flags) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/promises/kept")
        assert r.status_code == 200 and r.json()["state"] == "PENDING"


def test_refuses_a_newer_schema(postgres_server, database):  # noqa: F811
    with ServerProcess(store_flags=postgres_store_flags(postgres_server, database)):
        pass
    with postgres_server.connect(database) as conn:
        conn.execute("INSERT INTO migrations (id) VALUES (99)")
    server = ServerProcess(store_flags=postgres_store_flags(postgres_server, database))
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        server.start(timeout=20)


def test_reset_drops_the_tables_on_shutdown(postgres_server, database):  # noqa: F811
    flags = postgres_store_flags(postgres_server, database, "--aio-store-postgres-reset", "true")
    with ServerProcess(store_flags=flags) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        _create(client, "gone")
    with postgres_server.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('promises')").fetchone()[0] is None


def test_a_deduplicated_request_runs_once_across_servers(postgres_server, database):  # noqa: F811
    """Two kernels on one database (two servers) handed the same Kafka request at once: one runs it,
    the other replays its stored reply instead of running it again (which would answer 409)."""
    from resonate.api.kafka.dedup import KafkaDedup

    with two_kernels(postgres_server, database, workers=2) as kernels:
        for n in range(20):
            futures = [kernel.submit(decode("promises.create", {"id": f"dedup-{n}", "timeout": FUTURE}),
                       dedup=KafkaDedup(f"correlation-{n}")) for kernel in kernels for _ in range(2)]
            assert [f.result(30).code for f in futures] == [20100] * 4


def test_a_callback_waits_for_a_completion_begun_on_another_connection(postgres_server, database):  # noqa: F811
    """Two servers' batches that each register a callback on a promise and then complete it. Were the
    registration's lock shared, each batch would hold it and wait for the other's to complete the promise:
    a deadlock, which PostgreSQL breaks only after its deadlock_timeout by failing a batch (eight of those
    in a row and the requests got a 500). The second registration must wait for the first batch instead,
    then see the promise completed."""
    from resonate.core.model import Callback, Mesg, Promise, PromiseState, Value
    from resonate.core.store.base import StaleRead
    from tests.infra.wait import wait_until

    store = PostgresStore(postgres_server.dsn_for(database), workers=2)
    store.migrate()
    first, second = store.connect(), store.connect()
    watcher = store.open_connection()
    watcher.autocommit = True

    def callback(root: str) -> Callback:
        return Callback(id=f"__resume:{root}:leaf", promise_id="leaf", root_promise_id=root, recv='"any"',
                        mesg=Mesg("resume", root=root, leaf="leaf"), timeout=FUTURE, created_on=1)

    try:
        first.begin()
        first.tx.insert_promise(Promise(id="leaf", state=PromiseState.PENDING, param=Value(), value=Value(),
                                        timeout=FUTURE, created_on=1))
        first.commit()

        first.begin()
        assert first.tx.insert_callback(callback("root-1"))
        outcome: list = []

        def register_second() -> None:
            second.begin()
            try:
                outcome.append(second.tx.insert_callback(callback("root-2")))
            except Exception as e:  # noqa: BLE001 - the outcome is asserted below
                outcome.append(e)

        with ThreadPoolExecutor(1) as pool:
            registering = pool.submit(register_second)
            pid = second.conn.info.backend_pid

            def waiting_for_a_lock() -> bool:
                row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                      (pid,)).fetchone()
                return bool(outcome) or (row is not None and row[0] == "Lock")

            wait_until(waiting_for_a_lock, "the second registration to return or to wait for a lock")
            assert not outcome, (f"the second registration went ahead while the first batch held the promise "
                                 f"for its completion: {outcome}")
            assert first.tx.update_promise("leaf", PromiseState.RESOLVED, Value(), None, 2)
            first.commit()
            registering.result(30)
        assert len(outcome) == 1 and isinstance(outcome[0], StaleRead), outcome
        second.rollback()
    finally:
        watcher.close()
        first.close()
        second.close()


def test_writes_racing_in_opposite_orders_through_two_servers_do_not_deadlock(postgres_server, database,  # noqa: F811
                                                                                caplog):
    """Two servers each handed the creations, then the completions, of the same promises in opposite
    orders, then the acquisitions of the same locks: each batch runs them in (table, key) order, so
    neither waits for the other while holding what the other waits for (a deadlock: PostgreSQL fails a
    batch after its deadlock_timeout of 1 s, and the kernel runs it again)."""
    caplog.set_level(logging.INFO, logger="resonate.kernel")
    with two_kernels(postgres_server, database, workers=1) as kernels:
        ids = [f"opposite-{n:02d}" for n in range(40)]

        def race(operation: str, fields: Callable[[str, int], dict]) -> list[int]:
            """`operation` on every id through both kernels at once, in opposite orders; the codes."""
            def submit_all(k: int, order: list[str]) -> list:
                return [kernels[k].submit(decode(operation, fields(i, k))) for i in order]

            with ThreadPoolExecutor(2) as pool:
                racing = [pool.submit(submit_all, 0, ids), pool.submit(submit_all, 1, ids[::-1])]
                futures = [f for r in racing for f in r.result()]
            return sorted(f.result(60).code if f.exception(60) is None else f.exception().code for f in futures)

        # each created once, then refused (no idempotency key); each completed once, then already resolved;
        # each lock acquired by one execution, then refused to the other
        assert race("promises.create", lambda i, k: {"id": i, "timeout": FUTURE}) == \
            [20100] * len(ids) + [40900] * len(ids)
        assert race("promises.complete", lambda i, k: {"id": i, "state": "RESOLVED"}) == \
            [20100] * len(ids) + [40301] * len(ids)
        assert race("locks.acquire", lambda i, k: {"resourceId": i, "executionId": f"e{k}", "processId": f"p{k}",
                                                   "ttl": 60_000}) == [20100] * len(ids) + [40305] * len(ids)
    retried = deadlocks_retried(caplog)
    assert not retried, retried[0]


def test_heartbeats_and_completions_through_two_servers_do_not_deadlock(postgres_server, database,  # noqa: F811
                                                                        caplog):
    """A worker's heartbeats through one server while its tasks are completed, then its locks released,
    through another. The rows are stored in descending key order, so a heartbeat that locked them as the
    table has them would hold the last while a batch, locking in key order, holds the first: the heartbeat
    locks them in key order."""
    caplog.set_level(logging.INFO, logger="resonate.kernel")
    ids = [f"beat-{n:03d}" for n in range(200)][::-1]

    def heartbeats_while(kernels: list[Kernel], heartbeat: str, operation: str,
                         fields: Callable[[str], dict]) -> tuple[list, list]:
        """`operation` on every id through the second kernel, `heartbeat` through the first until it is
        done; the codes of both."""
        work: list = []

        def beat_until_done() -> list:
            beats = []
            while not work or not all(f.done() for f in work):
                beats.append(kernels[0].submit(decode(heartbeat, {"processId": "worker"})))
                beats[-1].result(60)
            return beats

        with ThreadPoolExecutor(1) as pool:
            beating = pool.submit(beat_until_done)
            work.extend(kernels[1].submit(decode(operation, fields(i))) for i in ids)
            beats = beating.result()
        return [f.result(60).code for f in work], [f.result(60).code for f in beats]

    with two_kernels(postgres_server, database, workers=1) as kernels:
        for i in ids:
            kernels[0].call(decode("promises.create", {"id": i, "timeout": FUTURE,
                                                       "tags": {"resonate:invoke": "poll://any@workers"}}))
            kernels[0].call(decode("tasks.claim", {"id": f"__invoke:{i}", "counter": 1, "processId": "worker",
                                                   "ttl": 60_000}))
            kernels[0].call(decode("locks.acquire", {"resourceId": i, "executionId": "e", "processId": "worker",
                                                     "ttl": 60_000}))
        completed, beats = heartbeats_while(kernels, "tasks.heartbeat", "tasks.complete",
                                            lambda i: {"id": f"__invoke:{i}", "counter": 1})
        assert completed == [20100] * len(ids) and set(beats) == {20000}
        released, beats = heartbeats_while(kernels, "locks.heartbeat", "locks.release",
                                           lambda i: {"resourceId": i, "executionId": "e"})
        assert released == [20400] * len(ids) and set(beats) == {20000}
    retried = deadlocks_retried(caplog)
    assert not retried, retried[0]


def test_what_postgresql_cannot_store_is_a_400_naming_the_field(postgres_resonate):
    """NUL characters and ids beyond a btree entry are refused up front (by the core, on every store),
    not a 500 (which real clients retry forever); the server keeps serving."""
    p = uuid.uuid4().hex[:8]
    long_id = "x" * 3000
    long_leaf = f"{p}-leaf" + "l" * 1000  # storable alone, too long in a callback id with a long root
    refused = [
        ("POST", "/promises", {"id": f"{p}\u0000", "timeout": FUTURE}, "NUL"),
        ("POST", "/promises", {"id": f"{p}-tags", "timeout": FUTURE, "tags": {"k": "v\u0000"}}, "NUL"),
        ("POST", "/promises", {"id": f"{p}-param", "timeout": FUTURE, "param": {"headers": {"h\u0000": "v"}}}, "NUL"),
        ("GET", f"/promises?id={p}%00*", None, "NUL"),
        ("POST", "/promises", {"id": long_id, "timeout": FUTURE}, "the field id must be at most"),
        ("POST", "/schedules", {"id": long_id, "cron": "* * * * *", "promiseId": "x"}, "the field id must be at most"),
        ("POST", "/schedules", {"id": f"{p}-s", "cron": "* * * * *", "promiseId": "{{.id}}" + long_id},
         "the field promiseId must be at most"),
        ("POST", "/locks/acquire", {"resourceId": long_id, "executionId": "e", "processId": "p", "ttl": 1000},
         "the field resourceId must be at most"),
        ("POST", f"/promises/callback/{long_leaf}", {"rootPromiseId": "r" * 2000 + p, "recv": "x"},
         "the field rootPromiseId must be at most"),
    ]
    with httpx.Client(base_url=postgres_resonate.url, timeout=10) as client:
        _create(client, long_leaf)
        for method, path, body, message in refused:
            r = client.request(method, path, json=body)
            assert r.status_code == 400, (path, r.text)
            # the core names fields the reference's way (lower-cased Go names)
            assert r.json()["error"]["code"] == 40000 and message.lower() in r.text.lower(), r.text
        # a trailing `\` (an error in PostgreSQL's LIKE) matches a backslash
        _create(client, f"{p}-end\\")
        assert _search_ids(client, {"id": f"{p}-end\\"}) == [f"{p}-end\\"]
        assert client.get("/promises", params={"id": f"{p}*"}).status_code == 200
