"""The composition root in-process: built-in transports and senders bind port 0 and report the bound
address; stop closes everything it started (threads, sockets, open streams, deliveries in flight)."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from resonate.app import Server
from resonate.config import Config
from resonate.core.delivery.kafka import KafkaPlugin

ANSWER_S = 30


def _resonate_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resonate-") and t.is_alive()]


def _read_to_end(conn: socket.socket) -> bool:
    """True once the peer closed the connection; a socket timeout (still open) raises instead."""
    while conn.recv(65536):
        pass
    return True


def test_builtin_parts_bind_port_zero_and_stop_releases_everything(tmp_path):
    recipient = socket.create_server(("127.0.0.1", 0))  # accepts a delivery and never answers it
    recipient_url = f"http://127.0.0.1:{recipient.getsockname()[1]}/never-answers"
    cfg = Config(http_addr=("127.0.0.1", 0), grpc_addr=("127.0.0.1", 0), poll_addr=("127.0.0.1", 0),
                 sqlite_path=str(tmp_path / "resonate.db"), signal_timeout_ms=100)

    async def run() -> None:
        server = Server(cfg)
        await server.start()
        stopped = False
        try:
            addresses = server.addresses()
            assert set(addresses) == {"transport:http", "transport:grpc", "sender:poll"}
            assert all(port != 0 for _, port in addresses.values())
            assert all(server.health().values())
            http_url = "http://%s:%d" % addresses["transport:http"]
            poll_url = "http://%s:%d" % addresses["sender:poll"]
            async with httpx.AsyncClient(timeout=ANSWER_S) as client:
                assert (await client.get(f"{http_url}/ping")).json() == {"status": "ok"}
                async with client.stream("GET", f"{poll_url}/group/listener") as stream:
                    lines = stream.aiter_lines()
                    assert await anext(lines) == ": connected"
                    # a delivery in flight: the recipient took the connection and never answers
                    far = int(time.time() * 1000) + 600_000
                    r = await client.post(f"{http_url}/promises", json={
                        "id": f"life-{time.time_ns()}", "timeout": far, "tags": {"resonate:invoke": recipient_url}})
                    assert r.status_code == 201
                    conn, _ = await asyncio.to_thread(recipient.accept)
                    conn.settimeout(ANSWER_S)
                    assert (await asyncio.to_thread(conn.recv, 65536)).startswith(b"POST /never-answers ")
                    assert server.senders["http"].in_flight == 1
                    # stop ends the open stream, cancels the unanswered delivery, and closes the rest
                    await server.stop()
                    stopped = True
                    rest = [line async for line in lines]
                    assert rest == [] or all(not line or line.startswith(":") for line in rest)
            assert await asyncio.to_thread(_read_to_end, conn)  # the delivery's connection was closed (EOF)
            conn.close()
            for address in addresses.values():
                with socket.socket() as probe:
                    assert probe.connect_ex(address) != 0, f"{address} still listening after stop"
        finally:
            if not stopped:
                await server.stop()

    asyncio.run(run())
    recipient.close()
    assert _resonate_threads() == []


def test_a_part_that_fails_to_start_closes_what_was_started(tmp_path):
    taken = socket.create_server(("127.0.0.1", 0))  # the HTTP API's port is already in use
    cfg = Config(http_addr=taken.getsockname(), grpc_enable=False, poll_addr=("127.0.0.1", 0),
                 sqlite_path=str(tmp_path / "resonate.db"))

    async def run() -> Server:
        server = Server(cfg)
        with pytest.raises(SystemExit):
            await server.start()
        return server

    server = asyncio.run(run())
    taken.close()
    assert server.senders == {} and server.transports == {}
    assert _resonate_threads() == []  # the kernel's writers were stopped again


def test_the_kafka_sender_is_closed_at_stop(tmp_path, monkeypatch):
    closed = []
    original = KafkaPlugin.close

    def close(self):
        closed.append(threading.current_thread() is not threading.main_thread())
        original(self)

    monkeypatch.setattr(KafkaPlugin, "close", close)
    cfg = Config(http_enable=False, grpc_enable=False, poll_enable=False, kafka_plugin_enable=True,
                 kafka_plugin_brokers=["127.0.0.1:1"], sqlite_path=str(tmp_path / "resonate.db"))

    async def run() -> None:
        server = Server(cfg)
        await server.start()
        assert isinstance(server.senders["kafka"], KafkaPlugin)
        await server.stop()

    asyncio.run(run())
    assert closed == [True]  # closed once, and off the event loop's thread (it blocks)


def test_resonate_serve_freezes_its_start_up_heap_and_collects_young_objects_less_often():
    """The server process (not an embedding one, see test_embedded.py) tunes its garbage collector once
    it listens: the start-up heap is frozen, so full collections no longer walk it (the 64-client p99)."""
    from resonate.cli import GC_YOUNG_THRESHOLD
    from tests.infra.wait import wait_until
    from tests.server import ServerProcess

    with ServerProcess("--log-level", "debug") as server:
        wait_until(lambda: "garbage collector tuned" in server.log_tail(400), "the tuning log line")
        line = next(x for x in server.log_tail(400).splitlines() if "garbage collector tuned" in x)
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    assert int(fields["frozen_objects"]) > 10_000, line  # the imports and the app, at least
    assert fields["thresholds"].split(",")[0] == str(GC_YOUNG_THRESHOLD), line


def test_tune_garbage_collector_freezes_and_raises_the_young_threshold():
    import gc
    from resonate.cli import GC_YOUNG_THRESHOLD, tune_garbage_collector
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
