"""A real, throw-away PostgreSQL server on 127.0.0.1 for the tests.

Uses Debian's server binaries (/usr/lib/postgresql/*/bin), installing the
``postgresql`` package with apt-get when they are missing and we are root.
PostgreSQL refuses to run as root, so as root the cluster belongs to a system
user ``resonate-pg`` (created if needed) and runs through ``runuser``.

    pg = PostgresServer()
    pg.start()
    pg.dsn                    # postgresql://resonate:resonate@127.0.0.1:PORT/resonate
    pg.create_database("t1"); pg.dsn_for("t1"); pg.drop_database("t1")
    pg.stop()                 # pg_ctl stop -m fast, then the directory is removed
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .apt import ProvisioningError, apt_install, is_root
from .ports import free_port
from .process import end_process, make_owned_dir, register_cleanup, spawn, unregister_cleanup

PG_OS_USER = "resonate-pg"


class PostgresServerError(ProvisioningError):
    """The PostgreSQL server could not be provisioned, started or stopped."""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


def _version_key(bindir: str) -> tuple[int, ...]:
    m = re.search(r"/postgresql/([\d.]+)/bin", bindir)
    return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)


def find_pg_bindir() -> Path | None:
    """The newest directory holding initdb, pg_ctl and postgres, or None."""
    candidates = sorted(
        (os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=_version_key, reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(initdb))
    for d in candidates:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    return None


_install_lock = threading.Lock()


def ensure_pg_bindir() -> Path:
    with _install_lock:
        bindir = find_pg_bindir()
        if bindir is None:
            apt_install(["postgresql"], why="the PostgreSQL server binaries (initdb, pg_ctl, postgres)")
            bindir = find_pg_bindir()
        if bindir is None:
            raise PostgresServerError(
                "PostgreSQL: no server binaries under /usr/lib/postgresql/*/bin even after "
                "'apt-get install postgresql'"
            )
        return bindir


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    r = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home",
         "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresServerError(
            f"PostgreSQL: could not create the system user '{name}' to run the server as "
            f"(PostgreSQL refuses to run as root): {_tail(r.stdout + r.stderr)}"
        ) from None


class PostgresServer:
    """One real PostgreSQL cluster in a temporary directory, reachable on 127.0.0.1."""

    def __init__(
        self,
        *,
        user: str = "resonate",
        password: str = "resonate",
        database: str = "resonate",
        max_connections: int = 200,
        settings: dict[str, object] | None = None,
        startup_timeout: float = 60.0,
        base_dir: Path | str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = user
        self.password = password
        self.database = database
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self._base_dir = base_dir
        self.dir: Path | None = None
        self.bindir: Path | None = None
        self.version: str | None = None
        self._os_user: pwd.struct_passwd | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()

    # -- properties --

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "postgres.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except (OSError, AssertionError):
            return "(no log)"

    # -- running commands as the cluster's owner --

    def _as_owner(self, args: list[str]) -> list[str]:
        if self._os_user is None:
            return args
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self._os_user.pw_name, "--", *args]

    def _run(self, args: list[str], what: str, timeout: float = 120) -> str:
        try:
            r = subprocess.run(self._as_owner(args), capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL, cwd=str(self.dir))
        except subprocess.TimeoutExpired:
            raise PostgresServerError(f"PostgreSQL: {what} timed out after {timeout:.0f} s") from None
        if r.returncode != 0:
            raise PostgresServerError(
                f"PostgreSQL: {what} failed (exit {r.returncode}):\n{_tail(r.stdout + r.stderr)}"
            )
        return r.stdout

    # -- life cycle --

    def _init(self) -> None:
        self.bindir = ensure_pg_bindir()
        if is_root():
            self._os_user = _ensure_os_user(PG_OS_USER)
        base = self._base_dir or ("/tmp" if is_root() else None)  # reachable by resonate-pg
        self.dir = Path(make_owned_dir("resonate-pg-", str(base) if base else None))
        register_cleanup(self, self._atexit)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._os_user is not None:
            os.chown(self.dir, self._os_user.pw_uid, self._os_user.pw_gid)
            os.chown(pwfile, self._os_user.pw_uid, self._os_user.pw_gid)
        os.chmod(pwfile, 0o600)
        self._run(
            [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
             f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
             "--no-sync", "--no-instructions"],
            "initdb",
        )
        pwfile.unlink()
        out = subprocess.run([str(self.bindir / "postgres"), "--version"],
                             capture_output=True, text=True).stdout
        m = re.search(r"\)\s+(\d+(?:\.\d+)*)", out)
        self.version = m.group(1) if m else out.strip() or None

    def start(self) -> "PostgresServer":
        """Create the cluster (first time), start the server, wait until it takes connections,
        and create :attr:`database`."""
        with self._lock:
            if self.is_running():
                return self
            first = self.dir is None
            if first:
                self._init()
            elif not self.data_dir.exists():
                raise PostgresServerError(f"PostgreSQL: {self.dir} was removed")
            assert self.dir is not None and self.bindir is not None
            opts = {
                "listen_addresses": self.host,
                "port": self.port,
                "unix_socket_directories": str(self.dir),
                "max_connections": self.max_connections,
                "logging_collector": "off",
                "log_min_messages": "warning",
                **self.settings,
            }
            args = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
            for k, v in opts.items():
                args += ["-c", f"{k}={v}"]
            log = open(self.log_path, "ab")
            try:
                if self._os_user is not None:
                    os.chown(self.log_path, self._os_user.pw_uid, self._os_user.pw_gid)
                # runuser forwards SIGTERM to the server and waits for it; the server
                # itself gets SIGINT (fast shutdown) if runuser dies
                inner = ["setpriv", "--pdeathsig", "INT", "--", *args] if shutil.which("setpriv") else args
                self._proc = spawn(self._as_owner(inner), pdeathsig="TERM",
                                   stdout=log, stderr=subprocess.STDOUT, cwd=str(self.dir))
            finally:
                log.close()
            try:
                self._wait_ready()
                if first:
                    self.create_database(self.database, exist_ok=True)
            except BaseException:
                self._kill_quietly()
                raise
            return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.startup_timeout
        last: object = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else "?"
                raise PostgresServerError(
                    f"PostgreSQL {self.version} exited with code {code} during start-up:\n{self.log_tail()}"
                )
            try:
                with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2) as conn:
                    conn.execute("select 1")
                return
            except psycopg.OperationalError as e:
                last = e
                time.sleep(0.1)
        raise PostgresServerError(
            f"PostgreSQL {self.version} on {self.host}:{self.port} did not accept connections after "
            f"{self.startup_timeout:.0f} s (last error: {last}):\n{self.log_tail()}"
        )

    def _kill_quietly(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            end_process(proc, sig=signal.SIGINT, timeout=10)

    def stop(self, *, keep_data: bool = False, timeout: float = 30.0) -> None:
        """``pg_ctl stop -m fast``; then remove the directory unless ``keep_data``
        (``start()`` after ``stop(keep_data=True)`` brings the same cluster back on the same port)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self.bindir is not None:
                try:
                    self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir),
                               "-m", "fast", "-w", "-t", str(int(timeout))],
                              "pg_ctl stop", timeout=timeout + 10)
                except PostgresServerError:
                    pass  # fall through: the process group is signalled below
            proc, self._proc = self._proc, None
            if proc is not None:
                end_process(proc, sig=signal.SIGINT, timeout=timeout)
            if not keep_data:
                self._remove_dir()

    def _remove_dir(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        unregister_cleanup(self)

    def close(self) -> None:
        self.stop()

    def _atexit(self) -> None:
        self._kill_quietly()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<PostgresServer {self.version or ''} {self.host}:{self.port} {state} dir={self.dir}>"

    # -- helpers --

    def connect(self, database: str | None = None, **kwargs):
        """A psycopg connection (autocommit unless told otherwise)."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn_for(database or self.database), **kwargs)

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """CREATE DATABASE name (owned by :attr:`user`); returns its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if exists and not exist_ok:
                raise PostgresServerError(f"PostgreSQL: database {name!r} already exists")
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS name WITH (FORCE): open sessions are terminated."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
