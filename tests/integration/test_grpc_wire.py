"""gRPC on the wire, without our generated stubs: requests are hand-encoded protobuf bytes built from
the field numbers in the spec tables (grpc-kafka.md 2.4), responses are decoded by hand, so the field
numbers are tested rather than assumed. Also: hostile input gets a clean status and the server keeps
serving, and promises move between HTTP and gRPC.
"""
from __future__ import annotations

import base64
import uuid

import grpc
import httpx
import pytest

from resonate.api.grpc.http2 import GOAWAY, PREFACE
from tests.server import ServerProcess

# ---------------------------------------------------------------------------------------------------
# A minimal protobuf codec (varint = wire type 0, length-delimited = wire type 2)

VARINT, LEN = 0, 2


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s travel as 10-byte two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def f_int(field: int, n: int) -> bytes:
    return tag(field, VARINT) + varint(n)


def f_bytes(field: int, data: bytes) -> bytes:
    return tag(field, LEN) + varint(len(data)) + data


def f_str(field: int, text: str) -> bytes:
    return f_bytes(field, text.encode())


def f_map(field: int, mapping: dict[str, str]) -> bytes:
    return b"".join(f_bytes(field, f_str(1, k) + f_str(2, v)) for k, v in mapping.items())


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields_of(buf: bytes) -> dict[int, list]:
    """field number -> values in order (ints for varints, bytes for length-delimited)."""
    out: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise AssertionError(f"unexpected wire type {wire_type} for field {number}")
        out.setdefault(number, []).append(value)
    return out


def one(fields: dict[int, list], number: int, default=None):
    values = fields.get(number)
    if values is None:
        return default
    assert len(values) == 1, f"field {number} repeated: {values}"
    return values[0]


def map_of(fields: dict[int, list], number: int) -> dict[str, str]:
    entries = [fields_of(e) for e in fields.get(number, [])]
    return {one(e, 1, b"").decode(): one(e, 2, b"").decode() for e in entries}


def int64_of(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


# proto field numbers (grpc-kafka.md 2.4)
PROMISE_STATE = {0: "PENDING", 1: "RESOLVED", 2: "REJECTED", 3: "REJECTED_TIMEDOUT", 4: "REJECTED_CANCELED"}


def decode_promise(buf: bytes) -> dict:
    f = fields_of(buf)
    return {"id": one(f, 1, b"").decode(), "state": PROMISE_STATE[one(f, 2, 0)], "param": one(f, 3),
            "value": one(f, 4), "timeout": int64_of(one(f, 5, 0)),
            "idempotencyKeyForCreate": one(f, 6, b"").decode(), "idempotencyKeyForComplete": one(f, 7, b"").decode(),
            "tags": map_of(f, 8), "createdOn": one(f, 9, 0), "completedOn": one(f, 10, 0)}


def decode_value(buf: bytes | None) -> dict:
    f = fields_of(buf or b"")
    return {"headers": map_of(f, 1), "data": one(f, 2, b"")}


FUTURE = 10**15


# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    with ServerProcess("--system-signal-timeout", "100ms", grpc=True) as s:
        yield s


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    grpc.channel_ready_future(ch).result(timeout=30)
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def call(channel, path: str, payload: bytes, timeout: float = 30) -> tuple[int, bytes]:
    """Raw bytes in, (resonate code, raw response bytes) out; errors come back as (code, b"")."""
    method = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        response, rpc = method.with_call(payload, timeout=timeout)
    except grpc.RpcError as e:
        return trailer(e.trailing_metadata()), b""
    return trailer(rpc.trailing_metadata()), response


def call_error(channel, path: str, payload: bytes) -> grpc.RpcError:
    method = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        method(payload, timeout=30)
    return info.value


def trailer(metadata) -> int:
    codes = [int(v) for k, v in metadata or () if k == "resonate-code"]
    assert len(codes) == 1, f"expected one resonate-code trailer, got {metadata}"
    return codes[0]


def uid(name: str) -> str:
    return f"wire-{uuid.uuid4().hex[:8]}-{name}"


def assert_still_serving(channel, http):
    assert http.get("/ping").status_code == 200
    pid = uid("alive")
    code, raw = call(channel, "/promise.Promises/CreatePromise", f_str(1, pid) + f_int(5, FUTURE))
    assert code == 20100 and decode_promise(one(fields_of(raw), 2))["id"] == pid


# ---------------------------------------------------------------------------------------------------
# field numbers

def test_create_promise_field_numbers(channel):
    pid = uid("create")
    request = (f_str(1, pid) + f_str(2, "ik") + f_int(3, 0)
               + f_bytes(4, f_map(1, {"h": "v"}) + f_bytes(2, b"\x00payload"))
               + f_int(5, FUTURE) + f_map(6, {"t": "1"}) + f_str(7, "req-1")
               + f_str(8, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") + f_str(9, "k=v"))
    code, raw = call(channel, "/promise.Promises/CreatePromise", request)
    assert code == 20100
    response = fields_of(raw)
    assert one(response, 1, 0) == 0  # noop = false on create (a proto3 false is not encoded)
    promise = decode_promise(one(response, 2))
    assert promise["id"] == pid and promise["state"] == "PENDING" and promise["timeout"] == FUTURE
    assert decode_value(promise["param"]) == {"headers": {"h": "v"}, "data": b"\x00payload"}
    assert promise["value"] == b""  # field 4 is present although empty: param/value are always set
    assert 4 in fields_of(one(response, 2))
    assert promise["idempotencyKeyForCreate"] == "ik" and promise["tags"] == {"t": "1"}
    assert promise["createdOn"] > 1_600_000_000_000 and promise["completedOn"] == 0

    code, raw = call(channel, "/promise.Promises/CreatePromise", request)  # same key: a replay
    assert code == 20000 and one(fields_of(raw), 1) == 1  # noop = true

    code, raw = call(channel, "/promise.Promises/ReadPromise", f_str(1, pid) + f_str(2, "req-2"))
    assert code == 20000
    assert decode_promise(one(fields_of(raw), 1))["idempotencyKeyForCreate"] == "ik"


@pytest.mark.parametrize("method,state_number", [("ResolvePromise", 1), ("RejectPromise", 2), ("CancelPromise", 4)])
def test_complete_rpcs_and_state_numbers(channel, method, state_number):
    pid = uid(method)
    assert call(channel, "/promise.Promises/CreatePromise", f_str(1, pid) + f_int(5, FUTURE))[0] == 20100
    request = f_str(1, pid) + f_str(2, "ck") + f_int(3, 1) + f_bytes(4, f_bytes(2, b"done")) + f_str(5, "r")
    code, raw = call(channel, f"/promise.Promises/{method}", request)
    assert code == 20100
    response = fields_of(raw)
    assert one(response, 1, 0) == 0
    promise_fields = fields_of(one(response, 2))
    assert one(promise_fields, 2) == state_number
    promise = decode_promise(one(response, 2))
    assert decode_value(promise["value"])["data"] == b"done" and promise["idempotencyKeyForComplete"] == "ck"
    assert promise["completedOn"] >= promise["createdOn"] > 0
    code, raw = call(channel, f"/promise.Promises/{method}", request)
    assert code == 20000 and one(fields_of(raw), 1) == 1


def test_timed_out_state_number(channel):
    pid = uid("timedout")
    assert call(channel, "/promise.Promises/CreatePromise", f_str(1, pid) + f_int(5, 1))[0] == 20100
    code, raw = call(channel, "/promise.Promises/ReadPromise", f_str(1, pid))
    assert code == 20000 and one(fields_of(one(fields_of(raw), 1)), 2) == 3  # REJECTED_TIMEDOUT = 3
    assert decode_promise(one(fields_of(raw), 1))["completedOn"] == 1


def test_subscription_skips_field_three(channel):
    pid = uid("sub")
    assert call(channel, "/promise.Promises/CreatePromise", f_str(1, pid) + f_int(5, FUTURE))[0] == 20100
    # CreateSubscriptionRequest: id=1, promiseId=2, (no 3), timeout=4, recv=5 (Recv.logical=1)
    request = f_str(1, "s1") + f_str(2, pid) + f_int(4, 12345) + f_bytes(5, f_str(1, "poll://any@nobody"))
    code, raw = call(channel, "/promise.Promises/CreateSubscription", request)
    assert code == 20100
    response = fields_of(raw)
    callback = fields_of(one(response, 2))  # Callback: id=1, promiseId=2, timeout=3, createdOn=4
    assert one(callback, 1).decode() == f"__notify:{pid}:s1" and one(callback, 2).decode() == pid
    assert one(callback, 3) == 12345 and one(callback, 4) > 0
    assert decode_promise(one(response, 3))["id"] == pid
    code, raw = call(channel, "/promise.Promises/CreateSubscription", request)
    assert code == 20000 and one(fields_of(raw), 1) == 1 and 2 not in fields_of(raw)  # no callback on noop


def test_search_field_numbers_and_cursor(channel):
    prefix = uid("search")
    for i in range(3):
        call(channel, "/promise.Promises/CreatePromise", f_str(1, f"{prefix}-{i}") + f_int(5, FUTURE))
    # SearchPromisesRequest: id=1, state=2 (SEARCH_PENDING=1), tags=3, limit=4, cursor=5
    code, raw = call(channel, "/promise.Promises/SearchPromises", f_str(1, f"{prefix}-*") + f_int(2, 1) + f_int(4, 2))
    assert code == 20000
    page = fields_of(raw)
    assert [decode_promise(p)["id"] for p in page[1]] == [f"{prefix}-2", f"{prefix}-1"]
    cursor = one(page, 2).decode()
    code, raw = call(channel, "/promise.Promises/SearchPromises", f_str(5, cursor))
    page = fields_of(raw)
    assert [decode_promise(p)["id"] for p in page[1]] == [f"{prefix}-0"] and 2 not in page  # "" cursor: last page


def test_locks_and_tasks_field_numbers(channel, http):
    rid = uid("lock")
    # AcquireLockRequest: resourceId=1, executionId=2, processId=3, ttl=4 -> acquired=1
    code, raw = call(channel, "/lock.Locks/AcquireLock", f_str(1, rid) + f_str(2, "e") + f_str(3, "p") + f_int(4, 60000))
    assert code == 20100 and one(fields_of(raw), 1) == 1
    # HeartbeatLocksResponse.locksAffected = 1 (int32)
    code, raw = call(channel, "/lock.Locks/HeartbeatLocks", f_str(1, "p"))
    assert code == 20000 and one(fields_of(raw), 1, 0) >= 1
    # ReleaseLockResponse.released = 1 is true when released (the reference always said false)
    code, raw = call(channel, "/lock.Locks/ReleaseLock", f_str(1, rid) + f_str(2, "e"))
    assert code == 20400 and one(fields_of(raw), 1) == 1
    assert call(channel, "/lock.Locks/ReleaseLock", f_str(1, rid) + f_str(2, "e"))[0] == 40402

    pid = uid("task")
    r = http.post("/promises", json={"id": pid, "timeout": FUTURE, "tags": {"resonate:invoke": "poll://any@nobody"}})
    assert r.status_code == 201
    task_id = f"__invoke:{pid}"
    # ClaimTaskRequest: id=1, counter=2, processId=3, ttl=4 -> claimed=1, mesg=2 {type=1, promises=2 map}
    code, raw = call(channel, "/task.Tasks/ClaimTask", f_str(1, task_id) + f_int(2, 1) + f_str(3, "p") + f_int(4, 60000))
    assert code == 20100
    response = fields_of(raw)
    assert one(response, 1) == 1
    mesg = fields_of(one(response, 2))
    assert one(mesg, 1) == b"invoke"
    links = {}
    for entry in mesg[2]:
        e = fields_of(entry)
        links[one(e, 1).decode()] = fields_of(one(e, 2))  # MesgPromise: id=1, href=2, data=3
    assert set(links) == {"root"}
    assert one(links["root"], 1).decode() == pid and one(links["root"], 2).decode().endswith(f"/promises/{pid}")
    assert decode_promise(one(links["root"], 3))["id"] == pid
    code, raw = call(channel, "/task.Tasks/HeartbeatTasks", f_str(1, "p"))  # tasksAffected=1 (int64)
    assert code == 20000 and one(fields_of(raw), 1) == 1
    code, raw = call(channel, "/task.Tasks/CompleteTask", f_str(1, task_id) + f_int(2, 1))  # completed=1
    assert code == 20100 and one(fields_of(raw), 1) == 1
    code, raw = call(channel, "/task.Tasks/CompleteTask", f_str(1, task_id) + f_int(2, 1))
    assert code == 20000 and one(fields_of(raw), 1, 0) == 0  # already completed: completed = false


def test_schedule_field_numbers(channel):
    sid = uid("sched")
    # CreateScheduleRequest: id=1, description=2, cron=3, tags=4, promiseId=5, promiseTimeout=6,
    # promiseParam=7, promiseTags=8, idempotencyKey=9
    request = (f_str(1, sid) + f_str(2, "desc") + f_str(3, "0 0 1 1 *") + f_map(4, {"a": "b"}) + f_str(5, "{{.id}}")
               + f_int(6, 1000) + f_bytes(7, f_bytes(2, b"pp")) + f_map(8, {"x": "y"}) + f_str(9, "k"))
    code, raw = call(channel, "/schedule.Schedules/CreateSchedule", request)
    assert code == 20100
    response = fields_of(raw)
    assert one(response, 1, 0) == 0
    s = fields_of(one(response, 2))  # Schedule: ... lastRunTime=10, nextRunTime=11, createdOn=12
    assert one(s, 1).decode() == sid and one(s, 2) == b"desc" and one(s, 3) == b"0 0 1 1 *"
    assert map_of(s, 4) == {"a": "b"} and one(s, 5) == b"{{.id}}" and one(s, 6) == 1000
    assert decode_value(one(s, 7))["data"] == b"pp" and map_of(s, 8) == {"x": "y"} and one(s, 9) == b"k"
    assert 10 not in s and one(s, 11) > one(s, 12) > 0
    code, raw = call(channel, "/schedule.Schedules/CreateSchedule", request)
    assert code == 20000 and one(fields_of(raw), 1) == 1  # we set noop on replays (the reference never did)
    code, raw = call(channel, "/schedule.Schedules/DeleteSchedule", f_str(1, sid))
    assert code == 20400 and raw == b""  # DeleteScheduleResponse has no fields
    assert call(channel, "/schedule.Schedules/ReadSchedule", f_str(1, sid))[0] == 40401


# ---------------------------------------------------------------------------------------------------
# hostile input: a clean status, a resonate-code, and the server keeps serving

ALL_METHODS = [
    "/promise.Promises/ReadPromise", "/promise.Promises/SearchPromises", "/promise.Promises/CreatePromise",
    "/promise.Promises/CreatePromiseAndTask", "/promise.Promises/ResolvePromise", "/promise.Promises/RejectPromise",
    "/promise.Promises/CancelPromise", "/promise.Promises/CreateCallback", "/promise.Promises/CreateSubscription",
    "/schedule.Schedules/ReadSchedule", "/schedule.Schedules/SearchSchedules", "/schedule.Schedules/CreateSchedule",
    "/schedule.Schedules/DeleteSchedule", "/lock.Locks/AcquireLock", "/lock.Locks/ReleaseLock",
    "/lock.Locks/HeartbeatLocks", "/task.Tasks/ClaimTask", "/task.Tasks/CompleteTask", "/task.Tasks/DropTask",
    "/task.Tasks/HeartbeatTasks",
]


@pytest.mark.parametrize("path", ALL_METHODS)
def test_empty_message_is_invalid_argument_naming_a_field(channel, path):
    error = call_error(channel, path, b"")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailer(error.trailing_metadata()) == 40000
    assert "field" in error.details(), error.details()


@pytest.mark.parametrize("payload,why", [
    (b"\xff\xff\xff\xff", "garbage"),
    (f_str(1, "x")[:-1], "truncated"),
    (tag(1, LEN) + varint(3) + b"\xff\xfe\xfd", "invalid UTF-8 in a string field"),
    (tag(1, 3), "a start-group wire type with no end"),
    (tag(5, LEN) + varint(2**40), "a length far beyond the message"),
])
def test_undecodable_bytes_are_invalid_argument(channel, http, payload, why):
    error = call_error(channel, "/promise.Promises/CreatePromise", payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, why
    assert trailer(error.trailing_metadata()) == 40000
    assert "promise.CreatePromiseRequest" in error.details()
    assert_still_serving(channel, http)


def test_wrong_wire_type_for_a_known_field_is_clean(channel):
    # id (field 1) sent as a varint: the parser keeps it as an unknown field, so id is missing
    error = call_error(channel, "/promise.Promises/CreatePromise", f_int(1, 7) + f_int(5, FUTURE))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details() == "The field id is required."


def test_negative_ttl_and_empty_process_id_rejected_before_the_claim_runs(channel, http):
    pid = uid("claim")
    assert http.post("/promises", json={"id": pid, "timeout": FUTURE,
                                        "tags": {"resonate:invoke": "poll://any@nobody"}}).status_code == 201
    task_id = f"__invoke:{pid}"
    for bad, field in [(f_str(3, "p") + f_int(4, -5), "ttl"), (f_str(3, "") + f_int(4, 1000), "processid")]:
        error = call_error(channel, "/task.Tasks/ClaimTask", f_str(1, task_id) + f_int(2, 1) + bad)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in error.details().lower()
    # nothing ran: the task is still unclaimed at counter 1
    code, _ = call(channel, "/task.Tasks/ClaimTask", f_str(1, task_id) + f_int(2, 1) + f_str(3, "p") + f_int(4, 1000))
    assert code == 20100


def test_negative_lock_ttl_is_invalid(channel):
    error = call_error(channel, "/lock.Locks/AcquireLock",
                       f_str(1, uid("r")) + f_str(2, "e") + f_str(3, "p") + f_int(4, -1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "ttl" in error.details()


def test_recv_missing_unset_or_not_json(channel):
    pid = uid("recv")
    assert call(channel, "/promise.Promises/CreatePromise", f_str(1, pid) + f_int(5, FUTURE))[0] == 20100
    base = f_str(1, pid) + f_str(2, uid("root")) + f_int(3, FUTURE)
    for recv, expected in [(b"", "The field recv is required."),  # no recv at all (crashed the reference)
                           (f_bytes(4, b""), "The field recv is required."),  # Recv with no oneof value
                           (f_bytes(4, f_bytes(2, f_str(1, "http") + f_bytes(2, b"{not json"))),
                            "the field recv.physical.data must be valid JSON")]:
        error = call_error(channel, "/promise.Promises/CreateCallback", base + recv)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details() == expected
    # a physical recv with JSON data is stored and the callback created
    physical = f_bytes(4, f_bytes(2, f_str(1, "http") + f_bytes(2, b'{"url":"http://127.0.0.1:1"}')))
    assert call(channel, "/promise.Promises/CreateCallback", base + physical)[0] == 20100


def test_unknown_search_state_is_invalid(channel):
    error = call_error(channel, "/promise.Promises/SearchPromises", f_str(1, "*") + f_int(2, 42))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "state" in error.details()


def test_oversized_message_is_refused_and_server_keeps_serving(channel, http):
    huge = f_str(1, uid("huge")) + f_bytes(4, f_bytes(2, b"x" * (5 * 1024 * 1024))) + f_int(5, FUTURE)
    error = call_error(channel, "/promise.Promises/CreatePromise", huge)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # just under the limit still works
    pid = uid("big")
    big = f_str(1, pid) + f_bytes(4, f_bytes(2, b"y" * (3 * 1024 * 1024))) + f_int(5, FUTURE)
    code, raw = call(channel, "/promise.Promises/CreatePromise", big)
    assert code == 20100 and len(decode_value(decode_promise(one(fields_of(raw), 2))["param"])["data"]) == 3 * 1024 * 1024
    assert_still_serving(channel, http)


def test_unknown_method_is_unimplemented(channel):
    assert call_error(channel, "/promise.Promises/Nope", b"").code() == grpc.StatusCode.UNIMPLEMENTED
    assert call_error(channel, "/nope.Nope/ReadPromise", b"").code() == grpc.StatusCode.UNIMPLEMENTED


def test_client_deadlines_do_not_disturb_the_server(server, channel, http):
    """Calls whose clients give up mid-flight still complete inside the server, which keeps serving.

    (Without the server's shield, a cancelled call cancelled the kernel's future under it and the
    writer thread died on set_result: every later request, on every transport, hung.)
    """
    prefix = uid("deadline")
    method = channel.unary_unary("/promise.Promises/CreatePromise", request_serializer=None,
                                 response_deserializer=None)
    acknowledged = []
    for deadline in (0.005, 0.02):
        futures = [(f"{prefix}-{deadline}-{i}", method.future(f_str(1, f"{prefix}-{deadline}-{i}") + f_int(5, FUTURE),
                                                               timeout=deadline)) for i in range(150)]
        for pid, f in futures:
            try:
                f.result()
                acknowledged.append(pid)
            except grpc.RpcError as e:
                assert e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), e
    assert_still_serving(channel, http)
    for pid in acknowledged:  # every acknowledged create is there
        assert http.get(f"/promises/{pid}").status_code == 200
    log = server.log_tail(2000)
    assert "Traceback" not in log and "InvalidStateError" not in log, log


# ---------------------------------------------------------------------------------------------------
# mixed: HTTP and gRPC act on the same promises

def test_created_over_http_completed_over_grpc(channel, http):
    pid = uid("h2g")
    assert http.post("/promises", json={"id": pid, "timeout": FUTURE}, headers={"idempotency-key": "hk"}).status_code == 201
    code, raw = call(channel, "/promise.Promises/ResolvePromise", f_str(1, pid) + f_str(2, "gk")
                     + f_bytes(4, f_bytes(2, b"from grpc")))
    assert code == 20100
    body = http.get(f"/promises/{pid}").json()
    assert body["state"] == "RESOLVED" and body["idempotencyKeyForCreate"] == "hk"
    assert body["idempotencyKeyForComplete"] == "gk" and base64.b64decode(body["value"]["data"]) == b"from grpc"
    # the same completion over HTTP is an idempotent replay
    r = http.patch(f"/promises/{pid}", json={"state": "RESOLVED"}, headers={"idempotency-key": "gk"})
    assert r.status_code == 200


def test_created_over_grpc_completed_over_http(channel, http):
    pid = uid("g2h")
    code, _ = call(channel, "/promise.Promises/CreatePromise", f_str(1, pid) + f_str(2, "gk") + f_int(5, FUTURE)
                   + f_map(6, {"k": "v"}))
    assert code == 20100
    r = http.patch(f"/promises/{pid}", json={"state": "REJECTED_CANCELED", "value": {"data": base64.b64encode(b"no").decode()}})
    assert r.status_code == 201
    code, raw = call(channel, "/promise.Promises/ReadPromise", f_str(1, pid))
    promise = decode_promise(one(fields_of(raw), 1))
    assert code == 20000 and promise["state"] == "REJECTED_CANCELED" and promise["tags"] == {"k": "v"}
    assert decode_value(promise["value"])["data"] == b"no" and promise["idempotencyKeyForCreate"] == "gk"
    # completing again over gRPC is forbidden by state, as over HTTP
    error = call_error(channel, "/promise.Promises/CancelPromise", f_str(1, pid))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and trailer(error.trailing_metadata()) == 40303
    assert error.details() == "The promise has already been canceled"


# ---------------------------------------------------------------------------------------------------
# the HTTP/2 underneath (resonate/api/grpc/http2.py) with a real client

def test_gzip_and_deflate_compressed_calls_are_understood(server):
    for compression in (grpc.Compression.Gzip, grpc.Compression.Deflate):
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", compression=compression) as ch:
            pid = uid(f"compressed-{compression.name}")
            code, raw = call(ch, "/promise.Promises/CreatePromise",
                             f_str(1, pid) + f_bytes(4, f_bytes(2, b"z" * 100_000)) + f_int(5, FUTURE))
            assert code == 20100
            promise = decode_promise(one(fields_of(raw), 2))
            assert promise["id"] == pid and decode_value(promise["param"])["data"] == b"z" * 100_000


def test_an_answer_larger_than_the_clients_window_arrives_whole(channel):
    """About 3 MB of search results: far more than HTTP/2's default 64 KiB window, so the answer goes out
    as the client opens its window."""
    prefix = uid("wide")
    param = b"p" * 300_000
    for i in range(10):
        assert call(channel, "/promise.Promises/CreatePromise",
                    f_str(1, f"{prefix}-{i}") + f_bytes(4, f_bytes(2, param)) + f_int(5, FUTURE))[0] == 20100
    code, raw = call(channel, "/promise.Promises/SearchPromises", f_str(1, f"{prefix}-*") + f_int(4, 10))
    promises = [decode_promise(p) for p in fields_of(raw).get(1, [])]
    assert code == 20000 and sorted(p["id"] for p in promises) == [f"{prefix}-{i}" for i in range(10)]
    assert all(decode_value(p["param"])["data"] == param for p in promises)


def test_many_concurrent_calls_on_one_connection_each_get_their_own_answer(channel):
    prefix = uid("many")
    method = channel.unary_unary("/promise.Promises/CreatePromise", request_serializer=None,
                                 response_deserializer=None)
    futures = [method.future(f_str(1, f"{prefix}-{i}") + f_int(5, FUTURE), timeout=60) for i in range(500)]
    ids = [decode_promise(one(fields_of(f.result()), 2))["id"] for f in futures]
    assert ids == [f"{prefix}-{i}" for i in range(500)]


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # HTTP/1.1 on the gRPC port
    PREFACE + b"\x00\x00\x04\x01\x04\x00\x00\x00\x01\xff\xff\xff\xff",  # HEADERS with broken HPACK
    PREFACE + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",  # a 16 MB frame
])
def test_a_broken_connection_gets_goaway_and_the_server_keeps_serving(server, channel, http, garbage):
    import socket
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=30) as sock:
        sock.sendall(garbage)
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its GOAWAY
            received += chunk
    frames, position = [], 0
    while position + 9 <= len(received):
        length = int.from_bytes(received[position:position + 3], "big")
        frames.append(received[position + 3])
        position += 9 + length
    assert GOAWAY in frames
    assert_still_serving(channel, http)
