"""A minimal gRPC unary client over one HTTP/2 connection, for load generation only.

HTTP's benchmarks drive the server with a raw keep-alive HTTP/1.1 client (bench/http_bench.py) so the load
generator costs far less than the server. grpcio's client costs ~150 us of CPU per call, more than our
server now spends answering it, so with the two sharing a machine the client, not the server, set the
gRPC figures. This is the gRPC counterpart: requests are pre-encoded frames (HPACK literals without
indexing, no encoder state), answers are matched by stream id, the trailers of a header block decoded once
and then looked up, and every call's grpc-status and `resonate-code` are checked by the caller.

Enough of HTTP/2 for a bench against a server that answers unary calls: the client announces the largest
windows (so it never has to send per-stream WINDOW_UPDATEs), replenishes the connection window, and
acknowledges SETTINGS and PING. Not a general-purpose client.
"""
from __future__ import annotations

import asyncio

import hpack

from resonate.api.grpc.http2 import (ACK, CONTENT_TYPE_INDEX, DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM,
                                     FRAME_HEADER_BYTES, GOAWAY, GRPC_CONTENT_TYPE, HEADERS, MAX_WINDOW, PING,
                                     PREFACE, RST_STREAM, SETTINGS, SETTINGS_ENABLE_PUSH,
                                     SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_UPDATE, frame, hpack_int, hpack_string,
                                     literal)

METHOD_POST, SCHEME_HTTP, PATH_NAME, AUTHORITY_NAME = 3, 6, 4, 1  # HPACK static table entries


def request_headers(path: str, authority: str) -> bytes:
    """:method POST and :scheme http from the static table; the rest literals without indexing."""
    return (hpack_int(METHOD_POST, 7, 0x80) + hpack_int(SCHEME_HTTP, 7, 0x80)
            + hpack_int(PATH_NAME, 4) + hpack_string(path.encode())
            + hpack_int(AUTHORITY_NAME, 4) + hpack_string(authority.encode())
            + hpack_int(CONTENT_TYPE_INDEX, 4) + hpack_string(GRPC_CONTENT_TYPE)
            + literal(b"te", b"trailers"))


class CallFailed(Exception):
    pass


class RawGrpcConnection(asyncio.Protocol):
    def __init__(self, authority: str):
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._next_stream = 1
        self._calls: dict[int, tuple[asyncio.Future, list[bytes]]] = {}
        self._headers_by_path: dict[str, bytes] = {}
        self._decoder = hpack.Decoder()
        self._trailers: dict[bytes, dict[bytes, bytes]] = {}  # header block -> its fields, when stateless
        self._received = 0
        self._lost: Exception | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> "RawGrpcConnection":
        _, protocol = await asyncio.get_running_loop().create_connection(lambda: cls(f"{host}:{port}"), host, port)
        return protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        settings = (SETTINGS_ENABLE_PUSH.to_bytes(2, "big") + (0).to_bytes(4, "big")
                    + SETTINGS_INITIAL_WINDOW_SIZE.to_bytes(2, "big") + MAX_WINDOW.to_bytes(4, "big"))
        transport.write(PREFACE + frame(SETTINGS, 0, 0, settings)
                        + frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")))

    def connection_lost(self, exc) -> None:
        self._fail(exc or CallFailed("connection closed"))

    def _fail(self, error: Exception) -> None:
        self._lost = error
        for future, _ in self._calls.values():
            if not future.done():
                future.set_exception(error)
        self._calls.clear()

    def call(self, path: str, message: bytes) -> asyncio.Future:
        """Sends one unary call; the future gives (grpc-status, resonate-code or None, response bytes)."""
        future = asyncio.get_running_loop().create_future()
        if self._lost is not None:
            future.set_exception(self._lost)
            return future
        stream_id = self._next_stream
        self._next_stream += 2
        block = self._headers_by_path.get(path)
        if block is None:
            block = self._headers_by_path[path] = request_headers(path, self.authority)
        self._calls[stream_id] = (future, [])
        self.transport.write(frame(HEADERS, END_HEADERS, stream_id, block) + frame(
            DATA, END_STREAM, stream_id, b"\x00" + len(message).to_bytes(4, "big") + message))
        return future

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        position, end_of_data, out = 0, len(buffer), []
        while end_of_data - position >= FRAME_HEADER_BYTES:
            length = int.from_bytes(buffer[position:position + 3], "big")
            end = position + FRAME_HEADER_BYTES + length
            if end > end_of_data:
                break
            kind, flags = buffer[position + 3], buffer[position + 4]
            stream_id = int.from_bytes(buffer[position + 5:position + 9], "big") & 0x7FFFFFFF
            payload = buffer[position + FRAME_HEADER_BYTES:end]
            position = end
            if kind == DATA:
                self._received += length
                call = self._calls.get(stream_id)
                if call is not None:
                    call[1].append(payload)
            elif kind == HEADERS:
                if not flags & END_HEADERS:
                    self._fail(CallFailed("CONTINUATION frames are not supported by this bench client"))
                    return
                if flags & END_STREAM:  # trailers (or a trailers-only answer)
                    self._finish(stream_id, self._fields(payload))
            elif kind == SETTINGS and not flags & ACK:
                out.append(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                out.append(frame(PING, ACK, 0, payload))
            elif kind == RST_STREAM:
                call = self._calls.pop(stream_id, None)
                if call is not None and not call[0].done():
                    call[0].set_exception(CallFailed(f"stream reset: {int.from_bytes(payload, 'big')}"))
            elif kind == GOAWAY:
                self._fail(CallFailed("GOAWAY"))
        self._buffer = buffer[position:]
        if self._received >= MAX_WINDOW // 2:
            out.append(frame(WINDOW_UPDATE, 0, 0, self._received.to_bytes(4, "big")))
            self._received = 0
        if out:
            self.transport.write(b"".join(out))

    def _fields(self, block: bytes) -> dict[bytes, bytes]:
        fields = self._trailers.get(block)
        if fields is None:
            fields = dict(self._decoder.decode(block, raw=True))
            if not self._decoder.header_table.dynamic_entries:  # the block changed no decoder state
                self._trailers[block] = fields
        return fields

    def _finish(self, stream_id: int, trailers: dict[bytes, bytes]) -> None:
        call = self._calls.pop(stream_id, None)
        if call is None or call[0].done():
            return
        future, chunks = call
        body = b"".join(chunks)
        code = trailers.get(b"resonate-code")
        future.set_result((int(trailers.get(b"grpc-status", b"2")), int(code) if code else None, body[5:]))


class RawGrpcPool:
    """`connections` raw connections; calls are spread over them round-robin."""

    def __init__(self, connections: list[RawGrpcConnection]):
        self.connections = connections
        self._turn = 0

    @classmethod
    async def open(cls, host: str, port: int, connections: int) -> "RawGrpcPool":
        return cls([await RawGrpcConnection.open(host, port) for _ in range(connections)])

    def call(self, path: str, message: bytes) -> asyncio.Future:
        self._turn = (self._turn + 1) % len(self.connections)
        return self.connections[self._turn].call(path, message)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
