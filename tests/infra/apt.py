"""Installing Debian packages for the test infrastructure (root only)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading


class ProvisioningError(RuntimeError):
    """A real service (or a tool it needs) could not be provisioned for the tests."""


_lock = threading.Lock()
_updated = False


def is_root() -> bool:
    return os.geteuid() == 0


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def apt_install(packages: list[str], *, why: str) -> None:
    """``apt-get update`` (once per process) then ``apt-get install -y packages``.

    Raises ProvisioningError with a clear message when not root, when apt-get is
    missing, or when the install fails.
    """
    names = " ".join(packages)
    if not is_root():
        raise ProvisioningError(
            f"{why}: Debian package(s) '{names}' are not installed and this process is "
            f"not root, so they cannot be installed automatically. "
            f"Run: sudo apt-get update && sudo apt-get install -y {names}"
        )
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise ProvisioningError(f"{why}: apt-get not found; install {names} by hand")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    global _updated
    with _lock:
        # an inter-process lock too: parallel pytest workers must not race dpkg
        os.makedirs("/tmp", exist_ok=True)
        with open("/tmp/resonate-tests-apt.lock", "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            steps = []
            if not _updated:
                steps.append([apt_get, "-o", "DPkg::Lock::Timeout=300", "update"])
            steps.append(
                [apt_get, "-o", "DPkg::Lock::Timeout=300", "install", "-y",
                 "--no-install-recommends", *packages]
            )
            for cmd in steps:
                try:
                    r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                       timeout=900, stdin=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    raise ProvisioningError(f"{why}: '{' '.join(cmd)}' timed out") from None
                if r.returncode != 0:
                    raise ProvisioningError(
                        f"{why}: '{' '.join(cmd)}' failed with exit code {r.returncode}:\n"
                        f"{_tail(r.stdout + r.stderr)}"
                    )
                if cmd[-1] == "update":
                    _updated = True
