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


_FIRST_SERVER = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_FIRST_SERVER] = len(ServerProcess.started)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the log tails of the server processes started for it: a flaky failure on CI
    can then be read from CI's output alone."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):  # setup: a fixture that started servers
        for server in ServerProcess.started[item.stash.get(_FIRST_SERVER, 0):]:
            report.sections.append((f"server log {server.url} ({server.log_path})", server.log_tail(120)))

