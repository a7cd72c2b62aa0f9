import pytest

from tests.server import ServerProcess


@pytest.fixture(scope="session")
def sqlite_server():
    """One shared server on SQLite with short background periods; scenarios use unique ids."""
    server = ServerProcess("--system-signal-timeout", "100ms").start()
    yield server
    server.stop()
