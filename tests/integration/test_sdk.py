"""The Resonate Python SDK 0.6.7 (a real client of the HTTP API and poll stream) runs a durable
workflow end to end against `resonate dev`. The SDK needs Python >= 3.12; it gets its own venv."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, ServerProcess

SDK = "resonate-sdk==0.6.7"
VENV = ROOT / ".cache" / "sdk-venv"


def find_python312() -> str | None:
    candidates = [shutil.which(n) for n in ("python3.13", "python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3")), reverse=True)
    candidates += sorted(glob.glob("/root/.pyenv/versions/3.1[2-9]*/bin/python3"), reverse=True)
    for c in filter(None, candidates):
        out = subprocess.run([c, "-c", "import sys; print(sys.version_info >= (3, 12))"], capture_output=True,
                             text=True)
        if out.stdout.strip() == "True":
            return c
    return None


@pytest.fixture(scope="module")
def sdk_python():
    python = find_python312()
    if python is None:  # a part that cannot be provisioned fails, like every other test (never a skip)
        pytest.fail("resonate-sdk 0.6.7 needs Python >= 3.12 and none was found on PATH or under ~/.pyenv; "
                    "install one (e.g. `pyenv install 3.12`) to run this test")
    marker = VENV / ".installed-0.6.7"
    if not marker.exists():
        for step in ([python, "-m", "venv", "--clear", str(VENV)],
                     [str(VENV / "bin" / "pip"), "install", "--quiet", SDK]):
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"could not provision {SDK} with {python}: {' '.join(step)} failed:\n"
                            f"{done.stdout}{done.stderr}")
        marker.touch()
    return str(VENV / "bin" / "python")


def test_sdk_workflow_end_to_end(sdk_python):
    server = ServerProcess("--system-signal-timeout", "100ms", command="dev").start()
    try:
        env = dict(os.environ, RESONATE_HOST="http://127.0.0.1", RESONATE_PORT_STORE=str(server.http_port),
                   RESONATE_PORT_MESSAGE_SOURCE=str(server.poll_port))
        out = subprocess.run([sdk_python, str(ROOT / "examples" / "sdk_workflow.py"), "sdk-e2e"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr + server.log_tail()
        assert "sdk-e2e = 30" in out.stdout
        promise = httpx.get(f"{server.url}/promises/sdk-e2e").json()
        assert promise["state"] == "RESOLVED"
        children = httpx.get(f"{server.url}/promises", params={"id": "sdk-e2e*"}).json()["promises"]
        assert len(children) >= 5  # the workflow and its four remote calls, all durable on the server
        assert all(p["state"] == "RESOLVED" for p in children)
    finally:
        server.stop()
