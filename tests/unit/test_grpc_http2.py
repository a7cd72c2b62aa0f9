"""The HTTP/2 layer of the gRPC server (resonate/api/grpc/http2.py), driven frame by frame in-process.

A fake transport records what the server writes; requests are built with the `hpack` library's encoder,
as a client would. The grpcio-client tests (tests/integration/test_grpc_*.py) cover the same layer
end to end with a real client; these cover what a real client rarely sends.
"""
from __future__ import annotations

import asyncio
import gzip
import zlib

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman

from resonate.api.grpc import http2
from resonate.api.grpc.http2 import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED,
                                     PING, PRIORITY_FLAG, RST_STREAM, SETTINGS, WINDOW_UPDATE, Http2Connection,
                                     frame, trailers_block)

PATH = "/promise.Promises/ReadPromise"
CONDITION_TIMEOUT_S = 10
MAX_MESSAGE = 1 << 16


class FakeTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.written = bytearray()
        self.writes = 0
        self.closing = False
        self.reading = True

    def write(self, data) -> None:
        assert not self.closing, "written after close"
        self.written += data
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Client:
    """A test client: frames in, the server's frames out (header blocks decoded)."""

    def __init__(self, dispatch=None, max_message: int = MAX_MESSAGE, preface: bool = True):
        self.calls: list[http2.UnaryCall] = []
        self.connection = Http2Connection(dispatch or self.calls.append, max_message)
        self.transport = FakeTransport()
        self.connection.connection_made(self.transport)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.read = 0
        if preface:
            self.send(http2.PREFACE + frame(SETTINGS, 0, 0))

    def send(self, *frames: bytes) -> None:
        self.connection.data_received(b"".join(frames))

    def headers_block(self, path: str = PATH, extra: tuple = (), method: bytes = b"POST",
                      content_type: bytes = b"application/grpc") -> bytes:
        return self.encoder.encode([(b":method", method), (b":scheme", b"http"), (b":path", path.encode()),
                                    (b":authority", b"test"), (b"content-type", content_type),
                                    (b"te", b"trailers"), *extra])

    def request(self, stream_id: int, message: bytes, path: str = PATH, extra: tuple = ()) -> bytes:
        return (frame(HEADERS, END_HEADERS, stream_id, self.headers_block(path, extra))
                + frame(DATA, END_STREAM, stream_id, grpc_message(message)))

    def frames(self) -> list[tuple[int, int, int, object]]:
        """The frames written since the last call; HEADERS (with their CONTINUATIONs) as a header dict."""
        data = bytes(self.transport.written[self.read:])
        self.read = len(self.transport.written)
        out, position, pending = [], 0, None
        while position < len(data):
            length = int.from_bytes(data[position:position + 3], "big")
            kind, flags = data[position + 3], data[position + 4]
            stream_id = int.from_bytes(data[position + 5:position + 9], "big")
            payload = data[position + 9:position + 9 + length]
            position += 9 + length
            if kind == HEADERS or kind == CONTINUATION:
                pending = (pending[0], pending[1] | flags, pending[2] + payload) if kind == CONTINUATION \
                    else (stream_id, flags, payload)
                if flags & END_HEADERS:
                    out.append((HEADERS, pending[1], pending[0], dict(self.decoder.decode(pending[2], raw=True))))
                    pending = None
                continue
            out.append((kind, flags, stream_id, payload))
        return out


def grpc_message(message: bytes, compressed: bool = False) -> bytes:
    return bytes((1 if compressed else 0,)) + len(message).to_bytes(4, "big") + message


def run(scenario):
    """Runs a test body on a loop (the connection schedules its writes there)."""
    async def main():
        result = scenario()
        for _ in range(3):  # let scheduled flushes run
            await asyncio.sleep(0)
        return result
    return asyncio.run(main())


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def of_kind(frames, kind):
    return [f for f in frames if f[0] == kind]


def test_settings_and_pings_are_acknowledged():
    async def scenario():
        client = Client(preface=False)
        client.send(http2.PREFACE + frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1000).to_bytes(4, "big")))
        first = client.frames()
        assert first[0][0] == SETTINGS and not first[0][1] & ACK  # the server's own settings come first
        assert (SETTINGS, ACK, 0, b"") in first
        client.send(frame(PING, 0, 0, b"12345678"), frame(PING, ACK, 0, b"87654321"))
        assert client.frames() == [(PING, ACK, 0, b"12345678")]  # an ACK is not answered
    asyncio.run(scenario())


def test_a_ping_during_a_call_is_acknowledged_after_its_answer_in_the_same_write():
    """grpc-go pings after every answer it reads; acknowledging at once cost one write per call."""
    async def scenario():
        client = Client()
        client.frames()
        client.send(client.request(1, b"hello"), frame(PING, 0, 0, b"12345678"))
        assert client.frames() == []  # held: a call is in flight
        writes = client.transport.writes
        client.calls[0].reply(b"world", trailers_block(0, None, ()))
        await turns()
        kinds = [f[0] for f in client.frames()]
        assert kinds == [HEADERS, DATA, HEADERS, PING] and client.transport.writes == writes + 1
    asyncio.run(scenario())


def test_a_held_ping_acknowledgement_leaves_by_its_time_limit_without_an_answer():
    async def scenario():
        client = Client()
        await turns()  # the set-up's own writes are done
        client.frames()
        client.send(client.request(1, b"hello"), frame(PING, 0, 0, b"12345678"))
        await turns()
        assert client.frames() == []  # held while the call is unanswered
        deadline = asyncio.get_running_loop().time() + CONDITION_TIMEOUT_S
        while not client.transport.written[client.read:]:
            assert asyncio.get_running_loop().time() < deadline, "the acknowledgement never left"
            await asyncio.sleep(http2.PING_ACK_HOLD_LIMIT_S / 4)
        assert client.frames() == [(PING, ACK, 0, b"12345678")] and not client.connection.idle  # still unanswered
    asyncio.run(scenario())


def test_only_one_ping_acknowledgement_is_held():
    """A PING flood during a slow call must not pile acknowledgements up out of the transport's flow
    control (which stops reading a client that does not read what we write)."""
    async def scenario():
        client = Client()
        client.frames()
        writes = client.transport.writes
        client.send(client.request(1, b"hello"), *(frame(PING, 0, 0, b"%08d" % i) for i in range(5)))
        # a second PING releases the held acknowledgement; the last one then leaves with the others' write
        assert sorted(f[3] for f in client.frames()) == [b"%08d" % i for i in range(5)]
        assert client.transport.writes == writes + 1
    asyncio.run(scenario())


def test_a_call_is_dispatched_and_answered_with_headers_message_and_trailers():
    async def scenario():
        client = Client()
        client.frames()
        client.send(client.request(1, b"hello", extra=((b"authorization", b"Basic x"),)))
        [call] = client.calls
        assert (call.path, call.message, call.header(b"authorization")) == (PATH, b"hello", "Basic x")
        call.reply(b"world", trailers_block(0, None, ((b"resonate-code", b"20000"),)))
        await turns()
        headers, data, trailers = client.frames()
        assert headers == (HEADERS, END_HEADERS, 1, {b":status": b"200", b"content-type": b"application/grpc"})
        assert data == (DATA, 0, 1, grpc_message(b"world"))
        assert trailers == (HEADERS, END_STREAM | END_HEADERS, 1, {b"grpc-status": b"0", b"resonate-code": b"20000"})
        assert client.connection.idle
    asyncio.run(scenario())


def test_padding_priority_continuation_and_split_reads_are_understood():
    async def scenario():
        client = Client()
        block = client.headers_block()
        padded_priority = bytes((3,)) + b"\x00\x00\x00\x00\x10" + block[:4] + b"\x00" * 3
        message = grpc_message(b"abcdef")
        wire = (frame(HEADERS, PADDED | PRIORITY_FLAG, 3, padded_priority)
                + frame(CONTINUATION, END_HEADERS, 3, block[4:])
                + frame(0xFA, 0, 0, b"an extension frame is ignored")
                + frame(DATA, PADDED, 3, bytes((2,)) + message[:4] + b"\x00\x00")
                + frame(DATA, END_STREAM, 3, message[4:]))
        for i in range(len(wire)):  # one byte at a time
            client.send(wire[i:i + 1])
        [call] = client.calls
        assert (call.path, call.message) == (PATH, b"abcdef")
    asyncio.run(scenario())


def test_answers_wait_for_the_clients_flow_control_window():
    async def scenario():
        client = Client()
        client.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (10).to_bytes(4, "big")))  # stream window 10
        client.frames()
        client.send(client.request(1, b"q"))
        client.calls[0].reply(b"x" * 95, trailers_block(0, None, ()))  # 100 bytes with the prefix
        await turns()
        sent = client.frames()
        assert [len(f[3]) for f in of_kind(sent, DATA)] == [10] and not of_kind(sent, HEADERS)[1:]
        client.send(frame(WINDOW_UPDATE, 0, 1, (50).to_bytes(4, "big")))
        await turns()
        assert [len(f[3]) for f in of_kind(client.frames(), DATA)] == [50]
        client.send(frame(WINDOW_UPDATE, 0, 1, (1000).to_bytes(4, "big")))
        await turns()
        rest = client.frames()
        assert [len(f[3]) for f in of_kind(rest, DATA)] == [40]
        assert rest[-1][0] == HEADERS and rest[-1][1] & END_STREAM and rest[-1][3][b"grpc-status"] == b"0"
    asyncio.run(scenario())


def test_large_answers_are_split_into_frames_of_the_peers_size_and_wait_for_the_connection_window():
    async def scenario():
        client = Client()
        client.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")))
        client.send(client.request(1, b"q"))
        client.frames()
        client.calls[0].reply(b"y" * 100_000, trailers_block(0, None, ()))
        await turns()
        sizes = [len(f[3]) for f in of_kind(client.frames(), DATA)]
        assert sizes == [16_384] * 3 + [65_535 - 3 * 16_384]  # the connection's default window
        client.send(frame(WINDOW_UPDATE, 0, 0, (1 << 20).to_bytes(4, "big")))
        await turns()
        rest = client.frames()
        assert sum(len(f[3]) for f in of_kind(rest, DATA)) == 100_005 - 65_535
        assert max(len(f[3]) for f in of_kind(rest, DATA)) <= 16_384 and rest[-1][1] & END_STREAM
    asyncio.run(scenario())


def test_an_answer_to_a_reset_stream_is_dropped_and_the_connection_keeps_serving():
    async def scenario():
        client = Client()
        client.send(client.request(1, b"a"))
        client.send(frame(RST_STREAM, 0, 1, http2.CANCEL.to_bytes(4, "big")))
        client.frames()
        assert not client.calls[0].open
        client.calls[0].reply(b"late", trailers_block(0, None, ()))
        client.send(client.request(3, b"b"))
        client.calls[1].reply(b"ok", trailers_block(0, None, ()))
        await turns()
        assert {f[2] for f in client.frames()} == {3}
    asyncio.run(scenario())


def test_a_message_over_the_limit_is_refused_before_it_has_all_arrived():
    async def scenario():
        client = Client(max_message=100)
        client.send(frame(HEADERS, END_HEADERS, 1, client.headers_block()),
                    frame(DATA, 0, 1, b"\x00" + (5000).to_bytes(4, "big") + b"z" * 50))
        await turns()
        answer = client.frames()
        assert not client.calls
        trailers = of_kind(answer, HEADERS)[0][3]
        assert trailers[b"grpc-status"] == str(http2.RESOURCE_EXHAUSTED).encode()
        assert trailers[b"grpc-message"] == b"grpc: received message larger than max (5000 vs. 100)"
        assert (RST_STREAM, 0, 1, http2.NO_ERROR.to_bytes(4, "big")) in answer  # stop sending
        client.send(frame(DATA, END_STREAM, 1, b"z" * 100))  # what was already on its way is ignored
        client.send(client.request(3, b"fine"))
        assert [c.message for c in client.calls] == [b"fine"]
    asyncio.run(scenario())


@pytest.mark.parametrize("body, status", [
    (b"", http2.INTERNAL),  # no message
    (grpc_message(b"a") + grpc_message(b"b"), http2.INTERNAL),  # two messages
    (grpc_message(b"abc")[:-1], http2.INTERNAL),  # cut short
    (grpc_message(zlib.compress(b"x"), compressed=True), http2.INTERNAL),  # compressed, no grpc-encoding
])
def test_a_unary_call_needs_exactly_one_whole_message(body, status):
    async def scenario():
        client = Client()
        client.send(frame(HEADERS, END_HEADERS, 1, client.headers_block()), frame(DATA, END_STREAM, 1, body))
        await turns()
        [answer] = client.frames()[-1:]
        assert not client.calls and answer[3][b"grpc-status"] == str(status).encode()
        assert b"message" in answer[3][b"grpc-message"]
    asyncio.run(scenario())


def test_gzip_and_deflate_messages_are_decompressed_and_other_encodings_refused():
    async def scenario():
        client = Client()
        for stream_id, encoding, packed in [(1, b"gzip", gzip.compress(b"zipped")),
                                            (3, b"deflate", zlib.compress(b"deflated"))]:
            client.send(frame(HEADERS, END_HEADERS, stream_id,
                              client.headers_block(extra=((b"grpc-encoding", encoding),))),
                        frame(DATA, END_STREAM, stream_id, grpc_message(packed, compressed=True)))
        assert [c.message for c in client.calls] == [b"zipped", b"deflated"]
        client.frames()
        client.send(frame(HEADERS, END_HEADERS, 5, client.headers_block(extra=((b"grpc-encoding", b"snappy"),))),
                    frame(DATA, END_STREAM, 5, grpc_message(b"??", compressed=True)))
        await turns()
        [answer] = client.frames()
        assert answer[3][b"grpc-status"] == str(http2.UNIMPLEMENTED).encode() and b"snappy" in answer[3][b"grpc-message"]
    asyncio.run(scenario())


def test_a_compressed_message_over_the_limit_once_decompressed_is_refused():
    async def scenario():
        client = Client(max_message=1000)
        client.send(frame(HEADERS, END_HEADERS, 1, client.headers_block(extra=((b"grpc-encoding", b"gzip"),))),
                    frame(DATA, END_STREAM, 1, grpc_message(gzip.compress(b"0" * 5000), compressed=True)))
        await turns()
        [answer] = client.frames()[-1:]
        assert not client.calls and answer[3][b"grpc-status"] == str(http2.RESOURCE_EXHAUSTED).encode()
    asyncio.run(scenario())


@pytest.mark.parametrize("method, content_type, status", [
    (b"POST", b"application/json", b"415"), (b"GET", b"application/grpc", b"405")])
def test_requests_that_are_not_grpc_calls_get_an_http_status(method, content_type, status):
    async def scenario():
        client = Client()
        client.send(frame(HEADERS, END_HEADERS, 1, client.headers_block(method=method, content_type=content_type)),
                    frame(DATA, END_STREAM, 1, grpc_message(b"x")))
        await turns()
        [answer] = client.frames()[-1:]
        assert not client.calls and answer[3][b":status"] == status and answer[1] & END_STREAM
    asyncio.run(scenario())


def test_streams_beyond_the_advertised_limit_are_refused(monkeypatch):
    monkeypatch.setattr(http2, "MAX_CONCURRENT_STREAMS", 2)

    async def scenario():
        client = Client()
        client.send(client.request(1, b"a"), client.request(3, b"b"), client.request(5, b"c"))
        assert [c.message for c in client.calls] == [b"a", b"b"]
        assert (RST_STREAM, 0, 5, http2.REFUSED_STREAM.to_bytes(4, "big")) in client.frames()
        client.calls[0].reply(b"", trailers_block(0, None, ()))
        client.send(client.request(7, b"d"))  # room again; the header table stayed in step
        assert [c.message for c in client.calls][-1] == b"d" and client.calls[-1].path == PATH
    asyncio.run(scenario())


@pytest.mark.parametrize("wire, code", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", http2.PROTOCOL_ERROR),  # not HTTP/2
    (http2.PREFACE + frame(DATA, 0, 1, b"x" * 16_385), http2.FRAME_SIZE_ERROR),
    (http2.PREFACE + frame(HEADERS, END_HEADERS, 2, b"\x82"), http2.PROTOCOL_ERROR),  # even stream id
    (http2.PREFACE + frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff"), http2.COMPRESSION_ERROR),
    (http2.PREFACE + frame(HEADERS, 0, 1, b"\x82") + frame(PING, 0, 0, b"12345678"), http2.PROTOCOL_ERROR),
    (http2.PREFACE + frame(SETTINGS, 0, 0, b"\x00\x04\xff\xff\xff\xff"), http2.FLOW_CONTROL_ERROR),
    (http2.PREFACE + frame(PING, 0, 0, b"short"), http2.FRAME_SIZE_ERROR),
    (http2.PREFACE + frame(DATA, 0, 9, b"x"), http2.PROTOCOL_ERROR),  # data on an idle stream
])
def test_protocol_errors_end_the_connection_with_goaway(wire, code):
    async def scenario():
        client = Client(preface=False)
        client.send(wire)
        goaway = of_kind(client.frames(), GOAWAY)
        assert goaway and int.from_bytes(goaway[0][3][4:8], "big") == code
        assert client.transport.closing and client.connection.closed
        client.send(client.request(1, b"after"))  # ignored, no error
        assert not client.calls
    asyncio.run(scenario())


def test_goaway_names_the_last_stream_and_refuses_later_ones():
    async def scenario():
        client = Client()
        client.send(client.request(1, b"a"))
        client.connection.goaway()
        goaway = of_kind(client.frames(), GOAWAY)[0]
        assert int.from_bytes(goaway[3][:4], "big") == 1 and int.from_bytes(goaway[3][4:8], "big") == http2.NO_ERROR
        assert client.transport.closing
    asyncio.run(scenario())


def test_a_large_request_gets_window_updates_as_it_arrives():
    async def scenario():
        client = Client(max_message=4 * http2.STREAM_WINDOW)
        client.send(frame(HEADERS, END_HEADERS, 1, client.headers_block()))
        body = grpc_message(b"m" * (2 * http2.STREAM_WINDOW))
        chunks = [body[i:i + 16_384] for i in range(0, len(body), 16_384)]
        for i, chunk in enumerate(chunks):
            client.send(frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, 1, chunk))
        stream_updates = [f for f in of_kind(client.frames(), WINDOW_UPDATE) if f[2] == 1]
        assert sum(int.from_bytes(f[3], "big") for f in stream_updates) >= http2.STREAM_WINDOW
        assert len(client.calls[0].message) == 2 * http2.STREAM_WINDOW
    asyncio.run(scenario())


def test_grpc_message_is_percent_encoded():
    block = trailers_block(3, "bad 100% ünïcode\n", ())
    headers = dict(hpack.Decoder().decode(block, raw=True))
    assert headers[b"grpc-message"] == b"bad 100%25 %C3%BCn%C3%AFcode%0A"


def test_header_table_stays_in_step_over_many_calls_with_changing_and_indexed_headers():
    """Indexed fields are looked up before the decoder sees the rest of the block: over calls that add
    table entries (a changing grpc-timeout, new metadata) and then refer to them, every call's headers
    must come out exactly as sent."""
    async def scenario():
        client = Client()
        sent = []
        for i in range(60):
            extra = ((b"grpc-timeout", f"{i % 7}m".encode()), (b"x-tag", f"t{i % 3}".encode()),
                     *(((b"authorization", b"Bearer " + b"k" * 200),) if i % 5 == 0 else ()))
            sent.append(extra)
            client.send(client.request(2 * i + 1, b"m", extra=extra))
        assert len(client.calls) == 60
        for call, extra in zip(client.calls, sent):
            assert call.path == PATH and call.headers[b"content-type"] == b"application/grpc"
            assert all(call.headers[name] == value for name, value in extra)
    asyncio.run(scenario())


def test_request_headers_over_the_advertised_size_end_the_connection():
    async def scenario():
        client = Client()
        block = client.headers_block(extra=((b"x-big", b"v" * 30_000), (b"x-big2", b"w" * 40_000)))
        pieces = [block[i:i + 16_384] for i in range(0, len(block), 16_384)]
        client.send(frame(HEADERS, 0, 1, pieces[0]), *(frame(CONTINUATION, 0, 1, p) for p in pieces[1:-1]),
                    frame(CONTINUATION, END_HEADERS, 1, pieces[-1]))
        goaway = of_kind(client.frames(), GOAWAY)
        assert goaway and int.from_bytes(goaway[0][3][4:8], "big") == http2.COMPRESSION_ERROR
    asyncio.run(scenario())


def test_a_client_that_does_not_read_is_not_read_from_until_it_does():
    """A PING flood from a client that never reads its acknowledgements must not grow our output without
    bound: when the transport's buffer is full (pause_writing), the connection stops reading."""
    async def scenario():
        client = Client()
        client.connection.pause_writing()
        assert not client.transport.reading
        client.connection.resume_writing()
        assert client.transport.reading
    asyncio.run(scenario())


def test_a_graceful_goaway_answers_the_calls_taken_refuses_new_ones_then_closes():
    async def scenario():
        client = Client()
        client.send(client.request(1, b"taken"))
        client.frames()
        client.connection.goaway(graceful=True)
        [goaway] = of_kind(client.frames(), GOAWAY)
        assert int.from_bytes(goaway[3][:4], "big") == 1 and int.from_bytes(goaway[3][4:8], "big") == http2.NO_ERROR
        assert not client.transport.closing  # stream 1 still to be answered
        client.send(client.request(3, b"too late"))  # sent before the client saw the GOAWAY
        assert (RST_STREAM, 0, 3, http2.REFUSED_STREAM.to_bytes(4, "big")) in client.frames()
        assert [c.message for c in client.calls] == [b"taken"]
        client.calls[0].reply(b"answer", trailers_block(0, None, ()))
        await turns()
        answer = client.frames()
        assert (DATA, 0, 1, grpc_message(b"answer")) in answer and answer[-1][1] & END_STREAM
        assert client.transport.closing and client.connection.closed
    asyncio.run(scenario())


def test_a_graceful_goaway_with_nothing_open_closes_at_once():
    async def scenario():
        client = Client()
        client.connection.goaway(graceful=True)
        assert of_kind(client.frames(), GOAWAY) and client.transport.closing
    asyncio.run(scenario())


# -- hostile input: whatever a client sends, the connection answers, refuses or ends with GOAWAY

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FRAME_KINDS = st.integers(min_value=0, max_value=12)  # the ten defined types and some unknown ones
FLAGS = st.sampled_from([0, END_STREAM, END_HEADERS, END_STREAM | END_HEADERS, PADDED, PRIORITY_FLAG, 0xFF])
STREAM_IDS = st.sampled_from([0, 1, 2, 3, 5, 7, 2**31 - 1])
PAYLOADS = st.one_of(st.binary(max_size=40), st.just(b"\x00\x00\x00\x05\x0a\x03abc"), st.just(b"12345678"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(FRAME_KINDS, FLAGS, STREAM_IDS, PAYLOADS), max_size=12), st.integers(1, 64))
def test_any_frames_are_handled_without_an_exception(frames, chunk):
    async def scenario():
        answered = []

        def dispatch(call):
            answered.append(call.path)
            call.reply(b"ok", trailers_block(0, None, ()))

        client = Client(dispatch=dispatch)
        wire = client.request(1, b"valid first") + b"".join(frame(k, f, s, p) for k, f, s, p in frames)
        for i in range(0, len(wire), chunk):  # arbitrary TCP segmentation
            client.send(wire[i:i + chunk])  # must never raise
        await turns()
        written = client.frames()
        assert answered[:1] == [PATH]  # the valid call before the noise was served
        if client.connection.closed:  # a connection ended for a protocol error says why
            assert client.transport.closing and of_kind(written, GOAWAY)
    asyncio.run(scenario())


HEADER_NAMES = st.sampled_from([b":path", b":authority", b"content-type", b"user-agent", b"te", b"grpc-timeout",
                                b"x-tag", b"authorization", b"accept-encoding", b"x-" + b"n" * 70])
HEADER_VALUES = st.binary(min_size=0, max_size=160)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES, st.booleans()), min_size=1, max_size=8),
                min_size=1, max_size=12), st.booleans())
def test_the_leading_fields_decode_exactly_as_the_hpack_decoder(blocks, huffman):
    """Header blocks as a client's encoder makes them (indexed fields, literals with and without indexing,
    never-indexed ones, Huffman or not, long values, a table that evicts): the connection decodes each to
    the headers the hpack library's decoder gives, and both tables stay the same."""
    encoder = hpack.Encoder()
    connection = Http2Connection(lambda call: None, MAX_MESSAGE)
    reference = hpack.Decoder()
    for fields in blocks:
        block = encoder.encode([(name, value, sensitive) for name, value, sensitive in fields], huffman=huffman)
        expected = [tuple(h) for h in reference.decode(block, raw=True)]
        assert [tuple(h) for h in connection._decode_headers(block)] == expected
        assert list(connection._decoder.header_table.dynamic_entries) == list(reference.header_table.dynamic_entries)


HUFFMAN_ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def _decoded_or_error(decode, raw: bytes):
    try:
        return decode(raw)
    except hpack.HPACKDecodingError as e:
        return type(e)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=40).map(HUFFMAN_ENCODER.encode), st.binary(max_size=12)))
def test_the_byte_step_huffman_decoder_decodes_and_refuses_as_hpacks(raw):
    """Valid Huffman strings (any bytes, encoded) decode to the same bytes; arbitrary bytes (invalid codes,
    EOS, padding that is too long or not all ones) are refused with the same error type."""
    assert _decoded_or_error(http2.huffman_decode, raw) == _decoded_or_error(decode_huffman, raw)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 119), st.sampled_from(["same", "new", "long"])), min_size=1,
                max_size=40), st.booleans())
def test_fields_at_table_indexes_past_126_decode_exactly_as_the_hpack_decoder(picks, huffman):
    """A table of 120 small entries puts a field or a name at an index that takes a second byte (127 or
    more, 63 or more): a client with many headers sends those, and they decode as hpack's decoder has it,
    a name past 62 with a value too long for the fast path (the decoder takes it from the field's start)
    included."""
    encoder = hpack.Encoder()
    connection = Http2Connection(lambda call: None, MAX_MESSAGE)
    reference = hpack.Decoder()
    warm = [(b"x-%d" % i, b"%d" % i) for i in range(120)]
    blocks = [encoder.encode(warm, huffman=huffman)]
    values = {"same": lambda v: v, "new": lambda v: v + b"!", "long": lambda v: v + b"#" * 300}
    for i, kind in [(30, "same"), (31, "new"), (32, "long")] + picks:  # an entry as it is (indexed), or
        name, value = warm[i]                                            # its name with another value
        blocks.append(encoder.encode([(b":method", b"POST"), (name, values[kind](value))], huffman=huffman))
    assert blocks[1][1:2] == b"\xff" and blocks[2][1:2] == b"\x7f" and blocks[3][1:2] == b"\x7f"
    for block in blocks:
        expected = [tuple(h) for h in reference.decode(block, raw=True)]
        assert [tuple(h) for h in connection._decode_headers(block)] == expected
        assert list(connection._decoder.header_table.dynamic_entries) == list(reference.header_table.dynamic_entries)


def test_a_table_size_update_after_a_field_is_a_compression_error():
    """RFC 7541 4.2: a size update only at the start of a block. After a field the decoder takes over the
    rest of the block, which it must not read as a block of its own."""
    connection = Http2Connection(lambda call: None, MAX_MESSAGE)
    with pytest.raises(hpack.HPACKDecodingError, match="not at the start"):
        connection._decode_headers(b"\x82\x3f\xe1\x1f")  # :method GET, then a size update to 4096
    assert connection._decode_headers(b"\x3f\xe1\x1f\x82") == [(b":method", b"GET")]  # at the start: fine


@pytest.mark.parametrize("block", [b"\x82\xff\x7f", b"\x82\x7f\x7f\x01a"], ids=["indexed", "literal name"])
def test_an_index_past_the_table_is_refused_from_the_fields_start(block):
    """:method GET, then a field or a name at index 253 or 190 of an empty table: refused by the decoder,
    which must read the field from its first byte (not from its index's second byte)."""
    connection = Http2Connection(lambda call: None, MAX_MESSAGE)
    reference = hpack.Decoder()
    with pytest.raises(hpack.HPACKError) as expected:
        reference.decode(block, raw=True)
    with pytest.raises(type(expected.value)):
        connection._decode_headers(block)


def _string(value: bytes, huffman: bool) -> bytes:
    if not huffman:
        return http2.hpack_string(value)
    encoded = HUFFMAN_ENCODER.encode(value)
    return http2.hpack_int(len(encoded), 7, http2.STRING_HUFFMAN) + encoded


NOT_INDEXED_PREFIXES = st.sampled_from([0x00, 0x10])  # literal without indexing, never indexed


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(NOT_INDEXED_PREFIXES, st.integers(1, 70), st.binary(max_size=140)), min_size=1,
                max_size=8), st.booleans())
def test_literals_not_indexed_with_a_name_past_14_decode_exactly_as_the_hpack_decoder(fields, huffman):
    """A literal that is not added to the table names its header by an index in 4 bits, so names past 14
    (content-type is 31, user-agent 58) take a second byte: some clients send content-type that way on every
    call. Static and dynamic names (a warm table of 8 entries puts indexes 62-69 in it), values long and
    short: the same headers and table as hpack's decoder, or the same error for an index past the table."""
    encoder = hpack.Encoder()
    warm = encoder.encode([(b"x-%d" % i, b"%d" % i) for i in range(8)], huffman=huffman)
    block = bytearray()
    for prefix, index, value in fields:
        block += http2.hpack_int(index, 4, prefix) + _string(value, huffman)
    connection = Http2Connection(lambda call: None, MAX_MESSAGE)
    reference = hpack.Decoder()
    for b in (warm, bytes(block)):
        try:
            expected = [tuple(h) for h in reference.decode(b, raw=True)]
        except hpack.HPACKError as e:
            with pytest.raises(type(e)):
                connection._decode_headers(b)
            return
        assert [tuple(h) for h in connection._decode_headers(b)] == expected
    assert list(connection._decoder.header_table.dynamic_entries) == list(reference.header_table.dynamic_entries)


def test_a_call_whose_content_type_is_not_indexed_is_decoded_without_the_hpack_decoder():
    """An encoder with no table (the bench's raw client, bench/raw_grpc.py) sends :path, :authority and
    content-type as literals without indexing: all of it in the fast path, as cheap as a warm table's
    indexed fields."""
    block = (b"\x83\x86" + http2.hpack_int(4, 4) + http2.hpack_string(PATH.encode())  # POST, http, :path
             + http2.hpack_int(1, 4) + http2.hpack_string(b"127.0.0.1:8001")  # :authority
             + http2.hpack_int(31, 4) + http2.hpack_string(b"application/grpc")  # content-type
             + http2.literal(b"te", b"trailers"))
    connection = Http2Connection(lambda call: None, MAX_MESSAGE)
    headers, position, _ = http2._leading_fields(block, connection._decoder.header_table)
    assert position == len(block)
    assert dict(headers)[b"content-type"] == b"application/grpc"
    assert headers == [tuple(h) for h in hpack.Decoder().decode(block, raw=True)]
