"""Runs docs/operating.md's "Several servers behind one address" for real: one PostgreSQL, two
`resonate serve` processes on it, and nginx or HAProxy in front with the configuration printed in that
section (only its ports changed to free ones), then checks through the proxy with real clients:

- HTTP: create, read, complete and search promises, a 404 and a 2 MB create (httpx), and that the
  requests reached both servers (each server's /metrics `api_requests_total`);
- gRPC (grpcio stubs): create/read/resolve, NOT_FOUND and INVALID_ARGUMENT with their grpc-message and
  `resonate-code` trailer, 200 concurrent calls on one channel, 300 KB requests from 16 threads and
  SearchPromises answers of 1.2-2.4 MB (12 at once), gzip, cancelled calls and 5 ms deadlines, a
  request just under and one over the server's 4 MiB limit, and that the calls reached both servers;
- the poll stream: a worker's server-sent event stream opened through the proxy receives the task
  messages of promises tagged `resonate:invoke` created through the proxy (on either server);
- one server stopped with SIGTERM while 4 HTTP and 4 gRPC clients keep creating through the proxy: no
  request may fail; then HTTP, gRPC and the poll stream keep working through the other server.

Prints each thing verified ("ok"), a known limitation of the proxy ("note"), or what failed ("FAIL");
exits 1 if anything failed (a broken check stops the run, a failed SIGTERM count does not), 2 if the
proxy is not installed. Not part of `make test` (it needs nginx or HAProxy from Debian:
`apt-get install -y nginx haproxy`). Takes about a minute; the proxy's files go to a temporary
directory, kept with --keep-logs or when something failed.

Usage: python bench/proxy_check.py --proxy nginx|haproxy [--keep-logs] [--drain-first]
       python bench/proxy_check.py --proxy nginx|haproxy --bench [--seconds 5] [--repeat 2] [--clients 64]

--drain-first takes the server out of the proxy's rotation (nginx: `down` and a reload; HAProxy:
maintenance through its admin socket) before sending it SIGTERM.
--bench measures instead of checking: HTTP create@64 straight to one server, through the proxy in front
of one server, straight to two servers (round-robin) and through the proxy in front of two, in one run,
with the CPU per request of the servers, the proxy and PostgreSQL.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import concurrent.futures
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row, make_row, print_table, run_for  # noqa: E402
from bench.http_bench import RawHttpConnection, promise_operation  # noqa: E402
from bench.postgres_bench import cpu_seconds, postgres_pids  # noqa: E402
from resonate.api.grpc.pb import promise_pb2, promise_pb2_grpc, promise_t_pb2  # noqa: E402
from tests.infra.ports import free_port, port_is_open  # noqa: E402
from tests.infra.postgres_server import PostgresServer  # noqa: E402
from tests.infra.wait import wait_until  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

DOC = ROOT / "docs" / "operating.md"
SECTION = "## Several servers behind one address"
# the ports the documented configuration uses: the proxy's, and server i's (HTTP 80i1, gRPC 80i2, poll 80i3)
DOC_PROXY_PORTS = {"http": 8001, "poll": 8002, "grpc": 50051}
SERVERS = 2
FAR = 10**15
CONCURRENT_GRPC_CALLS = 200
LARGE_PARAM_BYTES = 300_000
LARGE_PROMISES = 4  # a SearchPromises answer of about 1.2 MB
WIDE_PROMISES = 8  # 8 x 300 KB: SearchPromises answers of 2.4 MB
CONCURRENT_LARGE_ANSWERS = 12
CANCELLED_CALLS = 30
LARGE_HTTP_BYTES = 1_500_000  # a promise param over nginx's default client_max_body_size (1 MiB), base64
MAX_GRPC_MESSAGE = 4 * 1024 * 1024  # the server's receive limit (resonate/api/grpc/server.py)
TASKS_OVER_STREAM = 6
LOAD_THREADS = 4  # clients creating while a server stops
CODE_TRAILER = "resonate-code"
INSTALL_HINT = {"nginx": "apt-get install -y nginx", "haproxy": "apt-get install -y haproxy"}


class CheckFailed(Exception):
    pass


FAILURES: list[str] = []  # checks that failed without stopping the run


def record_failure(what: str) -> None:
    FAILURES.append(what)
    print(f"FAIL {what}", flush=True)


def note(what: str) -> None:
    """A known limitation of the proxy, not of this server: printed, not failed."""
    print(f"note {what}", flush=True)


def check(condition: object, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def ok(what: str) -> None:
    print(f"ok   {what}", flush=True)


# -- the documented configuration, with free ports

def documented_block(language: str) -> str:
    """The first ```<language> block of the section, as printed in the doc."""
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end > 0 else len(text)]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    if not match:
        raise CheckFailed(f"docs/operating.md, {SECTION!r}: no ```{language} block")
    return match.group(1)


def with_ports(block: str, mapping: dict[int, int]) -> str:
    """The block with each documented port replaced; every documented port must appear in it."""
    for documented, actual in mapping.items():
        pattern = rf"(?<![\d.]){documented}(?!\d)"
        if not re.search(pattern, block):
            raise CheckFailed(f"the documented configuration has no port {documented}")
        block = re.sub(pattern, str(actual), block)
    return block


def port_mapping(proxy_ports: dict[str, int], servers: list[ServerProcess]) -> dict[int, int]:
    mapping = {DOC_PROXY_PORTS[k]: v for k, v in proxy_ports.items()}
    for i, s in enumerate(servers, start=1):
        mapping[int(f"80{i}1")] = s.http_port
        mapping[int(f"80{i}2")] = s.grpc_port
        mapping[int(f"80{i}3")] = s.poll_port
    return mapping


class Proxy:
    """nginx or HAProxy in the foreground, its files in one temporary directory."""

    def __init__(self, kind: str, workdir: Path, mapping: dict[int, int], left_out: tuple[int, ...] = ()):
        """`left_out`: server ports whose `server` lines are dropped (the same proxy in front of fewer servers)."""
        self.kind, self.dir = kind, workdir
        self.log = workdir / f"{kind}.log"
        self.proc: subprocess.Popen | None = None
        block = with_ports(documented_block(kind), mapping)
        self.block = block
        block = "".join(line for line in block.splitlines(keepends=True)
                        if not any(f":{port}" in line for port in left_out))
        if kind == "nginx":
            (workdir / "resonate.conf").write_text(block)
            temp = "".join(f"    {name}_temp_path {workdir}/{name};\n"
                           for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            self.config = workdir / "nginx.conf"
            self.config.write_text(
                f"daemon off;\nworker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {self.log} notice;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{\n    access_log {workdir}/access.log;\n{temp}    include {workdir}/resonate.conf;\n}}\n")
            self.command = ["nginx", "-p", str(workdir), "-c", str(self.config)]
            self.test = self.command + ["-t"]
        else:
            self.config = workdir / "haproxy.cfg"
            self.admin_socket = workdir / "admin.sock"
            self.config.write_text(f"global\n    pidfile {workdir}/haproxy.pid\n"
                                   f"    stats socket {self.admin_socket} level admin\n\n{block}")
            self.command = ["haproxy", "-db", "-f", str(self.config)]
            self.test = ["haproxy", "-c", "-f", str(self.config)]

    @staticmethod
    def version(kind: str) -> str:
        out = subprocess.run([kind, "-v"], capture_output=True, text=True)
        return (out.stdout + out.stderr).strip().splitlines()[0]

    def start(self, ports: list[int]) -> None:
        os.chmod(self.dir, 0o755)  # nginx's workers run as an unprivileged user
        result = subprocess.run(self.test, capture_output=True, text=True)
        check(result.returncode == 0, f"{self.kind} rejects the documented configuration:\n"
                                      f"{result.stdout}{result.stderr}")
        if result.stderr.strip():
            print(f"     {self.kind} -t/-c says: " + result.stderr.strip().replace("\n", "\n     "))
        self.proc = subprocess.Popen(self.command, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise CheckFailed(f"{self.kind} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            return all(port_is_open(p) for p in ports)

        wait_until(listening, f"{self.kind} to listen on {ports}", 20)

    def take_out(self, ports: tuple[int, ...]) -> None:
        """Takes the server listening on `ports` out of rotation: nginx marks it `down` and reloads, HAProxy
        puts it in maintenance through its admin socket."""
        if self.kind == "nginx":
            conf = self.dir / "resonate.conf"
            conf.write_text("".join(
                line.replace(";", " down;", 1) if line.strip().startswith("server ")
                and any(f":{port};" in line for port in ports) else line
                for line in conf.read_text().splitlines(keepends=True)))
            result = subprocess.run(self.command + ["-s", "reload"], capture_output=True, text=True)
            check(result.returncode == 0, f"nginx -s reload: {result.stderr}")
            return
        backend = ""
        for line in self.block.splitlines():
            words = line.split()
            if words[:1] == ["backend"]:
                backend = words[1]
            elif words[:1] == ["server"] and any(f":{port}" in words[2] for port in ports):
                self.admin(f"set server {backend}/{words[1]} state maint")

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            return sock.makefile().read()

    def pids(self) -> list[int]:
        """The proxy's processes: the nginx master and its workers, or HAProxy."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [self.proc.pid] + [int(p) for p in children.split()]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # nginx: SIGQUIT is its graceful stop; HAProxy in the foreground stops on SIGTERM/SIGUSR1
            self.proc.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# -- the servers, started with the flags of docs/scaling-out.md

def postgres_flags(pg: PostgresServer) -> list[str]:
    return ["--aio-store-postgres-enable", "true",
            "--aio-store-postgres-host", pg.host, "--aio-store-postgres-port", str(pg.port),
            "--aio-store-postgres-username", pg.user, "--aio-store-postgres-password", pg.password,
            "--aio-store-postgres-database", pg.database,
            "--aio-store-postgres-query", "sslmode=disable",
            "--aio-store-postgres-workers", "4"]


class Server(ServerProcess):
    """A server whose --system-url is the proxy's address, as the doc says."""

    def __init__(self, system_url: str, store_flags: list[str]):
        super().__init__(grpc=True, store_flags=tuple(store_flags))
        self.system_url = system_url

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--system-url") + 1] = self.system_url
        return cmd


def requests_served(server: Server, protocol: str) -> int:
    """The server's api_requests_total summed over its `protocol` series."""
    text = httpx.get(server.metrics_url, timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("api_requests_total{") and f'protocol="{protocol}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


# -- the checks

def check_http(http: httpx.Client, servers: list[Server], run: str) -> None:
    before = [requests_served(s, "http") for s in servers]
    pid = f"{run}-http"
    r = http.post("/promises", json={"id": pid, "timeout": FAR, "param": {"data": "aGk="}})
    check(r.status_code == 201 and r.json()["state"] == "PENDING", f"create through the proxy: {r.status_code} {r.text}")
    r = http.get(f"/promises/{pid}")
    check(r.status_code == 200 and r.json()["id"] == pid, f"read through the proxy: {r.status_code} {r.text}")
    r = http.patch(f"/promises/{pid}", json={"state": "RESOLVED", "value": {"data": "b2s="}})
    check(r.status_code == 201 and r.json()["state"] == "RESOLVED", f"complete: {r.status_code} {r.text}")
    r = http.get(f"/promises/{pid}")
    check(r.json()["state"] == "RESOLVED", f"the completion is visible on the next read: {r.text}")
    r = http.get("/promises/nope-" + run)
    check(r.status_code == 404 and r.json()["error"]["code"] == 40400, f"404 through the proxy: {r.text}")
    for i in range(20):
        r = http.post("/promises", json={"id": f"{run}-many-{i}", "timeout": FAR})
        check(r.status_code == 201, f"create {i}: {r.status_code} {r.text}")
    r = http.get("/promises", params={"id": f"{run}-many-*", "limit": 100})
    found = {p["id"] for p in r.json()["promises"]}
    check(r.status_code == 200 and len(found) == 20, f"search finds the 20 promises created: {len(found)}")
    data = base64.b64encode(os.urandom(LARGE_HTTP_BYTES)).decode()
    r = http.post("/promises", json={"id": f"{run}-http-large", "timeout": FAR, "param": {"data": data}})
    check(r.status_code == 201, f"a create of {len(data) / 1e6:.1f} MB through the proxy: {r.status_code} {r.text[:200]}")
    r = http.get(f"/promises/{run}-http-large")
    check(r.status_code == 200 and r.json()["param"]["data"] == data, f"reading it back: {r.status_code}")
    after = [requests_served(s, "http") for s in servers]
    spread = [a - b for a, b in zip(after, before)]
    check(all(n > 0 for n in spread), f"HTTP requests reached every server: {spread}")
    ok(f"HTTP create/read/complete/404/search and a {len(data) / 1e6:.1f} MB create and read through the proxy; "
       f"28 requests served as {spread} by the servers")


def grpc_code(error: grpc.RpcError) -> int | None:
    codes = [int(v) for k, v in error.trailing_metadata() or () if k == CODE_TRAILER]
    return codes[0] if codes else None


def check_grpc(target: str, servers: list[Server], run: str, kind: str) -> None:
    before = [requests_served(s, "grpc") for s in servers]
    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 16 << 20),
                                                ("grpc.max_send_message_length", 16 << 20)]) as channel:
        stub = promise_pb2_grpc.PromisesStub(channel)
        pid = f"{run}-grpc"
        created = stub.CreatePromise(promise_pb2.CreatePromiseRequest(id=pid, timeout=FAR), timeout=10)
        check(created.promise.id == pid and created.promise.state == promise_t_pb2.PENDING, f"CreatePromise: {created}")
        read = stub.ReadPromise(promise_pb2.ReadPromiseRequest(id=pid), timeout=10)
        check(read.promise.id == pid, f"ReadPromise: {read}")
        resolved, call = stub.ResolvePromise.with_call(promise_pb2.ResolvePromiseRequest(
            id=pid, value=promise_t_pb2.Value(data=b"done")), timeout=10)
        codes = [v for k, v in call.trailing_metadata() if k == CODE_TRAILER]
        check(resolved.promise.state == promise_t_pb2.RESOLVED and codes == ["20100"],
              f"ResolvePromise: {resolved.promise.state}, trailers {call.trailing_metadata()}")
        ok("gRPC CreatePromise/ReadPromise/ResolvePromise through the proxy (resonate-code 20100 on success)")

        try:
            stub.ReadPromise(promise_pb2.ReadPromiseRequest(id=f"{run}-missing"), timeout=10)
            raise CheckFailed("ReadPromise of a missing promise succeeded")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND and "not found" in (e.details() or "").lower()
                  and grpc_code(e) == 40400, f"NOT_FOUND through the proxy: {e.code()} {e.details()!r} "
                                             f"{e.trailing_metadata()}")
            ok(f"gRPC NOT_FOUND through the proxy: grpc-message {e.details()!r}, resonate-code {grpc_code(e)}")
        try:
            stub.CreatePromise(promise_pb2.CreatePromiseRequest(id="", timeout=FAR), timeout=10)
            raise CheckFailed("CreatePromise without an id succeeded")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and grpc_code(e) == 40000,
                  f"INVALID_ARGUMENT through the proxy: {e.code()} {e.details()!r}")
            ok(f"gRPC INVALID_ARGUMENT through the proxy: grpc-message {e.details()!r}")

        def create(i: int) -> str:
            return stub.CreatePromise(promise_pb2.CreatePromiseRequest(id=f"{run}-c-{i}", timeout=FAR),
                                      timeout=30).promise.id

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(create, range(CONCURRENT_GRPC_CALLS)))
        check(ids == [f"{run}-c-{i}" for i in range(CONCURRENT_GRPC_CALLS)], "every concurrent call answered its own id")
        futures = [stub.ReadPromise.future(promise_pb2.ReadPromiseRequest(id=f"{run}-c-{i}"), timeout=30)
                   for i in range(CONCURRENT_GRPC_CALLS)]
        reads = [f.result().promise.id for f in futures]
        check(reads == ids, "every concurrent read answered its own promise")
        ok(f"gRPC {CONCURRENT_GRPC_CALLS} creates from 32 threads and {CONCURRENT_GRPC_CALLS} reads in flight "
           "at once on one channel, each answered with its own promise")

        big = os.urandom(LARGE_PARAM_BYTES // 2).hex().encode()
        for i in range(LARGE_PROMISES):
            stub.CreatePromise(promise_pb2.CreatePromiseRequest(
                id=f"{run}-big-{i}", timeout=FAR, param=promise_t_pb2.Value(data=big)), timeout=30)
        found = stub.SearchPromises(promise_pb2.SearchPromisesRequest(id=f"{run}-big-*", limit=10), timeout=30)
        check(len(found.promises) == LARGE_PROMISES and all(p.param.data == big for p in found.promises),
              f"SearchPromises returned {len(found.promises)} promises")
        size = found.ByteSize()
        ok(f"gRPC {LARGE_PROMISES} requests of {len(big) // 1000} KB and a SearchPromises answer of "
           f"{size / 1e6:.2f} MB through the proxy, bytes intact")

        # flow control with many streams at once, both ways: large requests, then large answers
        def create_large(i: int) -> bool:
            answer = stub.CreatePromise(promise_pb2.CreatePromiseRequest(
                id=f"{run}-wide-{i}", timeout=FAR, param=promise_t_pb2.Value(data=big)), timeout=60)
            return answer.promise.param.data == big

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            check(all(pool.map(create_large, range(WIDE_PROMISES))), "concurrent large creates")
        searches = [stub.SearchPromises.future(promise_pb2.SearchPromisesRequest(
            id=f"{run}-wide-*", limit=WIDE_PROMISES), timeout=60) for _ in range(CONCURRENT_LARGE_ANSWERS)]
        answers = [f.result() for f in searches]
        check(all(len(a.promises) == WIDE_PROMISES and all(p.param.data == big for p in a.promises)
                  for a in answers), "concurrent large answers")
        ok(f"gRPC {WIDE_PROMISES} creates of {len(big) // 1000} KB from 16 threads, then {CONCURRENT_LARGE_ANSWERS} "
           f"SearchPromises answers of {answers[0].ByteSize() / 1e6:.1f} MB in flight at once, bytes intact")

        zipped = stub.CreatePromise(promise_pb2.CreatePromiseRequest(
            id=f"{run}-gzip", timeout=FAR, param=promise_t_pb2.Value(data=b"z" * 100_000)),
            timeout=10, compression=grpc.Compression.Gzip)
        check(zipped.promise.param.data == b"z" * 100_000, "a gzip-compressed request")
        for _ in range(CANCELLED_CALLS):
            stub.SearchPromises.future(promise_pb2.SearchPromisesRequest(id=f"{run}-wide-*"), timeout=60).cancel()
        expired = collections.Counter()
        for _ in range(CANCELLED_CALLS):
            try:
                stub.SearchPromises(promise_pb2.SearchPromisesRequest(id=f"{run}-wide-*"), timeout=0.005)
                expired["answered"] += 1
            except grpc.RpcError as e:
                expired[e.code().name] += 1
        check(set(expired) <= {"answered", "DEADLINE_EXCEEDED"}, f"calls with a 5 ms deadline: {dict(expired)}")
        read = stub.ReadPromise(promise_pb2.ReadPromiseRequest(id=f"{run}-gzip"), timeout=10)
        check(read.promise.id == f"{run}-gzip", "a read after the cancelled calls")
        ok(f"gRPC a gzip-compressed request; {CANCELLED_CALLS} calls cancelled by the client and {CANCELLED_CALLS} "
           f"with a 5 ms deadline ({dict(expired)}), then the channel still answers")

        near_limit = b"x" * (MAX_GRPC_MESSAGE - 1000)
        created = stub.CreatePromise(promise_pb2.CreatePromiseRequest(
            id=f"{run}-near-limit", timeout=FAR, param=promise_t_pb2.Value(data=near_limit)), timeout=30)
        check(created.promise.param.data == near_limit, "a request just under the server's 4 MiB limit")
        try:
            stub.CreatePromise(promise_pb2.CreatePromiseRequest(
                id=f"{run}-over-limit", timeout=FAR, param=promise_t_pb2.Value(data=b"x" * MAX_GRPC_MESSAGE)),
                timeout=30)
            raise CheckFailed("a request over the server's 4 MiB limit succeeded")
        except grpc.RpcError as e:
            refusal = e.details() or ""
            if kind == "haproxy" and e.code() == grpc.StatusCode.CANCELLED:
                # the server answers before reading the whole request, then resets the stream with NO_ERROR
                # (RFC 9113 8.1, as grpc-go does); HAProxy before its fix e87397bc7 (2025-03, issue #1219)
                # passes that on as RST_STREAM(CANCEL), and the client drops the answer
                note(f"gRPC a request over 4 MiB through HAProxy: {e.code()} {refusal!r} instead of the server's "
                     "RESOURCE_EXHAUSTED (HAProxy issue #1219, fixed upstream in 2025)")
                refused_with = None
            else:
                check(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in refusal,
                      f"a request over 4 MiB through the proxy: {e.code()} {refusal!r}")
                refused_with = refusal
        if refused_with is not None:
                ok(f"gRPC a {len(near_limit) / 2**20:.2f} MiB request answered; one over 4 MiB refused by the server "
               f"through the proxy: RESOURCE_EXHAUSTED {refusal!r}")
    after = [requests_served(s, "grpc") for s in servers]
    spread = [a - b for a, b in zip(after, before)]
    check(all(n > 0 for n in spread), f"gRPC calls reached every server: {spread}")
    ok(f"gRPC calls served as {spread} by the servers")


class Stream:
    """A worker's server-sent event stream, read with `curl -sN` as in the README's tour; lines go to a
    queue. Ending curl closes the connection at once (the server then drops the stream)."""

    def __init__(self, url: str):
        self.url, self.lines = url, queue.Queue()
        self.proc = subprocess.Popen(["curl", "-sSN", "-w", "\\n%{http_code}\\n", url], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise CheckFailed(f"nothing on the stream {self.url} within {timeout}s") from None
        check(line is not None, f"the stream {self.url} ended")
        return line

    def wait_connected(self) -> None:
        line = self.next(10)
        check(line == ": connected", f"stream {self.url} begins with {line!r}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def check_stream(http: httpx.Client, poll_url: str, servers: list[Server], run: str, label: str) -> None:
    worker = f"worker-{run}-{label}"
    stream = Stream(f"{poll_url}/workers/{worker}")
    try:
        stream.wait_connected()
        live = [s for s in servers if s.proc.poll() is None]
        holders = [i for i, s in enumerate(servers, 1) if s in live and held_streams(s) > 0]
        before = [requests_served(s, "http") for s in live]
        latencies = []
        for i in range(TASKS_OVER_STREAM):
            pid = f"{run}-{label}-job-{i}"
            began = time.monotonic()
            r = http.post("/promises", json={"id": pid, "timeout": FAR,
                                             "tags": {"resonate:invoke": "poll://any@workers"}})
            check(r.status_code == 201, f"create {pid}: {r.status_code} {r.text}")
            while True:
                line = stream.next(30)
                if line.startswith("data: "):
                    message = json.loads(line[len("data: "):])
                    break
            latencies.append((time.monotonic() - began) * 1000)
            check(message["type"] == "invoke" and message["task"]["rootPromiseId"] == pid,
                  f"the message of {pid}: {message}")
            href = message.get("href", {}).get("claim", "")
            check(href.startswith(http.base_url.scheme + "://") and str(http.base_url.port) in href,
                  f"the task links point at the proxy (--system-url): {message.get('href')}")
        creates = [requests_served(s, "http") - b for s, b in zip(live, before)]
        ok(f"poll stream through the proxy ({label}): {TASKS_OVER_STREAM} invoke messages for promises created "
           f"through the proxy (served as {creates} by the live servers), stream held by server {holders}, "
           f"create-to-message "
           f"{', '.join(f'{x:.0f}' for x in latencies)} ms; links point at the proxy")
    finally:
        stream.close()


QUIET_CHECK_S = 0.5  # how long a server taken out of rotation must get no request before it is stopped


def no_new_requests(server: Server) -> bool:
    """True when the server's request counters (HTTP and gRPC) did not move for QUIET_CHECK_S."""
    before = requests_served(server, "http"), requests_served(server, "grpc")
    time.sleep(QUIET_CHECK_S)
    return (requests_served(server, "http"), requests_served(server, "grpc")) == before


def held_streams(server: Server) -> int:
    text = httpx.get(server.metrics_url, timeout=5).text
    for line in text.splitlines():
        if line.startswith("resonate_poll_connections "):
            return int(float(line.split()[1]))
    return 0


def check_sigterm(http_url: str, grpc_target: str, poll_url: str, servers: list[Server], run: str,
                  proxy: Proxy | None = None) -> None:
    """Stops the second server with SIGTERM while clients keep creating; nothing must fail. With `proxy`,
    the server is first taken out of the proxy's rotation, and stopped once it gets no more requests."""
    stop = threading.Event()
    results: list[tuple[str, int, str]] = []  # (protocol, 201 or the error's status, text)

    def load(thread: int) -> None:
        with httpx.Client(base_url=http_url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                try:
                    r = client.post("/promises", json={"id": f"{run}-load-{thread}-{i}", "timeout": FAR})
                    results.append(("HTTP", r.status_code, r.text[:200]))
                except httpx.HTTPError as e:
                    results.append(("HTTP", 0, repr(e)))
                i += 1

    def grpc_load(thread: int) -> None:
        with grpc.insecure_channel(grpc_target) as channel:
            stub = promise_pb2_grpc.PromisesStub(channel)
            i = 0
            while not stop.is_set():
                try:
                    stub.CreatePromise(promise_pb2.CreatePromiseRequest(
                        id=f"{run}-gload-{thread}-{i}", timeout=FAR), timeout=10)
                    results.append(("gRPC", 201, ""))
                except grpc.RpcError as e:
                    results.append(("gRPC", e.code().value[0], f"{e.code()} {e.details()}"))
                i += 1

    threads = [threading.Thread(target=load, args=(t,)) for t in range(LOAD_THREADS)]
    threads += [threading.Thread(target=grpc_load, args=(t,)) for t in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) >= 100, "the load to start", 30)
    victim = servers[-1]
    how = "SIGTERM"
    if proxy is not None:
        proxy.take_out((victim.http_port, victim.grpc_port, victim.poll_port))
        wait_until(lambda: no_new_requests(victim), "the server taken out to get no more requests", 30,
                   interval=0)
        how = "out of rotation, then SIGTERM"
    began = time.monotonic()
    victim.proc.send_signal(signal.SIGTERM)
    code = victim.proc.wait(30)
    stopped_in = time.monotonic() - began
    at_stop = len(results)
    wait_until(lambda: len(results) >= at_stop + 200, "200 more creates after the stop", 60)
    stop.set()
    for t in threads:
        t.join()
    for protocol in ("HTTP", "gRPC"):
        mine = [(status, text) for p, status, text in results if p == protocol]
        failures = collections.Counter(f"{status} {text[:100]}" for status, text in mine if status != 201)
        if failures:
            record_failure(f"{protocol}: {sum(failures.values())} of {len(mine)} creates failed around the stop "
                           f"({how}; server {len(servers)} exited {stopped_in:.1f} s after the signal): "
                           f"{dict(failures)}")
        else:
            ok(f"{protocol}: {how} to server {len(servers)} (exit code {code}, {stopped_in:.1f} s after the signal) "
               f"under load from {LOAD_THREADS} clients: {len(mine)} creates through the proxy, none failed")

    with httpx.Client(base_url=http_url, timeout=10) as http:
        for i in range(20):
            r = http.post("/promises", json={"id": f"{run}-after-{i}", "timeout": FAR})
            check(r.status_code == 201, f"create after the stop: {r.status_code} {r.text}")
            r = http.get(f"/promises/{run}-after-{i}")
            check(r.status_code == 200, f"read after the stop: {r.status_code} {r.text}")
        ok("HTTP after the stop: 20 creates and reads through the proxy, all answered")
        with grpc.insecure_channel(grpc_target) as channel:
            stub = promise_pb2_grpc.PromisesStub(channel)
            for i in range(20):
                stub.CreatePromise(promise_pb2.CreatePromiseRequest(id=f"{run}-gafter-{i}", timeout=FAR), timeout=10)
                stub.ReadPromise(promise_pb2.ReadPromiseRequest(id=f"{run}-gafter-{i}"), timeout=10)
        ok("gRPC after the stop: 20 CreatePromise and ReadPromise through the proxy, all answered")
        check_stream(http, poll_url, servers, run, "after-stop")


# -- the run

def run(kind: str, keep_logs: bool, drain_first: bool = False) -> int:
    if shutil.which(kind) is None:
        print(f"{kind} is not installed: {INSTALL_HINT[kind]} (Debian), then run this again", file=sys.stderr)
        return 2
    print(f"{Proxy.version(kind)}; the configuration of docs/operating.md, {SECTION[3:]!r}, with free ports")
    workdir = Path(tempfile.mkdtemp(prefix=f"resonate-{kind}-"))
    pg = PostgresServer().start()
    print(f"PostgreSQL {pg.version} on 127.0.0.1:{pg.port}")
    proxy_ports = {"http": free_port(), "poll": free_port(), "grpc": free_port()}
    http_url = f"http://127.0.0.1:{proxy_ports['http']}"
    poll_url = f"http://127.0.0.1:{proxy_ports['poll']}"
    grpc_target = f"127.0.0.1:{proxy_ports['grpc']}"
    servers = [Server(http_url, postgres_flags(pg)) for _ in range(SERVERS)]
    proxy = None
    failed = False
    try:
        for s in servers:
            s.start()
        print("servers: " + "; ".join(f"{i}: http {s.http_port}, grpc {s.grpc_port}, poll {s.poll_port}, "
                                       f"metrics {s.metrics_port}" for i, s in enumerate(servers, 1)))
        proxy = Proxy(kind, workdir, port_mapping(proxy_ports, servers))
        proxy.start(list(proxy_ports.values()))
        print(f"{kind}: http {proxy_ports['http']}, poll {proxy_ports['poll']}, grpc {proxy_ports['grpc']} "
              f"(documented: 8001, 8002, 50051); files in {workdir}")
        run_id = uuid.uuid4().hex[:8]
        with httpx.Client(base_url=http_url, timeout=10) as http:
            check_http(http, servers, run_id)
            check_grpc(grpc_target, servers, run_id, kind)
            check_stream(http, poll_url, servers, run_id, "both-up")
        check_sigterm(http_url, grpc_target, poll_url, servers, run_id, proxy if drain_first else None)
        if FAILURES:
            failed = True
            print(f"{len(FAILURES)} check(s) failed through {kind}:\n  " + "\n  ".join(FAILURES), file=sys.stderr)
        else:
            print(f"all checks passed through {kind}")
    except (CheckFailed, AssertionError, RuntimeError, grpc.RpcError, httpx.HTTPError) as e:
        failed = True
        print(f"FAIL {e}", file=sys.stderr)
        if proxy is not None and proxy.log.exists():
            print(f"--- {proxy.log} (tail)\n" + "\n".join(proxy.log.read_text().splitlines()[-30:]), file=sys.stderr)
    finally:
        if proxy is not None:
            proxy.stop()
        for s in servers:
            s.stop()
        pg.close()
        if keep_logs or failed:
            print(f"logs kept in {workdir} and the servers' {[s.log_path for s in servers]}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


# -- the measurement: HTTP create@64 straight to the servers and through the proxy, 1 and 2 servers

async def create_cell(targets: list[tuple[str, int]], clients: int, seconds: float, label: str) -> Row:
    """`clients` keep-alive connections spread over `targets`, each creating promises for `seconds`."""
    conns = [await RawHttpConnection.open(*targets[i % len(targets)]) for i in range(clients)]
    try:
        latencies: list[float] = []
        one = promise_operation(conns, "create", [], [], f"bench-{uuid.uuid4().hex[:8]}")
        elapsed = await run_for(clients, one, seconds, latencies)
        return make_row(label, "create", clients, elapsed, latencies)
    finally:
        for conn in conns:
            conn.close()


def run_bench(kind: str, seconds: float, repeat: int, clients: int) -> int:
    if shutil.which(kind) is None:
        print(f"{kind} is not installed: {INSTALL_HINT[kind]} (Debian), then run this again", file=sys.stderr)
        return 2
    print(f"{Proxy.version(kind)}; {os.cpu_count()} CPUs shared by the load generator, the servers, the proxy "
          "and PostgreSQL; other work on the machine makes the figures noisy")
    pg = PostgresServer().start()
    dirs = [Path(tempfile.mkdtemp(prefix=f"resonate-{kind}-bench-")) for _ in range(2)]
    ports = [{"http": free_port(), "poll": free_port(), "grpc": free_port()} for _ in range(2)]
    servers = [Server(f"http://127.0.0.1:{ports[1]['http']}", postgres_flags(pg)) for _ in range(SERVERS)]
    proxies: list[Proxy] = []
    try:
        for s in servers:
            s.start()
        second = (servers[1].http_port, servers[1].grpc_port, servers[1].poll_port)
        proxies = [Proxy(kind, dirs[0], port_mapping(ports[0], servers), left_out=second),
                   Proxy(kind, dirs[1], port_mapping(ports[1], servers))]
        for proxy, p in zip(proxies, ports):
            proxy.start(list(p.values()))
        direct = [("127.0.0.1", s.http_port) for s in servers]
        cells = [(f"direct, 1 server", direct[:1], []),
                 (f"{kind}, 1 server", [("127.0.0.1", ports[0]["http"])], proxies[0].pids()),
                 (f"direct, 2 servers (round-robin)", direct, []),
                 (f"{kind}, 2 servers", [("127.0.0.1", ports[1]["http"])], proxies[1].pids())]
        server_pids = [s.proc.pid for s in servers]
        rows, cpu = [], []
        for _ in range(repeat):
            for label, targets, proxy_pids in cells:
                before = cpu_seconds(server_pids), cpu_seconds(proxy_pids), cpu_seconds(postgres_pids())
                row = asyncio.run(create_cell(targets, clients, seconds, label))
                after = cpu_seconds(server_pids), cpu_seconds(proxy_pids), cpu_seconds(postgres_pids())
                rows.append(row)
                cpu.append([(a - b) * 1e6 / max(1, row.requests) for a, b in zip(after, before)])
        print_table(rows, f"HTTP create@{clients} on PostgreSQL, {seconds:.0f} s per cell, cells alternated "
                          f"{repeat} time(s)")
        print("\nCPU per create, from /proc: servers / proxy / PostgreSQL (us)")
        for row, (server_us, proxy_us, pg_us) in zip(rows, cpu):
            print(f"  {row.transport:<34} {server_us:>5.0f} / {proxy_us:>4.0f} / {pg_us:>4.0f}")
    finally:
        for proxy in proxies:
            proxy.stop()
        for s in servers:
            s.stop()
        pg.close()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", choices=("nginx", "haproxy"), required=True)
    parser.add_argument("--keep-logs", action="store_true", help="keep the proxy's files and logs")
    parser.add_argument("--drain-first", action="store_true",
                        help="take the server out of the proxy's rotation before sending it SIGTERM")
    parser.add_argument("--bench", action="store_true",
                        help="instead of the checks, measure HTTP creates straight to 1 and 2 servers and through "
                             "the proxy in front of 1 and 2 servers, in one run")
    parser.add_argument("--seconds", type=float, default=5, help="--bench: seconds per cell")
    parser.add_argument("--repeat", type=int, default=2, help="--bench: alternate the cells this many times")
    parser.add_argument("--clients", type=int, default=64, help="--bench: concurrent connections")
    args = parser.parse_args(argv)
    if args.bench:
        return run_bench(args.proxy, args.seconds, args.repeat, args.clients)
    return run(args.proxy, args.keep_logs, args.drain_first)


if __name__ == "__main__":
    sys.exit(main())
