"""Every operation: how its fields decode into a request, and what it does to the store.

Executors are `(ctx, request) -> Result`; `ctx` carries the store transaction, the batch's clock and
the outbox of messages that leave only after commit. The decision tables of the spec live here and
nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import cron as cronlib
from . import cursor as cursorlib
from . import gojson
from .codes import CREATED, NO_CONTENT, OK, ApiError, ErrorKind, invalid, request_error, server_error
from .model import (Callback, Lock, Mesg, Promise, PromiseState, Schedule, Task, TaskState, Value, clamp_int64,
                    invoke_id, notify_id, resume_id)
from .requests import (AcquireLock, ClaimTask, CompletePromise, CompleteTask, CreateCallback, CreatePromise,
                       CreatePromiseAndTask, CreateSchedule, CreateSubscription, DeleteSchedule, DropTask, Fields,
                       HeartbeatLocks, HeartbeatTasks, ReadPromise, ReadSchedule, ReleaseLock, SearchPromises,
                       SearchSchedules, Text, boolean, fence, int64, optional_string, raw_json, string,
                       string_map, trace_head, value_field)
from .router import Router


@dataclass(slots=True)
class Result:
    code: int
    body: Any = None


class Retry(Exception):
    """A conditional write lost a race with another writer: run the operation again from the start."""


@dataclass(slots=True)
class Outgoing:
    """A message to a recipient, sent only after the transaction that produced it commits."""

    task_id: str
    counter: int
    recv: str
    body: dict
    head: dict[str, str]
    expects_outcome: bool  # invoke/resume record success or failure; notify is at most once


@dataclass
class CoreConfig:
    system_url: str = "http://localhost:8001"
    router: Router = field(default_factory=Router)
    inflight_guard_ms: int = 30_000  # an INIT task being sent is not picked again meanwhile


@dataclass(slots=True)
class Context:
    tx: Any
    now: int
    config: CoreConfig
    outbox: list[Outgoing]


# ---------------------------------------------------------------------------------------------------
# Promises

def timeout_if_expired(ctx: Context, p: Promise) -> Promise:
    """Lazy timeout: a pending promise whose deadline passed is timed out on the spot (spec 2.1)."""
    if p.state is PromiseState.PENDING and ctx.now >= p.timeout:
        return complete_with_effects(ctx, p, p.timed_out_state(), Value(), None, p.timeout)
    return p


def complete_with_effects(ctx: Context, p: Promise, state: PromiseState, value: Value, ikey: str | None,
                          completed_on: int) -> Promise:
    tx = ctx.tx
    if not tx.update_promise(p.id, state, value, ikey, completed_on):
        raise Retry()
    tx.complete_tasks_by_root(p.id, ctx.now)
    tx.create_tasks_from_callbacks(p.id, ctx.now)
    tx.delete_callbacks(p.id)
    p.state, p.value, p.idempotency_key_for_complete, p.completed_on = state, value, ikey, completed_on
    return p


def check_fence(ctx: Context, f) -> None:
    if f is not None and not ctx.tx.valid_fence(f.task_id, f.counter):
        raise server_error(41200, "the specified task is not valid")


def _ikeys_match(stored: str | None, given: str | None) -> bool:
    return stored is not None and given is not None and stored == given


def create_promise(ctx: Context, req: CreatePromise, claim: tuple[str, int] | None = None,
                   extra_insert: Callable[[], bool] | None = None) -> tuple[int, Promise, Task | None]:
    """Creates the promise (and the router's invoke task); `extra_insert` joins the same insert."""
    check_fence(ctx, req.fence)
    tx, now = ctx.tx, ctx.now
    existing = tx.read_promise(req.id)
    if existing is None:
        promise = Promise(id=req.id, state=PromiseState.PENDING, param=req.param, value=Value(), timeout=req.timeout,
                          idempotency_key_for_create=req.idempotency_key, tags=req.tags, created_on=now)
        task = None
        recv = ctx.config.router.route(req.tags)
        if recv is not None:
            mesg = Mesg("invoke", root=req.id, leaf=req.id, head=req.head)
            task = Task(id=invoke_id(req.id), state=TaskState.INIT, root_promise_id=req.id, recv=recv, mesg=mesg,
                        timeout=req.timeout, created_on=now)
            if claim is not None:
                task.state, task.process_id, task.ttl = TaskState.CLAIMED, claim[0], claim[1]
                task.expires_at = clamp_int64(now + claim[1])
            else:
                task.expires_at = _delay(req.tags)
        if not tx.insert_promise(promise):
            raise Retry()
        if task is not None:
            tx.insert_task(task)
        if extra_insert is not None and not extra_insert():
            raise Retry()
        return CREATED, promise, task
    existing = timeout_if_expired(ctx, existing)
    if not _ikeys_match(existing.idempotency_key_for_create, req.idempotency_key):
        raise request_error(40900)
    if req.strict and existing.state is not PromiseState.PENDING:
        raise request_error(40900)
    return OK, existing, None


def _delay(tags: dict[str, str]) -> int:
    raw = tags.get("resonate:delay")
    if raw is None:
        return 0
    try:
        return int(raw, 10)
    except ValueError:
        return 0


def op_read_promise(ctx: Context, req: ReadPromise) -> Result:
    p = ctx.tx.read_promise(req.id)
    if p is None:
        raise request_error(40400)
    return Result(OK, timeout_if_expired(ctx, p))


ALL_STATES = ["PENDING", "RESOLVED", "REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED"]
STATE_GROUPS = {"pending": ["PENDING"], "resolved": ["RESOLVED"],
                "rejected": ["REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED"]}


def _state_mask(states: list[str]) -> int:
    mask = 0
    for s in states:
        mask |= PromiseState[s].value
    return mask


def op_search_promises(ctx: Context, req: SearchPromises) -> Result:
    pattern = req.id.replace("*", "%")
    mask = _state_mask(req.states)
    rows = ctx.tx.search_promises(pattern, mask, req.tags, req.limit, req.sort_id)
    expired = [p for p in rows if p.state is PromiseState.PENDING and ctx.now >= p.timeout]
    if expired:
        for p in expired:
            timeout_if_expired(ctx, p)
        rows = ctx.tx.search_promises(pattern, mask, req.tags, req.limit, req.sort_id)
    cursor = None
    if len(rows) == req.limit:
        cursor = cursorlib.encode_promise_cursor(req.id, req.states, req.tags, req.limit, rows[-1].sort_id)
    return Result(OK, {"cursor": cursor, "promises": rows})


def op_create_promise(ctx: Context, req: CreatePromise) -> Result:
    code, promise, _ = create_promise(ctx, req)
    return Result(code, promise)


def op_create_promise_and_task(ctx: Context, req: CreatePromiseAndTask) -> Result:
    code, promise, task = create_promise(ctx, req.promise, claim=(req.process_id, req.ttl))
    return Result(code, {"promise": promise, "task": task if code == CREATED else None})


_FORBIDDEN_BY_STATE = {PromiseState.RESOLVED: 40301, PromiseState.REJECTED: 40302,
                       PromiseState.REJECTED_CANCELED: 40303, PromiseState.REJECTED_TIMEDOUT: 40304}


def op_complete_promise(ctx: Context, req: CompletePromise) -> Result:
    check_fence(ctx, req.fence)
    p = ctx.tx.read_promise(req.id)
    if p is None:
        raise request_error(40400)
    requested = PromiseState[req.state]
    if p.state is PromiseState.PENDING:
        if ctx.now < p.timeout:
            return Result(CREATED, complete_with_effects(ctx, p, requested, req.value, req.idempotency_key, ctx.now))
        p = timeout_if_expired(ctx, p)
        if p.state is PromiseState.RESOLVED:
            raise request_error(40301)
        if req.strict:
            raise request_error(40304)
        return Result(OK, p)
    if p.state is PromiseState.REJECTED_TIMEDOUT and not req.strict:
        return Result(OK, p)
    if (not req.strict or p.state is requested) and _ikeys_match(p.idempotency_key_for_complete,
                                                                  req.idempotency_key):
        return Result(OK, p)
    raise request_error(_FORBIDDEN_BY_STATE[p.state])


def _register_callback(ctx: Context, cb: Callback) -> Result:
    p = ctx.tx.read_promise(cb.promise_id)
    if p is None:
        raise request_error(40400)
    # issue 8: a past-deadline promise answers as timed out, as the reference's background pass would
    # already have made it (the spec's "no lazy timeout here" left the answer to timing)
    p = timeout_if_expired(ctx, p)
    if p.state is PromiseState.PENDING and ctx.tx.insert_callback(cb):
        return Result(CREATED, {"callback": cb, "promise": p})
    return Result(OK, {"callback": None, "promise": p})


def op_create_callback(ctx: Context, req: CreateCallback) -> Result:
    check_fence(ctx, req.fence)
    mesg = Mesg("resume", root=req.root_promise_id, leaf=req.promise_id, head=req.head)
    cb = Callback(id=resume_id(req.root_promise_id, req.promise_id), promise_id=req.promise_id,
                  root_promise_id=req.root_promise_id, recv=req.recv, mesg=mesg, timeout=req.timeout,
                  created_on=ctx.now)
    return _register_callback(ctx, cb)


def op_create_subscription(ctx: Context, req: CreateSubscription) -> Result:
    mesg = Mesg("notify", root=req.promise_id, leaf="", head=req.head)
    cb = Callback(id=notify_id(req.promise_id, req.id), promise_id=req.promise_id, root_promise_id=req.promise_id,
                  recv=req.recv, mesg=mesg, timeout=req.timeout, created_on=ctx.now)
    return _register_callback(ctx, cb)


# ---------------------------------------------------------------------------------------------------
# Schedules

def op_read_schedule(ctx: Context, req: ReadSchedule) -> Result:
    s = ctx.tx.read_schedule(req.id)
    if s is None:
        raise request_error(40401)
    return Result(OK, s)


def op_search_schedules(ctx: Context, req: SearchSchedules) -> Result:
    rows = ctx.tx.search_schedules(req.id.replace("*", "%"), req.tags, req.limit, req.sort_id)
    cursor = None
    if len(rows) == req.limit:
        cursor = cursorlib.encode_schedule_cursor(req.id, req.tags, req.limit, rows[-1].sort_id)
    return Result(OK, {"cursor": cursor, "schedules": rows})


def op_create_schedule(ctx: Context, req: CreateSchedule) -> Result:
    existing = ctx.tx.read_schedule(req.id)
    if existing is not None:
        if _ikeys_match(existing.idempotency_key, req.idempotency_key):
            return Result(OK, existing)
        raise request_error(40901)
    next_run = cronlib.parse_cron(req.cron).next(ctx.now)
    s = Schedule(id=req.id, description=req.description, cron=req.cron, tags=req.tags, promise_id=req.promise_id,
                 promise_timeout=req.promise_timeout, promise_param=req.promise_param, promise_tags=req.promise_tags,
                 last_run_time=None, next_run_time=next_run, idempotency_key=req.idempotency_key,
                 created_on=ctx.now)
    if not ctx.tx.insert_schedule(s):
        raise Retry()
    return Result(CREATED, s)


def op_delete_schedule(ctx: Context, req: DeleteSchedule) -> Result:
    if not ctx.tx.delete_schedule(req.id):
        raise request_error(40401)
    return Result(NO_CONTENT)


# ---------------------------------------------------------------------------------------------------
# Locks

def op_acquire_lock(ctx: Context, req: AcquireLock) -> Result:
    lock = Lock(req.resource_id, req.execution_id, req.process_id, req.ttl, clamp_int64(ctx.now + req.ttl))
    if not ctx.tx.acquire_lock(lock):
        raise request_error(40305)
    return Result(CREATED, lock)


def op_release_lock(ctx: Context, req: ReleaseLock) -> Result:
    if not ctx.tx.release_lock(req.resource_id, req.execution_id):
        raise request_error(40402)
    return Result(NO_CONTENT)


def op_heartbeat_locks(ctx: Context, req: HeartbeatLocks) -> Result:
    return Result(OK, {"locksAffected": ctx.tx.heartbeat_locks(req.process_id, ctx.now)})


# ---------------------------------------------------------------------------------------------------
# Tasks

_ACTIVE = TaskState.INIT | TaskState.ENQUEUED | TaskState.CLAIMED


def _promise_link(ctx: Context, promise_id: str) -> dict:
    return {"data": ctx.tx.read_promise(promise_id), "href": f"{ctx.config.system_url}/promises/{promise_id}",
            "id": promise_id}


def op_claim_task(ctx: Context, req: ClaimTask) -> Result:
    t = ctx.tx.read_task(req.id)
    if t is None:
        raise request_error(40403)
    if t.state is TaskState.CLAIMED:
        raise request_error(40306)
    if t.state in (TaskState.COMPLETED, TaskState.TIMEDOUT):
        raise request_error(40307)
    if t.counter != req.counter:
        raise request_error(40308)
    previous = t.state
    t.state, t.process_id, t.ttl, t.expires_at = TaskState.CLAIMED, req.process_id, req.ttl, clamp_int64(
        ctx.now + req.ttl)
    if not ctx.tx.update_task(t, previous, req.counter):
        raise Retry()
    promises = {}
    if t.mesg.type == "resume":
        promises["leaf"] = _promise_link(ctx, t.mesg.leaf)
    promises["root"] = _promise_link(ctx, t.mesg.root)
    return Result(CREATED, {"promises": promises, "type": t.mesg.type})


def op_complete_task(ctx: Context, req: CompleteTask) -> Result:
    t = ctx.tx.read_task(req.id)
    if t is None:
        raise request_error(40403)
    if t.state in (TaskState.COMPLETED, TaskState.TIMEDOUT):
        return Result(OK, t)
    if t.state in (TaskState.INIT, TaskState.ENQUEUED):
        raise request_error(40309)
    if t.counter != req.counter:
        raise request_error(40308)
    t.state, t.process_id, t.attempt, t.ttl, t.expires_at, t.completed_on = (
        TaskState.COMPLETED, None, 0, 0, 0, ctx.now)
    if not ctx.tx.update_task(t, TaskState.CLAIMED, req.counter):
        raise Retry()
    return Result(CREATED, t)


def op_drop_task(ctx: Context, req: DropTask) -> Result:
    t = ctx.tx.read_task(req.id)
    if t is None:
        raise request_error(40403)
    if t.state is not TaskState.CLAIMED:
        return Result(OK)
    if t.counter != req.counter:
        raise request_error(40308)
    t.state, t.counter, t.process_id, t.attempt, t.ttl, t.expires_at = TaskState.INIT, t.counter + 1, None, 0, 0, 0
    if not ctx.tx.update_task(t, TaskState.CLAIMED, req.counter):
        raise Retry()
    return Result(CREATED)


def op_heartbeat_tasks(ctx: Context, req: HeartbeatTasks) -> Result:
    return Result(OK, {"tasksAffected": ctx.tx.heartbeat_tasks(req.process_id, ctx.now)})


# ---------------------------------------------------------------------------------------------------
# Decoding: transport fields -> typed request (one place for every transport)

def _search_limit(f: Fields) -> int:
    limit = int64(f, "limit")
    if limit < 0:
        raise invalid("The field limit must be greater than or equal to 0.")
    if limit > 100:
        raise invalid("The field limit must be less than or equal to 100.")
    return limit or 100


def _search_id(f: Fields) -> str | None:
    value = optional_string(f, "id")
    if value == "":
        raise invalid("The field id must be be at least length 1.")
    return value


def _cursor_next(f: Fields) -> dict | None:
    token = optional_string(f, "cursor")
    if not token:
        return None
    try:
        return cursorlib.decode_cursor(token)
    except cursorlib.CursorError as e:
        raise invalid(str(e)) from None


def _cursor_int(nxt: dict, key: str) -> int:
    value = nxt.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"the cursor field {key} must be an integer")
    return value


def _cursor_tags(nxt: dict) -> dict[str, str]:
    tags = nxt.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise invalid("the cursor field tags must be a map of strings")
    return tags


def _cursor_id(nxt: dict) -> str:
    value = nxt.get("id")
    if not isinstance(value, str) or value == "":
        raise invalid("the field id is required")  # a forged cursor with an empty id crashed the reference
    return value


def decode_search_promises(f: Fields) -> SearchPromises:
    search_id = _search_id(f)
    state = optional_string(f, "state")
    if state is not None and state.lower() not in STATE_GROUPS:
        raise invalid("The field state must be one of pending, resolved, or rejected.")
    tags = string_map(f, "tags")
    limit = _search_limit(f)
    nxt = _cursor_next(f)
    if nxt is not None:
        states = nxt.get("states") or []
        if not isinstance(states, list) or not all(isinstance(s, str) and s.upper() in ALL_STATES for s in states):
            raise invalid("the cursor field states must list promise states")
        limit = _cursor_int(nxt, "limit")
        if not 1 <= limit <= 100:
            raise invalid("the field limit must be between 1 and 100")
        return SearchPromises(id=_cursor_id(nxt), states=[s.upper() for s in states], tags=_cursor_tags(nxt),
                              limit=limit, sort_id=_cursor_int(nxt, "sortId"))
    if search_id is None:
        raise invalid("the field id is required")
    states = STATE_GROUPS[state.lower()] if state is not None else list(ALL_STATES)
    return SearchPromises(id=search_id, states=states, tags=tags, limit=limit)


def decode_search_schedules(f: Fields) -> SearchSchedules:
    search_id = _search_id(f)
    tags = string_map(f, "tags")
    limit = _search_limit(f)
    nxt = _cursor_next(f)
    if nxt is not None:
        limit = _cursor_int(nxt, "limit")
        if not 1 <= limit <= 100:
            raise invalid("the field limit must be between 1 and 100")
        return SearchSchedules(id=_cursor_id(nxt), tags=_cursor_tags(nxt), limit=limit,
                               sort_id=_cursor_int(nxt, "sortId"))
    if search_id is None:
        raise invalid("the field id is required")
    return SearchSchedules(id=search_id, tags=tags, limit=limit)


def _decode_create_fields(promise: Fields, headers: Fields) -> CreatePromise:
    return CreatePromise(
        id=string(promise, "id", required=True),
        param=value_field(promise, "param"),
        timeout=int64(promise, "timeout"),
        tags=string_map(promise, "tags"),
        idempotency_key=optional_string(headers, "idempotencyKey"),
        strict=boolean(headers, "strict"),
        head=trace_head(headers),
    )


def decode_create_promise(f: Fields) -> CreatePromise:
    req = _decode_create_fields(f, f)
    req.fence = fence(f)
    return req


def decode_create_promise_and_task(f: Fields) -> CreatePromiseAndTask:
    promise = _decode_create_fields(f.sub("promise"), f)
    task = f.sub("task")
    process_id = string(task, "processId", required=True)
    ttl = int64(task, "ttl", minimum=0)
    return CreatePromiseAndTask(promise=promise, process_id=process_id, ttl=ttl)


_COMPLETION_STATES = ("RESOLVED", "REJECTED", "REJECTED_CANCELED")


def decode_complete_promise(f: Fields) -> CompletePromise:
    promise_id = string(f, "id", required=True)
    state = f.get("state")
    if state is None or state == "" or not f.has("state"):
        raise invalid("The field state is required.")
    if not isinstance(state, str):
        raise invalid("the field state must be a string")
    upper = state.upper()
    if upper not in ALL_STATES:
        raise invalid(f"invalid state '{state}'")
    if upper not in _COMPLETION_STATES:
        raise invalid("the field state must be one of resolved, rejected, rejected_canceled")
    return CompletePromise(id=promise_id, state=upper, value=value_field(f, "value"),
                           idempotency_key=optional_string(f, "idempotencyKey"), strict=boolean(f, "strict"),
                           fence=fence(f))


def decode_create_callback(f: Fields) -> CreateCallback:
    promise_id = string(f, "promiseId", required=True)
    root = string(f, "rootPromiseId", required=True)
    recv = raw_json(f, "recv")
    timeout = int64(f, "timeout")
    if promise_id == root:
        raise ApiError(40000, ErrorKind.SERVER, ["promise and root promise must be different"])
    return CreateCallback(promise_id=promise_id, root_promise_id=root, recv=recv, timeout=timeout,
                          head=trace_head(f), fence=fence(f))


def decode_create_subscription(f: Fields) -> CreateSubscription:
    return CreateSubscription(id=string(f, "id", required=True), promise_id=string(f, "promiseId", required=True),
                              recv=raw_json(f, "recv"), timeout=int64(f, "timeout"), head=trace_head(f))


def decode_create_schedule(f: Fields) -> CreateSchedule:
    schedule_id = string(f, "id", required=True)
    cron = string(f, "cron", required=True)
    try:
        cronlib.parse_cron(cron)
    except cronlib.CronError:
        raise invalid("the field cron must be a valid cron expression") from None
    return CreateSchedule(id=schedule_id, description=string(f, "desc"), cron=cron, tags=string_map(f, "tags"),
                          promise_id=string(f, "promiseId", required=True),
                          promise_timeout=int64(f, "promiseTimeout"), promise_param=value_field(f, "promiseParam"),
                          promise_tags=string_map(f, "promiseTags"),
                          idempotency_key=optional_string(f, "idempotencyKey"))


def decode_claim_task(f: Fields) -> ClaimTask:
    return ClaimTask(id=string(f, "id", required=True), counter=int64(f, "counter", required=True),
                     process_id=string(f, "processId", required=True), ttl=int64(f, "ttl", minimum=0))


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    request: type
    decode: Callable[[Fields], Any]
    execute: Callable[[Context, Any], Result]


OPERATIONS: dict[str, Operation] = {op.name: op for op in [
    Operation("promises.read", ReadPromise, lambda f: ReadPromise(string(f, "id", required=True)), op_read_promise),
    Operation("promises.search", SearchPromises, decode_search_promises, op_search_promises),
    Operation("promises.create", CreatePromise, decode_create_promise, op_create_promise),
    Operation("promises.createtask", CreatePromiseAndTask, decode_create_promise_and_task, op_create_promise_and_task),
    Operation("promises.complete", CompletePromise, decode_complete_promise, op_complete_promise),
    Operation("promises.callback", CreateCallback, decode_create_callback, op_create_callback),
    Operation("promises.subscribe", CreateSubscription, decode_create_subscription, op_create_subscription),
    Operation("schedules.read", ReadSchedule, lambda f: ReadSchedule(string(f, "id", required=True)), op_read_schedule),
    Operation("schedules.search", SearchSchedules, decode_search_schedules, op_search_schedules),
    Operation("schedules.create", CreateSchedule, decode_create_schedule, op_create_schedule),
    Operation("schedules.delete", DeleteSchedule, lambda f: DeleteSchedule(string(f, "id", required=True)), op_delete_schedule),
    Operation("locks.acquire", AcquireLock, lambda f: AcquireLock(
        resource_id=string(f, "resourceId", required=True), execution_id=string(f, "executionId", required=True),
        process_id=string(f, "processId", required=True), ttl=int64(f, "ttl", minimum=0)), op_acquire_lock),
    Operation("locks.release", ReleaseLock, lambda f: ReleaseLock(
        resource_id=string(f, "resourceId", required=True),
        execution_id=string(f, "executionId", required=True)), op_release_lock),
    Operation("locks.heartbeat", HeartbeatLocks, lambda f: HeartbeatLocks(string(f, "processId", required=True)),
              op_heartbeat_locks),
    Operation("tasks.claim", ClaimTask, decode_claim_task, op_claim_task),
    Operation("tasks.complete", CompleteTask, lambda f: CompleteTask(
        id=string(f, "id", required=True), counter=int64(f, "counter", required=True)), op_complete_task),
    Operation("tasks.drop", DropTask, lambda f: DropTask(
        id=string(f, "id", required=True), counter=int64(f, "counter", required=True)), op_drop_task),
    Operation("tasks.heartbeat", HeartbeatTasks, lambda f: HeartbeatTasks(string(f, "processId", required=True)),
              op_heartbeat_tasks),
]}

EXECUTORS: dict[type, Callable[[Context, Any], Result]] = {op.request: op.execute for op in OPERATIONS.values()}


def decode(operation: str, fields: Mapping[str, Any] | None) -> Any:
    """Transport fields -> typed request; raises ApiError(40000) naming the field on bad input."""
    op = OPERATIONS.get(operation)
    if op is None:
        raise invalid(f"unknown operation: {operation}")
    return op.decode(Fields(fields))


def render(value: Any) -> Any:
    """Domain objects -> the reference's JSON shapes (maps keep the order the operation built)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value
