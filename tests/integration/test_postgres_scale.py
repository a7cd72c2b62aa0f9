"""Three server processes on one PostgreSQL: background work is done once, writes survive a SIGKILL.

A real HTTP recipient in the test process stands for the workers: every server pushes task messages
to it (the `http` plugin), and it counts what arrives, so a task sent twice, a schedule fired twice or
a promise timed out twice shows up as a count above one.
"""
from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.infra.fixtures import postgres_server  # noqa: F401  (one shared server per session)
from tests.integration.test_postgres_scenarios import fresh_database, start_servers
from tests.scenarios.table import FUTURE
from tests.infra.wait import wait_until

BACKGROUND_PERIOD = ("--system-signal-timeout", "100ms")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Recipient:
    """An HTTP endpoint that records every task message pushed to it."""

    def __init__(self):
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        recipient = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recipient._lock:
                    recipient.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # three servers push bursts of a thousand messages, a connection each: the default backlog of 5
            # makes connections wait for SYN retransmits (1 s, 3 s, ...) rather than measure the servers
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def recv(self) -> dict:
        return {"type": "http", "data": {"url": self.url}}

    def tasks(self, kind: str, root_prefix: str) -> Counter:
        """Deliveries per (task id, counter) of `kind` messages whose root promise has the prefix."""
        with self._lock:
            return Counter((m["task"]["id"], m["task"]["counter"]) for m in self.messages
                           if m.get("type") == kind and m["task"]["rootPromiseId"].startswith(root_prefix))

    def invokes(self, root_prefix: str) -> Counter:
        return self.tasks("invoke", root_prefix)

    def notifies(self, prefix: str) -> Counter:
        """Deliveries per promise id of notify messages for promises with the prefix."""
        with self._lock:
            return Counter(m["promise"]["id"] for m in self.messages
                           if m.get("type") == "notify" and m["promise"]["id"].startswith(prefix))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def search_all(client: httpx.Client, pattern: str, **params) -> list[dict]:
    """Every promise matching the pattern, following the cursor."""
    found, query = [], {"id": pattern, "limit": 100, **params}
    while True:
        r = client.get("/promises", params=query)
        assert r.status_code == 200, r.text
        found += r.json()["promises"]
        cursor = r.json()["cursor"]
        if not cursor:
            return found
        query = {"cursor": cursor}


def invoke_sentinels(cluster, recipient) -> None:
    """A "nothing more arrives" check waits for this positive signal: one invoke task created through
    each server AFTER the window, each delivered. Work due earlier (a late duplicate) goes through the
    same background passes and delivery first, so once these arrive, a duplicate would have too."""
    prefix = f"sentinel-{uuid.uuid4().hex[:8]}-"
    tags = {"resonate:invoke": json.dumps(recipient.recv)}
    for i, client in enumerate(cluster):
        r = client.post("/promises", json={"id": f"{prefix}{i}", "timeout": FUTURE, "tags": tags})
        assert r.status_code == 201, r.text
    wait_until(lambda: len(recipient.invokes(prefix)) == len(cluster), "the sentinel invoke messages", timeout=60)


def notify_sentinels(cluster, recipient) -> None:
    """As invoke_sentinels, for timeouts: a promise through each server that times out AFTER the window,
    each notified; an earlier promise timed out twice would have been notified again before them."""
    prefix = f"sentinel-{uuid.uuid4().hex[:8]}-"
    deadline = now_ms() + 3000  # room to subscribe first, even on a loaded machine
    for i, client in enumerate(cluster):
        r = client.post("/promises", json={"id": f"{prefix}{i}", "timeout": deadline})
        assert r.status_code == 201, r.text
        r = client.post(f"/promises/subscribe/{prefix}{i}", json={"id": "watch", "recv": recipient.recv,
                                                                   "timeout": FUTURE})
        assert r.status_code == 201, f"the sentinel timed out before it was subscribed to: {r.text}"
    wait_until(lambda: len(recipient.notifies(prefix)) == len(cluster), "the sentinel notifications", timeout=60)


@pytest.fixture(scope="module")
def recipient():
    r = Recipient()
    yield r
    r.close()


@pytest.fixture(scope="module")
def cluster(postgres_server):  # noqa: F811
    with fresh_database(postgres_server, "scale") as database:
        servers = start_servers(postgres_server, database, 3, *BACKGROUND_PERIOD)
        clients = [httpx.Client(base_url=s.url, timeout=30) for s in servers]
        yield clients
        for c in clients:
            c.close()
        for s in servers:
            assert s.stop() == 0, s.log_tail()


def test_schedule_fires_once_per_second_across_three_servers(cluster, recipient):
    schedule_id = f"every-second-{uuid.uuid4().hex[:8]}"
    r = cluster[0].post("/schedules", json={
        "id": schedule_id, "cron": "* * * * * *", "promiseId": "{{.id}}.{{.timestamp}}", "promiseTimeout": 60_000,
        "promiseTags": {"resonate:invoke": json.dumps(recipient.recv)}})
    assert r.status_code == 201, r.text
    first = r.json()["nextRunTime"]
    expected = [f"{schedule_id}.{first + k * 1000}" for k in range(10)]
    # the three servers fire it for ten seconds, then it is deleted
    wait_until(lambda: cluster[1].get(f"/promises/{expected[-1]}").status_code == 200, "the tenth scheduled promise", timeout=30)
    assert cluster[2].delete(f"/schedules/{schedule_id}").status_code == 204
    invoke_sentinels(cluster, recipient)  # a late duplicate firing would show up before these

    promises = sorted(search_all(cluster[0], f"{schedule_id}.*"), key=lambda p: int(p["id"].rsplit(".", 1)[1]))
    fired = [p["id"] for p in promises]
    # one promise per second, none skipped; an eleventh only if a loaded machine deleted it late
    assert fired[:10] == expected and len(fired) <= 11, fired
    assert fired == [f"{schedule_id}.{first + k * 1000}" for k in range(len(fired))]
    assert all(p["tags"]["resonate:schedule"] == schedule_id for p in promises)
    # each firing's invoke task was sent exactly once
    wait_until(lambda: len(recipient.invokes(schedule_id)) == len(fired), "one invoke message per firing", timeout=30)
    assert set(recipient.invokes(schedule_id).values()) == {1}


def test_thousand_promises_time_out_once_each(cluster, recipient):
    prefix = f"timeout-{uuid.uuid4().hex[:8]}-"
    count = 1000
    timeouts: dict[str, int] = {}

    def create_and_subscribe(i: int) -> None:
        promise_id = f"{prefix}{i:04d}"
        # each its own deadline, so they time out while the others are still being created
        timeouts[promise_id] = now_ms() + 10_000
        r = cluster[i % 3].post("/promises", json={"id": promise_id, "timeout": timeouts[promise_id]})
        assert r.status_code == 201, r.text
        r = cluster[(i + 1) % 3].post(f"/promises/subscribe/{promise_id}",
                                      json={"id": "watch", "recv": recipient.recv, "timeout": FUTURE})
        assert r.status_code == 201, r.text  # still pending when subscribed

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create_and_subscribe, range(count)))

    try:
        wait_until(lambda: len(recipient.notifies(prefix)) == count, f"{count} notifications", timeout=90)
    except AssertionError:  # say which promises are missing and where they stand, for whoever looks next
        missing = sorted(set(timeouts) - set(recipient.notifies(prefix)))
        states = {p["id"]: p["state"] for p in search_all(cluster[0], f"{prefix}*") if p["id"] in missing}
        raise AssertionError(f"{len(missing)} of {count} promises not notified, e.g. "
                             f"{[(pid, states.get(pid)) for pid in missing[:5]]}") from None
    notify_sentinels(cluster, recipient)  # a second notification of any promise would arrive before these
    notified = recipient.notifies(prefix)
    assert len(notified) == count and set(notified.values()) == {1}
    promises = search_all(cluster[2], f"{prefix}*")
    assert len(promises) == count
    assert {p["state"] for p in promises} == {"REJECTED_TIMEDOUT"}
    assert all(p["completedOn"] == p["timeout"] == timeouts[p["id"]] for p in promises)


def test_each_task_is_sent_once_per_counter(cluster, recipient):
    prefix = f"invoke-{uuid.uuid4().hex[:8]}-"
    count = 300
    tags = {"resonate:invoke": json.dumps(recipient.recv)}

    def create(i: int) -> None:
        r = cluster[i % 3].post("/promises", json={"id": f"{prefix}{i:03d}", "timeout": FUTURE, "tags": tags})
        assert r.status_code == 201, r.text

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(create, range(count)))
    wait_until(lambda: len({task for task, _ in recipient.invokes(prefix)}) == count, f"{count} invoke messages", timeout=60)
    invoke_sentinels(cluster, recipient)  # any second delivery of a (task, counter) would arrive before these
    deliveries = recipient.invokes(prefix)
    duplicates = {k: n for k, n in deliveries.items() if n > 1}
    assert not duplicates, f"sent more than once: {sorted(duplicates.items())[:10]}"


def in_parallel(calls: list) -> list:
    """Runs the calls at the same moment (as far as threads allow); their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_requests_for_one_promise_follow_the_decision_tables(cluster, recipient):
    p = f"race-{uuid.uuid4().hex[:8]}-"
    # the same create through three servers at once: one creates it, the others get the idempotent 200
    replies = in_parallel([lambda i=i: cluster[i % 3].post(
        "/promises", json={"id": f"{p}same", "timeout": FUTURE}, headers={"idempotency-key": "k"})
        for i in range(9)])
    assert sorted(r.status_code for r in replies) == [200] * 8 + [201]
    # different idempotency keys: one creates it, the others conflict
    replies = in_parallel([lambda i=i: cluster[i % 3].post(
        "/promises", json={"id": f"{p}keys", "timeout": FUTURE}, headers={"idempotency-key": f"k{i}"})
        for i in range(9)])
    assert sorted(r.status_code for r in replies) == [201] + [409] * 8

    # callbacks registered while the promise is being completed with different values
    leaf = f"{p}leaf"
    assert cluster[0].post("/promises", json={"id": leaf, "timeout": FUTURE}).status_code == 201
    roots = [f"{p}root{i:02d}" for i in range(30)]
    for i, root in enumerate(roots):
        assert cluster[i % 3].post("/promises", json={"id": root, "timeout": FUTURE}).status_code == 201
    register = [lambda i=i, root=root: ("callback", root, cluster[i % 3].post(
        f"/promises/callback/{leaf}", json={"rootPromiseId": root, "recv": recipient.recv, "timeout": FUTURE}))
        for i, root in enumerate(roots)]
    complete = [lambda i=i: ("complete", i, cluster[i % 3].patch(
        f"/promises/{leaf}", json={"state": "RESOLVED", "value": _value(f"v{i}")})) for i in range(6)]
    calls = register[:15] + complete[:3] + register[15:] + complete[3:]
    replies = in_parallel(calls)

    completions = [(i, r) for kind, i, r in replies if kind == "complete"]
    assert sorted(r.status_code for _, r in completions) == [201] + [403] * 5, \
        [r.text for _, r in completions if r.status_code not in (201, 403)]  # the unexpected ones, whole
    winner = next(i for i, r in completions if r.status_code == 201)
    final = cluster[1].get(f"/promises/{leaf}").json()
    assert final["state"] == "RESOLVED" and base64.b64decode(final["value"]["data"]) == f"v{winner}".encode()
    registered = []
    for kind, root, r in replies:
        if kind != "callback":
            continue
        assert r.status_code in (200, 201), r.text
        if r.status_code == 201:  # registered while pending: must turn into a resume task
            registered.append(f"__resume:{root}:{leaf}")
        else:  # too late: the answer shows the promise completed, never a stale pending one
            assert r.json()["callback"] is None and r.json()["promise"]["state"] == "RESOLVED", r.text
    wait_until(lambda: {t for t, _ in recipient.tasks("resume", p)} == set(registered), f"{len(registered)} resume messages", timeout=60)
    invoke_sentinels(cluster, recipient)  # a second resume message would arrive before these
    assert set(recipient.tasks("resume", p).values()) <= {1}


def _value(text: str) -> dict:
    return {"headers": {}, "data": base64.b64encode(text.encode()).decode()}


@pytest.fixture
def sigkill_database(postgres_server):  # noqa: F811
    with fresh_database(postgres_server, "sigkill") as name:
        yield name


def test_sigkill_under_load_loses_no_acknowledged_write(postgres_server, sigkill_database):  # noqa: F811
    database = sigkill_database
    servers = start_servers(postgres_server, database, 3, *BACKGROUND_PERIOD)
    victim = servers[1]
    prefix = f"kill-{uuid.uuid4().hex[:8]}-"
    created: set[str] = set()  # acknowledged creations
    attempts: dict[str, list[tuple[str, str]]] = {}  # every completion sent: (state, value)
    acked: dict[str, list[tuple[str, str]]] = {}  # completions answered 201 (this request completed it)
    server_errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(w: int) -> None:
        clients = [httpx.Client(base_url=s.url, timeout=10) for s in servers]
        racer = ThreadPoolExecutor(2)
        n = 0
        try:
            while not stop.is_set():
                promise_id = f"{prefix}{w}-{n}"
                n += 1
                try:
                    r = clients[n % 3].post("/promises", json={"id": promise_id, "timeout": FUTURE})
                except httpx.TransportError:
                    continue  # sent to the killed server: not acknowledged
                if r.status_code >= 500:
                    with lock:
                        server_errors.append(f"create {promise_id}: {r.status_code} {r.text}")
                    continue
                with lock:
                    created.add(promise_id)
                # two completions with different outcomes race through two different servers
                outcomes = [("RESOLVED", f"yes-{promise_id}"), ("REJECTED", f"no-{promise_id}")]
                random.shuffle(outcomes)
                with lock:
                    attempts[promise_id] = outcomes

                def complete(k: int):
                    state, value = outcomes[k]
                    try:
                        return clients[(n + 1 + k) % 3].patch(f"/promises/{promise_id}",
                                                              json={"state": state, "value": _value(value)})
                    except httpx.TransportError:
                        return None

                for k, reply in enumerate(racer.map(complete, range(2))):
                    if reply is None:
                        continue
                    if reply.status_code >= 500:
                        with lock:
                            server_errors.append(f"complete {promise_id}: {reply.status_code} {reply.text}")
                    elif reply.status_code == 201:
                        with lock:
                            acked.setdefault(promise_id, []).append(outcomes[k])
        finally:
            racer.shutdown()
            for c in clients:
                c.close()

    try:
        with ThreadPoolExecutor(6) as pool:
            running = [pool.submit(worker, w) for w in range(6)]
            wait_until(lambda: len(created) >= 300, "load through all three servers", timeout=60)
            victim.kill()  # SIGKILL: no shutdown, transactions cut mid-flight
            killed_at = len(created)
            wait_until(lambda: len(created) >= killed_at + 300, "load through the two survivors", timeout=60)
            stop.set()
            for f in running:
                f.result()

        survivor = httpx.Client(base_url=servers[0].url, timeout=30)
        stored = {p["id"]: p for p in search_all(survivor, f"{prefix}*")}
        survivor.close()
    finally:
        stop.set()
        for s in servers:
            s.stop()

    assert not server_errors, "\n".join(server_errors[:10])
    assert not (created - set(stored)), f"acknowledged creations missing: {sorted(created - set(stored))[:10]}"
    twice = {pid: outs for pid, outs in acked.items() if len(outs) > 1}
    assert not twice, f"completed twice: {list(twice.items())[:5]}"
    for promise_id, promise in stored.items():
        value = base64.b64decode(promise["value"]["data"]).decode() if promise["state"] != "PENDING" else None
        if promise_id in acked:
            assert (promise["state"], value) == acked[promise_id][0], promise
        elif promise["state"] != "PENDING":  # completed by a request whose answer was lost with the server
            assert (promise["state"], value) in attempts.get(promise_id, []), promise
