"""Runs scenario steps over gRPC: (operation, canonical fields) -> proto request -> (code, JSON body).

The request goes through the generated stubs' messages on a real channel; the answer comes back as
the reference's HTTP JSON shape, rebuilt only from what the proto response carries.

Success codes: gRPC responses have no status code of their own, so the runner derives the 5-digit
code from the response's flags, as a reference client would (`noop` -> 20000 else 20100 for creates,
completions, callbacks and subscriptions; `claimed`/`completed`/`dropped`/`acquired` -> 20100 else
20000; ReleaseLock and DeleteSchedule -> 20400; reads, searches and heartbeats -> 20000). It then
checks that the server's `resonate-code` trailer says the same code, so both must agree.

Errors: the code is the `resonate-code` trailer; the runner checks that the gRPC status is the one
the code maps to. The body is `{"error": {"code", "message"}}`: gRPC sends no error details.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import grpc

from resonate.api.grpc.pb import (callback_t_pb2, lock_pb2, promise_pb2, promise_t_pb2, schedule_pb2,
                                  schedule_t_pb2, task_pb2)

OK, CREATED, NO_CONTENT = 20000, 20100, 20400

EXPECTED_STATUS = {  # 5-digit code (or its first three digits) -> gRPC status, as documented in docs/grpc.md
    40000: grpc.StatusCode.INVALID_ARGUMENT, 40100: grpc.StatusCode.UNAUTHENTICATED,
    41200: grpc.StatusCode.FAILED_PRECONDITION, 403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND, 409: grpc.StatusCode.ALREADY_EXISTS, 500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}


def expected_status(code: int) -> grpc.StatusCode | None:
    return EXPECTED_STATUS.get(code) or EXPECTED_STATUS.get(code // 100)


class NotOnTheWire(Exception):
    """The step's fields cannot be expressed in the gRPC request messages."""


ALL = "*"
# Parts of the HTTP body that no gRPC response field carries. The scenario test drops them from the
# expectations and lists every row where it did so.
BODY_NOT_ON_THE_WIRE: dict[str, tuple[str, ...] | str] = {
    "promises.createtask": ("task",),  # CreatePromiseAndTaskResponse has only noop and promise
    "promises.callback": ("callback.rootPromiseId",),  # callback_t.Callback has no rootPromiseId
    "promises.subscribe": ("callback.rootPromiseId",),
    "locks.acquire": ALL,  # AcquireLockResponse has only `acquired`
    "tasks.complete": ALL,  # CompleteTaskResponse has only `completed`
}


def wire_expectation(op: str, expected: Any) -> tuple[Any, list[str]]:
    """Expected body subset -> (the part gRPC can carry, the dotted paths dropped)."""
    hidden = BODY_NOT_ON_THE_WIRE.get(op, ())
    if expected is None or not hidden:
        return expected, []
    if hidden == ALL:
        return None, ["*"]
    projected = _copy(expected)
    dropped = []
    for path in hidden:
        *parents, leaf = path.split(".")
        node = projected
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            del node[leaf]
            dropped.append(path)
    return projected, dropped


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------------
# canonical fields -> proto request

def _value_pb(name: str, v: Any) -> promise_t_pb2.Value:
    if not isinstance(v, dict):
        raise NotOnTheWire(f"{name} is not an object")
    try:
        data = base64.b64decode(v.get("data", ""), validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise NotOnTheWire(f"{name}.data is not base64; the proto field is bytes") from None
    try:
        return promise_t_pb2.Value(headers=v.get("headers", {}), data=data)
    except (TypeError, ValueError) as e:
        raise NotOnTheWire(f"{name}: {e}") from None


def _recv_pb(v: Any) -> callback_t_pb2.Recv:
    if isinstance(v, str):
        return callback_t_pb2.Recv(logical=v)
    if isinstance(v, dict) and set(v) <= {"type", "data"}:
        data = b"" if v.get("data") is None else json.dumps(v["data"]).encode()
        return callback_t_pb2.Recv(physical=callback_t_pb2.PhysicalRecv(type=v.get("type", ""), data=data))
    raise NotOnTheWire(f"recv {v!r} is neither a logical nor a physical recipient")


_SEARCH_STATES = {"pending": promise_pb2.SEARCH_PENDING, "resolved": promise_pb2.SEARCH_RESOLVED,
                  "rejected": promise_pb2.SEARCH_REJECTED}
UNKNOWN_SEARCH_STATE = 99  # proto3 enums are open: an unknown number is how a bad state travels


def _search_state(v: Any) -> int:
    if not isinstance(v, str):
        raise NotOnTheWire("state is not a string")
    return _SEARCH_STATES.get(v.lower(), UNKNOWN_SEARCH_STATE)


_CONVERT = {"param": _value_pb, "value": _value_pb, "promiseParam": _value_pb,
            "recv": lambda _, v: _recv_pb(v), "state": lambda _, v: _search_state(v)}


def _message(cls: type, fields: dict, renames: dict | None = None):
    renames = renames or {}
    kwargs = {}
    for key, value in fields.items():
        name = renames.get(key, key)
        if name not in cls.DESCRIPTOR.fields_by_name:
            raise NotOnTheWire(f"{cls.DESCRIPTOR.full_name} has no field for {key}")
        convert = _CONVERT.get(name)
        kwargs[name] = convert(key, value) if convert else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # a JSON type the proto field cannot hold
        raise NotOnTheWire(f"{cls.DESCRIPTOR.full_name}: {e}") from None


_COMPLETE_RPC = {"RESOLVED": ("ResolvePromise", promise_pb2.ResolvePromiseRequest),
                 "REJECTED": ("RejectPromise", promise_pb2.RejectPromiseRequest),
                 "REJECTED_CANCELED": ("CancelPromise", promise_pb2.CancelPromiseRequest)}
_TOP_LEVEL_CREATE = ("idempotencyKey", "strict", "traceparent", "tracestate")


def _complete_request(fields: dict) -> tuple[str, Any]:
    fields = dict(fields)
    state = fields.pop("state", None)
    rpc = _COMPLETE_RPC.get(state.upper()) if isinstance(state, str) else None
    if rpc is None:
        raise NotOnTheWire(f"state {state!r}: gRPC has one RPC per target state (Resolve, Reject, Cancel)")
    return f"/promise.Promises/{rpc[0]}", _message(rpc[1], fields)


def _createtask_request(fields: dict) -> tuple[str, Any]:
    fields = dict(fields)
    top = {k: fields.pop(k) for k in _TOP_LEVEL_CREATE if k in fields}
    kwargs = {}
    if "promise" in fields:
        kwargs["promise"] = _message(promise_pb2.CreatePromiseRequest, {**fields.pop("promise"), **top})
    elif top:
        kwargs["promise"] = _message(promise_pb2.CreatePromiseRequest, top)
    if "task" in fields:
        kwargs["task"] = _message(promise_pb2.CreatePromiseTaskRequest, fields.pop("task"))
    if fields:
        raise NotOnTheWire(f"CreatePromiseAndTaskRequest has no field for {sorted(fields)}")
    return "/promise.Promises/CreatePromiseAndTask", promise_pb2.CreatePromiseAndTaskRequest(**kwargs)


def _simple(path: str, cls: type, renames: dict | None = None):
    return lambda fields: (path, _message(cls, fields, renames))


REQUESTS = {
    "promises.read": _simple("/promise.Promises/ReadPromise", promise_pb2.ReadPromiseRequest),
    "promises.search": _simple("/promise.Promises/SearchPromises", promise_pb2.SearchPromisesRequest),
    "promises.create": _simple("/promise.Promises/CreatePromise", promise_pb2.CreatePromiseRequest),
    "promises.createtask": _createtask_request,
    "promises.complete": _complete_request,
    "promises.callback": _simple("/promise.Promises/CreateCallback", promise_pb2.CreateCallbackRequest),
    "promises.subscribe": _simple("/promise.Promises/CreateSubscription", promise_pb2.CreateSubscriptionRequest),
    "schedules.read": _simple("/schedule.Schedules/ReadSchedule", schedule_pb2.ReadScheduleRequest),
    "schedules.search": _simple("/schedule.Schedules/SearchSchedules", schedule_pb2.SearchSchedulesRequest),
    "schedules.create": _simple("/schedule.Schedules/CreateSchedule", schedule_pb2.CreateScheduleRequest,
                                {"desc": "description"}),
    "schedules.delete": _simple("/schedule.Schedules/DeleteSchedule", schedule_pb2.DeleteScheduleRequest),
    "locks.acquire": _simple("/lock.Locks/AcquireLock", lock_pb2.AcquireLockRequest),
    "locks.release": _simple("/lock.Locks/ReleaseLock", lock_pb2.ReleaseLockRequest),
    "locks.heartbeat": _simple("/lock.Locks/HeartbeatLocks", lock_pb2.HeartbeatLocksRequest),
    "tasks.claim": _simple("/task.Tasks/ClaimTask", task_pb2.ClaimTaskRequest),
    "tasks.complete": _simple("/task.Tasks/CompleteTask", task_pb2.CompleteTaskRequest),
    "tasks.drop": _simple("/task.Tasks/DropTask", task_pb2.DropTaskRequest),
    "tasks.heartbeat": _simple("/task.Tasks/HeartbeatTasks", task_pb2.HeartbeatTasksRequest),
}


def build_request(op: str, fields: dict) -> tuple[str, Any]:
    """(full method path, request message); raises NotOnTheWire when gRPC cannot say it."""
    return REQUESTS[op](fields)


# ---------------------------------------------------------------------------------------------------
# proto response -> (code, reference JSON)

def value_json(v: promise_t_pb2.Value) -> dict:
    out: dict[str, Any] = {}
    if v.headers:
        out["headers"] = dict(sorted(v.headers.items()))
    if v.data:
        out["data"] = base64.b64encode(v.data).decode()
    return out


def promise_json(p: promise_t_pb2.Promise) -> dict:
    out: dict[str, Any] = {"id": p.id, "state": promise_t_pb2.State.Name(p.state), "param": value_json(p.param),
                           "value": value_json(p.value), "timeout": p.timeout}
    if p.idempotencyKeyForCreate:
        out["idempotencyKeyForCreate"] = p.idempotencyKeyForCreate
    if p.idempotencyKeyForComplete:
        out["idempotencyKeyForComplete"] = p.idempotencyKeyForComplete
    if p.tags:
        out["tags"] = dict(sorted(p.tags.items()))
    if p.createdOn:
        out["createdOn"] = p.createdOn
    if p.completedOn:
        out["completedOn"] = p.completedOn
    return out


def schedule_json(s: schedule_t_pb2.Schedule) -> dict:
    out: dict[str, Any] = {"id": s.id}
    if s.description:
        out["desc"] = s.description
    out.update({"cron": s.cron, "tags": dict(sorted(s.tags.items())), "promiseId": s.promiseId,
                "promiseTimeout": s.promiseTimeout, "promiseParam": value_json(s.promiseParam)})
    if s.promiseTags:
        out["promiseTags"] = dict(sorted(s.promiseTags.items()))
    if s.lastRunTime:
        out["lastRunTime"] = s.lastRunTime
    out["nextRunTime"] = s.nextRunTime
    if s.idempotencyKey:
        out["idempotencyKey"] = s.idempotencyKey
    out["createdOn"] = s.createdOn
    return out


def _callback_body(r) -> dict:
    cb = None
    if r.HasField("callback"):
        cb = {"id": r.callback.id, "promiseId": r.callback.promiseId, "timeout": r.callback.timeout,
              "createdOn": r.callback.createdOn}
    return {"callback": cb, "promise": promise_json(r.promise)}


def _noop(r) -> int:
    return OK if r.noop else CREATED


def _created_if(flag: bool) -> int:
    return CREATED if flag else OK


def _claim_body(r: task_pb2.ClaimTaskResponse) -> dict:
    promises = {}
    for key in sorted(r.mesg.promises):
        link = r.mesg.promises[key]
        promises[key] = {"data": promise_json(link.data) if link.HasField("data") else None, "href": link.href,
                         "id": link.id}
    return {"promises": promises, "type": r.mesg.type}


def _must(flag: bool, what: str) -> int:
    assert flag, f"{what} is false on a successful call"
    return NO_CONTENT if what == "released" else CREATED


# op -> (response class, response -> code, response -> body)
RESPONSES = {
    "promises.read": (promise_pb2.ReadPromiseResponse, lambda r: OK, lambda r: promise_json(r.promise)),
    "promises.search": (promise_pb2.SearchPromisesResponse, lambda r: OK,
                        lambda r: {"cursor": r.cursor or None, "promises": [promise_json(p) for p in r.promises]}),
    "promises.create": (promise_pb2.CreatePromiseResponse, _noop, lambda r: promise_json(r.promise)),
    "promises.createtask": (promise_pb2.CreatePromiseAndTaskResponse, _noop,
                            lambda r: {"promise": promise_json(r.promise)}),
    "promises.complete": (promise_pb2.ResolvePromiseResponse, _noop, lambda r: promise_json(r.promise)),
    "promises.callback": (promise_pb2.CreateCallbackResponse, _noop, _callback_body),
    "promises.subscribe": (promise_pb2.CreateSubscriptionResponse, _noop, _callback_body),
    "schedules.read": (schedule_pb2.ReadScheduleResponse, lambda r: OK, lambda r: schedule_json(r.schedule)),
    "schedules.search": (schedule_pb2.SearchSchedulesResponse, lambda r: OK,
                         lambda r: {"cursor": r.cursor or None, "schedules": [schedule_json(s) for s in r.schedules]}),
    "schedules.create": (schedule_pb2.CreatedScheduleResponse, _noop, lambda r: schedule_json(r.schedule)),
    "schedules.delete": (schedule_pb2.DeleteScheduleResponse, lambda r: NO_CONTENT, lambda r: None),
    "locks.acquire": (lock_pb2.AcquireLockResponse, lambda r: _must(r.acquired, "acquired"), lambda r: None),
    "locks.release": (lock_pb2.ReleaseLockResponse, lambda r: _must(r.released, "released"), lambda r: None),
    "locks.heartbeat": (lock_pb2.HeartbeatLocksResponse, lambda r: OK,
                        lambda r: {"locksAffected": r.locksAffected}),
    "tasks.claim": (task_pb2.ClaimTaskResponse, lambda r: _must(r.claimed, "claimed"), _claim_body),
    "tasks.complete": (task_pb2.CompleteTaskResponse, lambda r: _created_if(r.completed), lambda r: None),
    "tasks.drop": (task_pb2.DropTaskResponse, lambda r: _created_if(r.dropped), lambda r: None),
    "tasks.heartbeat": (task_pb2.HeartbeatTasksResponse, lambda r: OK, lambda r: {"tasksAffected": r.tasksAffected}),
}


def trailer_code(metadata) -> int | None:
    for key, value in metadata or ():
        if key == "resonate-code":
            return int(value)
    return None


class GrpcRunner:
    name = "grpc"
    # no "fencing" (no task-id/task-counter fields), no "json-types" (protobuf types every field),
    # no "http-headers"
    features = frozenset()

    def __init__(self, target: str, ready_timeout: float = 30):
        self.channel = grpc.insecure_channel(target)
        grpc.channel_ready_future(self.channel).result(timeout=ready_timeout)
        self._methods: dict[str, Any] = {}

    def close(self):
        self.channel.close()

    @staticmethod
    def unsupported(op: str, fields: dict) -> str | None:
        """Why gRPC cannot send this step, or None."""
        try:
            build_request(op, fields)
        except NotOnTheWire as e:
            return str(e)
        return None

    def _method(self, path: str, response_cls: type):
        if path not in self._methods:
            self._methods[path] = self.channel.unary_unary(
                path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_cls.FromString)
        return self._methods[path]

    def call(self, op: str, fields: dict) -> tuple[int, Any]:
        path, request = build_request(op, fields)
        response_cls, to_code, to_body = RESPONSES[op]
        try:
            response, call = self._method(path, response_cls).with_call(request, timeout=30)
        except grpc.RpcError as e:
            code = trailer_code(e.trailing_metadata())
            assert code is not None, f"{path}: error without a resonate-code trailer: {e.code()} {e.details()}"
            assert e.code() == expected_status(code), f"{path}: code {code} came as {e.code()}: {e.details()}"
            return code, {"error": {"code": code, "message": e.details()}}
        code = to_code(response)
        trailer = trailer_code(call.trailing_metadata())
        assert trailer == code, f"{path}: the response says {code}, the resonate-code trailer says {trailer}"
        return code, to_body(response)
