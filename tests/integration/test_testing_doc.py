"""docs/testing.md's complete example, run as a user runs it: the package is built into a wheel and
installed (not the source tree) in a Python >= 3.12 venv with the Resonate SDK 0.6.7 and pytest, the
example test file is copied out of the doc into an empty directory, and pytest runs it there, finding
the `resonate_server` fixture through the installed `pytest11` entry point."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.integration.test_sdk import SDK, find_python312
from tests.server import ROOT

DOC = ROOT / "docs" / "testing.md"
VENV = ROOT / ".cache" / "embed-user-venv"  # reused across runs; rebuilt when the dependencies change
SDK_WHEELS = VENV / "sdk-wheels"


def example_test_file() -> tuple[str, str]:
    """(file name, source) of the doc's complete example: the python block under '## A complete example'."""
    match = re.search(r"^## A complete example.*?^```python\n(# (test_\w+\.py)\n.*?)^```", DOC.read_text(),
                      re.S | re.M)
    assert match, "docs/testing.md has no '## A complete example' python block starting with '# test_<name>.py'"
    return match.group(2), match.group(1)


def run(*cmd, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def dependencies_fingerprint() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return hashlib.sha256(json.dumps([project["dependencies"], SDK]).encode()).hexdigest()[:12]


def build_wheel(out_dir) -> str:
    """A wheel of the package, built from a copy of the sources so the worktree gets no build/ directory."""
    source = out_dir / "source"
    shutil.copytree(ROOT / "resonate", source / "resonate", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", out_dir / "dist",
        source)
    (wheel,) = (out_dir / "dist").glob("resonate-*.whl")
    return str(wheel)


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory):
    """A venv with the server's dependencies, pytest and the SDK (cached), then this commit's wheel."""
    python = find_python312()
    if python is None:
        pytest.fail("resonate-sdk 0.6.7 needs Python >= 3.12 and none was found on PATH or under ~/.pyenv; "
                    "install one (e.g. `pyenv install 3.12`)", pytrace=False)
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    pip = VENV / "bin" / "pip"
    marker = VENV / f".installed-{dependencies_fingerprint()}"
    if not marker.exists():
        run(python, "-m", "venv", "--clear", VENV)
        run(pip, "install", "--quiet", "--upgrade", "pip")
        run(pip, "download", "--quiet", "--no-deps", "-d", SDK_WHEELS, SDK)
        run(pip, "install", "--quiet", wheel, "pytest", SDK)
        marker.touch()
    run(pip, "install", "--quiet", "--no-deps", "--force-reinstall", wheel)
    # both distributions ship resonate/__init__.py: the SDK's (which exports Resonate) must be the one kept
    run(pip, "install", "--quiet", "--no-deps", "--force-reinstall", "--no-index", "--find-links", SDK_WHEELS, SDK)
    return VENV / "bin" / "python"


def test_the_documented_example_passes_against_the_installed_package(user_venv, tmp_path):
    name, source = example_test_file()
    user_dir = tmp_path / "user-project"
    user_dir.mkdir()
    (user_dir / name).write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}

    located = run(user_venv, "-c", "import resonate.embedded, resonate.pytest_plugin; from resonate import Resonate; "
                  "print(resonate.embedded.__file__)", cwd=user_dir, env=env).stdout.strip()
    assert located.startswith(str(VENV)) and "site-packages" in located, located  # the installed copy

    done = subprocess.run([str(user_venv), "-m", "pytest", "-q", "-p", "no:cacheprovider", name], cwd=user_dir,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b1 passed\b", done.stdout), done.stdout
