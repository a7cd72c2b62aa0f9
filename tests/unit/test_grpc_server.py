"""The gRPC transport's start and stop, in-process."""
from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

from resonate.api.grpc.server import GrpcServer
from tests.infra.ports import free_port

GRACE_MS = 1000


def test_the_port_listens_before_start_first_yields_to_the_loop():
    """The app starts transports one after another; while gRPC's start awaits, the loop already serves
    HTTP. A client that saw HTTP answer must find the gRPC port listening too (not refused)."""
    port = free_port()
    server = GrpcServer(kernel=None, cfg=SimpleNamespace(grpc_addr=("127.0.0.1", port), http_timeout_ms=GRACE_MS))

    async def scenario():
        starting = asyncio.ensure_future(server.start())
        await asyncio.sleep(0)  # start() runs up to its first suspension
        assert not starting.done()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted by the kernel's backlog: the socket listens
        await starting
        assert server.address == ("127.0.0.1", port) and server.health()
        await server.stop()
        assert not server.health()

    asyncio.run(scenario())
