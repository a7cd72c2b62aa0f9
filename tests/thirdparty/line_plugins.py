"""A third-party transport and sender, built only on the public plug-in interfaces (resonate.plugins),
the way a NATS transport or an SQS sender would be: nothing in the core or app.py knows them.

- `line` transport: newline-delimited JSON over TCP. A line `{"op": "promises.create", "fields": {...}}`
  is answered by a line `{"code": 201, "body": {...}}` or `{"code": 40000, "error": {...}}`.
- `memory` sender: recipients `mem://<box>` (or `{"type": "memory", "data": {"box": ...}}`) are
  appended to an in-process mailbox that tests read.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
from urllib.parse import urlsplit

from resonate.core.codes import ApiError
from resonate.core.operations import decode, render

LINE_ADDR_ENV = "RESONATE_LINE_ADDR"  # host:port; the factory reads its own setting (port 0: any free port)

MAILBOXES: dict[str, "queue.Queue[dict]"] = {}  # box -> messages delivered to it


def mailbox(box: str) -> "queue.Queue[dict]":
    return MAILBOXES.setdefault(box, queue.Queue())


class LineTransport:
    name = "line"

    def __init__(self, kernel, host: str, port: int):
        self.kernel = kernel
        self.host, self.port = host, port
        self._server: asyncio.base_events.Server | None = None
        self.address: tuple[str, int] | None = None
        self.stopped = False
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.address = self._server.sockets[0].getsockname()[:2]

    def health(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
        self.stopped = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while line := await reader.readline():
                writer.write(json.dumps(await self._answer(line)).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _answer(self, line: bytes) -> dict:
        try:
            message = json.loads(line)
            request = decode(message["op"], message.get("fields") or {})
            result = await asyncio.wrap_future(self.kernel.submit(request))
        except ApiError as e:
            return {"code": e.code, "error": e.to_json()}
        return {"code": result.code, "body": render(result.body)}


class MemorySender:
    name = "memory"
    schemes = ("mem",)
    ttr_ms = 1_000
    ttc_ms = 60_000

    def __init__(self):
        self.closed = False

    async def send(self, address, body: dict, head: dict[str, str]) -> bool:
        if self.closed or not isinstance(address, dict):
            return False
        box = address.get("box") or urlsplit(address.get("url", "")).netloc
        if not box:
            return False
        mailbox(box).put({"body": body, "head": head})
        return True

    def close(self) -> None:
        self.closed = True


def build_line_transport(services):
    host, _, port = os.environ.get(LINE_ADDR_ENV, "127.0.0.1:0").rpartition(":")
    return LineTransport(services.kernel, host, int(port))


def build_memory_sender(services):
    return MemorySender()
