"""The gRPC protos are wire-compatible with the reference server (v0.8.2).

Nothing here trusts the generated code to describe itself: field numbers, types,
RPC paths and enum numbers are written out from the spec tables
(``grpc-kafka.md`` section 2.3/2.4, checked against the reference ``.proto``
files) and compared with what our generated modules do, partly on raw bytes
produced by a tiny independent protobuf wire encoder.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from resonate.api.grpc.pb import (
    callback_t_pb2,
    lock_pb2,
    lock_pb2_grpc,
    promise_pb2,
    promise_pb2_grpc,
    promise_t_pb2,
    schedule_pb2,
    schedule_pb2_grpc,
    schedule_t_pb2,
    task_pb2,
    task_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[2]
GEN_SCRIPT = ROOT / "tools" / "gen_protos.py"

ALL_MODULES = [
    promise_t_pb2,
    callback_t_pb2,
    schedule_t_pb2,
    promise_pb2,
    schedule_pb2,
    lock_pb2,
    task_pb2,
]


# ---------------------------------------------------------------------------
# (a) generated code is fresh
# ---------------------------------------------------------------------------


def test_generated_code_is_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # grpcio-tools is pinned in pyproject.toml, so a version mismatch is a set-up error, not a pass
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_proto_packages_are_the_reference_ones() -> None:
    assert {m.DESCRIPTOR.package for m in ALL_MODULES} == {
        "promise_t",
        "callback_t",
        "schedule_t",
        "promise",
        "schedule",
        "lock",
        "task",
    }
    for m in ALL_MODULES:
        fdp = descriptor_pb2.FileDescriptorProto.FromString(m.DESCRIPTOR.serialized_pb)
        assert fdp.syntax == "proto3", fdp.name
    deps = {m.DESCRIPTOR.package: sorted(d.package for d in m.DESCRIPTOR.dependencies) for m in ALL_MODULES}
    assert deps == {
        "promise_t": [],
        "callback_t": [],
        "schedule_t": ["promise_t"],
        "promise": ["callback_t", "promise_t"],
        "schedule": ["promise_t", "schedule_t"],
        "lock": [],
        "task": ["promise_t"],
    }


# ---------------------------------------------------------------------------
# (b1) every message: exact field set (name, number, type) from the spec tables
# ---------------------------------------------------------------------------

# "name type number" entries; type is a scalar, a full message/enum name,
# "repeated <type>" or "map<key,value>".
SS = "map<string,string>"
SPEC_MESSAGES: dict[str, str] = {
    # promise_t
    "promise_t.Promise": (
        f"id string 1; state promise_t.State 2; param promise_t.Value 3; value promise_t.Value 4; "
        f"timeout int64 5; idempotencyKeyForCreate string 6; idempotencyKeyForComplete string 7; "
        f"tags {SS} 8; createdOn int64 9; completedOn int64 10"
    ),
    "promise_t.Value": f"headers {SS} 1; data bytes 2",
    # callback_t
    "callback_t.Callback": "id string 1; promiseId string 2; timeout int64 3; createdOn int64 4",
    "callback_t.Recv": "logical string 1; physical callback_t.PhysicalRecv 2",
    "callback_t.PhysicalRecv": "type string 1; data bytes 2",
    # schedule_t
    "schedule_t.Schedule": (
        f"id string 1; description string 2; cron string 3; tags {SS} 4; promiseId string 5; "
        f"promiseTimeout int64 6; promiseParam promise_t.Value 7; promiseTags {SS} 8; "
        f"idempotencyKey string 9; lastRunTime int64 10; nextRunTime int64 11; createdOn int64 12"
    ),
    # promise
    "promise.ReadPromiseRequest": "id string 1; requestId string 2",
    "promise.ReadPromiseResponse": "promise promise_t.Promise 1",
    "promise.SearchPromisesRequest": (
        f"id string 1; state promise.SearchState 2; tags {SS} 3; limit int32 4; cursor string 5; requestId string 6"
    ),
    "promise.SearchPromisesResponse": "promises repeated promise_t.Promise 1; cursor string 2",
    "promise.CreatePromiseRequest": (
        f"id string 1; idempotencyKey string 2; strict bool 3; param promise_t.Value 4; timeout int64 5; "
        f"tags {SS} 6; requestId string 7; traceparent string 8; tracestate string 9"
    ),
    "promise.CreatePromiseResponse": "noop bool 1; promise promise_t.Promise 2",
    "promise.CreatePromiseAndTaskRequest": (
        "promise promise.CreatePromiseRequest 1; task promise.CreatePromiseTaskRequest 2"
    ),
    "promise.CreatePromiseTaskRequest": "processId string 1; ttl int64 2",
    "promise.CreatePromiseAndTaskResponse": "noop bool 1; promise promise_t.Promise 2",
    "promise.ResolvePromiseRequest": (
        "id string 1; idempotencyKey string 2; strict bool 3; value promise_t.Value 4; requestId string 5"
    ),
    "promise.ResolvePromiseResponse": "noop bool 1; promise promise_t.Promise 2",
    "promise.RejectPromiseRequest": (
        "id string 1; idempotencyKey string 2; strict bool 3; value promise_t.Value 4; requestId string 5"
    ),
    "promise.RejectPromiseResponse": "noop bool 1; promise promise_t.Promise 2",
    "promise.CancelPromiseRequest": (
        "id string 1; idempotencyKey string 2; strict bool 3; value promise_t.Value 4; requestId string 5"
    ),
    "promise.CancelPromiseResponse": "noop bool 1; promise promise_t.Promise 2",
    "promise.CreateCallbackRequest": (
        "promiseId string 1; rootPromiseId string 2; timeout int64 3; recv callback_t.Recv 4; "
        "requestId string 5; traceparent string 6; tracestate string 7"
    ),
    "promise.CreateCallbackResponse": "noop bool 1; callback callback_t.Callback 2; promise promise_t.Promise 3",
    # field number 3 deliberately unused
    "promise.CreateSubscriptionRequest": (
        "id string 1; promiseId string 2; timeout int64 4; recv callback_t.Recv 5; "
        "requestId string 6; traceparent string 7; tracestate string 8"
    ),
    "promise.CreateSubscriptionResponse": "noop bool 1; callback callback_t.Callback 2; promise promise_t.Promise 3",
    # schedule
    "schedule.CreateScheduleRequest": (
        f"id string 1; description string 2; cron string 3; tags {SS} 4; promiseId string 5; "
        f"promiseTimeout int64 6; promiseParam promise_t.Value 7; promiseTags {SS} 8; "
        f"idempotencyKey string 9; requestId string 10"
    ),
    "schedule.CreatedScheduleResponse": "noop bool 1; schedule schedule_t.Schedule 2",
    "schedule.ReadScheduleRequest": "id string 1; requestId string 2",
    "schedule.ReadScheduleResponse": "schedule schedule_t.Schedule 1",
    "schedule.SearchSchedulesRequest": f"id string 1; tags {SS} 2; limit int32 3; cursor string 4; requestId string 5",
    "schedule.SearchSchedulesResponse": "schedules repeated schedule_t.Schedule 1; cursor string 2",
    "schedule.DeleteScheduleRequest": "id string 1; requestId string 2",
    "schedule.DeleteScheduleResponse": "",
    # lock
    "lock.AcquireLockRequest": (
        "resourceId string 1; executionId string 2; processId string 3; ttl int64 4; requestId string 5"
    ),
    "lock.AcquireLockResponse": "acquired bool 1",
    "lock.ReleaseLockRequest": "resourceId string 1; executionId string 2; requestId string 3",
    "lock.ReleaseLockResponse": "released bool 1",
    "lock.HeartbeatLocksRequest": "processId string 1; requestId string 2",
    "lock.HeartbeatLocksResponse": "locksAffected int32 1",
    # task
    "task.ClaimTaskRequest": "id string 1; counter int32 2; processId string 3; ttl int64 4; requestId string 5",
    "task.ClaimTaskResponse": "claimed bool 1; mesg task.Mesg 2",
    "task.Mesg": "type string 1; promises map<string,task.MesgPromise> 2",
    "task.MesgPromise": "id string 1; href string 2; data promise_t.Promise 3",
    "task.CompleteTaskRequest": "id string 1; counter int32 2; requestId string 3",
    "task.CompleteTaskResponse": "completed bool 1",
    "task.DropTaskRequest": "id string 1; counter int32 2; requestId string 3",
    "task.DropTaskResponse": "dropped bool 1",
    "task.HeartbeatTasksRequest": "processId string 1; requestId string 2",
    "task.HeartbeatTasksResponse": "tasksAffected int64 1",
}

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
}


def _type_name(f: FieldDescriptor) -> str:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        mt = f.message_type
        if mt.GetOptions().map_entry:
            k, v = mt.fields_by_name["key"], mt.fields_by_name["value"]
            assert (k.number, v.number) == (1, 2)
            return f"map<{_type_name(k)},{_type_name(v)}>"
        base = mt.full_name
    elif f.type == FieldDescriptor.TYPE_ENUM:
        base = f.enum_type.full_name
    else:
        base = _SCALARS.get(f.type, f"<unexpected type {f.type}>")
    is_repeated = getattr(f, "is_repeated", None)
    repeated = is_repeated if is_repeated is not None else f.label == FieldDescriptor.LABEL_REPEATED
    if repeated and not base.startswith("map<"):
        return f"repeated {base}"
    return base


def _all_messages() -> dict[str, object]:
    out: dict[str, object] = {}
    for mod in ALL_MODULES:
        for msg in mod.DESCRIPTOR.message_types_by_name.values():
            out[msg.full_name] = msg
    return out


def _parse_spec(text: str) -> dict[str, tuple[str, int]]:
    fields: dict[str, tuple[str, int]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        name, *typ, num = entry.split(" ")
        fields[name] = (" ".join(typ), int(num))
    return fields


def test_message_set_matches_spec() -> None:
    assert sorted(_all_messages()) == sorted(SPEC_MESSAGES)


@pytest.mark.parametrize("full_name", sorted(SPEC_MESSAGES))
def test_message_fields_match_spec(full_name: str) -> None:
    desc = _all_messages()[full_name]
    actual = {f.name: (_type_name(f), f.number) for f in desc.fields}
    assert actual == _parse_spec(SPEC_MESSAGES[full_name])
    # lowerCamelCase names in the .proto itself: JSON names equal field names
    assert all(f.json_name == f.name for f in desc.fields)
    # no proto3 `optional` (synthetic oneofs) anywhere; the only real oneof is Recv.recv
    oneofs = {o.name: sorted(f.name for f in o.fields) for o in desc.oneofs}
    if full_name == "callback_t.Recv":
        assert oneofs == {"recv": ["logical", "physical"]}
    else:
        assert oneofs == {}


# ---------------------------------------------------------------------------
# (d) enums
# ---------------------------------------------------------------------------


def test_enum_numbers_match_spec() -> None:
    state = {v.name: v.number for v in promise_t_pb2.DESCRIPTOR.enum_types_by_name["State"].values}
    assert state == {
        "PENDING": 0,
        "RESOLVED": 1,
        "REJECTED": 2,
        "REJECTED_TIMEDOUT": 3,
        "REJECTED_CANCELED": 4,
    }
    search = {v.name: v.number for v in promise_pb2.DESCRIPTOR.enum_types_by_name["SearchState"].values}
    assert search == {"SEARCH_ALL": 0, "SEARCH_PENDING": 1, "SEARCH_RESOLVED": 2, "SEARCH_REJECTED": 3}
    all_enums = sorted(e.full_name for m in ALL_MODULES for e in m.DESCRIPTOR.enum_types_by_name.values())
    assert all_enums == ["promise.SearchState", "promise_t.State"]
    # generated Python constants
    assert promise_t_pb2.REJECTED_TIMEDOUT == 3 and promise_t_pb2.REJECTED_CANCELED == 4
    assert promise_pb2.SEARCH_REJECTED == 3


# ---------------------------------------------------------------------------
# (c) services: exactly the 20 reference RPCs, all unary
# ---------------------------------------------------------------------------

EXPECTED_RPCS: dict[str, tuple[str, str]] = {
    "/promise.Promises/ReadPromise": ("promise.ReadPromiseRequest", "promise.ReadPromiseResponse"),
    "/promise.Promises/SearchPromises": ("promise.SearchPromisesRequest", "promise.SearchPromisesResponse"),
    "/promise.Promises/CreatePromise": ("promise.CreatePromiseRequest", "promise.CreatePromiseResponse"),
    "/promise.Promises/CreatePromiseAndTask": (
        "promise.CreatePromiseAndTaskRequest",
        "promise.CreatePromiseAndTaskResponse",
    ),
    "/promise.Promises/ResolvePromise": ("promise.ResolvePromiseRequest", "promise.ResolvePromiseResponse"),
    "/promise.Promises/RejectPromise": ("promise.RejectPromiseRequest", "promise.RejectPromiseResponse"),
    "/promise.Promises/CancelPromise": ("promise.CancelPromiseRequest", "promise.CancelPromiseResponse"),
    "/promise.Promises/CreateCallback": ("promise.CreateCallbackRequest", "promise.CreateCallbackResponse"),
    "/promise.Promises/CreateSubscription": (
        "promise.CreateSubscriptionRequest",
        "promise.CreateSubscriptionResponse",
    ),
    "/schedule.Schedules/ReadSchedule": ("schedule.ReadScheduleRequest", "schedule.ReadScheduleResponse"),
    "/schedule.Schedules/SearchSchedules": ("schedule.SearchSchedulesRequest", "schedule.SearchSchedulesResponse"),
    "/schedule.Schedules/CreateSchedule": ("schedule.CreateScheduleRequest", "schedule.CreatedScheduleResponse"),
    "/schedule.Schedules/DeleteSchedule": ("schedule.DeleteScheduleRequest", "schedule.DeleteScheduleResponse"),
    "/lock.Locks/AcquireLock": ("lock.AcquireLockRequest", "lock.AcquireLockResponse"),
    "/lock.Locks/ReleaseLock": ("lock.ReleaseLockRequest", "lock.ReleaseLockResponse"),
    "/lock.Locks/HeartbeatLocks": ("lock.HeartbeatLocksRequest", "lock.HeartbeatLocksResponse"),
    "/task.Tasks/ClaimTask": ("task.ClaimTaskRequest", "task.ClaimTaskResponse"),
    "/task.Tasks/CompleteTask": ("task.CompleteTaskRequest", "task.CompleteTaskResponse"),
    "/task.Tasks/DropTask": ("task.DropTaskRequest", "task.DropTaskResponse"),
    "/task.Tasks/HeartbeatTasks": ("task.HeartbeatTasksRequest", "task.HeartbeatTasksResponse"),
}


def test_service_descriptors_have_exactly_the_20_rpcs() -> None:
    actual: dict[str, tuple[str, str]] = {}
    for mod in ALL_MODULES:
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                assert not m.client_streaming and not m.server_streaming, m.full_name
                actual[f"/{svc.full_name}/{m.name}"] = (m.input_type.full_name, m.output_type.full_name)
    assert len(EXPECTED_RPCS) == 20
    assert actual == EXPECTED_RPCS
    services = sorted(s.full_name for mod in ALL_MODULES for s in mod.DESCRIPTOR.services_by_name.values())
    assert services == ["lock.Locks", "promise.Promises", "schedule.Schedules", "task.Tasks"]


_GRPC_MODULES = {
    "promise.Promises": (promise_pb2_grpc, "Promises"),
    "schedule.Schedules": (schedule_pb2_grpc, "Schedules"),
    "lock.Locks": (lock_pb2_grpc, "Locks"),
    "task.Tasks": (task_pb2_grpc, "Tasks"),
}


def _message_class(full_name: str) -> type:
    pkg, name = full_name.split(".")
    mod = {m.DESCRIPTOR.package: m for m in ALL_MODULES}[pkg]
    return getattr(mod, name)


def test_generated_servicers_serve_the_exact_method_paths() -> None:
    """Register every generated servicer and call all 20 paths with raw bytes."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for svc_name, (mod, short) in _GRPC_MODULES.items():
        base = getattr(mod, f"{short}Servicer")
        methods = {}
        for path, (_req, resp) in EXPECTED_RPCS.items():
            if path.startswith(f"/{svc_name}/"):
                resp_cls = _message_class(resp)
                methods[path.rsplit("/", 1)[1]] = (
                    lambda self, request, context, _cls=resp_cls, _req=_req: _cls()
                    if type(request).DESCRIPTOR.full_name == _req
                    else None
                )
        servicer = type(f"Test{short}", (base,), methods)()
        getattr(mod, f"add_{short}Servicer_to_server")(servicer, server)
        # the generated stub exposes one callable per RPC
        stub = getattr(mod, f"{short}Stub")(grpc.insecure_channel("localhost:1"))
        assert all(hasattr(stub, name) for name in methods)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            for path in EXPECTED_RPCS:
                call = channel.unary_unary(path)  # raw bytes in, raw bytes out
                assert call(b"", timeout=10) == b"", path
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary("/promise.Promises/CreatePromiseAndCallback")(b"", timeout=10)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(None)


# ---------------------------------------------------------------------------
# (b2) independent wire encoder and byte-level round trips
# ---------------------------------------------------------------------------

VARINT, LEN = 0, 2


def _varint(n: int) -> bytes:
    if n < 0:  # int32/int64 negatives are sign-extended to 64 bits: 10 bytes
        n += 1 << 64
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def V(number: int, value: int | bool) -> bytes:
    """varint field: int32, int64, bool, enum."""
    return _tag(number, VARINT) + _varint(int(value))


def B(number: int, data: bytes) -> bytes:
    """length-delimited field."""
    return _tag(number, LEN) + _varint(len(data)) + data


def S(number: int, text: str) -> bytes:
    return B(number, text.encode("utf-8"))


def M(number: int, *parts: bytes) -> bytes:
    """embedded message field."""
    return B(number, b"".join(parts))


def SMAP(number: int, entries: dict[str, str]) -> bytes:
    """map<string,string>: repeated entry messages {key = 1, value = 2}, sorted by key."""
    return b"".join(M(number, S(1, k), S(2, v)) for k, v in sorted(entries.items()))


def test_wire_encoder_self_check() -> None:
    # examples from the protobuf encoding guide
    assert _varint(1) == b"\x01"
    assert _varint(150) == b"\x96\x01"
    assert _varint(300) == b"\xac\x02"
    assert _varint(-1) == b"\xff" * 9 + b"\x01"
    assert V(1, 150) == b"\x08\x96\x01"
    assert S(2, "testing") == b"\x12\x07testing"
    assert _tag(16, LEN) == b"\x82\x01"


def _roundtrip(cls: type, wire: bytes, expected: object) -> object:
    parsed = cls.FromString(wire)
    assert parsed == expected
    assert expected.SerializeToString(deterministic=True) == wire
    assert parsed.SerializeToString(deterministic=True) == wire
    return parsed


def test_create_promise_request_wire() -> None:
    wire = (
        S(1, "foo")
        + S(2, "ikey")
        + V(3, True)
        + M(4, SMAP(1, {"a": "1", "b": "2"}), B(2, b"\x00\xffparam"))
        + V(5, 2**63 - 1)
        + SMAP(6, {"resonate:invoke": "poll://any@default", "x": "y"})
        + S(7, "req-1")
        + S(8, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        + S(9, "congo=t61rcWkgMzE")
    )
    expected = promise_pb2.CreatePromiseRequest(
        id="foo",
        idempotencyKey="ikey",
        strict=True,
        param=promise_t_pb2.Value(headers={"a": "1", "b": "2"}, data=b"\x00\xffparam"),
        timeout=2**63 - 1,
        tags={"resonate:invoke": "poll://any@default", "x": "y"},
        requestId="req-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate="congo=t61rcWkgMzE",
    )
    parsed = _roundtrip(promise_pb2.CreatePromiseRequest, wire, expected)
    assert parsed.id == "foo" and parsed.idempotencyKey == "ikey" and parsed.strict is True
    assert parsed.param.data == b"\x00\xffparam" and dict(parsed.param.headers) == {"a": "1", "b": "2"}
    assert parsed.timeout == 2**63 - 1
    assert parsed.requestId == "req-1" and parsed.tracestate == "congo=t61rcWkgMzE"


@pytest.mark.parametrize(
    "cls",
    [promise_pb2.ResolvePromiseRequest, promise_pb2.RejectPromiseRequest, promise_pb2.CancelPromiseRequest],
)
def test_complete_promise_requests_wire(cls: type) -> None:
    wire = S(1, "p1") + S(2, "ik") + V(3, True) + M(4, SMAP(1, {"h": "v"}), B(2, b'{"ok":1}')) + S(5, "r")
    expected = cls(
        id="p1",
        idempotencyKey="ik",
        strict=True,
        value=promise_t_pb2.Value(headers={"h": "v"}, data=b'{"ok":1}'),
        requestId="r",
    )
    parsed = _roundtrip(cls, wire, expected)
    assert parsed.value.data == b'{"ok":1}' and parsed.requestId == "r"


def test_create_promise_and_task_request_wire() -> None:
    wire = M(1, S(1, "p"), V(5, 1_700_000_000_000), S(7, "req")) + M(2, S(1, "proc-1"), V(2, -5))
    expected = promise_pb2.CreatePromiseAndTaskRequest(
        promise=promise_pb2.CreatePromiseRequest(id="p", timeout=1_700_000_000_000, requestId="req"),
        task=promise_pb2.CreatePromiseTaskRequest(processId="proc-1", ttl=-5),
    )
    parsed = _roundtrip(promise_pb2.CreatePromiseAndTaskRequest, wire, expected)
    assert parsed.task.ttl == -5 and parsed.promise.requestId == "req"
    # absent sub-messages stay absent (the handler distinguishes "missing")
    empty = promise_pb2.CreatePromiseAndTaskRequest.FromString(b"")
    assert not empty.HasField("promise") and not empty.HasField("task")


def test_create_callback_request_wire_logical_and_physical() -> None:
    wire = (
        S(1, "child")
        + S(2, "root")
        + V(3, 12345)
        + M(4, S(1, "default"))
        + S(5, "rid")
        + S(6, "tp")
        + S(7, "ts")
    )
    expected = promise_pb2.CreateCallbackRequest(
        promiseId="child",
        rootPromiseId="root",
        timeout=12345,
        recv=callback_t_pb2.Recv(logical="default"),
        requestId="rid",
        traceparent="tp",
        tracestate="ts",
    )
    parsed = _roundtrip(promise_pb2.CreateCallbackRequest, wire, expected)
    assert parsed.recv.WhichOneof("recv") == "logical" and parsed.recv.logical == "default"

    phys = S(1, "child") + M(4, M(2, S(1, "http"), B(2, b'{"url":"http://x"}')))
    parsed = _roundtrip(
        promise_pb2.CreateCallbackRequest,
        phys,
        promise_pb2.CreateCallbackRequest(
            promiseId="child",
            recv=callback_t_pb2.Recv(physical=callback_t_pb2.PhysicalRecv(type="http", data=b'{"url":"http://x"}')),
        ),
    )
    assert parsed.recv.WhichOneof("recv") == "physical"
    assert parsed.recv.physical.type == "http"

    # recv present but empty (oneof unset) vs recv absent are distinguishable
    present_empty = promise_pb2.CreateCallbackRequest.FromString(M(4))
    assert present_empty.HasField("recv") and present_empty.recv.WhichOneof("recv") is None
    assert not promise_pb2.CreateCallbackRequest.FromString(b"").HasField("recv")


def test_create_subscription_request_wire_skips_field_3() -> None:
    wire = S(1, "sub") + S(2, "p") + V(4, 99) + M(5, S(1, "any")) + S(6, "r") + S(7, "tp") + S(8, "ts")
    expected = promise_pb2.CreateSubscriptionRequest(
        id="sub",
        promiseId="p",
        timeout=99,
        recv=callback_t_pb2.Recv(logical="any"),
        requestId="r",
        traceparent="tp",
        tracestate="ts",
    )
    _roundtrip(promise_pb2.CreateSubscriptionRequest, wire, expected)
    # something sent as field 3 is not the timeout
    odd = promise_pb2.CreateSubscriptionRequest.FromString(V(3, 99))
    assert odd.timeout == 0


def test_create_callback_response_wire() -> None:
    wire = (
        V(1, True)
        + M(2, S(1, "__resume:root:child"), S(2, "child"), V(3, 5), V(4, 6))
        + M(3, S(1, "child"), V(2, 1), M(3), M(4))
    )
    expected = promise_pb2.CreateCallbackResponse(
        noop=True,
        callback=callback_t_pb2.Callback(id="__resume:root:child", promiseId="child", timeout=5, createdOn=6),
        promise=promise_t_pb2.Promise(
            id="child", state=promise_t_pb2.RESOLVED, param=promise_t_pb2.Value(), value=promise_t_pb2.Value()
        ),
    )
    _roundtrip(promise_pb2.CreateCallbackResponse, wire, expected)


def test_promise_message_wire() -> None:
    wire = (
        S(1, "p")
        + V(2, 4)  # REJECTED_CANCELED
        + M(3, SMAP(1, {"k": "v"}), B(2, b"in"))
        + M(4)  # always-present empty value: tag 0x22, length 0
        + V(5, 100)
        + S(6, "ikc")
        + S(7, "ikd")
        + SMAP(8, {"t1": "v1", "t2": "v2"})
        + V(9, 10)
        + V(10, 20)
    )
    assert M(4) == b"\x22\x00"
    expected = promise_t_pb2.Promise(
        id="p",
        state=promise_t_pb2.REJECTED_CANCELED,
        param=promise_t_pb2.Value(headers={"k": "v"}, data=b"in"),
        value=promise_t_pb2.Value(),
        timeout=100,
        idempotencyKeyForCreate="ikc",
        idempotencyKeyForComplete="ikd",
        tags={"t1": "v1", "t2": "v2"},
        createdOn=10,
        completedOn=20,
    )
    parsed = _roundtrip(promise_t_pb2.Promise, wire, expected)
    assert parsed.HasField("value") and parsed.value == promise_t_pb2.Value()
    assert parsed.state == 4 and promise_t_pb2.State.Name(parsed.state) == "REJECTED_CANCELED"
    # timedout is 3 on the wire
    assert promise_t_pb2.Promise.FromString(V(2, 3)).state == promise_t_pb2.REJECTED_TIMEDOUT


def test_search_promises_request_wire() -> None:
    wire = S(1, "foo*") + V(2, 3) + SMAP(3, {"a": "b"}) + V(4, 50) + S(5, "cur") + S(6, "rq")
    expected = promise_pb2.SearchPromisesRequest(
        id="foo*", state=promise_pb2.SEARCH_REJECTED, tags={"a": "b"}, limit=50, cursor="cur", requestId="rq"
    )
    _roundtrip(promise_pb2.SearchPromisesRequest, wire, expected)
    # an enum number outside the declared ones is preserved (open enum), not dropped
    assert promise_pb2.SearchPromisesRequest.FromString(V(2, 7)).state == 7


def test_create_schedule_request_wire() -> None:
    wire = (
        S(1, "s")
        + S(2, "desc")
        + S(3, "*/5 * * * *")
        + SMAP(4, {"st": "1"})
        + S(5, "p.{{.timestamp}}")
        + V(6, 60000)
        + M(7, SMAP(1, {"ph": "x"}), B(2, b"data"))
        + SMAP(8, {"pt": "2"})
        + S(9, "ik")
        + S(10, "rq")
    )
    expected = schedule_pb2.CreateScheduleRequest(
        id="s",
        description="desc",
        cron="*/5 * * * *",
        tags={"st": "1"},
        promiseId="p.{{.timestamp}}",
        promiseTimeout=60000,
        promiseParam=promise_t_pb2.Value(headers={"ph": "x"}, data=b"data"),
        promiseTags={"pt": "2"},
        idempotencyKey="ik",
        requestId="rq",
    )
    parsed = _roundtrip(schedule_pb2.CreateScheduleRequest, wire, expected)
    assert parsed.requestId == "rq" and parsed.promiseTimeout == 60000


def test_schedule_message_and_created_response_wire() -> None:
    sched = (
        S(1, "s")
        + S(2, "d")
        + S(3, "@daily")
        + SMAP(4, {"a": "1"})
        + S(5, "pid")
        + V(6, 7)
        + M(7)
        + SMAP(8, {"b": "2"})
        + S(9, "ik")
        + V(10, 11)
        + V(11, 12)
        + V(12, 13)
    )
    schedule = schedule_t_pb2.Schedule(
        id="s",
        description="d",
        cron="@daily",
        tags={"a": "1"},
        promiseId="pid",
        promiseTimeout=7,
        promiseParam=promise_t_pb2.Value(),
        promiseTags={"b": "2"},
        idempotencyKey="ik",
        lastRunTime=11,
        nextRunTime=12,
        createdOn=13,
    )
    _roundtrip(schedule_t_pb2.Schedule, sched, schedule)
    # noop = 1, schedule = 2
    _roundtrip(
        schedule_pb2.CreatedScheduleResponse,
        M(2, sched),
        schedule_pb2.CreatedScheduleResponse(schedule=schedule),
    )
    _roundtrip(
        schedule_pb2.SearchSchedulesResponse,
        M(1, sched) + M(1, S(1, "t")) + S(2, "next"),
        schedule_pb2.SearchSchedulesResponse(schedules=[schedule, schedule_t_pb2.Schedule(id="t")], cursor="next"),
    )


def test_lock_messages_wire() -> None:
    wire = S(1, "res") + S(2, "exec") + S(3, "proc") + V(4, -1) + S(5, "rq")
    assert V(4, -1) == b"\x20" + b"\xff" * 9 + b"\x01"
    expected = lock_pb2.AcquireLockRequest(resourceId="res", executionId="exec", processId="proc", ttl=-1, requestId="rq")
    parsed = _roundtrip(lock_pb2.AcquireLockRequest, wire, expected)
    assert parsed.ttl == -1

    _roundtrip(
        lock_pb2.ReleaseLockRequest,
        S(1, "res") + S(2, "exec") + S(3, "rq"),
        lock_pb2.ReleaseLockRequest(resourceId="res", executionId="exec", requestId="rq"),
    )
    _roundtrip(lock_pb2.AcquireLockResponse, V(1, True), lock_pb2.AcquireLockResponse(acquired=True))
    _roundtrip(lock_pb2.ReleaseLockResponse, V(1, True), lock_pb2.ReleaseLockResponse(released=True))
    _roundtrip(
        lock_pb2.HeartbeatLocksRequest,
        S(1, "proc") + S(2, "rq"),
        lock_pb2.HeartbeatLocksRequest(processId="proc", requestId="rq"),
    )
    # locksAffected is int32: a negative value still takes 10 bytes on the wire
    _roundtrip(lock_pb2.HeartbeatLocksResponse, V(1, -2), lock_pb2.HeartbeatLocksResponse(locksAffected=-2))
    with pytest.raises(ValueError):
        lock_pb2.HeartbeatLocksResponse(locksAffected=2**31)


def test_claim_task_request_wire() -> None:
    wire = S(1, "__invoke:p") + V(2, 3) + S(3, "proc") + V(4, 2**40) + S(5, "rq")
    expected = task_pb2.ClaimTaskRequest(id="__invoke:p", counter=3, processId="proc", ttl=2**40, requestId="rq")
    parsed = _roundtrip(task_pb2.ClaimTaskRequest, wire, expected)
    assert parsed.ttl == 2**40  # int64, not int32
    assert task_pb2.ClaimTaskRequest.FromString(V(2, -1)).counter == -1


def test_claim_task_response_wire() -> None:
    root = M(3, S(1, "root"), M(3), M(4), V(5, 1))  # state PENDING = 0 is not on the wire
    wire = V(1, True) + M(
        2,
        S(1, "resume"),
        # map<string, MesgPromise>: entries {key = 1, value = 2}, sorted by key
        M(2, S(1, "leaf"), M(2, S(1, "leaf"), S(2, "http://localhost:8001/promises/leaf"))),
        M(2, S(1, "root"), M(2, S(1, "root"), S(2, "http://localhost:8001/promises/root"), root)),
    )
    expected = task_pb2.ClaimTaskResponse(
        claimed=True,
        mesg=task_pb2.Mesg(
            type="resume",
            promises={
                "root": task_pb2.MesgPromise(
                    id="root",
                    href="http://localhost:8001/promises/root",
                    data=promise_t_pb2.Promise(
                        id="root", param=promise_t_pb2.Value(), value=promise_t_pb2.Value(), timeout=1
                    ),
                ),
                "leaf": task_pb2.MesgPromise(id="leaf", href="http://localhost:8001/promises/leaf"),
            },
        ),
    )
    parsed = _roundtrip(task_pb2.ClaimTaskResponse, wire, expected)
    assert sorted(parsed.mesg.promises) == ["leaf", "root"]
    assert not parsed.mesg.promises["leaf"].HasField("data")
    assert parsed.mesg.promises["root"].data.timeout == 1


def test_other_task_messages_wire() -> None:
    for cls in (task_pb2.CompleteTaskRequest, task_pb2.DropTaskRequest):
        _roundtrip(cls, S(1, "t") + V(2, 7) + S(3, "rq"), cls(id="t", counter=7, requestId="rq"))
    _roundtrip(task_pb2.CompleteTaskResponse, V(1, True), task_pb2.CompleteTaskResponse(completed=True))
    _roundtrip(task_pb2.DropTaskResponse, V(1, True), task_pb2.DropTaskResponse(dropped=True))
    _roundtrip(
        task_pb2.HeartbeatTasksRequest,
        S(1, "proc") + S(2, "rq"),
        task_pb2.HeartbeatTasksRequest(processId="proc", requestId="rq"),
    )
    # tasksAffected is int64
    _roundtrip(task_pb2.HeartbeatTasksResponse, V(1, 2**33), task_pb2.HeartbeatTasksResponse(tasksAffected=2**33))


def test_read_and_search_responses_wire() -> None:
    p = S(1, "p") + M(3) + M(4)
    promise = promise_t_pb2.Promise(id="p", param=promise_t_pb2.Value(), value=promise_t_pb2.Value())
    _roundtrip(promise_pb2.ReadPromiseResponse, M(1, p), promise_pb2.ReadPromiseResponse(promise=promise))
    _roundtrip(
        promise_pb2.SearchPromisesResponse,
        M(1, p) + M(1, p) + S(2, "c"),
        promise_pb2.SearchPromisesResponse(promises=[promise, promise], cursor="c"),
    )
    for cls in (
        promise_pb2.CreatePromiseResponse,
        promise_pb2.CreatePromiseAndTaskResponse,
        promise_pb2.ResolvePromiseResponse,
        promise_pb2.RejectPromiseResponse,
        promise_pb2.CancelPromiseResponse,
    ):
        _roundtrip(cls, V(1, True) + M(2, p), cls(noop=True, promise=promise))
    _roundtrip(schedule_pb2.DeleteScheduleResponse, b"", schedule_pb2.DeleteScheduleResponse())
