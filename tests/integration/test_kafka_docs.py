"""docs/kafka.md's kcat walkthrough, run as written (kcat, a real broker, a real server): the replies are
the documented ones. Only values that depend on the clock (createdOn, completedOn, timeout, expiresAt)
are compared by type."""
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.server import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "kafka.md"
CLOCK_FIELDS = {"createdOn", "completedOn", "timeout", "expiresAt"}


def documented_examples() -> tuple[str, list[tuple[str, str, dict]]]:
    text = DOC.read_text()
    setup = re.search(r"<!-- kcat-setup -->\s*```sh\n(.*?)```", text, re.S).group(1)
    examples = []
    for m in re.finditer(r"<!-- kcat-example: (\S+) -->\s*```sh\n(.*?)```.*?```json\n(.*?)```", text, re.S):
        examples.append((m.group(1), m.group(2), json.loads(m.group(3))))
    return setup, examples


def compare(documented, actual, path="reply") -> list[str]:
    if isinstance(documented, dict):
        if not isinstance(actual, dict) or set(documented) != set(actual):
            return [f"{path}: documented keys {sorted(documented)}, got {actual!r}"]
        problems = []
        for k, v in documented.items():
            if k in CLOCK_FIELDS:
                if not isinstance(actual[k], int):
                    problems.append(f"{path}.{k}: not an integer: {actual[k]!r}")
            else:
                problems += compare(v, actual[k], f"{path}.{k}")
        return problems
    if isinstance(documented, list):
        if not isinstance(actual, list) or len(actual) != len(documented):
            return [f"{path}: documented {documented!r}, got {actual!r}"]
        return [p for i, (d, a) in enumerate(zip(documented, actual)) for p in compare(d, a, f"{path}[{i}]")]
    return [] if documented == actual else [f"{path}: documented {documented!r}, got {actual!r}"]


def read_reply(kcat: str, bootstrap: str, correlation_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", "resonate.replies", "-o", "beginning", "-e", "-q"],
                             capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            if line.strip():
                reply = json.loads(line)
                if reply.get("correlationId") == correlation_id:
                    return reply
        time.sleep(0.2)
    raise AssertionError(f"no reply for {correlation_id} within {timeout}s")


def test_the_walkthrough_has_examples():
    _, examples = documented_examples()
    names = [name for name, _, _ in examples]
    assert {"create", "read", "complete", "notfound", "invalid", "unknown"} <= set(names), names


@pytest.fixture(scope="module")
def doc_server(kafka_broker):
    kafka_broker.create_topic("resonate", 4)  # as the walkthrough says
    kafka_broker.create_topic("resonate.replies", 1)
    server = ServerProcess(kafka_flags=["--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap]).start()
    yield server
    server.stop()


def test_kcat_walkthrough_gives_the_documented_replies(kafka_broker, kcat, doc_server):
    setup, examples = documented_examples()
    for name, script, documented in examples:
        command = (setup + script).replace("localhost:9092", kafka_broker.bootstrap)
        command = re.sub(r"^kcat ", f"{kcat} ", command, flags=re.M)
        subprocess.run(["bash", "-euc", command], check=True, timeout=60)
        actual = read_reply(kcat, kafka_broker.bootstrap, documented["correlationId"])
        problems = compare(documented, actual)
        assert not problems, f"example {name}:\n" + "\n".join(problems)
