"""Event-driven background work across servers on one PostgreSQL database (issue 8, LISTEN/NOTIFY).

Servers run with a 60 s background period and the default 15 s poll retry delay (ttr), so what is
checked below can only happen through the notifications between servers.
"""
from __future__ import annotations

import queue
import uuid
from pathlib import Path

import httpx
import pytest

from tests.infra.fixtures import postgres_server  # noqa: F401  (one shared server per session)
from tests.integration.test_background import PollListener, now_ms
from tests.integration.test_postgres_scenarios import fresh_database, start_servers
from tests.infra.wait import wait_until

FLAGS = ("--system-signal-timeout", "60s", "--log-level", "debug")
WELL_WITHIN_S = 5  # far below both the ttr (15 s) and the period (60 s)


@pytest.fixture(scope="module")
def servers(postgres_server):  # noqa: F811
    with fresh_database(postgres_server, "event") as database:
        servers = start_servers(postgres_server, database, 2, *FLAGS)
        try:
            yield servers
        finally:
            for s in servers:
                s.stop()


def wait_for_log(server, text: str, timeout: float = 10) -> None:
    """The server's own log says it: a positive signal that the notification was handled."""
    wait_until(lambda: text in Path(server.log_path).read_text(errors="replace"),
               f"{text!r} in the server log", timeout=timeout)


def listen_on(holder, sender, group: str, ident: str) -> PollListener:
    listener = PollListener(holder.poll_url, group, ident)
    wait_for_log(sender, f"poll stream {group}/{ident} is held by server")
    return listener


def test_a_resume_reaches_a_listener_on_another_server(servers):
    completer, holder = servers
    group, ident = f"grp-{uuid.uuid4().hex[:8]}", "worker"
    listener = listen_on(holder, completer, group, ident)
    try:
        with httpx.Client(base_url=completer.url, timeout=10) as api:
            root, leaf = f"root-{uuid.uuid4().hex}", f"leaf-{uuid.uuid4().hex}"
            for pid in (root, leaf):
                assert api.post("/promises", json={"id": pid, "timeout": now_ms() + 600_000}).status_code == 201
            r = api.post(f"/promises/callback/{leaf}", json={"rootPromiseId": root, "timeout": now_ms() + 600_000,
                                                             "recv": f"poll://any@{group}/{ident}"})
            assert r.status_code == 201
            assert api.patch(f"/promises/{leaf}", json={"state": "RESOLVED"}).status_code == 201
            try:
                message = listener.next(timeout=WELL_WITHIN_S)
            except queue.Empty:
                pytest.fail(f"no resume within {WELL_WITHIN_S}s on the other server (ttr 15 s)")
            assert message["type"] == "resume" and message["task"]["rootPromiseId"] == root
            task = message["task"]
            # the outcome was recorded by the server that delivered it: the task is claimable at its counter
            claim = api.post("/tasks/claim", json={"id": task["id"], "counter": task["counter"], "processId": "w",
                                                   "ttl": 60_000})
            assert claim.status_code == 201, claim.text
            assert api.post("/tasks/complete", json={"id": task["id"], "counter": task["counter"]}).status_code == 201
    finally:
        listener.close()


def test_an_invoke_reaches_a_listener_on_another_server_once(servers):
    creator, holder = servers
    group, ident = f"grp-{uuid.uuid4().hex[:8]}", "worker"
    listener = listen_on(holder, creator, group, ident)
    try:
        with httpx.Client(base_url=creator.url, timeout=10) as api:
            pid = f"invoke-{uuid.uuid4().hex}"
            r = api.post("/promises", json={"id": pid, "timeout": now_ms() + 600_000,
                                            "tags": {"resonate:invoke": f"poll://any@{group}/{ident}"}})
            assert r.status_code == 201
            message = listener.next(timeout=WELL_WITHIN_S)
            assert message["type"] == "invoke" and message["task"]["rootPromiseId"] == pid
            # a second, later message on the same stream is the positive signal that nothing came in between
            marker = f"marker-{uuid.uuid4().hex}"
            api.post("/promises", json={"id": marker, "timeout": now_ms() + 600_000,
                                        "tags": {"resonate:invoke": f"poll://any@{group}/{ident}"}})
            assert listener.next(timeout=WELL_WITHIN_S)["task"]["rootPromiseId"] == marker
    finally:
        listener.close()


def test_a_server_times_out_a_promise_another_server_made_due(postgres_server):  # noqa: F811
    with fresh_database(postgres_server, "eventdue") as database:
        creator, survivor = start_servers(postgres_server, database, 2, *FLAGS)
        try:
            group, ident = f"grp-{uuid.uuid4().hex[:8]}", "watcher"
            listener = PollListener(survivor.poll_url, group, ident)
            try:
                with httpx.Client(base_url=creator.url, timeout=10) as api:
                    pid = f"due-{uuid.uuid4().hex}"
                    deadline = now_ms() + 2000
                    assert api.post("/promises", json={"id": pid, "timeout": deadline}).status_code == 201
                    r = api.post(f"/promises/subscribe/{pid}", json={"id": "s", "timeout": now_ms() + 600_000,
                                                                     "recv": f"poll://any@{group}/{ident}"})
                    assert r.status_code == 201
                creator.kill()  # only the survivor is left to time it out; it heard of the deadline by NOTIFY
                assert now_ms() < deadline, "the set-up took longer than the deadline: the test proves nothing"
                try:
                    message = listener.next(timeout=WELL_WITHIN_S)
                except queue.Empty:
                    pytest.fail(f"no notify within {WELL_WITHIN_S}s of a deadline made by a dead server")
                assert message["type"] == "notify" and message["promise"]["state"] == "REJECTED_TIMEDOUT"
            finally:
                listener.close()
        finally:
            creator.stop()
            survivor.stop()
