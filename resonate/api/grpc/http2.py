"""gRPC's unary calls over HTTP/2 (RFC 9113, gRPC's PROTOCOL-HTTP2.md), on the app's event loop.

A server connection reads frames, decodes request headers with the `hpack` library, collects each
stream's request message, and hands a complete `UnaryCall` to `dispatch`. The call is answered later
(from any loop callback) with `call.reply(...)` or `call.fail(...)`. What this layer does not know:
services, methods and what a message means (server.py and mapping.py).

Why our own HTTP/2 and not grpcio's server: per call, grpcio's Python server costs 175-200 us of CPU
with no handler at all, more than a whole HTTP request of ours (docs/performance.md section 9). This
layer costs about a fifth of that, answers many calls of one connection with one write, and needs no
thread hand-off: the kernel's answer arrives on the loop.

Scope, deliberately small: unary calls only (every RPC of the reference's protos is unary), plain TCP
(prior knowledge, no TLS, as the reference), no server push, responses never compressed. Request
messages may be compressed with gzip or deflate. Flow control is honoured both ways.
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from collections import deque
from typing import Callable

import hpack
from hpack.huffman_table import HUFFMAN_COMPLETE, HUFFMAN_EMIT_SYMBOL, HUFFMAN_FAIL, HUFFMAN_TABLE
from hpack.table import HeaderTable

log = logging.getLogger("resonate.grpc")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_BYTES = 9
MESSAGE_PREFIX_BYTES = 5  # gRPC: 1 byte compressed flag, 4 bytes big-endian length

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# frame flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# settings
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
# error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_FRAME_LIMIT = (1 << 24) - 1
MAX_WINDOW = (1 << 31) - 1
PING_BYTES = 8
PING_ACK_HOLD_LIMIT_S = 0.02  # a PING acknowledgement held for a call's answer leaves by then, answer or not

# what we offer the client
MAX_CONCURRENT_STREAMS = 1_000  # more concurrent calls wait in the client, as with grpc-go's limit
STREAM_WINDOW = 1 << 20  # per-stream receive window: a 4 MiB request needs few WINDOW_UPDATEs
CONNECTION_WINDOW = 1 << 24  # receive window of the whole connection
MAX_HEADER_LIST_BYTES = 1 << 16  # decoded request headers (metadata) per call
MAX_HEADER_BLOCK_BYTES = 2 * MAX_HEADER_LIST_BYTES  # encoded, HEADERS + CONTINUATION together

# gRPC status codes (grpc/status/status.proto)
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, \
    RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, \
    DATA_LOSS, UNAUTHENTICATED = range(17)

HTTP_UNSUPPORTED_MEDIA_TYPE = 415
HTTP_METHOD_NOT_ALLOWED = 405
GRPC_CONTENT_TYPE = b"application/grpc"


class ConnectionFailure(Exception):
    """A connection error (RFC 9113 5.4.1): the connection ends with GOAWAY carrying `code`."""

    def __init__(self, code: int, debug: str):
        super().__init__(debug)
        self.code = code


# -- HPACK encoding of what we send: literals without indexing, so no encoder state to keep in step

def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(raw: bytes) -> bytes:
    return hpack_int(len(raw), 7) + raw


def literal(name: bytes, value: bytes) -> bytes:
    """One header as an HPACK literal without indexing, with a new name."""
    return b"\x00" + hpack_string(name) + hpack_string(value)


# HPACK (RFC 7541 6): a field's first byte says its representation. The shapes `_leading_fields` decodes:
INDEXED_NONE = 0x80  # 0x81-0xFE: an indexed field (index 1-126); 0x80 (index 0) is invalid, 0xFF a longer index
INDEXED_MULTIBYTE = 0xFF
INCREMENTAL_FIRST, INCREMENTAL_LAST = 0x41, 0x7E  # a literal added to the table, its name at index 1-62
INCREMENTAL_MULTIBYTE = 0x7F  # ... its name at index 63 or more (the next byte adds to 63)
INTEGER_CONTINUES = 0x80  # an HPACK integer's continuation byte with more bytes after it
SIZE_UPDATE_MASK, SIZE_UPDATE = 0xE0, 0x20  # a dynamic table size update (only at a block's start)
NOT_INDEXED_MASK = 0xEF  # 0x01-0x0E (without indexing) or 0x11-0x1E (never indexed): name at index 1-14
NOT_INDEXED_FIRST, NOT_INDEXED_LAST = 0x01, 0x0E
NOT_INDEXED_MULTIBYTE = 0x0F  # 0x0F or 0x1F: ... its name at index 15 or more (the next byte adds to 15)
# a literal whose name follows as a string: added to the table, without indexing, never indexed
INCREMENTAL_NEW_NAME, NOT_INDEXED_NEW_NAME, NEVER_INDEXED_NEW_NAME = 0x40, 0x00, 0x10
STRING_HUFFMAN = 0x80  # a string's first byte: Huffman flag and a 7-bit length (0x7F: a longer length)
STRING_LENGTH_MULTIBYTE = 0x7F
HEADER_ENTRY_OVERHEAD = 32  # RFC 7541 4.1: what each header adds to a header list's size
STATIC_TABLE = HeaderTable.STATIC_TABLE  # RFC 7541 appendix A: indexes 1-61, the same in every connection
STATIC_TABLE_LENGTH = len(STATIC_TABLE)


HUFFMAN_NIBBLE_STATES = 16  # hpack's decoding table: 16 transitions per state, one per 4-bit nibble
HUFFMAN_STATES = len(HUFFMAN_TABLE) // HUFFMAN_NIBBLE_STATES
# per (state, byte), filled as clients' strings need them: at most 256 x 256 small tuples
_byte_steps: list[tuple[int, bytes, bool, bool] | None] = [None] * (HUFFMAN_STATES << 8)


def _byte_step(key: int) -> tuple[int, bytes, bool, bool]:
    """hpack's two nibble transitions for one input byte, as one: (next state, the symbols emitted, whether
    the string is invalid, whether it may end here)."""
    state, emitted, failed = key >> 8, bytearray(), False
    flags = 0
    for nibble in ((key & 0xFF) >> 4, key & 0x0F):
        state, flags, symbol = HUFFMAN_TABLE[state * HUFFMAN_NIBBLE_STATES + nibble]
        if flags & HUFFMAN_FAIL:
            failed = True
            break
        if flags & HUFFMAN_EMIT_SYMBOL:
            emitted.append(symbol)
    step = _byte_steps[key] = (state, bytes(emitted), failed, bool(flags & HUFFMAN_COMPLETE))
    return step


def huffman_decode(raw: bytes) -> bytes:
    """hpack's `decode_huffman` (same table, same errors), a byte rather than a nibble per step: a short
    string such as grpc-timeout's, new in every call, in about a third of the time."""
    state, out, complete = 0, b"", True
    steps = _byte_steps
    for byte in raw:
        key = state << 8 | byte
        state, emitted, failed, complete = steps[key] or _byte_step(key)
        if failed:
            raise hpack.HPACKDecodingError("Invalid Huffman string")
        if emitted:
            out += emitted
    if not complete:
        raise hpack.HPACKDecodingError("Incomplete Huffman string")
    return out


def _leading_fields(block: bytes, table) -> tuple[list[tuple[bytes, bytes]], int, int]:
    """The block's leading fields that are indexed, or literals (name indexed below 191 or 143, or a
    string) with strings shorter than 127 bytes: what a client sends, a changing grpc-timeout included,
    and the names its table evicted (te, grpc-timeout) sent again. Decoded with `table` (added to it as the
    decoder would) and `huffman_decode`; returns them, where the first other field starts, and their size
    as a header list counts it. Size updates, long strings and indexes past the table are left to the
    decoder, which raises the errors."""
    headers = []
    position = listed = 0
    end = len(block)
    dynamic = table.dynamic_entries
    while position < end:
        byte = block[position]
        # `position` moves only past a field decoded whole: the decoder takes the block from there
        if byte > INDEXED_NONE:
            if byte == INDEXED_MULTIBYTE:  # index 127-254: one more byte (a warm table of many entries)
                if position + 1 >= end or block[position + 1] >= INTEGER_CONTINUES:
                    break
                index, start = INDEXED_MULTIBYTE - INDEXED_NONE - 1 + block[position + 1], position + 2
            else:
                index, start = (byte & 0x7F) - 1, position + 1
            if index < STATIC_TABLE_LENGTH:
                field = STATIC_TABLE[index]
            elif index - STATIC_TABLE_LENGTH < len(dynamic):
                field = dynamic[index - STATIC_TABLE_LENGTH]
            else:
                break
            headers.append(field)
            listed += len(field[0]) + len(field[1]) + HEADER_ENTRY_OVERHEAD
            position = start
            continue
        start = position + 1
        if INCREMENTAL_FIRST <= byte <= INCREMENTAL_LAST:
            index, added = (byte & 0x3F) - 1, True
        elif byte == INCREMENTAL_MULTIBYTE:  # name index 63-190: one more byte
            if start >= end or block[start] >= INTEGER_CONTINUES:
                break
            index, added = INCREMENTAL_MULTIBYTE - INCREMENTAL_NEW_NAME - 1 + block[start], True
            start += 1
        elif NOT_INDEXED_FIRST <= byte & NOT_INDEXED_MASK <= NOT_INDEXED_LAST:
            index, added = (byte & 0x0F) - 1, False
        elif byte & NOT_INDEXED_MASK == NOT_INDEXED_MULTIBYTE:  # e.g. content-type (31) without indexing
            if start >= end or block[start] >= INTEGER_CONTINUES:
                break
            index, added = NOT_INDEXED_MULTIBYTE - 1 + block[start], False
            start += 1
        elif byte == INCREMENTAL_NEW_NAME or byte == NOT_INDEXED_NEW_NAME or byte == NEVER_INDEXED_NEW_NAME:
            index, added = -1, byte == INCREMENTAL_NEW_NAME  # the name follows as a string
        else:
            break
        if index < 0:
            name, start = _short_string(block, start, end)
            if name is None:
                break
        elif index < STATIC_TABLE_LENGTH:
            name = STATIC_TABLE[index][0]
        elif index - STATIC_TABLE_LENGTH < len(dynamic):
            name = dynamic[index - STATIC_TABLE_LENGTH][0]
        else:
            break
        value, start = _short_string(block, start, end)
        if value is None:
            break
        if added:
            table.add(name, value)
        headers.append((name, value))
        listed += len(name) + len(value) + HEADER_ENTRY_OVERHEAD
        position = start
    return headers, position, listed


def _short_string(block: bytes, start: int, end: int) -> tuple[bytes | None, int]:
    """An HPACK string shorter than 127 bytes at `start` (decoded, and where it ends), or None."""
    if start >= end:
        return None, start
    first = block[start]
    length = first & STRING_LENGTH_MULTIBYTE
    if length == STRING_LENGTH_MULTIBYTE or start + 1 + length > end:
        return None, start
    raw = block[start + 1:start + 1 + length]
    return (huffman_decode(raw) if first & STRING_HUFFMAN else raw), start + 1 + length

STATUS_200 = b"\x88"  # static table entry 8, ":status: 200"
CONTENT_TYPE_INDEX = 31  # static table entry 31, "content-type"
RESPONSE_HEADERS = STATUS_200 + hpack_int(CONTENT_TYPE_INDEX, 4) + hpack_string(GRPC_CONTENT_TYPE)
UNCOMPRESSED = b"\x00"  # a message's compressed flag

# RFC 3986 unreserved-ish: what gRPC lets through grpc-message unescaped (PROTOCOL-HTTP2.md)
_MESSAGE_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def percent_encode(text: str) -> bytes:
    raw = text.encode("utf-8")
    if all(b in _MESSAGE_SAFE for b in raw):
        return raw
    return b"".join(bytes((b,)) if b in _MESSAGE_SAFE else b"%%%02X" % b for b in raw)


def trailers_block(status: int, message: str | None, metadata: tuple[tuple[bytes, bytes], ...]) -> bytes:
    block = literal(b"grpc-status", str(status).encode())
    if message:
        block += literal(b"grpc-message", percent_encode(message))
    for name, value in metadata:
        block += literal(name, value)
    return block


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF, kind, flags)) + stream_id.to_bytes(4, "big") + payload


# the fixed parts of an answer's frame headers (length, type, flags; the stream id follows)
RESPONSE_HEADERS_FRAME_HEAD = frame(HEADERS, END_HEADERS, 0, RESPONSE_HEADERS)[:FRAME_HEADER_BYTES - 4]
DATA_FRAME_TYPE_AND_NO_FLAGS = bytes((DATA, 0))
TRAILERS_FRAME_TYPE_AND_FLAGS = bytes((HEADERS, END_STREAM | END_HEADERS))


def _settings_payload(settings: dict[int, int]) -> bytes:
    return b"".join(key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in settings.items())


SERVER_PREFACE = (
    frame(SETTINGS, 0, 0, _settings_payload({SETTINGS_MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                                             SETTINGS_INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                                             SETTINGS_MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_BYTES}))
    + frame(WINDOW_UPDATE, 0, 0, (CONNECTION_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")))


# -- calls and streams

class UnaryCall:
    """One request, complete: its path, headers (lower-case names, bytes) and message bytes. Answer it once
    with `reply` or `fail`; an answer to a call whose client has gone (reset, disconnected) is dropped."""

    __slots__ = ("path", "headers", "message", "_stream", "_connection")

    def __init__(self, connection: "Http2Connection", stream: "_Stream", path: str, headers: dict, message: bytes):
        self._connection, self._stream = connection, stream
        self.path, self.headers, self.message = path, headers, message

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    @property
    def open(self) -> bool:
        """False once the client has reset the stream or the connection is gone."""
        return self._stream.open and not self._connection.closed

    def reply(self, message: bytes, trailers: bytes) -> None:
        """Answers with one message and `trailers` (a block made by `trailers_block`)."""
        self._connection.send_reply(self._stream, message, trailers)

    def fail(self, status: int, message: str, metadata: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Answers with a gRPC error status and no message (a trailers-only response)."""
        self._connection.send_trailers_only(self._stream, trailers_block(status, message, metadata))


class _Stream:
    __slots__ = ("id", "path", "headers", "chunks", "received", "recv_unacked", "send_window", "open",
                 "receiving", "pending")

    def __init__(self, stream_id: int, send_window: int):
        self.id = stream_id
        self.path = ""
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.received = 0  # request body bytes so far (gRPC prefix included)
        self.recv_unacked = 0
        self.send_window = send_window
        self.open = True  # not reset, not fully answered
        self.receiving = True  # the client has not ended its side
        self.pending: tuple[memoryview, bytes] | None = None  # answer bytes waiting for window, trailers


Dispatch = Callable[[UnaryCall], None]


class Http2Connection(asyncio.Protocol):
    """One client connection. `dispatch` is called on the loop with each complete unary call."""

    def __init__(self, dispatch: Dispatch, max_message_bytes: int, connections: set | None = None):
        self.dispatch = dispatch
        self.max_message_bytes = max_message_bytes
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = b""
        self._preface_seen = False
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
        self._streams: dict[int, _Stream] = {}
        self._last_stream_id = 0
        # a header block awaiting CONTINUATION: (stream id, its stream or None if closed, HEADERS flags, pieces)
        self._headers_in_progress: tuple[int, _Stream | None, int, list[bytes]] | None = None
        # receive flow control
        self._recv_window = CONNECTION_WINDOW
        self._recv_unacked = 0
        # send flow control and the peer's settings
        self._send_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._blocked: deque[_Stream] = deque()  # streams with answer bytes waiting for window
        # output written once per loop turn
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._parsing = False  # inside data_received, which writes once at its end
        # One PING acknowledgement may wait, while a call is in flight, to leave after that call's answer in
        # its write: grpc-go pings after every answer it reads, and a write per PING cost a send per call.
        # Sent after the answer, the next ping comes after every other answer.
        self._held_ack: bytes | None = None
        self._held_ack_timer: asyncio.TimerHandle | None = None
        self._goaway_sent = False

    # -- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        if self.connections is not None:
            self.connections.add(self)
        transport.write(SERVER_PREFACE)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.connections is not None:
            self.connections.discard(self)
        for stream in self._streams.values():
            stream.open = False
        self._streams.clear()
        self._blocked.clear()
        if self._held_ack_timer is not None:
            self._held_ack_timer.cancel()
            self._held_ack_timer = None

    def pause_writing(self) -> None:
        # the client is not reading what we write (answers, PING and SETTINGS acknowledgements): stop
        # reading its frames until it does, so a client cannot grow our output buffer without bound
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buffer = self._buffer + data if self._buffer else data
        self._parsing = True
        try:
            position = 0
            if not self._preface_seen:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(buffer):
                        raise ConnectionFailure(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                    self._buffer = buffer
                    return
                if not buffer.startswith(PREFACE):
                    raise ConnectionFailure(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                self._preface_seen = True
                position = len(PREFACE)
            end_of_data = len(buffer)
            while end_of_data - position >= FRAME_HEADER_BYTES:
                length = (buffer[position] << 16) | (buffer[position + 1] << 8) | buffer[position + 2]
                if length > DEFAULT_MAX_FRAME:
                    raise ConnectionFailure(FRAME_SIZE_ERROR, f"a frame of {length} bytes exceeds {DEFAULT_MAX_FRAME}")
                end = position + FRAME_HEADER_BYTES + length
                if end > end_of_data:
                    break
                kind = buffer[position + 3]
                flags = buffer[position + 4]
                stream_id = int.from_bytes(buffer[position + 5:position + 9], "big") & 0x7FFFFFFF
                payload = buffer[position + FRAME_HEADER_BYTES:end]
                position = end
                self._on_frame(kind, flags, stream_id, payload)
                if self.closed:
                    return
            self._buffer = buffer[position:]
        except ConnectionFailure as e:
            self._fail_connection(e.code, str(e))
            return
        finally:
            self._parsing = False
        self._maybe_ack_received()
        if self._held_ack is not None and self._streams and not self._out:
            if self._held_ack_timer is None:
                self._held_ack_timer = self._loop.call_later(PING_ACK_HOLD_LIMIT_S, self._held_ack_due)
            return
        self.flush()

    def _held_ack_due(self) -> None:
        self._held_ack_timer = None
        if self._held_ack is not None:
            self.flush()

    # -- frames in

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._headers_in_progress is not None and kind != CONTINUATION:
            raise ConnectionFailure(PROTOCOL_ERROR, "a header block was interrupted before END_HEADERS")
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif kind == SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == PING:
            if stream_id != 0:
                raise ConnectionFailure(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != PING_BYTES:
                raise ConnectionFailure(FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if not flags & ACK:
                ack = frame(PING, ACK, 0, payload)
                if self._held_ack is None:
                    self._held_ack = ack
                else:  # a second PING before the first was acknowledged: neither waits
                    self._out += (self._held_ack, ack)
                    self._held_ack = None
        elif kind == RST_STREAM:
            if stream_id == 0:
                raise ConnectionFailure(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise ConnectionFailure(FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
            if stream_id > self._last_stream_id:
                raise ConnectionFailure(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            self._close_stream(stream_id)
        elif kind == GOAWAY:
            if stream_id != 0:
                raise ConnectionFailure(PROTOCOL_ERROR, "GOAWAY on a stream")
            # the client opens no more streams; the ones it has still get their answers
        elif kind == PRIORITY:
            if stream_id == 0:
                raise ConnectionFailure(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                self._reset(stream_id, FRAME_SIZE_ERROR)
        elif kind == PUSH_PROMISE:
            raise ConnectionFailure(PROTOCOL_ERROR, "a client sent PUSH_PROMISE")
        # any other frame type is an extension: ignored (RFC 9113 4.1)

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ConnectionFailure(PROTOCOL_ERROR, "padding as long as the frame")
        return payload[1:len(payload) - payload[0]]

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionFailure(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            block = block[5:]
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id <= self._last_stream_id:
                # a closed stream (answered early or reset); its block must still be decoded
                stream = None
            elif stream_id % 2 == 0:
                raise ConnectionFailure(PROTOCOL_ERROR, "a client opened an even-numbered stream")
            else:
                self._last_stream_id = stream_id
                stream = _Stream(stream_id, self._peer_initial_window)
                if self._goaway_sent or len(self._streams) >= MAX_CONCURRENT_STREAMS:
                    stream.open = False
                    self._reset(stream_id, REFUSED_STREAM)
                else:
                    self._streams[stream_id] = stream
        elif not stream.receiving:
            raise ConnectionFailure(STREAM_CLOSED, "HEADERS on a half-closed stream")
        if flags & END_HEADERS:
            self._on_header_block(stream, stream_id, flags, block)
        else:
            self._headers_in_progress = (stream_id, stream, flags, [block])

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._headers_in_progress is None:
            raise ConnectionFailure(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        first_id, stream, first_flags, blocks = self._headers_in_progress
        if stream_id != first_id:
            raise ConnectionFailure(PROTOCOL_ERROR, "CONTINUATION on another stream")
        blocks.append(payload)
        if sum(map(len, blocks)) > MAX_HEADER_BLOCK_BYTES:
            raise ConnectionFailure(COMPRESSION_ERROR, "header block too large")
        if flags & END_HEADERS:
            self._headers_in_progress = None
            self._on_header_block(stream, stream_id, first_flags, b"".join(blocks))

    def _decode_headers(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The block's headers. Its leading fields of the shapes clients send once their table is warm are
        decoded here with the decoder's own table and Huffman code (`_leading_fields`), far cheaper than
        the decoder's per-field path; the decoder then takes the rest of the block, in step."""
        headers, position, listed = _leading_fields(block, self._decoder.header_table)
        if listed > MAX_HEADER_LIST_BYTES:
            raise hpack.OversizedHeaderListError("request headers exceed the advertised size")
        if position < len(block):
            if position and block[position] & SIZE_UPDATE_MASK == SIZE_UPDATE:  # the decoder sees a new block
                raise hpack.HPACKDecodingError("Table size update not at the start of the block")
            headers += self._decoder.decode(block[position:] if position else block, raw=True)
        return headers

    def _on_header_block(self, stream: _Stream | None, stream_id: int, flags: int, block: bytes) -> None:
        try:
            headers = self._decode_headers(block)
        except hpack.OversizedHeaderListError:
            raise ConnectionFailure(COMPRESSION_ERROR, "request headers exceed the advertised size") from None
        except hpack.HPACKError as e:
            raise ConnectionFailure(COMPRESSION_ERROR, f"header block: {e}") from None
        if stream is None or not stream.open:
            return
        if stream.path:  # trailers from the client: nothing in them matters to a unary call
            if not flags & END_STREAM:
                self._reset(stream_id, PROTOCOL_ERROR)
                return
            self._request_complete(stream)
            return
        fields = stream.headers
        for name, value in headers:
            fields[name] = value
        stream.path = fields.get(b":path", b"").decode("latin-1")
        if not stream.path:
            stream.path = "/"
        if flags & END_STREAM:
            self._request_complete(stream)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionFailure(PROTOCOL_ERROR, "DATA on stream 0")
        flow_length = len(payload)
        self._recv_window -= flow_length
        if self._recv_window < 0:
            raise ConnectionFailure(FLOW_CONTROL_ERROR, "the client sent beyond the connection window")
        self._recv_unacked += flow_length
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream_id:
                raise ConnectionFailure(PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream already answered or reset: the data only counts for the connection window
        if not stream.receiving:
            self._reset(stream_id, STREAM_CLOSED)
            return
        data = self._unpad(flags, payload)
        stream.received += len(data)
        if data:
            stream.chunks.append(data)
        if not flags & END_STREAM:
            stream.recv_unacked += flow_length
            if stream.received >= MESSAGE_PREFIX_BYTES and self._refuse_early(stream):
                return
            if stream.recv_unacked >= STREAM_WINDOW // 2:
                self._out.append(frame(WINDOW_UPDATE, 0, stream_id, stream.recv_unacked.to_bytes(4, "big")))
                stream.recv_unacked = 0
            return
        self._request_complete(stream)

    def _refuse_early(self, stream: _Stream) -> bool:
        """A message larger than the limit is refused as soon as its length prefix says so."""
        first = stream.chunks[0]
        head = first if len(first) >= MESSAGE_PREFIX_BYTES else b"".join(stream.chunks)
        declared = int.from_bytes(head[1:MESSAGE_PREFIX_BYTES], "big")
        too_long = stream.received - MESSAGE_PREFIX_BYTES > self.max_message_bytes
        if declared <= self.max_message_bytes and not too_long:
            return False
        # answered now; the stream is then reset with NO_ERROR so the client stops sending (RFC 9113 8.1)
        self.send_trailers_only(stream, trailers_block(RESOURCE_EXHAUSTED, self._too_large(max(
            declared, stream.received - MESSAGE_PREFIX_BYTES)), ()))
        return True

    def _too_large(self, size: int) -> str:
        # grpc-go's words, which the reference's clients see
        return f"grpc: received message larger than max ({size} vs. {self.max_message_bytes})"

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ConnectionFailure(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ConnectionFailure(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ConnectionFailure(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 bytes")
        for offset in range(0, len(payload), 6):
            key = int.from_bytes(payload[offset:offset + 2], "big")
            value = int.from_bytes(payload[offset + 2:offset + 6], "big")
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionFailure(FLOW_CONTROL_ERROR, "initial window size too large")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                    raise ConnectionFailure(PROTOCOL_ERROR, "max frame size out of range")
                self._peer_max_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise ConnectionFailure(PROTOCOL_ERROR, "enable push is not 0 or 1")
            # header table size: we never index what we send, so the peer's table size does not matter
        self._out.append(frame(SETTINGS, ACK, 0))
        self._send_blocked()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionFailure(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ConnectionFailure(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ConnectionFailure(FLOW_CONTROL_ERROR, "connection window beyond 2^31-1")
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                if stream_id > self._last_stream_id:
                    raise ConnectionFailure(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
                return
            if increment == 0:
                self._reset(stream_id, PROTOCOL_ERROR)
                return
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                self._reset(stream_id, FLOW_CONTROL_ERROR)
                return
        self._send_blocked()

    def _maybe_ack_received(self) -> None:
        if self._recv_unacked >= CONNECTION_WINDOW // 2:
            self._out.append(frame(WINDOW_UPDATE, 0, 0, self._recv_unacked.to_bytes(4, "big")))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0

    # -- requests

    def _request_complete(self, stream: _Stream) -> None:
        stream.receiving = False
        if not self._is_grpc_request(stream):
            return
        body = stream.chunks[0] if len(stream.chunks) == 1 else b"".join(stream.chunks)
        stream.chunks = []
        message = self._message(stream, body)
        if message is None:
            return
        try:
            self.dispatch(UnaryCall(self, stream, stream.path, stream.headers, message))
        except Exception:  # a bug in a handler: answer cleanly and keep serving
            log.exception("gRPC call %s failed", stream.path)
            if stream.open:
                self.send_trailers_only(stream, trailers_block(INTERNAL, "internal error", ()))

    def _is_grpc_request(self, stream: _Stream) -> bool:
        """False (and answered as gRPC servers do, PROTOCOL-HTTP2.md) when the request is not a gRPC call."""
        headers = stream.headers
        content_type = headers.get(b"content-type", b"")
        if not content_type.startswith(GRPC_CONTENT_TYPE):
            self._plain_http_error(stream, HTTP_UNSUPPORTED_MEDIA_TYPE,
                                   f"invalid gRPC request content-type {content_type.decode('latin-1')!r}")
            return False
        if headers.get(b":method") != b"POST":
            self._plain_http_error(stream, HTTP_METHOD_NOT_ALLOWED, "gRPC requires the POST method")
            return False
        return True

    def _message(self, stream: _Stream, body: bytes) -> bytes | None:
        """The one request message of a unary call, decompressed; None when the call was refused."""
        if len(body) < MESSAGE_PREFIX_BYTES:
            self.send_trailers_only(stream, trailers_block(
                INTERNAL, "a unary call must carry exactly one request message", ()))
            return None
        length = int.from_bytes(body[1:MESSAGE_PREFIX_BYTES], "big")
        if length > self.max_message_bytes:
            self.send_trailers_only(stream, trailers_block(RESOURCE_EXHAUSTED, self._too_large(length), ()))
            return None
        if len(body) != MESSAGE_PREFIX_BYTES + length:
            self.send_trailers_only(stream, trailers_block(
                INTERNAL, "a unary call must carry exactly one request message", ()))
            return None
        message = body[MESSAGE_PREFIX_BYTES:]
        if body[0] == 0:
            return message
        encoding = stream.headers.get(b"grpc-encoding", b"identity")
        if encoding not in (b"gzip", b"deflate"):
            status = INTERNAL if encoding == b"identity" else UNIMPLEMENTED
            self.send_trailers_only(stream, trailers_block(
                status, f"grpc: compressed message with grpc-encoding {encoding.decode('latin-1')!r}, "
                        "which this server cannot decompress (it accepts gzip and deflate)", ()))
            return None
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == b"gzip" else zlib.MAX_WBITS)
        try:
            plain = decompressor.decompress(message, self.max_message_bytes + 1)
        except zlib.error as e:
            self.send_trailers_only(stream, trailers_block(INTERNAL, f"grpc: the message does not decompress: {e}", ()))
            return None
        if len(plain) > self.max_message_bytes:
            self.send_trailers_only(stream, trailers_block(
                RESOURCE_EXHAUSTED, self._too_large(len(plain)), ()))
            return None
        return plain

    # -- frames out

    def send_reply(self, stream: _Stream, message: bytes, trailers: bytes) -> None:
        if not stream.open or self.closed:
            return
        out = self._out
        size = MESSAGE_PREFIX_BYTES + len(message)
        if size <= stream.send_window and size <= self._send_window and size <= self._peer_max_frame \
                and len(trailers) <= self._peer_max_frame and not self._blocked:
            stream.send_window -= size
            self._send_window -= size
            # the three frames of the answer (headers, message, trailers), built in one go
            sid = stream.id.to_bytes(4, "big")
            out.append(b"".join((RESPONSE_HEADERS_FRAME_HEAD, sid, RESPONSE_HEADERS,
                                 size.to_bytes(3, "big"), DATA_FRAME_TYPE_AND_NO_FLAGS, sid,
                                 UNCOMPRESSED, len(message).to_bytes(4, "big"), message,
                                 len(trailers).to_bytes(3, "big"), TRAILERS_FRAME_TYPE_AND_FLAGS, sid, trailers)))
            self._finish(stream)
        else:
            out.append(frame(HEADERS, END_HEADERS, stream.id, RESPONSE_HEADERS))
            stream.pending = (memoryview(UNCOMPRESSED + len(message).to_bytes(4, "big") + message), trailers)
            self._blocked.append(stream)
            self._send_blocked()
        self._answered()

    def send_trailers_only(self, stream: _Stream, trailers: bytes) -> None:
        if not stream.open or self.closed:
            return
        self._send_headers(stream.id, END_STREAM | END_HEADERS, RESPONSE_HEADERS + trailers)
        self._finish(stream)
        self._answered()

    def _answered(self) -> None:
        """Writes now when no other call of this connection awaits its answer (the one client waiting gets
        it without another loop turn); otherwise once this turn's answers are all in."""
        if self._parsing:
            return  # data_received writes when it is done with what arrived
        if self._streams:
            self._schedule_flush()
        else:
            self.flush()

    def _plain_http_error(self, stream: _Stream, status: int, message: str) -> None:
        block = (hpack_int(8, 4) + hpack_string(str(status).encode())  # ":status", static entry 8's name
                 + hpack_int(CONTENT_TYPE_INDEX, 4) + hpack_string(b"text/plain")
                 + trailers_block(INTERNAL, message, ()))
        self._send_headers(stream.id, END_STREAM | END_HEADERS, block)
        self._finish(stream)
        self._schedule_flush()

    def _send_headers(self, stream_id: int, flags: int, block: bytes) -> None:
        limit = self._peer_max_frame
        if len(block) <= limit:
            self._out.append(frame(HEADERS, flags, stream_id, block))
            return
        pieces = [block[i:i + limit] for i in range(0, len(block), limit)]
        self._out.append(frame(HEADERS, flags & ~END_HEADERS, stream_id, pieces[0]))
        for piece in pieces[1:-1]:
            self._out.append(frame(CONTINUATION, 0, stream_id, piece))
        self._out.append(frame(CONTINUATION, END_HEADERS, stream_id, pieces[-1]))

    def _send_blocked(self) -> None:
        """Sends what the windows allow of the answers waiting for window, in order; a stream out of its own
        window lets the ones behind it go."""
        waiting: deque[_Stream] = deque()
        blocked = self._blocked
        while blocked:
            stream = blocked.popleft()
            if not stream.open:
                continue
            data, trailers = stream.pending
            while data and stream.send_window > 0 and self._send_window > 0:
                size = min(len(data), stream.send_window, self._send_window, self._peer_max_frame)
                self._out.append(frame(DATA, 0, stream.id, bytes(data[:size])))
                data = data[size:]
                stream.send_window -= size
                self._send_window -= size
            if data:
                stream.pending = (data, trailers)
                waiting.append(stream)
                if self._send_window <= 0:
                    waiting.extend(blocked)
                    break
                continue
            self._send_headers(stream.id, END_STREAM | END_HEADERS, trailers)
            self._finish(stream)
        self._blocked = waiting
        self._schedule_flush()

    def _finish(self, stream: _Stream) -> None:
        """The answer is complete: the stream ends, or is reset if the client is still sending."""
        stream.pending = None
        if stream.receiving:
            stream.receiving = False
            self._out.append(frame(RST_STREAM, 0, stream.id, NO_ERROR.to_bytes(4, "big")))
        stream.open = False
        self._streams.pop(stream.id, None)
        if self._goaway_sent and not self._streams:
            self._loop.call_soon(self.goaway)  # after this answer is flushed

    def _close_stream(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.open = False
            stream.pending = None

    def _reset(self, stream_id: int, code: int) -> None:
        self._close_stream(stream_id)
        self._out.append(frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))

    def _fail_connection(self, code: int, debug: str) -> None:
        log.info("gRPC connection closed: %s", debug)
        self.goaway(code, debug)

    def goaway(self, code: int = NO_ERROR, debug: str = "", *, graceful: bool = False) -> None:
        """Tells the client no new stream will be served and closes the connection once written; `graceful`
        first lets the streams already open get their answers (the connection closes when the last ends)."""
        if self.closed:
            return
        if not self._goaway_sent:
            self._goaway_sent = True
            self._out.append(frame(GOAWAY, 0, 0, self._last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big")
                                   + debug.encode("utf-8", "replace")[:256]))
        self.flush()
        if graceful and self._streams:
            return
        self.closed = True
        for stream in self._streams.values():
            stream.open = False
        self._streams.clear()
        self._blocked.clear()
        if self.transport is not None:
            self.transport.close()  # buffered output is still sent

    @property
    def idle(self) -> bool:
        return not self._streams

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._out:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Writes everything queued in one call: the answers of one kernel batch go out together."""
        self._flush_scheduled = False
        if self._held_ack is not None:
            self._out.append(self._held_ack)
            self._held_ack = None
        if self._out and self.transport is not None and not self.transport.is_closing():
            out = self._out
            self._out = []
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        else:
            self._out = []
