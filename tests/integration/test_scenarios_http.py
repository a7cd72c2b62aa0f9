"""The scenario table over HTTP against a real server process."""
import pytest

from tests.scenarios.http_runner import HttpRunner
from tests.scenarios.runner import run_scenario
from tests.scenarios.table import SCENARIOS


@pytest.fixture(scope="module")
def http_runner(sqlite_server):
    runner = HttpRunner(sqlite_server.url)
    yield runner
    runner.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_over_http(http_runner, scenario):
    problems = run_scenario(http_runner, scenario)
    assert not problems, "\n".join(problems)
