"""The gRPC protos are wire-compatible with the reference server (v0.8.2).

Nothing here trusts the generated code to describe itself: field numbers, types,
RPC paths and enum numbers come from the reference's ``.proto`` files (compiled
here with protoc, independently of tools/gen_protos.py) and are compared with what
our generated modules do, partly on raw bytes produced by a tiny independent
protobuf wire encoder.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

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
# (b1) every message, enum and service of the generated modules is the one in
# the .proto files (the reference's, resonate/api/grpc/protos/), compiled here
# independently of tools/gen_protos.py
# ---------------------------------------------------------------------------

PROTOS = ROOT / "resonate" / "api" / "grpc" / "protos"


def _compile_protos() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "protos.pb"
        names = sorted(p.name for p in PROTOS.glob("*.proto"))
        rc = protoc.main(["protoc", f"-I{PROTOS}", f"--descriptor_set_out={out}", *names])
        assert rc == 0, f"protoc failed on {names}"
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {f.package: f for f in files}


PROTO_FILES = _compile_protos()
_LABELS = {descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED: "repeated "}


def _proto_type(f: descriptor_pb2.FieldDescriptorProto) -> str:
    if f.type_name:
        return f.type_name.lstrip(".")
    return descriptor_pb2.FieldDescriptorProto.Type.Name(f.type).removeprefix("TYPE_").lower()


def _proto_messages(files) -> dict[str, dict]:
    """full name -> {field: (label + type, number, oneof)}, nested map entries included."""
    out: dict[str, dict] = {}

    def walk(prefix: str, messages) -> None:
        for m in messages:
            name = f"{prefix}.{m.name}"
            out[name] = {f.name: (_LABELS.get(f.label, "") + _proto_type(f), f.number,
                                  m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None)
                         for f in m.field}
            walk(name, m.nested_type)

    for f in files:
        walk(f.package, f.message_type)
    return out


def _proto_enums(files) -> dict[str, dict[str, int]]:
    return {f"{f.package}.{e.name}": {v.name: v.number for v in e.value} for f in files for e in f.enum_type}


def _proto_rpcs(files) -> dict[str, tuple[str, str, bool, bool]]:
    return {f"/{f.package}.{s.name}/{m.name}": (m.input_type.lstrip("."), m.output_type.lstrip("."),
                                                 m.client_streaming, m.server_streaming)
            for f in files for s in f.service for m in s.method}


def _generated_files() -> list[descriptor_pb2.FileDescriptorProto]:
    files = []
    for mod in ALL_MODULES:
        fdp = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(fdp)
        files.append(fdp)
    return files


def test_the_proto_files_are_the_generated_modules_sources() -> None:
    assert sorted(PROTO_FILES) == sorted(m.DESCRIPTOR.package for m in ALL_MODULES)


def test_message_fields_match_the_proto_files() -> None:
    expected, actual = _proto_messages(PROTO_FILES.values()), _proto_messages(_generated_files())
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert actual[name] == expected[name], name


@pytest.mark.parametrize("full_name", sorted(_proto_messages(PROTO_FILES.values())))
def test_message_fields_keep_the_reference_conventions(full_name: str) -> None:
    if full_name.endswith("Entry"):
        return  # a map's synthetic entry message
    desc = _all_messages()[full_name]
    # lowerCamelCase names in the .proto itself: JSON names equal field names
    assert all(f.json_name == f.name for f in desc.fields)
    # no proto3 `optional` (synthetic oneofs) anywhere; the only real oneof is Recv.recv
    oneofs = {o.name: sorted(f.name for f in o.fields) for o in desc.oneofs}
    if full_name == "callback_t.Recv":
        assert oneofs == {"recv": ["logical", "physical"]}
    else:
        assert oneofs == {}


def _all_messages() -> dict[str, object]:
    out: dict[str, object] = {}
    for mod in ALL_MODULES:
        for msg in mod.DESCRIPTOR.message_types_by_name.values():
            out[msg.full_name] = msg
            for nested in msg.nested_types:
                out[nested.full_name] = nested
    return out


# ---------------------------------------------------------------------------
# (d) enums
# ---------------------------------------------------------------------------


def test_enum_numbers_match_the_proto_files() -> None:
    assert _proto_enums(_generated_files()) == _proto_enums(PROTO_FILES.values())
    assert sorted(_proto_enums(PROTO_FILES.values())) == ["promise.SearchState", "promise_t.State"]
    # the generated Python constants follow the descriptors
    state = promise_t_pb2.DESCRIPTOR.enum_types_by_name["State"]
    assert all(getattr(promise_t_pb2, v.name) == v.number for v in state.values)


# ---------------------------------------------------------------------------
# (c) services: exactly the 20 reference RPCs, all unary
# ---------------------------------------------------------------------------

EXPECTED_RPCS: dict[str, tuple[str, str]] = {
    path: (request, response) for path, (request, response, _, _) in _proto_rpcs(PROTO_FILES.values()).items()}


def test_service_descriptors_have_exactly_the_20_rpcs() -> None:
    expected = _proto_rpcs(PROTO_FILES.values())
    assert _proto_rpcs(_generated_files()) == expected
    assert len(expected) == 20
    assert not any(client or server for _, _, client, server in expected.values()), "all unary"
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
