"""A real `resonate serve` process on free loopback ports, for integration tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.infra.ports import free_port
from tests.infra.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent


def wait_for_ping(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Returns once the server at `url` answers /ping; fails at once if `proc` exits first, and raises
    TimeoutError (an AssertionError) after `timeout` seconds."""
    def answering() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            return httpx.get(f"{url}/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answering, f"{url} to answer /ping", timeout)


class ServerProcess:
    started: "list[ServerProcess]" = []  # every process started, so a failed test can show their logs

    def __init__(self, *extra_flags: str, db_path: str | None = None, grpc: bool = False, kafka_flags=(),
                 store_flags: tuple[str, ...] | None = None, log_path: str | None = None,
                 command: str = "serve"):
        self.http_port = free_port()
        self.poll_port = free_port()
        self.metrics_port = free_port()  # never the default :9090, which parallel servers would share
        self.grpc_port = free_port() if grpc else None
        self._tmp = tempfile.mkdtemp(prefix="resonate-test-")
        self.db_path = db_path or os.path.join(self._tmp, "resonate.db")
        self.log_path = log_path or os.path.join(self._tmp, "server.log")
        self.extra_flags = list(extra_flags) + list(kafka_flags)
        self.store_flags = list(store_flags) if store_flags is not None else ["--aio-store-sqlite-path", self.db_path]
        self.subcommand = command
        if command == "dev" and store_flags is None:
            self.store_flags = []  # dev runs on an in-memory database
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def poll_url(self) -> str:
        return f"http://127.0.0.1:{self.poll_port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "resonate.cli", self.subcommand,
               "--api-http-addr", f"127.0.0.1:{self.http_port}",
               "--aio-poll-addr", f"127.0.0.1:{self.poll_port}",
               "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
               "--system-url", self.url]
        if self.grpc_port:
            cmd += ["--api-grpc-addr", f"127.0.0.1:{self.grpc_port}"]
        else:
            cmd += ["--api-grpc-enable=false"]
        return cmd + self.store_flags + self.extra_flags

    def start(self, timeout: float = 30) -> "ServerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        ServerProcess.started.append(self)
        try:
            wait_for_ping(self.url, self.proc, timeout)
        except RuntimeError as e:
            raise RuntimeError(f"{e}:\n{self.log_tail()}") from None
        except AssertionError:
            self.kill()
            raise RuntimeError(f"server did not answer /ping within {timeout}s:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
