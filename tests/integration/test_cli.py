"""The `resonate` command: flags, clear errors for bad ones, clean shutdown on SIGTERM/SIGINT."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.server import ROOT, ServerProcess


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resonate.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_help_lists_reference_flags():
    out = run_cli("serve", "--help")
    assert out.returncode == 0
    for flag in ("--api-http-addr", "--aio-store-sqlite-path", "--aio-poll-addr",
                 "--system-signal-timeout", "--api-grpc-enable", "--api-kafka-enable", "--api-kafka-topic"):
        assert flag in out.stdout


@pytest.mark.parametrize("args, message", [
    (["--api-http-addr", "nonsense"], "invalid address"),
    (["--api-http-addr", ":99999"], "port out of range"),
    (["--system-signal-timeout", "soon"], "invalid duration"),
    (["--api-grpc-enable=maybe"], "invalid boolean"),
    (["--system-task-batch-size", "0"], "positive integer"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--aio-store-sqlite-enable=false"], "no store enabled"),
    (["--log-level", "loud"], "invalid --log-level"),
])
def test_bad_flags_fail_with_a_clear_message(args, message):
    out = run_cli("serve", *args)
    assert out.returncode != 0
    assert message in out.stderr


def test_port_in_use_is_reported():
    first = ServerProcess().start()
    try:
        out = run_cli("serve", "--api-http-addr", f"127.0.0.1:{first.http_port}", "--api-grpc-enable=false",
                      "--aio-store-sqlite-path", ":memory:", "--aio-poll-enable=false", "--metrics-addr", "")
        assert out.returncode != 0
        assert "could not listen" in out.stderr or "address already in use" in out.stderr.lower()
    finally:
        first.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_in_flight_requests_and_exits_zero(tmp_path, sig):
    db = str(tmp_path / "drain.db")
    server = ServerProcess(db_path=db).start()
    acknowledged: list[str] = []
    unexpected: list[str] = []  # asserted in the test's thread: an AssertionError in a writer would be lost
    stop = threading.Event()

    def writer(n):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                pid = f"drain-{n}-{i}"
                i += 1
                try:
                    r = client.post("/promises", json={"id": pid, "timeout": 10**15})
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged.append(pid)
                elif r.status_code != 503:
                    unexpected.append(f"{r.status_code} {r.text}")
                    return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 100 and not unexpected and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a condition: writes are flowing before the signal
    assert len(acknowledged) >= 100 and not unexpected, unexpected
    server.proc.send_signal(sig)
    assert server.proc.wait(30) == 0, server.log_tail()
    stop.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert not unexpected, unexpected
    restarted = ServerProcess(db_path=db).start()
    try:
        with httpx.Client(base_url=restarted.url) as client:
            lost = [p for p in acknowledged if client.get(f"/promises/{p}").status_code != 200]
        assert not lost, f"{len(lost)} acknowledged writes lost on graceful shutdown"
    finally:
        restarted.stop()
