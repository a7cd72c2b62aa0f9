"""The `http` plugin: POST the message to the recipient's URL (spec 5.6).

As in the reference, success means the TCP connection was established; the response is read in the
background and ignored.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any
from urllib.parse import urlsplit

from .. import gojson

log = logging.getLogger("resonate.http_push")


class HttpPlugin:
    name = "http"

    def __init__(self, *, workers: int = 3, timeout_s: float = 180, connect_timeout_s: float = 10,
                 ttr_ms: int = 15_000, ttc_ms: int = 60_000):
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.ttr_ms = ttr_ms
        self.ttc_ms = ttc_ms
        self._workers = asyncio.Semaphore(workers)
        self._pending: set[asyncio.Task] = set()

    async def send(self, address: Any, body: dict, head: dict[str, str]) -> bool:
        if not isinstance(address, dict) or not isinstance(address.get("url"), str):
            return False
        url = urlsplit(address["url"])
        if url.scheme not in ("http", "https") or not url.hostname:
            return False
        headers = dict(head)
        extra = address.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        headers["Content-Type"] = "application/json"
        payload = gojson.dumps(body).encode()
        async with self._workers:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(url.hostname, port,
                                            ssl=ssl.create_default_context() if url.scheme == "https" else None),
                    self.connect_timeout_s)
            except (OSError, asyncio.TimeoutError) as e:
                log.info("http recipient %s unreachable: %s", address["url"], e)
                return False
        task = asyncio.ensure_future(self._post(reader, writer, url, headers, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _post(self, reader, writer, url, headers: dict[str, str], payload: bytes) -> None:
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {len(payload)}",
                 "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + payload)
            await writer.drain()
            await asyncio.wait_for(reader.read(65536), self.timeout_s)
        except Exception as e:
            log.info("http recipient %s: %s", url.geturl(), e)
        finally:
            writer.close()
