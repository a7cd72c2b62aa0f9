import pytest

# real Kafka broker and PostgreSQL, provisioned by the test set-up (tests/infra)
pytest_plugins = ["tests.infra.fixtures"]

from tests.server import ServerProcess


@pytest.fixture(scope="session")
def sqlite_server():
    """One shared server on SQLite with short background periods; scenarios use unique ids."""
    server = ServerProcess("--system-signal-timeout", "100ms").start()
    yield server
    server.stop()
