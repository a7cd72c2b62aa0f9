"""pytest plugin (registered through the `pytest11` entry point): a real resonate server for your tests.

Fixtures
    resonate_server        one server for the whole session (use unique ids per test)
    resonate_fresh_server  a server of its own for one test, with an empty store

Options (pytest.ini / pyproject's [tool.pytest.ini_options])
    resonate_transports      which APIs to serve: any of `http poll grpc kafka` (default: http poll grpc)
    resonate_kafka_bootstrap Kafka bootstrap servers, for the kafka transport and kafka:// recipients
                             (setting it also turns on delivery to kafka:// recipients)
    resonate_flags           any further `resonate serve` flags, e.g. `--system-signal-timeout 10ms`

Marker
    @pytest.mark.resonate(transports=[...], **settings): settings of `resonate_fresh_server` for that
    test (Config field names, e.g. signal_timeout_ms=10, postgres_enable=True).

When a test fails, the log of every embedded server that logged during it is attached to the report.
"""
from __future__ import annotations

import shlex
import time
from typing import Any, Iterator

import pytest

TRANSPORTS = {"http": "http_enable", "poll": "poll_enable", "grpc": "grpc_enable", "kafka": "kafka_enable"}
DEFAULT_TRANSPORTS = "http poll grpc"
_test_started = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("resonate_transports", "APIs the resonate fixtures serve: any of http poll grpc kafka",
                  default=DEFAULT_TRANSPORTS)
    parser.addini("resonate_kafka_bootstrap", "Kafka bootstrap servers (host:port, comma separated) of the "
                  "resonate fixtures", default="")
    parser.addini("resonate_flags", "more `resonate serve` flags for the resonate fixtures' servers", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "resonate(transports=None, **settings): settings of resonate_fresh_server "
                            "(resonate Config field names, e.g. signal_timeout_ms=10)")


def transport_settings(transports: Any) -> dict[str, bool]:
    """`"http grpc"` or `["http", "grpc"]` -> {http_enable: True, grpc_enable: True, poll_enable: False, ...}."""
    names = transports.replace(",", " ").split() if isinstance(transports, str) else list(transports)
    unknown = sorted(set(names) - set(TRANSPORTS))
    if unknown:
        raise pytest.UsageError(f"resonate: unknown transport(s) {', '.join(unknown)} "
                                f"(choose from {', '.join(TRANSPORTS)})")
    return {setting: name in names for name, setting in TRANSPORTS.items()}


def _ini_settings(config: pytest.Config) -> tuple[list[str], dict[str, Any]]:
    flags = shlex.split(config.getini("resonate_flags"))
    settings: dict[str, Any] = transport_settings(config.getini("resonate_transports"))
    bootstrap = config.getini("resonate_kafka_bootstrap").strip()
    if bootstrap:  # the Kafka API's brokers, and kafka:// recipients delivered through them
        settings.update(kafka_brokers=bootstrap, kafka_plugin_brokers=bootstrap, kafka_plugin_enable=True)
    return flags, settings


def _start(flags: list[str], settings: dict[str, Any]):
    from .embedded import EmbeddedServer
    try:
        server = EmbeddedServer(flags=flags, **settings)
    except (TypeError, ValueError) as e:
        raise pytest.UsageError(f"resonate fixture settings: {e}") from None
    return server.start()


@pytest.fixture(scope="session")
def resonate_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    """A real resonate server shared by the whole session, configured from pytest.ini."""
    flags, settings = _ini_settings(pytestconfig)
    server = _start(flags, settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def resonate_fresh_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real resonate server for this test alone, with an empty store; `@pytest.mark.resonate(...)`
    settings override pytest.ini."""
    flags, settings = _ini_settings(request.config)
    for marker in reversed(list(request.node.iter_markers("resonate"))):  # closest marker wins
        if marker.args:
            raise pytest.UsageError("@pytest.mark.resonate takes keyword arguments only")
        overrides = dict(marker.kwargs)
        if "transports" in overrides:
            settings.update(transport_settings(overrides.pop("transports")))
        settings.update(overrides)
    server = _start(flags, settings)
    try:
        yield server
    finally:
        server.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_test_started] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        from .embedded import _every_server
        since = item.stash.get(_test_started, 0.0)
        for server in list(_every_server):
            text = server.log_text(since)
            if text:
                report.sections.append((f"resonate server log ({server.http_url or server.grpc_target})", text))
