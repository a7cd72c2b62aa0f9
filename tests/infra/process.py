"""Starting and ending service processes so that none outlives the test run.

Three layers keep a broker or database from being orphaned:

* each service runs in its own process group (``start_new_session``), and is
  stopped by signalling the whole group;
* an ``atexit`` hook stops every service still running when Python exits
  normally;
* when ``setpriv`` (util-linux, always on Debian) is there, the service is
  started through ``setpriv --pdeathsig SIG``, so the kernel signals it as soon
  as the Python process dies, however it dies (SIGKILL, a CI time-out, ...).
  The parent-death signal fires when the *thread* that forked the child ends,
  so all services are forked from one long-lived daemon thread here, never
  from a test's short-lived worker thread.
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import signal
import subprocess
import threading
from concurrent.futures import Future
from typing import Callable

SETPRIV = shutil.which("setpriv")


class _Spawner:
    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while True:
            fut, args, kwargs = self._q.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(subprocess.Popen(args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="test-infra-spawner", daemon=True
                )
                self._thread.start()
        fut: Future = Future()
        self._q.put((fut, args, kwargs))
        return fut.result()


_spawner = _Spawner()


def spawn(args: list[str], *, pdeathsig: str = "TERM", **popen_kwargs) -> subprocess.Popen:
    """Popen ``args`` in a new process group, signalled with ``pdeathsig`` if we die."""
    if SETPRIV and pdeathsig:
        args = [SETPRIV, "--pdeathsig", pdeathsig, "--", *args]
    popen_kwargs.setdefault("start_new_session", True)
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    return _spawner.popen(list(args), **popen_kwargs)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group led by ``proc`` (and to proc itself)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def end_process(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
    """Signal the group with ``sig``, wait up to ``timeout`` s, then SIGKILL it."""
    if proc.poll() is None:
        signal_group(proc, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # always sweep the group: leftovers of a process that exited must go too
    signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode


# --- atexit registry --------------------------------------------------------

_cleanups: dict[int, Callable[[], None]] = {}
_cleanups_lock = threading.Lock()


def register_cleanup(owner: object, fn: Callable[[], None]) -> None:
    with _cleanups_lock:
        _cleanups[id(owner)] = fn


def unregister_cleanup(owner: object) -> None:
    with _cleanups_lock:
        _cleanups.pop(id(owner), None)


@atexit.register
def _run_cleanups() -> None:
    with _cleanups_lock:
        fns = list(_cleanups.values())
        _cleanups.clear()
    for fn in fns:
        try:
            fn()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# --- temp dirs left behind by a process that was killed ---------------------

OWNER_FILE = ".owner-pid"


def make_owned_dir(prefix: str, base: str | None = None) -> str:
    """mkdtemp(prefix) marked with our pid; first removes same-prefix dirs whose
    owner process is gone (a test run that was SIGKILLed cannot clean up)."""
    import tempfile

    base = base or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(base, name)
        try:
            with open(os.path.join(path, OWNER_FILE)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue  # not ours, or being created right now
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    with open(os.path.join(path, OWNER_FILE), "w") as f:
        f.write(f"{os.getpid()}\n")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
