"""A transport and a sender of a third party, found through the entry points `resonate.transports` and
`resonate.senders`, serve requests and receive task messages with no change to the core or app.py."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from resonate.app import Server
from resonate.config import Config
from resonate.plugins import Registry
from tests.thirdparty.line_plugins import mailbox

ENTRY_POINTS = """\
[resonate.transports]
line = tests.thirdparty.line_plugins:build_line_transport

[resonate.senders]
memory = tests.thirdparty.line_plugins:build_memory_sender
"""


@pytest.fixture()
def installed_plugins(tmp_path, monkeypatch):
    """What `pip install resonate-line-example` would leave on sys.path: a dist-info naming the factories."""
    dist = tmp_path / "site" / "resonate_line_example-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: resonate-line-example\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def test_entry_points_join_the_builtin_table(installed_plugins):
    registry = Registry.default()
    assert list(registry.transports) == ["grpc", "http", "kafka", "line"]
    assert list(registry.senders) == ["poll", "http", "kafka", "memory"]
    assert "line" not in Registry.default(discover=False).transports


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, op: str, **fields) -> dict:
    writer.write(json.dumps({"op": op, "fields": fields}).encode() + b"\n")
    await writer.drain()
    return json.loads(await reader.readline())


def test_a_third_party_transport_and_sender_serve_a_request(installed_plugins, tmp_path):
    uid = f"plug-{time.time_ns()}"
    invoke_box, notify_box = f"{uid}-invoke", f"{uid}-notify"
    cfg = Config(http_enable=False, grpc_enable=False, poll_enable=False, http_plugin_enable=False,
                 sqlite_path=str(tmp_path / "resonate.db"), signal_timeout_ms=100)

    async def run() -> None:
        server = Server(cfg)
        await server.start()
        try:
            assert list(server.transports) == ["line"] and list(server.senders) == ["memory"]
            host, port = server.transports["line"].address
            assert port != 0 and server.addresses() == {"transport:line": (host, port)}
            assert server.health() == {"transport:line": True, "sender:memory": True}
            reader, writer = await asyncio.open_connection(host, port)
            far = int(time.time() * 1000) + 600_000

            # a promise routed to the sender's URL scheme: its invoke message reaches the mailbox
            created = await _call(reader, writer, "promises.create", id=uid, timeout=far,
                                  tags={"resonate:invoke": f"mem://{invoke_box}"})
            assert created["code"] == 20100 and created["body"]["state"] == "PENDING", created
            message = await asyncio.to_thread(mailbox(invoke_box).get, timeout=30)
            task = message["body"]["task"]
            assert message["body"]["type"] == "invoke" and task["rootPromiseId"] == uid

            # the task is claimed through the same transport
            claimed = await _call(reader, writer, "tasks.claim", id=task["id"], counter=task["counter"],
                                  processId="worker-1", ttl=60_000)
            assert claimed["code"] == 20100, claimed

            # a recipient naming the sender by type; completing the promise notifies it
            sub = await _call(reader, writer, "promises.subscribe", id="s1", promiseId=uid, timeout=far,
                              recv={"type": "memory", "data": {"box": notify_box}})
            assert sub["code"] == 20100, sub
            done = await _call(reader, writer, "promises.complete", id=uid, state="RESOLVED")
            assert done["code"] == 20100 and done["body"]["state"] == "RESOLVED", done
            notified = await asyncio.to_thread(mailbox(notify_box).get, timeout=30)
            assert notified["body"]["type"] == "notify" and notified["body"]["promise"]["id"] == uid

            # bad input gets a clear error, and the transport keeps serving
            bad = await _call(reader, writer, "promises.create", timeout=far)
            assert bad["code"] == 40000 and "id" in json.dumps(bad["error"]), bad
            again = await _call(reader, writer, "promises.read", id=uid)
            assert again["code"] == 20000 and again["body"]["state"] == "RESOLVED"
            writer.close()
        finally:
            transport, sender = server.transports.get("line"), server.senders.get("memory")
            await server.stop()
        assert transport.stopped and sender.closed
        assert server.transports == {} and server.senders == {}

    asyncio.run(run())
