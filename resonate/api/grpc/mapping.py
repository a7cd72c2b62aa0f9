"""gRPC <-> core: one row per RPC, nothing here decides behaviour.

Each row says which core operation an RPC runs, how its proto request becomes the core's canonical
fields (the HTTP JSON body keys, plus `idempotencyKey`, `strict`, `traceparent`, `tracestate`), and
how the core's `Result` becomes the proto response. All validation is the core's `decode`; the
only translation rules are the wire's own:

- proto3 cannot tell an empty string from an absent one, so `""` idempotency keys, cursors, trace
  headers and search ids mean "not given" (spec App. A: an empty idempotency key is no key);
- Resolve / Reject / Cancel are `promises.complete` with state RESOLVED / REJECTED / REJECTED_CANCELED;
- `recv` is a oneof: `logical` is a recipient string, `physical` is `{type, data}` with `data`
  holding raw JSON bytes; an unset oneof or an absent `recv` leaves the field out, so the core
  answers `The field recv is required.`;
- success flags come from the 5-digit code: `noop = (code == 20000)` for creates and completions,
  `claimed/completed/dropped/acquired = (code == 20100)`, `released = (code == 20400)`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from google.protobuf.message import Message

from ...core.codes import CREATED, NO_CONTENT, OK, invalid
from ...core.model import Callback, Promise, Schedule, Value
from ...core.operations import Result
from .pb import (callback_t_pb2, lock_pb2, promise_pb2, promise_t_pb2, schedule_pb2, schedule_t_pb2,
                 task_pb2)

INT32_MAX = 2**31 - 1

# proto enum promise_t.State numbers differ from the core's bit flags; map by name (spec 2.4)
_PROTO_STATE = {name: promise_t_pb2.State.Value(name) for name in
                ("PENDING", "RESOLVED", "REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED")}

# promise.SearchState -> the `state` query value of HTTP search; SEARCH_ALL means no filter
_SEARCH_STATE = {promise_pb2.SEARCH_ALL: None, promise_pb2.SEARCH_PENDING: "pending",
                 promise_pb2.SEARCH_RESOLVED: "resolved", promise_pb2.SEARCH_REJECTED: "rejected"}


# ---------------------------------------------------------------------------------------------------
# proto request -> canonical fields

def _or_none(text: str) -> str | None:
    return text or None


def _map(m) -> dict:
    """A proto map as a dict; most are empty, and dict() of one goes through the Mapping ABC."""
    return dict(m) if len(m) else {}


def _value(v: promise_t_pb2.Value) -> dict:
    return {"headers": _map(v.headers), "data": v.data}


def _compact(fields: dict) -> dict:
    """Leave out what the wire did not carry, so the core sees it as absent."""
    return {k: v for k, v in fields.items() if v is not None}


def _trace(m: Message) -> dict:
    return {"traceparent": _or_none(m.traceparent), "tracestate": _or_none(m.tracestate)}


def _recv(m: Message) -> Any:
    """`callback_t.Recv` -> the JSON value HTTP clients send as `recv` (None: not given)."""
    if not m.HasField("recv"):
        return None
    which = m.recv.WhichOneof("recv")
    if which == "logical":
        return m.recv.logical
    if which == "physical":
        raw = bytes(m.recv.physical.data)
        data = None
        if raw:
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                raise invalid("the field recv.physical.data must be valid JSON") from None
        return {"type": m.recv.physical.type, "data": data}
    return None


def _search_promises(m: promise_pb2.SearchPromisesRequest) -> dict:
    state = _SEARCH_STATE[m.state] if m.state in _SEARCH_STATE else f"SearchState({m.state})"
    return _compact({"id": _or_none(m.id), "state": state, "tags": dict(m.tags), "limit": m.limit,
                     "cursor": _or_none(m.cursor)})


def _create_promise(m: promise_pb2.CreatePromiseRequest) -> dict:
    return _compact({"id": m.id, "param": _value(m.param), "timeout": m.timeout, "tags": _map(m.tags),
                     "idempotencyKey": _or_none(m.idempotencyKey), "strict": m.strict, **_trace(m)})


def _create_promise_and_task(m: promise_pb2.CreatePromiseAndTaskRequest) -> dict:
    p = m.promise
    return _compact({
        "promise": {"id": p.id, "param": _value(p.param), "timeout": p.timeout, "tags": dict(p.tags)}
        if m.HasField("promise") else None,
        "task": {"processId": m.task.processId, "ttl": m.task.ttl} if m.HasField("task") else None,
        "idempotencyKey": _or_none(p.idempotencyKey), "strict": p.strict, **_trace(p)})


def _complete(state: str) -> Callable[[Message], dict]:
    def fields(m: Message) -> dict:
        return _compact({"id": m.id, "state": state, "value": _value(m.value),
                         "idempotencyKey": _or_none(m.idempotencyKey), "strict": m.strict})
    return fields


def _create_callback(m: promise_pb2.CreateCallbackRequest) -> dict:
    return _compact({"promiseId": m.promiseId, "rootPromiseId": m.rootPromiseId, "timeout": m.timeout,
                     "recv": _recv(m), **_trace(m)})


def _create_subscription(m: promise_pb2.CreateSubscriptionRequest) -> dict:
    return _compact({"id": m.id, "promiseId": m.promiseId, "timeout": m.timeout, "recv": _recv(m), **_trace(m)})


def _search_schedules(m: schedule_pb2.SearchSchedulesRequest) -> dict:
    return _compact({"id": _or_none(m.id), "tags": dict(m.tags), "limit": m.limit, "cursor": _or_none(m.cursor)})


def _create_schedule(m: schedule_pb2.CreateScheduleRequest) -> dict:
    return _compact({"id": m.id, "desc": m.description, "cron": m.cron, "tags": dict(m.tags),
                     "promiseId": m.promiseId, "promiseTimeout": m.promiseTimeout,
                     "promiseParam": _value(m.promiseParam), "promiseTags": dict(m.promiseTags),
                     "idempotencyKey": _or_none(m.idempotencyKey)})


# ---------------------------------------------------------------------------------------------------
# domain objects -> proto messages (spec 2.5)

def value_pb(v: Value) -> promise_t_pb2.Value:
    return promise_t_pb2.Value(headers=v.headers, data=v.data)


def _set_value(target: promise_t_pb2.Value, v: Value) -> None:
    """Fills a message's Value field in place, marking it present even when empty (half the cost of
    building a Value and copying it in, which is what a keyword argument does)."""
    target.SetInParent()
    if v.headers:
        target.headers.update(v.headers)
    if v.data:
        target.data = v.data


def promise_pb(p: Promise) -> promise_t_pb2.Promise:
    message = promise_t_pb2.Promise()
    fill_promise(message, p)
    return message


def fill_promise(message: promise_t_pb2.Promise, p: Promise) -> None:
    """Sets a Promise message's fields in place (a message given as a keyword argument is copied)."""
    message.id = p.id
    message.state = _PROTO_STATE[p.state.name]
    message.timeout = p.timeout
    if p.idempotency_key_for_create:
        message.idempotencyKeyForCreate = p.idempotency_key_for_create
    if p.idempotency_key_for_complete:
        message.idempotencyKeyForComplete = p.idempotency_key_for_complete
    if p.created_on:
        message.createdOn = p.created_on
    if p.completed_on:
        message.completedOn = p.completed_on
    if p.tags:
        message.tags.update(p.tags)
    # param and value are always set, possibly empty, as the reference does
    _set_value(message.param, p.param)
    _set_value(message.value, p.value)


def callback_pb(c: Callback) -> callback_t_pb2.Callback:
    return callback_t_pb2.Callback(id=c.id, promiseId=c.promise_id, timeout=c.timeout, createdOn=c.created_on)


def schedule_pb(s: Schedule) -> schedule_t_pb2.Schedule:
    return schedule_t_pb2.Schedule(
        id=s.id, description=s.description, cron=s.cron, tags=s.tags, promiseId=s.promise_id,
        promiseTimeout=s.promise_timeout, promiseParam=value_pb(s.promise_param), promiseTags=s.promise_tags,
        idempotencyKey=s.idempotency_key or "", lastRunTime=s.last_run_time or 0, nextRunTime=s.next_run_time,
        createdOn=s.created_on)


def _mesg_promise(link: dict) -> task_pb2.MesgPromise:
    data = link["data"]
    return task_pb2.MesgPromise(id=link["id"], href=link["href"], data=promise_pb(data) if data is not None else None)


def _callback_reply(response: type) -> Callable[[Result], Message]:
    def reply(r: Result) -> Message:
        cb = r.body["callback"]
        return response(noop=r.code == OK, callback=callback_pb(cb) if cb is not None else None,
                        promise=promise_pb(r.body["promise"]))
    return reply


def _noop_promise(response: type) -> Callable[[Result], Message]:
    def reply(r: Result) -> Message:
        message = response(noop=r.code == OK)
        fill_promise(message.promise, r.body)
        return message
    return reply


# ---------------------------------------------------------------------------------------------------
# The table

@dataclass(frozen=True, slots=True)
class Rpc:
    service: str  # full proto service name, e.g. "promise.Promises"
    method: str
    request: type
    operation: str  # core operation name
    fields: Callable[[Message], dict]  # proto request -> canonical fields
    reply: Callable[[Result], Message]  # core result -> proto response

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


PROMISES, SCHEDULES, LOCKS, TASKS = "promise.Promises", "schedule.Schedules", "lock.Locks", "task.Tasks"

RPCS: list[Rpc] = [
    Rpc(PROMISES, "ReadPromise", promise_pb2.ReadPromiseRequest, "promises.read",
        lambda m: {"id": m.id}, lambda r: promise_pb2.ReadPromiseResponse(promise=promise_pb(r.body))),
    Rpc(PROMISES, "SearchPromises", promise_pb2.SearchPromisesRequest, "promises.search", _search_promises,
        lambda r: promise_pb2.SearchPromisesResponse(promises=[promise_pb(p) for p in r.body["promises"]],
                                                     cursor=r.body["cursor"] or "")),
    Rpc(PROMISES, "CreatePromise", promise_pb2.CreatePromiseRequest,
        "promises.create", _create_promise, _noop_promise(promise_pb2.CreatePromiseResponse)),
    Rpc(PROMISES, "CreatePromiseAndTask", promise_pb2.CreatePromiseAndTaskRequest,
        "promises.createtask", _create_promise_and_task,
        lambda r: promise_pb2.CreatePromiseAndTaskResponse(noop=r.code == OK, promise=promise_pb(r.body["promise"]))),
    Rpc(PROMISES, "ResolvePromise", promise_pb2.ResolvePromiseRequest,
        "promises.complete", _complete("RESOLVED"), _noop_promise(promise_pb2.ResolvePromiseResponse)),
    Rpc(PROMISES, "RejectPromise", promise_pb2.RejectPromiseRequest,
        "promises.complete", _complete("REJECTED"), _noop_promise(promise_pb2.RejectPromiseResponse)),
    Rpc(PROMISES, "CancelPromise", promise_pb2.CancelPromiseRequest,
        "promises.complete", _complete("REJECTED_CANCELED"), _noop_promise(promise_pb2.CancelPromiseResponse)),
    Rpc(PROMISES, "CreateCallback", promise_pb2.CreateCallbackRequest,
        "promises.callback", _create_callback, _callback_reply(promise_pb2.CreateCallbackResponse)),
    Rpc(PROMISES, "CreateSubscription", promise_pb2.CreateSubscriptionRequest,
        "promises.subscribe", _create_subscription, _callback_reply(promise_pb2.CreateSubscriptionResponse)),

    Rpc(SCHEDULES, "ReadSchedule", schedule_pb2.ReadScheduleRequest, "schedules.read",
        lambda m: {"id": m.id}, lambda r: schedule_pb2.ReadScheduleResponse(schedule=schedule_pb(r.body))),
    Rpc(SCHEDULES, "SearchSchedules", schedule_pb2.SearchSchedulesRequest, "schedules.search", _search_schedules,
        lambda r: schedule_pb2.SearchSchedulesResponse(schedules=[schedule_pb(s) for s in r.body["schedules"]],
                                                       cursor=r.body["cursor"] or "")),
    # the reference never sets noop here; we set it as on every other create (the wire is unchanged)
    Rpc(SCHEDULES, "CreateSchedule", schedule_pb2.CreateScheduleRequest, "schedules.create", _create_schedule,
        lambda r: schedule_pb2.CreatedScheduleResponse(noop=r.code == OK, schedule=schedule_pb(r.body))),
    Rpc(SCHEDULES, "DeleteSchedule", schedule_pb2.DeleteScheduleRequest,
        "schedules.delete", lambda m: {"id": m.id}, lambda r: schedule_pb2.DeleteScheduleResponse()),

    Rpc(LOCKS, "AcquireLock", lock_pb2.AcquireLockRequest, "locks.acquire",
        lambda m: {"resourceId": m.resourceId, "executionId": m.executionId, "processId": m.processId,
                   "ttl": m.ttl},
        lambda r: lock_pb2.AcquireLockResponse(acquired=r.code == CREATED)),
    Rpc(LOCKS, "ReleaseLock", lock_pb2.ReleaseLockRequest, "locks.release",
        lambda m: {"resourceId": m.resourceId, "executionId": m.executionId},
        lambda r: lock_pb2.ReleaseLockResponse(released=r.code == NO_CONTENT)),
    Rpc(LOCKS, "HeartbeatLocks", lock_pb2.HeartbeatLocksRequest, "locks.heartbeat",
        lambda m: {"processId": m.processId},
        # the field is int32 on the wire; saturate rather than wrap as the reference does
        lambda r: lock_pb2.HeartbeatLocksResponse(locksAffected=min(r.body["locksAffected"], INT32_MAX))),

    Rpc(TASKS, "ClaimTask", task_pb2.ClaimTaskRequest, "tasks.claim",
        lambda m: {"id": m.id, "counter": m.counter, "processId": m.processId, "ttl": m.ttl},
        lambda r: task_pb2.ClaimTaskResponse(claimed=r.code == CREATED, mesg=task_pb2.Mesg(
            type=r.body["type"], promises={k: _mesg_promise(v) for k, v in r.body["promises"].items()}))),
    Rpc(TASKS, "CompleteTask", task_pb2.CompleteTaskRequest, "tasks.complete",
        lambda m: {"id": m.id, "counter": m.counter},
        lambda r: task_pb2.CompleteTaskResponse(completed=r.code == CREATED)),
    Rpc(TASKS, "DropTask", task_pb2.DropTaskRequest, "tasks.drop",
        lambda m: {"id": m.id, "counter": m.counter},
        lambda r: task_pb2.DropTaskResponse(dropped=r.code == CREATED)),
    Rpc(TASKS, "HeartbeatTasks", task_pb2.HeartbeatTasksRequest, "tasks.heartbeat",
        lambda m: {"processId": m.processId},
        lambda r: task_pb2.HeartbeatTasksResponse(tasksAffected=r.body["tasksAffected"])),
]
