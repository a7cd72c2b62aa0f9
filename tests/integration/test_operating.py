"""An operator's view, against real server processes: start-up from a v0.8.2 resonate.yaml and from
environment variables alone, router sources and sender targets from the file, the Prometheus endpoint
after traffic on HTTP, gRPC and Kafka, JWT on HTTP, gRPC and Kafka, and the request log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from resonate.api.grpc.pb import promise_pb2, promise_pb2_grpc
from tests.infra.ports import free_port, port_is_open
from tests.scenarios.kafka_runner import KafkaRunner
from tests.server import ROOT, ServerProcess, wait_for_ping
from tests.infra.wait import wait_until

FUTURE = 10**15


class PlainServer:
    """`resonate serve` with no flags at all: everything comes from the working directory and environment."""

    def __init__(self, cwd: Path, env: dict[str, str], http_port: int, *args: str):
        self.cwd, self.http_port = cwd, http_port
        self.log = cwd / "server.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "AIO_", "SYSTEM_"))}
        environment.update(HOME=str(cwd), PYTHONPATH=str(ROOT), **env)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "resonate.cli", "serve", *args], cwd=cwd,
                                         env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_ping(self.url, self.proc)
        except (AssertionError, RuntimeError) as e:
            self.stop()
            raise AssertionError(f"server did not start ({e}):\n{self.log.read_text()}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed with prometheus_client's own parser."""
    text = httpx.get(url, timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_starts_from_a_v082_resonate_yaml(tmp_path):
    http, grpc_port, poll, metrics_port = free_port(), free_port(), free_port(), free_port()
    (tmp_path / "resonate.yaml").write_text(f"""
# resonate.yaml as written for the Go server v0.8.2
logLevel: debug
metricsAddr: 127.0.0.1:{metrics_port}
system:
  signalTimeout: 2s
api:
  subsystems:
    http:
      enabled: true
      config:
        addr: 127.0.0.1:{http}
    grpc:
      config:
        addr: 127.0.0.1:{grpc_port}
aio:
  subsystems:
    store:
      sqlite:
        enabled: true
        config:
          path: example.db
  plugins:
    poll:
      config:
        addr: 127.0.0.1:{poll}
""")
    server = PlainServer(tmp_path, {}, http)
    try:
        r = httpx.post(f"{server.url}/promises", json={"id": "yaml-1", "timeout": FUTURE},
                       headers={"request-id": "req-yaml-1"})
        assert r.status_code == 201
        assert port_is_open(grpc_port) and port_is_open(poll)
        assert (tmp_path / "example.db").exists()
        assert value(scrape(f"http://127.0.0.1:{metrics_port}/metrics"), "promises_total", state="created") >= 1
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    # logLevel: debug gives one key=value line per request, with its request id
    line = next(l for l in log.splitlines() if "req-yaml-1" in l)
    assert "level=DEBUG" in line and "transport=http" in line and "operation=promises.create" in line
    assert "status=201" in line and "duration_ms=" in line
    assert "level=INFO" in log and 'msg="resonate stopped"' in log


def test_starts_from_environment_variables_alone(tmp_path):
    http, metrics_port = free_port(), free_port()
    env = {"API_SUBSYSTEMS_HTTP_CONFIG_ADDR": f"127.0.0.1:{http}", "API_SUBSYSTEMS_GRPC_ENABLED": "false",
           "AIO_PLUGINS_POLL_ENABLED": "false", "AIO_SUBSYSTEMS_STORE_SQLITE_CONFIG_PATH": "from-env.db",
           "METRICSADDR": f"127.0.0.1:{metrics_port}", "LOGLEVEL": "debug"}
    server = PlainServer(tmp_path, env, http, "--log-format", "json")
    try:
        assert httpx.post(f"{server.url}/promises", json={"id": "env-1", "timeout": FUTURE},
                          headers={"request-id": "req-env-1"}).status_code == 201
        assert (tmp_path / "from-env.db").exists()
        assert port_is_open(metrics_port)
    finally:
        server.stop()
    lines = [json.loads(l) for l in (tmp_path / "server.log").read_text().splitlines() if l.startswith("{")]
    request = next(l for l in lines if l.get("request_id") == "req-env-1")
    assert request["level"] == "DEBUG" and request["transport"] == "http" and request["status"] == 201


def test_an_unknown_key_stops_start_up_naming_it(tmp_path):
    (tmp_path / "resonate.yaml").write_text("api:\n  subsystems:\n    http:\n      config:\n        adress: :1\n")
    out = subprocess.run([sys.executable, "-m", "resonate.cli", "serve"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert out.returncode != 0 and "'api.subsystems.http.config.adress'" in out.stderr


class Sink:
    """An HTTP endpoint recording the paths it was POSTed to."""

    def __init__(self):
        self.paths: list[str] = []
        self.arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with sink.arrived:
                    sink.paths.append(self.path)
                    sink.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str, timeout: float = 20) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: path in self.paths, timeout), self.paths


def test_router_sources_and_sender_targets_from_the_file(tmp_path):
    sink = Sink()
    http = free_port()
    (tmp_path / "resonate.yaml").write_text(f"""
metricsAddr: ""
api:
  subsystems:
    http:
      config:
        addr: 127.0.0.1:{http}
    grpc:
      enabled: false
aio:
  plugins:
    poll:
      enabled: false
  subsystems:
    store:
      sqlite:
        config:
          path: ":memory:"
    sender:
      config:
        targets:
          - name: default
            type: http
            data:
              url: http://127.0.0.1:{sink.port}/default-target
          - name: myhttp
            type: http
            data:
              url: http://127.0.0.1:{sink.port}/myhttp-target
              headers:
                X-Test: abc
    router:
      config:
        sources:
          - name: default
            type: tag
            data:
              key: resonate:invoke
          - name: custom
            type: tag
            data:
              key: my:recv
""")
    server = PlainServer(tmp_path, {}, http)
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/promises", json={"id": "none", "timeout": FUTURE}).status_code == 201
            assert client.post("/promises", json={"id": "custom", "timeout": FUTURE,
                                                  "tags": {"my:recv": "myhttp"}}).status_code == 201
            assert client.post("/promises", json={"id": "dflt", "timeout": FUTURE,
                                                  "tags": {"resonate:invoke": "default"}}).status_code == 201
            sink.wait_for("/myhttp-target")
            sink.wait_for("/default-target")
            # the promise with neither tag got no task (the two others did)
            tasks = client.get("/promises/none").json()
            assert tasks["state"] == "PENDING"
        assert sorted(sink.paths) == ["/default-target", "/myhttp-target"]
    finally:
        server.stop()
        sink.server.shutdown()


def test_metrics_move_with_traffic_on_http_grpc_and_kafka(kafka_broker):
    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    target = "metrics.server"
    with ServerProcess(grpc=True, kafka_flags=["--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap,
                                               "--api-kafka-topic", topic, "--api-kafka-target", target]) as server:
        before = scrape(server.metrics_url)
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/promises", json={"id": "m-http", "timeout": FUTURE}).status_code == 201
            assert client.get("/promises/m-missing").status_code == 404
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            promise_pb2_grpc.PromisesStub(channel).CreatePromise(
                promise_pb2.CreatePromiseRequest(id="m-grpc", timeout=FUTURE), timeout=10)
        runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", target)
        try:
            reply = runner.request(runner.envelope("promises.create", {"id": "m-kafka", "timeout": FUTURE}))
            assert reply["success"], reply
        finally:
            runner.close()
        # the background passes run every signal timeout (1s): wait for the next one
        passes = ("resonate_background_passes_total", (("pass", "TimeoutPromises"), ("status", "success")))
        wait_until(lambda: scrape(server.metrics_url).get(passes, 0) > before.get(passes, 0),
                   "a background pass counted")
        after = scrape(server.metrics_url)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    for protocol in ("http", "grpc", "kafka"):
        assert moved("api_requests_total", type="CreatePromise", protocol=protocol, status="20100") == 1, protocol
        assert moved("api_duration_seconds_count", type="CreatePromise", protocol=protocol) == 1, protocol
    assert moved("api_requests_total", type="ReadPromise", protocol="http", status="40400") == 1
    assert moved("http_requests_total", method="POST", path="/promises", status="201") == 1
    assert moved("http_requests_total", method="GET", path="/promises/*id", status="404") == 1
    assert moved("promises_total", state="created") == 3
    assert moved("resonate_kafka_records_consumed_total", topic=topic) == 1
    assert moved("resonate_kafka_records_replied_total", topic=f"{topic}.replies") == 1
    assert ("resonate_kafka_lag", (("partition", "0"), ("topic", topic))) in after  # caught up: 0
    assert value(after, "resonate_kafka_lag", topic=topic, partition="0") == 0
    assert value(after, "resonate_kafka_in_flight") == 0
    assert moved("aio_submissions_total", type="store", status="success") >= 3
    assert moved("resonate_kernel_batch_size_count") >= 3
    assert value(after, "aio_worker_count", type="store:sqlite") >= 1
    assert ("resonate_kernel_queue_depth", ()) in after


# ---- JWT

@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("jwt") / "public.pem"
    path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, str(path)


def sign(private, **claims) -> str:
    return jwt.encode(claims, private, algorithm="RS256")


def test_jwt_on_http_grpc_and_kafka(signing, kafka_broker):
    private, public_path = signing
    admin, team = sign(private, role="admin"), sign(private, prefix="team-a/")
    expired = sign(private, role="admin", exp=int(time.time()) - 10)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sign(other_key, role="admin")
    topic = f"jwt-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    kafka_broker.create_topic(f"{topic}.replies", 1)
    with ServerProcess("--api-auth-public-key", public_path, grpc=True, kafka_flags=[
            "--api-kafka-enable", "--api-kafka-brokers", kafka_broker.bootstrap, "--api-kafka-topic", topic,
            "--api-kafka-target", "jwt.server"]) as server:
        with httpx.Client(base_url=server.url) as client:
            def create(pid, token=None):
                headers = {"authorization": f"Bearer {token}"} if token is not None else {}
                return client.post("/promises", json={"id": pid, "timeout": FUTURE}, headers=headers)

            assert client.get("/ping").status_code == 200
            r = create("team-a/1")
            assert r.status_code == 401 and r.json()["error"]["code"] == 40100
            for bad in ("garbage", expired, forged, "a.b.c"):
                assert create("team-a/1", bad).status_code == 401, bad
            assert create("team-a/1", team).status_code == 201
            r = create("team-b/1", team)
            assert r.status_code == 403 and r.json()["error"]["code"] == 40300
            assert create("team-b/1", admin).status_code == 201
            assert client.get("/promises/team-b/1", headers={"authorization": team}).status_code == 403
            assert client.get("/promises/team-a/1", headers={"authorization": team}).status_code == 200
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = promise_pb2_grpc.PromisesStub(channel)
            read = promise_pb2.ReadPromiseRequest(id="team-b/1")
            cases = [((), grpc.StatusCode.UNAUTHENTICATED),
                     ((("authorization", forged),), grpc.StatusCode.UNAUTHENTICATED),
                     ((("authorization", f"Bearer {team}"),), grpc.StatusCode.PERMISSION_DENIED)]
            for metadata, status in cases:
                with pytest.raises(grpc.RpcError) as e:
                    stub.ReadPromise(read, metadata=metadata, timeout=10)
                assert e.value.code() == status
            assert stub.ReadPromise(read, metadata=(("authorization", admin),), timeout=10).promise.id == "team-b/1"
        runner = KafkaRunner(kafka_broker.bootstrap, topic, f"{topic}.replies", "jwt.server")
        try:
            refused = runner.request(runner.envelope("promises.read", {"id": "team-b/1"}))
            assert not refused["success"] and refused["error"]["code"] == 40100, refused
            denied = runner.request(runner.envelope("promises.read", {"id": "team-b/1"},
                                                    metadata={"Authorization": team}))
            assert not denied["success"] and denied["error"]["code"] == 40300, denied
            allowed = runner.request(runner.envelope("promises.read", {"id": "team-b/1"},
                                                     metadata={"Authorization": admin}))
            assert allowed["success"], allowed
        finally:
            runner.close()


def test_unreadable_public_key_stops_start_up(tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    out = subprocess.run([sys.executable, "-m", "resonate.cli", "serve", "--api-auth-public-key", str(bad),
                          "--aio-store-sqlite-path", ":memory:", "--metrics-addr", ""], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--api-auth-public-key" in out.stderr and "not a PEM public key" in out.stderr
