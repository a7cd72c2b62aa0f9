"""The HTTP protocol's lane (resonate/api/http/lane.py), over real sockets against in-process uvicorn servers:
it answers byte for byte what uvicorn's own path answers, keeps pipelined answers in order, reads bodies in
pieces, honours connection: close, answers an unexpected failure with uvicorn's 500, lets a graceful
shutdown finish a request in flight, and counts its requests in the metrics."""
from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from uvicorn.server import ServerState

from resonate.api.http.asgi import FastRoute
from resonate.api.http.lane import LaneProtocol
from resonate.api.http.server import create_http_app
from resonate.api.http.transport import AsgiServer, CoalescingHttpToolsProtocol, uvicorn_config
from resonate.core.codes import ApiError
from resonate.core.kernel import Kernel
from resonate.core.store.sqlite import SqliteStore
from resonate.observability import metrics

from .test_http_fast_path import FIXED_MS, REQUESTS

GRACE_S = 5.0
IO_TIMEOUT_S = 10.0


class CountingLane(CoalescingHttpToolsProtocol):
    """The server's protocol, counting the requests the lane took."""

    taken = 0

    def _lane_exchange(self, index):
        exchange = super()._lane_exchange(index)
        if exchange is not None:
            type(self).taken += 1
        return exchange


class NoLane(CoalescingHttpToolsProtocol):
    """The server's protocol with the lane off: every request takes uvicorn's path."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lane_index = None


async def serve(app, protocol) -> AsgiServer:
    server = AsgiServer(app, ("127.0.0.1", 0), GRACE_S, http=protocol)
    await server.start()
    return server


@contextlib.asynccontextmanager
async def serving(app, protocol):
    """An in-process API server on an ephemeral port for the block, stopped after it."""
    server = await serve(app, protocol)
    try:
        yield server
    finally:
        await server.stop()


async def read_answer(reader: asyncio.StreamReader, head_only: bool = False) -> bytes:
    """One raw answer: head, then the content-length's worth of body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_S)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    body = b"" if head_only or not length else await asyncio.wait_for(reader.readexactly(length), IO_TIMEOUT_S)
    return head + body


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.lower().startswith(b"date:"))


def raw_request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
                version: str = "1.1") -> bytes:
    lines = [f"{method} {url} HTTP/{version}", "host: api"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


@pytest.fixture
def kernel(tmp_path):
    kernel = Kernel(SqliteStore(str(tmp_path / "lane.db")), clock=lambda: FIXED_MS)
    kernel.start()
    yield kernel
    kernel.stop()


def test_the_lane_answers_byte_for_byte_as_uvicorns_path(tmp_path):
    async def run(protocol, name):
        kernel = Kernel(SqliteStore(str(tmp_path / f"{name}.db")), clock=lambda: FIXED_MS)
        kernel.start()
        server = await serve(create_http_app(kernel), protocol)
        try:
            reader, writer = await asyncio.open_connection(*server.address)
            answers = []
            for method, url, body, headers in REQUESTS:
                writer.write(raw_request(method, url, body, headers))
                answers.append(without_date(await read_answer(reader, head_only=method == "HEAD")))
            writer.close()
            return answers
        finally:
            await server.stop()
            kernel.stop()

    CountingLane.taken = 0
    lane = asyncio.run(run(CountingLane, "lane"))
    plain = asyncio.run(run(NoLane, "plain"))
    for request, a, b in zip(REQUESTS, lane, plain):
        assert a == b, request
    index = create_http_app(None).index
    fast = [r for r in REQUESTS if r[0] != "HEAD" and isinstance((index.match(r[0], r[1].split("?")[0]) or [0])[0],
                                                                 FastRoute)]
    assert 15 < len(fast) < len(REQUESTS)
    assert CountingLane.taken == len(fast)  # the lane served every API request but HEAD, uvicorn the rest
    assert {200, 201, 204, 400, 404, 409}.issubset({status_of(a) for a in lane})


def test_pipelined_requests_are_answered_in_order(kernel):
    async def go():
        async with serving(create_http_app(kernel), CoalescingHttpToolsProtocol) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(raw_request("POST", "/promises", b'{"id":"pipe","timeout":9999999999999}')
                         + raw_request("GET", "/promises/pipe")
                         + raw_request("PATCH", "/promises/pipe", b'{"state":"RESOLVED"}')
                         + raw_request("GET", "/promises/pipe")
                         + raw_request("GET", "/ping"))
            answers = [await read_answer(reader) for _ in range(5)]
            writer.close()
            return answers

    answers = asyncio.run(go())
    assert [status_of(a) for a in answers] == [201, 200, 201, 200, 200]
    assert [body_of(a).get("state") for a in answers[:4]] == ["PENDING", "PENDING", "RESOLVED", "RESOLVED"]
    assert body_of(answers[4]) == {"status": "ok"}


def test_bodies_in_pieces_and_chunked_bodies_are_read_whole(kernel):
    body = b'{"id":"pieces","timeout":9999999999999,"param":{"data":"' + b"QUJD" * 5000 + b'"}}'

    async def go():
        async with serving(create_http_app(kernel), CoalescingHttpToolsProtocol) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            whole = raw_request("POST", "/promises", body)
            for start in range(0, len(whole), 7001):  # head and body split across writes
                writer.write(whole[start:start + 7001])
                await writer.drain()
            first = await read_answer(reader)
            chunked = b'{"id":"chunked","timeout":9999999999999}'
            writer.write(b"POST /promises HTTP/1.1\r\nhost: api\r\ntransfer-encoding: chunked\r\n\r\n"
                         + b"%x\r\n%s\r\n" % (10, chunked[:10]) + b"%x\r\n%s\r\n" % (len(chunked) - 10, chunked[10:])
                         + b"0\r\n\r\n")
            second = await read_answer(reader)
            writer.close()
            return first, second

    first, second = asyncio.run(go())
    assert status_of(first) == 201 and body_of(first)["param"]["data"] == "QUJD" * 5000
    assert status_of(second) == 201 and body_of(second)["id"] == "chunked"


def test_connection_close_ends_the_connection_after_the_answer(kernel):
    async def go():
        async with serving(create_http_app(kernel), CoalescingHttpToolsProtocol) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(raw_request("POST", "/promises", b'{"id":"closing","timeout":9999999999999}',
                                     {"connection": "close"}))
            answer = await read_answer(reader)
            rest = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)  # EOF: the server closed
            writer.close()
            return answer, rest

    answer, rest = asyncio.run(go())
    assert status_of(answer) == 201 and b"\r\nconnection: close\r\n" in answer and rest == b""


class HeldKernel:
    """A kernel that holds submitted writes until the test answers them."""

    def __init__(self):
        self.answers = []

    def submit_answer(self, request, answer, loop):
        self.answers.append(answer)


def test_a_graceful_stop_answers_a_lane_request_in_flight_then_closes():
    kernel = HeldKernel()

    async def go():
        server = await serve(create_http_app(kernel), CoalescingHttpToolsProtocol)
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(raw_request("POST", "/locks/release", b'{"resourceId":"r","executionId":"e"}'))
        while not kernel.answers:  # the request reached the kernel
            await asyncio.sleep(0)
        stopping = asyncio.create_task(server.stop())
        while kernel.answers[0].keep_alive:  # until uvicorn's shutdown asks the connection to end after it
            await asyncio.sleep(0)
        assert not stopping.done()  # the stop waits for the answer
        kernel.answers[0].set_exception(ApiError(40403, "the lock is not held"))
        answer = await read_answer(reader)
        rest = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
        await asyncio.wait_for(stopping, GRACE_S + 2)
        writer.close()
        return answer, rest

    answer, rest = asyncio.run(go())
    assert status_of(answer) == 404 and b"\r\nconnection: close\r\n" in answer and rest == b""
    assert body_of(answer)["error"]["code"] == 40403


class FailingKernel:
    """A kernel failing unexpectedly (not with an ApiError); `answer_now` for uvicorn's path (NoLane)."""

    def answer_now(self, request):
        return None

    def submit_answer(self, request, answer, loop):
        raise RuntimeError("boom")


def test_an_unexpected_failure_answers_uvicorns_500_and_the_server_keeps_serving():
    async def go(protocol):
        async with serving(create_http_app(FailingKernel()), protocol) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(raw_request("GET", "/promises/p"))
            answer = await read_answer(reader)
            rest = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
            writer.close()
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(raw_request("GET", "/ping"))
            ping = await read_answer(reader)
            writer.close()
            return without_date(answer), rest, ping

    lane, rest, ping = asyncio.run(go(CoalescingHttpToolsProtocol))
    assert status_of(lane) == 500 and lane.endswith(b"\r\n\r\nInternal Server Error") and rest == b""
    assert status_of(ping) == 200
    plain, _, _ = asyncio.run(go(NoLane))
    # uvicorn's path answers the same status and body (its head adds `connection: close` as well)
    assert plain.split(b"\r\n\r\n")[1] == lane.split(b"\r\n\r\n")[1] and status_of(plain) == 500


def test_a_client_gone_before_its_answer_does_not_withdraw_its_write(kernel):
    async def go():
        async with serving(create_http_app(kernel), CoalescingHttpToolsProtocol) as server:
            _, writer = await asyncio.open_connection(*server.address)
            writer.write(raw_request("POST", "/promises", b'{"id":"orphan","timeout":9999999999999}'))
            await writer.drain()
            writer.close()
            reader, writer = await asyncio.open_connection(*server.address)
            for _ in range(1000):  # until the orphan's create has committed
                writer.write(raw_request("GET", "/promises/orphan"))
                answer = await read_answer(reader)
                if status_of(answer) == 200:
                    break
            writer.close()
            return answer

    answer = asyncio.run(go())
    assert status_of(answer) == 200 and body_of(answer)["id"] == "orphan"


def test_lane_requests_are_counted_in_the_metrics(kernel):
    def sample(name, labels):
        return metrics.REGISTRY.get_sample_value(name, labels) or 0

    labels = {"type": "ReadSchedule", "protocol": "http", "status": "40401"}
    http_labels = {"method": "GET", "path": "/schedules/*id", "status": "404"}
    before, http_before = sample("api_requests_total", labels), sample("http_requests_total", http_labels)

    async def go():
        async with serving(create_http_app(kernel), CountingLane) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            for _ in range(3):
                writer.write(raw_request("GET", "/schedules/none"))
                assert status_of(await read_answer(reader)) == 404
            writer.close()

    CountingLane.taken = 0
    metrics.enable()
    try:
        asyncio.run(go())
    finally:
        metrics.disable()
    assert CountingLane.taken == 3
    assert sample("api_requests_total", labels) == before + 3
    assert sample("http_requests_total", http_labels) == http_before + 3
    assert sample("api_requests_in_flight", {"type": "ReadSchedule", "protocol": "http"}) == 0


def test_the_lane_is_off_where_middleware_wraps_the_api():
    loop = asyncio.new_event_loop()
    try:
        for app, usable in ((create_http_app(None), True), (create_http_app(None, auth={"u": "p"}), False),
                            (create_http_app(None, cors_origins=["http://ui.example"]), False)):
            config = uvicorn_config(app, log_config=None, access_log=False)  # as AsgiServer configures it
            config.load()
            protocol = LaneProtocol(config, ServerState(), {}, _loop=loop)
            assert (protocol.lane_index is not None) == usable
    finally:
        loop.close()


class QuickKeepAlive(CoalescingHttpToolsProtocol):
    """The server's protocol with a keep-alive timeout short enough to watch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = KEEP_ALIVE_S


KEEP_ALIVE_S = 0.3


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout_and_a_busy_one_is_not(kernel):
    async def go():
        async with serving(create_http_app(kernel), QuickKeepAlive) as server:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection(*server.address)
            busy_until = loop.time() + 4 * KEEP_ALIVE_S
            answered = 0
            while loop.time() < busy_until:  # one connection kept busy past several timeouts
                last_sent = loop.time()
                writer.write(raw_request("GET", "/promises/none"))
                assert status_of(await read_answer(reader)) == 404
                answered += 1
            rest = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)  # then idle: closed by the server
            idle_s = loop.time() - last_sent  # the server went idle after this
            writer.close()
            return answered, rest, idle_s

    answered, rest, idle_s = asyncio.run(go())
    assert answered > 1 and rest == b""
    assert idle_s >= KEEP_ALIVE_S  # not closed before a whole timeout of idleness


class ReadsAnsweredWritesHeld(HeldKernel):
    """Reads answered at once (not found), as the kernel answers them beside the writer; writes held until
    the test answers them."""

    def submit_answer(self, request, answer, loop):
        if type(request).__name__.startswith("Read"):
            answer.set_exception(ApiError(40400, "the promise does not exist"))
        else:
            super().submit_answer(request, answer, loop)


class CountingKeepAlive(QuickKeepAlive):
    fired = 0

    def timeout_keep_alive_handler(self) -> None:
        type(self).fired += 1
        super().timeout_keep_alive_handler()


def test_a_request_in_flight_behind_an_answered_one_is_not_cut_by_the_keep_alive_timer():
    kernel = ReadsAnsweredWritesHeld()

    async def go():
        async with serving(create_http_app(kernel), CountingKeepAlive) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(raw_request("GET", "/promises/none")  # answered at once: the connection goes idle...
                         + raw_request("POST", "/locks/release", b'{"resourceId":"r","executionId":"e"}'))
            first = await read_answer(reader)
            while not kernel.answers:  # ...and the write behind it, in the same read, is held
                await asyncio.sleep(0)
            fired = CountingKeepAlive.fired
            while CountingKeepAlive.fired == fired:  # the keep-alive timer has had its turn meanwhile
                await asyncio.sleep(KEEP_ALIVE_S / 10)
            kernel.answers[0].set_exception(ApiError(40403, "the lock is not held"))
            second = await read_answer(reader)
            writer.close()
            return first, second

    first, second = asyncio.run(go())
    assert status_of(first) == 404 and status_of(second) == 404
    assert body_of(second)["error"]["code"] == 40403
