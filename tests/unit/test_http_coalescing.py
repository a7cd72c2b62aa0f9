"""CoalescingTransport: an answer's head and body leave in one write; a lone write (a stream's chunk)
still leaves within the loop iteration; close flushes, abort discards."""
from __future__ import annotations

import asyncio

import httpx

from resonate.api.http.server import create_http_app
from resonate.api.http.transport import AsgiServer, CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.events: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.events.append("close")

    def abort(self) -> None:
        self.events.append("abort")

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_in_one_iteration_leave_together_and_a_lone_write_leaves_at_its_end():
    async def go():
        real = RecordingTransport()
        transport = CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")  # ignored, as asyncio's transports ignore it
        assert transport.get_write_buffer_size() == 19
        transport.write(b"body")
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        transport.write(b"data: event\n\n")  # a stream chunk with nothing after it
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        await asyncio.sleep(0)  # the end of this loop iteration
        assert real.writes[-1] == b"data: event\n\n"
        transport.write(b"last")
        transport.close()
        assert real.writes[-1] == b"last" and real.events == ["close"]
        transport.write(b"dropped")
        transport.abort()
        await asyncio.sleep(0)
        assert real.writes[-1] == b"last" and real.events == ["close", "abort"]
        assert transport.is_closing() is False  # everything else is the real transport's

    asyncio.run(go())


def test_the_api_server_answers_keep_alive_requests_through_it():
    async def go():
        server = AsgiServer(create_http_app(None), ("127.0.0.1", 0), 1, http=CoalescingHttpToolsProtocol)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.address[1]}") as client:
                for _ in range(3):  # one keep-alive connection
                    r = await client.get("/ping")
                    assert (r.status_code, r.content) == (200, b'{"status":"ok"}')
                    assert r.headers["content-length"] == "15" and "date" in r.headers
                assert (await client.get("/nowhere")).text == "404 page not found"
        finally:
            await server.stop()

    asyncio.run(go())


def test_the_framework_app_still_sees_a_trusted_proxys_scheme():
    """uvicorn's proxy-headers middleware now wraps only the framework app behind the fast path (which reads
    neither client address nor scheme): its redirects still follow X-Forwarded-Proto from a trusted proxy."""
    async def go():
        server = AsgiServer(create_http_app(None), ("127.0.0.1", 0), 1, http=CoalescingHttpToolsProtocol)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.address[1]}") as client:
                r = await client.post("/callbacks/", headers={"x-forwarded-proto": "https"})
                assert (r.status_code, r.headers["location"]) == (307, f"https://127.0.0.1:{server.address[1]}/callbacks")
                r = await client.post("/callbacks/")
                assert r.headers["location"] == f"http://127.0.0.1:{server.address[1]}/callbacks"
        finally:
            await server.stop()

    asyncio.run(go())
