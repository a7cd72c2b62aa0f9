"""Every operation: what it does to the store (its decision table), and the table of operations.

Executors are `(ctx, request) -> Result`; `ctx` carries the store transaction, the batch's clock and
the outbox of messages that leave only after commit. The decision tables of the spec live here and
nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable

from . import cron as cronlib
from . import cursor as cursorlib
from .codes import (CREATED, LOCK_ALREADY_ACQUIRED, LOCK_NOT_FOUND, NO_CONTENT, OK, PROMISE_ALREADY_CANCELED,
                    PROMISE_ALREADY_EXISTS, PROMISE_ALREADY_REJECTED, PROMISE_ALREADY_RESOLVED,
                    PROMISE_ALREADY_TIMEDOUT, PROMISE_NOT_FOUND, SCHEDULE_ALREADY_EXISTS, SCHEDULE_NOT_FOUND,
                    TASK_ALREADY_CLAIMED, TASK_ALREADY_COMPLETED, TASK_INVALID_COUNTER, TASK_INVALID_STATE,
                    TASK_NOT_FOUND, TASK_PRECONDITION_FAILED, request_error, server_error)
from .model import (Callback, Lock, Mesg, Promise, PromiseState, Schedule, Task, TaskState, Value, clamp_int64,
                    invoke_id, notify_id, resume_id)
from .requests import (AcquireLock, ClaimTask, CompletePromise, CompleteTask, CreateCallback, CreatePromise,
                       CreatePromiseAndTask, CreateSchedule, CreateSubscription, DeleteSchedule, DropTask,
                       HeartbeatLocks, HeartbeatTasks, ReadPromise, ReadSchedule, ReleaseLock, SearchPromises,
                       SearchSchedules, ReadTask)
from .requests import decode  # noqa: F401  (transports import it from here too; it lives in requests.py)
from .router import Router
from .store.base import StaleRead


@dataclass(slots=True)
class Result:
    code: int
    body: Any = None


# A conditional write lost a race with another writer (or the store saw a row change since it was
# read): run the operation again from the start. The store raises it too, so it is the store's class.
Retry = StaleRead


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
    tx.move_callbacks_to_tasks(p.id, ctx.now)
    p.state, p.value, p.idempotency_key_for_complete, p.completed_on = state, value, ikey, completed_on
    return p


def check_fence(ctx: Context, f) -> None:
    if f is not None and not ctx.tx.valid_fence(f.task_id, f.counter):
        raise server_error(TASK_PRECONDITION_FAILED, "the specified task is not valid")


def _ikeys_match(stored: str | None, given: str | None) -> bool:
    return stored is not None and given is not None and stored == given


def create_promise(ctx: Context, req: CreatePromise, claim: tuple[str, int] | None = None,
                   extra_insert: Callable[[], bool] | None = None) -> tuple[int, Promise, Task | None]:
    """Creates the promise (and the router's invoke task); `extra_insert` joins the same insert."""
    check_fence(ctx, req.fence)
    tx, now = ctx.tx, ctx.now
    promise = Promise(id=req.id, state=PromiseState.PENDING, param=req.param, value=Value(), timeout=req.timeout,
                      idempotency_key_for_create=req.idempotency_key, tags=req.tags, created_on=now)
    # insert first (it does nothing if the id exists): a new promise costs one statement, not a read too
    if tx.insert_promise(promise):
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
            tx.insert_task(task)
        if extra_insert is not None and not extra_insert():
            raise Retry()
        return CREATED, promise, task
    existing = tx.read_promise(req.id)
    if existing is None:  # the insert met a row that is gone again: start over
        raise Retry()
    existing = timeout_if_expired(ctx, existing)
    if not _ikeys_match(existing.idempotency_key_for_create, req.idempotency_key):
        raise request_error(PROMISE_ALREADY_EXISTS)
    if req.strict and existing.state is not PromiseState.PENDING:
        raise request_error(PROMISE_ALREADY_EXISTS)
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
        raise request_error(PROMISE_NOT_FOUND)
    return Result(OK, timeout_if_expired(ctx, p))


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


_FORBIDDEN_BY_STATE = {PromiseState.RESOLVED: PROMISE_ALREADY_RESOLVED,
                       PromiseState.REJECTED: PROMISE_ALREADY_REJECTED,
                       PromiseState.REJECTED_CANCELED: PROMISE_ALREADY_CANCELED,
                       PromiseState.REJECTED_TIMEDOUT: PROMISE_ALREADY_TIMEDOUT}


def op_complete_promise(ctx: Context, req: CompletePromise) -> Result:
    check_fence(ctx, req.fence)
    p = ctx.tx.read_promise(req.id)
    if p is None:
        raise request_error(PROMISE_NOT_FOUND)
    requested = PromiseState[req.state]
    if p.state is PromiseState.PENDING:
        if ctx.now < p.timeout:
            return Result(CREATED, complete_with_effects(ctx, p, requested, req.value, req.idempotency_key, ctx.now))
        p = timeout_if_expired(ctx, p)
        if p.state is PromiseState.RESOLVED:
            raise request_error(PROMISE_ALREADY_RESOLVED)
        if req.strict:
            raise request_error(PROMISE_ALREADY_TIMEDOUT)
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
        raise request_error(PROMISE_NOT_FOUND)
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
        raise request_error(SCHEDULE_NOT_FOUND)
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
        raise request_error(SCHEDULE_ALREADY_EXISTS)
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
        raise request_error(SCHEDULE_NOT_FOUND)
    return Result(NO_CONTENT)


# ---------------------------------------------------------------------------------------------------
# Locks

def op_acquire_lock(ctx: Context, req: AcquireLock) -> Result:
    lock = Lock(req.resource_id, req.execution_id, req.process_id, req.ttl, clamp_int64(ctx.now + req.ttl))
    if not ctx.tx.acquire_lock(lock):
        raise request_error(LOCK_ALREADY_ACQUIRED)
    return Result(CREATED, lock)


def op_release_lock(ctx: Context, req: ReleaseLock) -> Result:
    if not ctx.tx.release_lock(req.resource_id, req.execution_id):
        raise request_error(LOCK_NOT_FOUND)
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
        raise request_error(TASK_NOT_FOUND)
    if t.state is TaskState.CLAIMED:
        raise request_error(TASK_ALREADY_CLAIMED)
    if t.state in (TaskState.COMPLETED, TaskState.TIMEDOUT):
        raise request_error(TASK_ALREADY_COMPLETED)
    if t.counter != req.counter:
        raise request_error(TASK_INVALID_COUNTER)
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
        raise request_error(TASK_NOT_FOUND)
    if t.state in (TaskState.COMPLETED, TaskState.TIMEDOUT):
        return Result(OK, t)
    if t.state in (TaskState.INIT, TaskState.ENQUEUED):
        raise request_error(TASK_INVALID_STATE)
    if t.counter != req.counter:
        raise request_error(TASK_INVALID_COUNTER)
    t.state, t.process_id, t.attempt, t.ttl, t.expires_at, t.completed_on = (
        TaskState.COMPLETED, None, 0, 0, 0, ctx.now)
    if not ctx.tx.update_task(t, TaskState.CLAIMED, req.counter):
        raise Retry()
    return Result(CREATED, t)


def op_read_task(ctx: Context, req: ReadTask) -> Result:
    """Read-only extension (v0.8.2 has no task read): the task as tasks.complete answers it, plus its state."""
    t = ctx.tx.read_task(req.id)
    if t is None:
        raise request_error(TASK_NOT_FOUND)
    return Result(OK, {**t.to_json(), "state": t.state.name})


def op_drop_task(ctx: Context, req: DropTask) -> Result:
    t = ctx.tx.read_task(req.id)
    if t is None:
        raise request_error(TASK_NOT_FOUND)
    if t.state is not TaskState.CLAIMED:
        return Result(OK)
    if t.counter != req.counter:
        raise request_error(TASK_INVALID_COUNTER)
    t.state, t.counter, t.process_id, t.attempt, t.ttl, t.expires_at = TaskState.INIT, t.counter + 1, None, 0, 0, 0
    if not ctx.tx.update_task(t, TaskState.CLAIMED, req.counter):
        raise Retry()
    return Result(CREATED)


def op_heartbeat_tasks(ctx: Context, req: HeartbeatTasks) -> Result:
    return Result(OK, {"tasksAffected": ctx.tx.heartbeat_tasks(req.process_id, ctx.now)})


def _row(table: str, key: str = "") -> Callable[[Any], tuple[str, str]]:
    """The row a request locks, as (table, its `key` attribute): see `Operation.locks`. Without a key the
    request's rows come ahead of the others of the table (a heartbeat: a process's rows, locked in key
    order by the store)."""
    value = attrgetter(key) if key else (lambda request: "")
    return lambda request: (table, value(request))


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    request: type
    execute: Callable[[Context, Any], Result]
    # the row a request locks until its transaction ends, as (table, key): a read's lazy timeout, a
    # creation's INSERT (or its wait for another's insert of the id), a completion's UPDATE, the lock a
    # callback or subscription takes against that completion, a lock's or a task's write. Stores that
    # write in several transactions at once run these in (table, key) order (`Store.runs_in_lock_order`),
    # so two batches do not wait for each other's rows; a search's lazy timeouts are not ordered
    # (docs/scaling-out.md)
    locks: Callable[[Any], tuple[str, str]] | None = None


# every client operation: its name on the wires, its request type (decoded in requests.py), its executor,
# the row it locks
OPERATIONS: dict[str, Operation] = {op.name: op for op in [
    Operation("promises.read", ReadPromise, op_read_promise, _row("promises", "id")),
    Operation("promises.search", SearchPromises, op_search_promises),
    Operation("promises.create", CreatePromise, op_create_promise, _row("promises", "id")),
    Operation("promises.createtask", CreatePromiseAndTask, op_create_promise_and_task, _row("promises", "promise.id")),
    Operation("promises.complete", CompletePromise, op_complete_promise, _row("promises", "id")),
    Operation("promises.callback", CreateCallback, op_create_callback, _row("promises", "promise_id")),
    Operation("promises.subscribe", CreateSubscription, op_create_subscription, _row("promises", "promise_id")),
    Operation("schedules.read", ReadSchedule, op_read_schedule),
    Operation("schedules.search", SearchSchedules, op_search_schedules),
    Operation("schedules.create", CreateSchedule, op_create_schedule),
    Operation("schedules.delete", DeleteSchedule, op_delete_schedule),
    Operation("locks.acquire", AcquireLock, op_acquire_lock, _row("locks", "resource_id")),
    Operation("locks.release", ReleaseLock, op_release_lock, _row("locks", "resource_id")),
    Operation("locks.heartbeat", HeartbeatLocks, op_heartbeat_locks, _row("locks")),
    Operation("tasks.claim", ClaimTask, op_claim_task, _row("tasks", "id")),
    Operation("tasks.complete", CompleteTask, op_complete_task, _row("tasks", "id")),
    Operation("tasks.read", ReadTask, op_read_task),
    Operation("tasks.drop", DropTask, op_drop_task, _row("tasks", "id")),
    Operation("tasks.heartbeat", HeartbeatTasks, op_heartbeat_tasks, _row("tasks")),
]}

EXECUTORS: dict[type, Callable[[Context, Any], Result]] = {op.request: op.execute for op in OPERATIONS.values()}
ROW_LOCKED_BY: dict[type, Callable[[Any], tuple[str, str]]] = {
    op.request: op.locks for op in OPERATIONS.values() if op.locks is not None}

# requests that only read, unless they must time out a pending promise on the spot (lazy timeout: the
# store's read connection refuses that write and the writer runs the request); the kernel may answer
# these from a read connection beside the writer
READ_ONLY: frozenset[type] = frozenset({ReadPromise, SearchPromises, ReadSchedule, SearchSchedules, ReadTask})


def render(value: Any) -> Any:
    """Domain objects -> the reference's JSON shapes (maps keep the order the operation built)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value
