"""The reference Kafka README's walkthrough, run verbatim with kcat against a broker that creates no
topic on demand: `resonate dev --api-kafka-enable` first, THEN the topics `resonate.requests` and
`resonate.replies`, then every example of the README (each envelope on one line, as kcat sends one
message per line), the multi-tenancy example and the troubleshooting commands kcat can run. The
README's multi-line `echo '{ ... }'` form is sent too: its fragments go to the dead-letter topic,
with one log line saying how to send properly.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.wait import wait_until
from tests.server import ServerProcess

README = Path("/work/shared/reference/kafka-api-README.md")
LOCAL_README = Path(__file__).resolve().parents[1] / "data" / "kafka-api-README.md"  # a copy of the reference README
KCAT_POLL_S = 0.3  # each look at the replies runs kcat over the whole topic
REPLY_FORMAT = "Partition: %p, Offset: %o\\n%s\\n---\\n"  # the README's kcat consumer format


def readme_text() -> str:
    for path in (LOCAL_README, README):
        if path.exists():
            return path.read_text()
    pytest.fail(f"the reference Kafka README is in neither {LOCAL_README} nor {README}", pytrace=False)


def readme_envelopes() -> list[dict]:
    """Every `echo '{...}' | <producer> resonate.requests` of the README, in order, without repeats."""
    seen, envelopes = set(), []
    for m in re.finditer(r"echo '(\{.*?\})' \| (?:rpk topic produce|kcat -P[^\n]*?-t) resonate\.requests",
                         readme_text(), re.S):
        doc = json.loads(m.group(1))
        if doc["correlationId"] not in seen:
            seen.add(doc["correlationId"])
            envelopes.append(doc)
    return envelopes


def kcat_produce(kcat: str, bootstrap: str, lines: list[str], topic: str = "resonate.requests") -> None:
    subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic], input="".join(f"{l}\n" for l in lines).encode(),
                   check=True, timeout=60)


def kcat_replies(kcat: str, bootstrap: str) -> list[tuple[int, dict]]:
    """The README's reply consumer (kcat -C ... -f 'Partition: %p, Offset: %o\\n%s\\n---\\n'), read to the end."""
    out = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", "resonate.replies", "-o", "beginning", "-e", "-q",
                          "-f", REPLY_FORMAT.replace("\\n", "\n")], capture_output=True, text=True, timeout=60).stdout
    replies = []
    for block in out.split("\n---\n"):
        m = re.match(r"Partition: (\d+), Offset: \d+\n(.*)", block.strip(), re.S)
        if m:
            replies.append((int(m.group(1)), json.loads(m.group(2))))
    return replies


def wait_replies(kcat: str, bootstrap: str, correlation_ids: set[str], timeout: float = 60) -> dict[str, dict]:
    by_id: dict[str, dict] = {}

    def all_replied() -> bool:
        by_id.update((r["correlationId"], r) for _, r in kcat_replies(kcat, bootstrap))
        return correlation_ids <= set(by_id)

    wait_until(all_replied, f"replies to {sorted(correlation_ids)}", timeout, interval=KCAT_POLL_S)
    return by_id


def test_the_readme_has_its_examples():
    ids = [e["correlationId"] for e in readme_envelopes()]
    assert ids == [f"req-{i:03d}" for i in range(1, 11)] + ["req-s1", "req-s2"], ids


def test_the_readme_walkthrough_verbatim(production_kafka_broker, kcat):
    broker = production_kafka_broker
    bootstrap = broker.bootstrap
    flags = ["--api-kafka-enable", "--api-kafka-brokers", bootstrap]
    # 1. start first (no topic exists yet), 2. then create the topics, as the README orders
    server = ServerProcess("--log-level", "debug", command="dev", kafka_flags=flags).start()
    tenants = [ServerProcess(command="dev", kafka_flags=flags + ["--api-kafka-target", t]).start()
               for t in ("server1", "server2")]
    try:
        broker.create_topic("resonate.requests", 1)
        broker.create_topic("resonate.replies", 1)
        broker.create_topic("resonate.dlq", 1)  # docs/kafka.md: create the dead-letter topic too
        envelopes = readme_envelopes()
        # the README's multi-line form: kcat sends each line as a message
        pretty = json.dumps(envelopes[0], indent=2).splitlines()
        kcat_produce(kcat, bootstrap, pretty)
        # the working form: one envelope per line
        kcat_produce(kcat, bootstrap, [json.dumps(e) for e in envelopes])
        answered = {e["correlationId"] for e in envelopes} - {"req-008"}  # req-008 has the wrong target
        replies = wait_replies(kcat, bootstrap, answered)
        assert "req-008" not in replies

        def ok(cid: str) -> dict:
            r = replies[cid]
            assert r["success"] is True and r["target"] in ("my-client", "client"), r
            return r["response"]

        # the README's timeouts (3600000) are absolute times: an hour after 1970, so long past. Its promises
        # are created PENDING and time out at once, as in the reference: no task, nothing PENDING to find
        assert ok("req-001")["id"] == "my-promise-1" and ok("req-001")["state"] == "PENDING"
        assert ok("req-002")["id"] == "my-promise-1" and ok("req-002")["state"] == "REJECTED_TIMEDOUT"
        assert ok("req-003")["promises"] == []
        assert ok("req-004")["id"] == "my-promise-1" and ok("req-004")["state"] == "REJECTED_TIMEDOUT"
        assert ok("req-005")["id"] == "my-schedule" and ok("req-005")["desc"] == "Run every hour"
        assert ok("req-006")["resourceId"] == "my-resource" and ok("req-006")["ttl"] == 60000
        assert ok("req-007")["promise"]["id"] == "promise-with-task" and ok("req-007")["task"] is None
        assert ok("req-009")["id"] == "user-123-promise"
        assert replies["req-010"]["success"] is False
        assert replies["req-010"]["error"]["message"] == "validation error: id is required", replies["req-010"]
        assert ok("req-s1")["id"] == "promise-s1" and ok("req-s2")["id"] == "promise-s2"
        # the README's example reply shape (besides our extra "operation" field)
        assert {"target", "correlationId", "success", "response"} <= set(replies["req-001"])
        # Example 8: discarded with a debug line naming it
        assert re.search(r"level=DEBUG msg=\"kafka: .*correlationId='req-008'.* skipped: target 'wrong.server'.*logger=resonate.kafka",
                         Path(server.log_path).read_text()), server.log_tail()
        # the fragments: dead-lettered, one hint in the log
        dead: list[str] = []

        def all_dead_lettered() -> bool:
            dead[:] = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", "resonate.dlq", "-o", "beginning", "-e",
                                      "-q"], capture_output=True, text=True, timeout=60).stdout.splitlines()
            return len(dead) >= 3 * len(pretty)

        wait_until(all_dead_lettered, "every fragment dead-lettered by the three servers", 60, interval=KCAT_POLL_S)
        # not JSON, so no target: each of the three servers (three groups) dead-letters every fragment
        assert sorted(dead) == sorted(pretty * 3), dead
        log = Path(server.log_path).read_text()
        assert log.count("send each envelope on ONE line") == 1, server.log_tail()
        # troubleshooting: the reply topic exists (kcat -L), and the README's reply consumer reads the replies
        listing = subprocess.run([kcat, "-L", "-b", bootstrap, "-t", "resonate.replies"], capture_output=True,
                                 text=True, timeout=60).stdout
        assert 'topic "resonate.replies" with 1 partitions' in listing, listing
        assert any(r["correlationId"] == "req-001" for _, r in kcat_replies(kcat, bootstrap))
        # the server itself created no topic
        topics = subprocess.run([kcat, "-L", "-b", bootstrap], capture_output=True, text=True, timeout=60).stdout
        assert "resonate.requests.dlq" not in topics and 'topic "resonate"' not in topics, topics
    finally:
        for s in [server, *tenants]:
            s.stop()
