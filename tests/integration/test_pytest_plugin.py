"""The pytest plugin, as a user's test suite sees it: pytest loads it from the package's `pytest11` entry
point (no conftest, no pytest_plugins line) and the fixtures serve real requests."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def run(pytester: pytest.Pytester):
    def run_suite(test_source: str, ini: str = "", *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_user=test_source)
        if ini:
            pytester.makeini("[pytest]\n" + ini)
        # a subprocess: a user's own pytest run, with only installed plugins
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return run_suite


def test_session_fixture_is_shared_and_fresh_fixture_starts_empty(run):
    result = run('''
import time, httpx

def deadline():
    return int(time.time() * 1000) + 3_600_000

def test_write(resonate_server):
    assert httpx.post(f"{resonate_server.http_url}/promises", json={"id": "shared", "timeout": deadline()}).status_code == 201

def test_read_in_the_same_session(resonate_server):
    assert httpx.get(f"{resonate_server.http_url}/promises/shared").status_code == 200

def test_fresh_store(resonate_fresh_server, resonate_server):
    assert resonate_fresh_server.http_url != resonate_server.http_url
    assert httpx.get(f"{resonate_fresh_server.http_url}/promises/shared").status_code == 404
''')
    result.assert_outcomes(passed=3)


def test_ini_options_and_marker_choose_transports_and_settings(run):
    result = run('''
import pytest

def test_from_ini(resonate_server):
    assert resonate_server.grpc_target is None and resonate_server.http_url
    assert resonate_server.config.signal_timeout_ms == 25
    assert resonate_server.config.kafka_brokers == ["127.0.0.1:1", "127.0.0.1:2"]
    assert resonate_server.config.kafka_plugin_enable and not resonate_server.config.kafka_enable

@pytest.mark.resonate(transports="http grpc", signal_timeout_ms=5)
def test_from_marker(resonate_fresh_server):
    assert resonate_fresh_server.grpc_target and resonate_fresh_server.poll_url is None
    assert resonate_fresh_server.config.signal_timeout_ms == 5
''', "resonate_transports = http poll\nresonate_kafka_bootstrap = 127.0.0.1:1,127.0.0.1:2\n"
     "resonate_flags = --system-signal-timeout 25ms\n")
    result.assert_outcomes(passed=2)


def test_bad_settings_are_a_usage_error(run):
    result = run('''
import pytest

@pytest.mark.resonate(grpc_enabled=True)
def test_typo(resonate_fresh_server):
    pass
''')
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown resonate setting(s) grpc_enabled*"])


def test_a_failing_test_gets_the_server_log_in_its_report(run):
    result = run('''
import logging

def test_fails(resonate_fresh_server):
    logging.getLogger("resonate.stores.remote").warning("an SDK client line, not the server's")
    assert False, "the workflow failed"

def test_passes(resonate_server):
    pass
''')
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*resonate server log (http://127.0.0.1:*)*", "*resonate serving*",
                                 "*embedded server ready: http http://127.0.0.1:*"])
    report = result.stdout.str()
    assert report.count("resonate server log (") == 1  # the passing test gets none
    assert "an SDK client line" not in report.split("resonate server log (")[1].split("short test summary")[0]
