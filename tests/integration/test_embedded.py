"""`resonate.embedded.EmbeddedServer`: the real server in the test's own process, driven by real clients."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid

import grpc
import httpx
import pytest
from kafka import KafkaProducer

from resonate.api.grpc.pb import promise_pb2, promise_pb2_grpc, promise_t_pb2
from resonate.embedded import EmbeddedServer, EmbeddedServerError
from tests.scenarios.kafka_runner import ReplyCollector
from tests.infra.wait import wait_until

HOUR_MS = 3_600_000
NEVER_MS = 3_600_000  # a background period long enough that only run_background() does the work


def now_ms() -> int:
    return int(time.time() * 1000)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


class PollStream:
    """Reads one poll stream (server-sent events) in a thread; `wait_for` blocks until a matching message."""

    def __init__(self, url: str):
        self.messages: list[dict] = []
        self._cond = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self._stream = self._client.stream("GET", url)
        self._response = self._stream.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines():
                if line.startswith("data:"):
                    with self._cond:
                        self.messages.append(json.loads(line[5:]))
                        self._cond.notify_all()
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by close() or by the server stopping

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                assert left > 0, f"no matching message within {timeout}s; got {self.messages}"
                self._cond.wait(left)

    def close(self) -> None:
        self._response.close()
        self._client.close()
        self._thread.join(5)


def test_a_promise_created_over_http_is_read_over_grpc():
    with EmbeddedServer() as server:
        assert server.http_url.startswith("http://127.0.0.1:") and server.grpc_target.startswith("127.0.0.1:")
        created = httpx.post(f"{server.http_url}/promises",
                             json={"id": "order-1", "timeout": now_ms() + HOUR_MS, "tags": {"team": "a"}})
        assert created.status_code == 201, created.text
        with grpc.insecure_channel(server.grpc_target) as channel:
            reply = promise_pb2_grpc.PromisesStub(channel).ReadPromise(promise_pb2.ReadPromiseRequest(id="order-1"))
        assert reply.promise.id == "order-1" and dict(reply.promise.tags) == {"team": "a"}
        assert reply.promise.state == promise_t_pb2.PENDING


def test_runs_inside_a_running_event_loop():
    async def scenario() -> tuple[int, str]:
        async with EmbeddedServer(grpc_enable=False) as server:
            assert server.grpc_target is None
            async with httpx.AsyncClient(base_url=server.http_url) as client:
                created = await client.post("/promises", json={"id": "in-loop", "timeout": now_ms() + HOUR_MS})
                await server.arun_background()
                read = await client.get("/promises/in-loop")
            return created.status_code, read.json()["state"]

    assert asyncio.run(scenario()) == (201, "PENDING")


def test_stopping_leaves_no_thread_socket_or_file(tmp_path, monkeypatch):
    # one server first, so process-wide state that grpc sets up once (its poller) is not counted
    with EmbeddedServer():
        pass
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    threads_before = set(threading.enumerate())
    fds_before = open_fds()

    db = tmp_path / "store" / "resonate.db"
    db.parent.mkdir()
    server = EmbeddedServer(sqlite_path=str(db), sqlite_reset=True).start()
    http_port, poll_port, grpc_port = server.http_port, server.poll_port, int(server.grpc_target.rsplit(":", 1)[1])
    assert set(threading.enumerate()) - threads_before, "the server runs threads of its own"
    assert httpx.post(f"{server.http_url}/promises", json={"id": "p", "timeout": now_ms() + HOUR_MS}).status_code == 201
    with grpc.insecure_channel(server.grpc_target) as channel:
        promise_pb2_grpc.PromisesStub(channel).ReadPromise(promise_pb2.ReadPromiseRequest(id="p"))
    stream = PollStream(f"{server.poll_url}/workers/w1")
    wait_until(lambda: server.app.poll.connection_count == 1, what="poll stream connected")
    server.stop()
    stream.close()

    assert set(threading.enumerate()) == threads_before
    assert open_fds() == fds_before
    assert all(refuses_connections(port) for port in (http_port, poll_port, grpc_port))
    assert list(scratch.iterdir()) == []
    assert list(db.parent.iterdir()) == []  # sqlite_reset: the database and its WAL files are gone


def test_the_users_garbage_collector_is_left_as_it_was(tmp_path):
    """The GC tuning of `resonate serve` (resonate.cli.tune_garbage_collector) would freeze the user's
    whole heap and change their thresholds: the embedded server must not apply it."""
    import gc
    before = (gc.get_threshold(), gc.get_freeze_count())
    with EmbeddedServer(sqlite_path=str(tmp_path / "gc.db")) as server:
        assert httpx.get(f"{server.http_url}/promises/none", timeout=10).status_code == 404
        assert (gc.get_threshold(), gc.get_freeze_count()) == before
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_stop_drains_acknowledged_writes(tmp_path):
    db = str(tmp_path / "resonate.db")
    with EmbeddedServer(sqlite_path=db) as server:
        for i in range(20):
            assert httpx.post(f"{server.http_url}/promises",
                              json={"id": f"kept-{i}", "timeout": now_ms() + HOUR_MS}).status_code == 201
    with EmbeddedServer(sqlite_path=db) as again:
        found = httpx.get(f"{again.http_url}/promises", params={"id": "kept-*", "limit": 100}).json()["promises"]
        assert len(found) == 20


def test_settings_are_checked_by_name_and_type():
    with pytest.raises(TypeError, match="unknown resonate setting.*grpc_enabled"):
        EmbeddedServer(grpc_enabled=True)
    with pytest.raises(TypeError, match="signal_timeout_ms"):
        EmbeddedServer(signal_timeout_ms="fast")
    with pytest.raises(TypeError, match="http_enable"):
        EmbeddedServer(http_enable="yes")
    with pytest.raises(ValueError, match="log-level"):
        EmbeddedServer(log_level="loud")
    with pytest.raises(ValueError, match="unrecognized arguments: --no-such-flag"):
        EmbeddedServer.from_flags(["--no-such-flag"])
    cfg = EmbeddedServer.from_flags(["--system-signal-timeout", "10ms", "--api-kafka-brokers", "a:1,b:2"],
                                    grpc_addr="127.0.0.1:0").config
    assert (cfg.signal_timeout_ms, cfg.kafka_brokers, cfg.grpc_addr) == (10, ["a:1", "b:2"], ("127.0.0.1", 0))


def test_a_port_in_use_fails_the_start_cleanly():
    threads_before = set(threading.enumerate())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedServer(http_addr=("127.0.0.1", taken.getsockname()[1]))
        with pytest.raises(EmbeddedServerError, match="could not start"):
            server.start()
    assert set(threading.enumerate()) == threads_before
    with server:  # the same object starts once the port is free again
        assert httpx.get(f"{server.http_url}/ping").status_code == 200


@contextlib.contextmanager
def server_and_stream(stream_path: str, **settings):
    """A server with one poll stream connected; the server stops first, which ends the stream."""
    stream = None
    try:
        with EmbeddedServer(**settings) as server:
            stream = PollStream(f"{server.poll_url}{stream_path}")
            wait_until(lambda: server.app.poll.connection_count == 1, what="poll stream connected")
            yield server, stream
    finally:
        if stream is not None:
            stream.close()


def test_run_background_delivers_tasks_on_demand():
    with server_and_stream("/workers/w1", signal_timeout_ms=NEVER_MS) as (server, stream):
        server.run_background()  # the loops' first pass, run at start, is behind us
        created = httpx.post(f"{server.http_url}/promises", json={
            "id": "job-1", "timeout": now_ms() + HOUR_MS, "tags": {"resonate:invoke": "poll://any@workers"}})
        assert created.status_code == 201, created.text
        server.run_background()
        message = stream.wait_for(lambda m: m.get("type") == "invoke")
        assert message["task"]["rootPromiseId"] == "job-1"
        assert message["href"]["claim"].startswith(server.http_url)  # task links name the port actually bound


def test_promise_timeouts_in_milliseconds():
    with server_and_stream("/watchers/w1", signal_timeout_ms=NEVER_MS) as (server, stream):
        server.run_background()
        deadline = now_ms() + 50
        assert httpx.post(f"{server.http_url}/promises", json={"id": "soon", "timeout": deadline}).status_code == 201
        subscribed = httpx.post(f"{server.http_url}/promises/subscribe/soon",
                                json={"id": "w", "timeout": now_ms() + HOUR_MS, "recv": "poll://any@watchers"})
        if subscribed.status_code == 200:  # a slow machine subscribed after the deadline: timed out at once
            assert subscribed.json()["promise"]["state"] == "REJECTED_TIMEDOUT", subscribed.text
            return
        assert subscribed.status_code == 201, subscribed.text
        wait_until(lambda: now_ms() > deadline, what="the promise's deadline")
        server.run_background()  # times the promise out (no read did) and sends the notification
        message = stream.wait_for(lambda m: m.get("type") == "notify")
        assert message["promise"]["id"] == "soon" and message["promise"]["state"] == "REJECTED_TIMEDOUT"


def test_short_period_runs_background_work_by_itself():
    with server_and_stream("/workers/w1", signal_timeout_ms=10) as (server, stream):
        httpx.post(f"{server.http_url}/promises", json={
            "id": "job-2", "timeout": now_ms() + HOUR_MS, "tags": {"resonate:invoke": "poll://any@workers"}})
        assert stream.wait_for(lambda m: m.get("type") == "invoke")["task"]["rootPromiseId"] == "job-2"


def test_logs_are_kept_per_server():
    with EmbeddedServer(grpc_enable=False) as server:
        pass
    assert "resonate serving" in server.log_text()
    assert server.log_text(since=time.time() + 60) == ""


def test_kafka_request_reply_and_delivery_leave_nothing_behind(kafka_broker):
    assert EmbeddedServer().config.kafka_topic != EmbeddedServer().config.kafka_topic  # never shared by default
    topic = f"embedded-{uuid.uuid4().hex[:8]}"
    reply_topic, task_topic = f"{topic}.replies", f"{topic}.tasks"
    for name in (topic, reply_topic, task_topic):
        kafka_broker.create_topic(name, 1)
    with EmbeddedServer(grpc_enable=False):
        pass  # process-wide set-up out of the way
    threads_before = set(threading.enumerate())
    collector = ReplyCollector(kafka_broker.bootstrap, reply_topic)
    tasks = ReplyCollector(kafka_broker.bootstrap, task_topic)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    ours = set(threading.enumerate()) - threads_before
    try:
        with EmbeddedServer(kafka_enable=True, kafka_brokers=[kafka_broker.bootstrap], kafka_topic=topic,
                            kafka_plugin_enable=True, kafka_plugin_brokers=kafka_broker.bootstrap,
                            grpc_enable=False) as server:
            assert server.kafka_topic == topic and server.kafka_brokers == [kafka_broker.bootstrap]
            assert server.kafka_target.startswith("resonate.embedded.")
            envelope = {"target": server.kafka_target, "replyTo": {"topic": reply_topic, "target": "me"},
                        "correlationId": "c1", "operation": "promises.create",
                        "payload": {"id": "via-kafka", "timeout": now_ms() + HOUR_MS,
                                    "tags": {"resonate:invoke": f"kafka://{task_topic}"}}}
            producer.send(server.kafka_topic, json.dumps(envelope).encode()).get(timeout=30)
            reply = collector.wait("c1", timeout=60)[0]
            assert reply["success"] is True and reply["response"]["id"] == "via-kafka"
            assert httpx.get(f"{server.http_url}/promises/via-kafka").json()["state"] == "PENDING"
            wait_until(lambda: any(json.loads(r.value).get("type") == "invoke" for r in tasks.records),
                       timeout=60, what="the task delivered to its kafka:// recipient")
    finally:
        producer.close()
        collector.close()
        tasks.close()
    # the server's consumer, producer and sender threads all end (kafka-python's wind down asynchronously)
    wait_until(lambda: set(threading.enumerate()) - ours <= threads_before, timeout=30,
               what="every thread of the server ended")


def test_postgres_store(postgres_server, postgres_database):
    settings = dict(postgres_enable=True, postgres_host="127.0.0.1", postgres_port=postgres_server.port,
                    postgres_username=postgres_server.user, postgres_password=postgres_server.password,
                    postgres_database=postgres_database.rsplit("/", 1)[1])
    promise_id = f"pg-{uuid.uuid4().hex[:8]}"
    with EmbeddedServer(**settings) as first:
        assert httpx.post(f"{first.http_url}/promises",
                          json={"id": promise_id, "timeout": now_ms() + HOUR_MS}).status_code == 201
    with EmbeddedServer(**settings) as second:  # the store outlives the server
        assert httpx.get(f"{second.http_url}/promises/{promise_id}").json()["state"] == "PENDING"
