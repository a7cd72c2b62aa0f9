"""Background work, expressed as requests that run in the kernel like any client request (spec 5)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from . import cron as cronlib
from . import deadlines as dl
from . import template
from .model import Promise, PromiseState, Task, TaskState, Value, clamp_int64
from .operations import Context, CreatePromise, Outgoing, Result, Retry, complete_with_effects, create_promise
from .codes import OK

log = logging.getLogger("resonate.background")


@dataclass(slots=True)
class TimeoutPromises:
    limit: int = 100


@dataclass(slots=True)
class TimeoutTasks:
    limit: int = 100


@dataclass(slots=True)
class TimeoutLocks:
    pass


@dataclass(slots=True)
class SchedulePromises:
    limit: int = 100


@dataclass(slots=True)
class EnqueueTasks:
    limit: int = 100


@dataclass(slots=True)
class SendOutcome:
    task_id: str
    counter: int
    delivered: bool
    retry_after_ms: int  # ttc when delivered (0 = no claim window), ttr when not


@dataclass(slots=True)
class RecordSendOutcomes:
    outcomes: list[SendOutcome] = field(default_factory=list)


def _next_deadline(ctx: Context, kind: str, done: int, limit: int | None) -> None:
    """After a pass: its kind's next deadline is the store's next one, or now when a backlog is left."""
    at = ctx.now if limit is not None and done >= limit else ctx.tx.next_deadline(kind, ctx.now)
    ctx.tx.replace_deadline(kind, at)


def run_timeout_promises(ctx: Context, req: TimeoutPromises) -> Result:
    done = 0
    for p in ctx.tx.read_expired_promises(ctx.now, req.limit):
        try:
            complete_with_effects(ctx, p, p.timed_out_state(), Value(), None, p.timeout)
            done += 1
        except Retry:
            pass  # completed meanwhile by someone else: nothing to do
    _next_deadline(ctx, dl.TIMEOUT_PROMISES, done, req.limit)
    return Result(OK, done)


def run_timeout_tasks(ctx: Context, req: TimeoutTasks) -> Result:
    tasks = ctx.tx.read_expired_tasks(ctx.now, req.limit)
    for t in tasks:
        previous_state, previous_counter = t.state, t.counter
        if ctx.now >= t.timeout:
            t.state, t.process_id, t.ttl, t.expires_at, t.completed_on = TaskState.TIMEDOUT, None, 0, 0, t.timeout
        else:
            t.state, t.counter, t.process_id, t.attempt, t.ttl, t.expires_at = (
                TaskState.INIT, t.counter + 1, None, 0, 0, 0)
        ctx.tx.update_task(t, previous_state, previous_counter)
    _next_deadline(ctx, dl.TIMEOUT_TASKS, len(tasks), req.limit)
    return Result(OK, len(tasks))


def run_timeout_locks(ctx: Context, req: TimeoutLocks) -> Result:
    done = ctx.tx.timeout_locks(ctx.now)
    _next_deadline(ctx, dl.TIMEOUT_LOCKS, done, None)
    return Result(OK, done)


def run_schedule_promises(ctx: Context, req: SchedulePromises) -> Result:
    schedules = ctx.tx.read_due_schedules(ctx.now, req.limit)
    for s in schedules:
        try:
            next_run = cronlib.parse_cron(s.cron).next(s.next_run_time)
            promise_id = template.expand_promise_id(s.promise_id, {"id": s.id, "timestamp": str(s.next_run_time)})
        except (cronlib.CronError, template.TemplateError) as e:
            log.warning("schedule %s skipped this pass: %s", s.id, e)
            continue
        if ctx.tx.read_promise(promise_id) is not None:
            log.warning("promise to be scheduled already exists: schedule %s, promise %s", s.id, promise_id)
            continue
        tags = dict(s.promise_tags)
        tags["resonate:schedule"] = s.id
        tags["resonate:invocation"] = "true"
        req_create = CreatePromise(id=promise_id, param=s.promise_param,
                                   timeout=clamp_int64(s.promise_timeout + s.next_run_time), tags=tags)
        tx = ctx.tx
        create_promise(ctx, req_create,
                       extra_insert=lambda s=s, n=next_run: tx.update_schedule(s.id, s.next_run_time, n))
    _next_deadline(ctx, dl.SCHEDULE_PROMISES, len(schedules), req.limit)
    return Result(OK, len(schedules))


def _message_body(ctx: Context, t: Task, root: Promise | None) -> dict:
    if t.mesg.type == "notify":
        return {"promise": root.to_json() if root else None, "type": "notify"}
    base = ctx.config.system_url
    href = {"base": base, "claim": f"{base}/tasks/claim/{t.id}/{t.counter}",
            "complete": f"{base}/tasks/complete/{t.id}/{t.counter}",
            "heartbeat": f"{base}/tasks/heartbeat/{t.id}/{t.counter}"}
    return {"href": href, "task": t.to_json(), "type": t.mesg.type}


def run_enqueue_tasks(ctx: Context, req: EnqueueTasks) -> Result:
    tasks = ctx.tx.read_enqueueable_tasks(ctx.now, req.limit)
    for t in tasks:
        root = ctx.tx.read_promise(t.root_promise_id)
        counter = t.counter
        if ctx.now >= t.timeout:
            t.state, t.completed_on = TaskState.TIMEDOUT, t.timeout
        elif root is not None and root.state is not PromiseState.PENDING and t.mesg.type != "notify":
            t.state, t.completed_on = TaskState.COMPLETED, ctx.now
        elif t.mesg.type == "notify":
            # notifications are at most once: completed on the first attempt, whatever its outcome
            body = _message_body(ctx, t, root)
            t.state, t.attempt, t.ttl, t.expires_at, t.completed_on = TaskState.COMPLETED, 0, 0, 0, None
            ctx.outbox.append(Outgoing(t.id, counter, t.recv, body, t.mesg.head, expects_outcome=False))
        else:
            body = _message_body(ctx, t, root)
            # stays INIT while in flight; the guard keeps this and other instances from sending it twice
            t.expires_at = clamp_int64(ctx.now + ctx.config.inflight_guard_ms)
            ctx.outbox.append(Outgoing(t.id, counter, t.recv, body, t.mesg.head, expects_outcome=True))
        ctx.tx.update_task(t, TaskState.INIT, counter)
    _next_deadline(ctx, dl.ENQUEUE_TASKS, len(tasks), req.limit)
    return Result(OK, len(tasks))


def run_record_send_outcomes(ctx: Context, req: RecordSendOutcomes) -> Result:
    for o in req.outcomes:
        t = ctx.tx.read_task(o.task_id)
        if t is None or t.state is not TaskState.INIT or t.counter != o.counter:
            continue  # completed, claimed or re-counted meanwhile
        if o.delivered:
            t.state, t.process_id, t.ttl = TaskState.ENQUEUED, None, 0
            t.expires_at = clamp_int64(ctx.now + o.retry_after_ms) if o.retry_after_ms else 0
        else:
            t.process_id, t.ttl, t.attempt = None, 0, t.attempt + 1
            t.expires_at = clamp_int64(ctx.now + o.retry_after_ms) if o.retry_after_ms else 0
        ctx.tx.update_task(t, TaskState.INIT, o.counter)
    return Result(OK, len(req.outcomes))


# the deadline kind each pass handles (resonate/core/deadlines.py)
PASS_KIND = {TimeoutPromises: dl.TIMEOUT_PROMISES, SchedulePromises: dl.SCHEDULE_PROMISES,
             TimeoutLocks: dl.TIMEOUT_LOCKS, EnqueueTasks: dl.ENQUEUE_TASKS, TimeoutTasks: dl.TIMEOUT_TASKS}

BACKGROUND_EXECUTORS = {
    TimeoutPromises: run_timeout_promises, TimeoutTasks: run_timeout_tasks, TimeoutLocks: run_timeout_locks,
    SchedulePromises: run_schedule_promises, EnqueueTasks: run_enqueue_tasks,
    RecordSendOutcomes: run_record_send_outcomes,
}


# -- pruning of stored replies (deduplicated Kafka requests): kept for a retention, then deleted
@dataclass(slots=True)
class PruneReplies:
    retention_ms: int
    limit: int = 1000


def run_prune_replies(ctx: Context, req: PruneReplies) -> Result:
    return Result(OK, ctx.tx.delete_replies_before(ctx.now - req.retention_ms, req.limit))


BACKGROUND_EXECUTORS[PruneReplies] = run_prune_replies
