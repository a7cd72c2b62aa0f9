"""A server on PostgreSQL rides out a database restart: requests during the outage get an error
answer (never a hang), and once the database is back the same server process serves again."""
from __future__ import annotations

import httpx
import pytest

from tests.infra.postgres_server import PostgresServer
from tests.integration.test_postgres_scenarios import postgres_store_flags
from tests.scenarios.table import FUTURE
from tests.server import ServerProcess


@pytest.fixture
def own_postgres():
    """A PostgreSQL of its own: this test stops it, which the shared one must never be."""
    pg = PostgresServer()
    try:
        pg.start()
    except Exception as e:
        pytest.fail(f"could not provision a PostgreSQL server: {e}", pytrace=False)
    yield pg
    pg.close()


def test_server_reconnects_after_a_database_restart(own_postgres):
    with ServerProcess(store_flags=postgres_store_flags(own_postgres, own_postgres.database)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/promises", json={"id": "before", "timeout": FUTURE}).status_code == 201

        own_postgres.stop(keep_data=True)
        r = client.post("/promises", json={"id": "during", "timeout": FUTURE})
        assert r.status_code == 500 and r.json()["error"]["code"] == 50004, r.text

        own_postgres.start()
        r = client.post("/promises", json={"id": "after", "timeout": FUTURE})
        assert r.status_code == 201, r.text
        assert client.get("/promises/before").json()["state"] == "PENDING"
        assert client.get("/promises/during").status_code == 404  # refused, so never written
        assert server.proc.poll() is None
