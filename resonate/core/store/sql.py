"""The store's commands (spec 1.12) as SQL over a DBAPI cursor, shared by SQLite and PostgreSQL.

Statements are written with `?` placeholders; a dialect converts them once. Only the few places
where the backends really differ (tag matching, enqueueable tasks, json text) are dialect hooks.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from .. import gojson
from .. import deadlines as dl
from ..model import (INT64_MAX, Callback, Lock, Mesg, Promise, PromiseState, Schedule, Task, TaskState, Value)
from .base import StoreError

PROMISE_COLUMNS = ("id, state, param_headers, param_data, value_headers, value_data, timeout, "
                   "idempotency_key_for_create, idempotency_key_for_complete, tags, created_on, completed_on, sort_id")
TASK_COLUMNS = ("id, process_id, state, root_promise_id, recv, mesg, timeout, counter, attempt, ttl, expires_at, "
                "created_on, completed_on, sort_id")
SCHEDULE_COLUMNS = ("id, description, cron, tags, promise_id, promise_timeout, promise_param_headers, "
                    "promise_param_data, promise_tags, last_run_time, next_run_time, idempotency_key, created_on, "
                    "sort_id")
# point reads, built once: the driver's statement cache (and `q`'s) hash the same string object each time
READ_PROMISE = f"SELECT {PROMISE_COLUMNS} FROM promises WHERE id = ?"
READ_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
READ_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?"
# States as the SQL compares them (the bit values of spec 1.11), named once
PENDING = int(PromiseState.PENDING)
TASK_INIT = int(TaskState.INIT)
TASK_CLAIMED = int(TaskState.CLAIMED)
TASK_COMPLETED = int(TaskState.COMPLETED)
TASK_SENT_OR_CLAIMED = f"({int(TaskState.ENQUEUED)}, {int(TaskState.CLAIMED)})"  # a worker has it
TASK_OPEN = f"({int(TaskState.INIT)}, {int(TaskState.ENQUEUED)}, {int(TaskState.CLAIMED)})"  # not yet finished
TASK_TIMED_MASK = int(TaskState.ENQUEUED | TaskState.CLAIMED)  # states whose expiry is watched
# `now + ttl` without overflowing int64 (SQLite would turn it into a float)
CLAMPED_EXPIRY = f"CASE WHEN ttl > {INT64_MAX} - ? THEN {INT64_MAX} ELSE ? + ttl END"


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw).decode("utf-8")
    if isinstance(raw, (dict, list)):  # PostgreSQL JSONB comes back decoded
        return gojson.dumps(raw)
    return raw


def _map(raw: Any) -> dict[str, str]:
    if raw is None or raw == "{}":  # most headers and tags are empty (checked first: one compare per map)
        return {}
    if isinstance(raw, dict):
        return raw
    text = _text(raw)
    if not text or text == "{}":  # most headers and tags are empty: no JSON parse
        return {}
    return json.loads(text)


def _blob(raw: Any) -> bytes:
    return bytes(raw) if raw is not None else b""


def _json_map(m: dict[str, str]) -> str:
    return gojson.dumps(dict(sorted(m.items()))) if m else "{}"


# a stored state -> its enum member by a dict lookup (calling the IntEnum class costs several times more)
_PROMISE_STATES = {int(s): s for s in PromiseState}


def promise_from_row(r) -> Promise:
    state = _PROMISE_STATES.get(r[1])
    return Promise(r[0], PromiseState(r[1]) if state is None else state, Value(_map(r[2]), _blob(r[3])),
                   Value(_map(r[4]), _blob(r[5])), r[6], r[7], r[8], _map(r[9]), r[10], r[11], r[12])


def task_from_row(r) -> Task:
    return Task(id=r[0], process_id=r[1], state=TaskState(r[2]), root_promise_id=r[3], recv=_text(r[4]),
                mesg=Mesg.from_json(json.loads(_text(r[5]))), timeout=r[6], counter=r[7], attempt=r[8], ttl=r[9],
                expires_at=r[10], created_on=r[11], completed_on=r[12], sort_id=r[13])


def schedule_from_row(r) -> Schedule:
    return Schedule(id=r[0], description=r[1] or "", cron=r[2], tags=_map(r[3]), promise_id=r[4] or "",
                    promise_timeout=r[5] or 0, promise_param=Value(_map(r[6]), _blob(r[7])),
                    promise_tags=_map(r[8]), last_run_time=r[9], next_run_time=r[10], idempotency_key=r[11],
                    created_on=r[12], sort_id=r[13])


class SqlTx:
    """One open transaction. Subclasses set `placeholder` and override the dialect hooks."""

    placeholder = "?"
    _converted: dict[str, str] = {}
    # the driver's exception class, and the dialect's one classification of it into a store error
    driver_error: type[Exception] | tuple = ()
    store_error: Callable[[Exception], StoreError] = StoreError

    def __init__(self, cursor):
        self.cur = cursor
        self.begin_deadlines()

    # -- deadlines written by this transaction, per kind (resonate/core/deadlines.py)
    def begin_deadlines(self) -> None:
        self.deadlines: dict[str, int] = {}
        self.replaced: set[str] = set()

    def note_deadline(self, kind: str, at: int) -> None:
        if at < self.deadlines.get(kind, dl.NEVER):
            self.deadlines[kind] = at

    def replace_deadline(self, kind: str, at: int) -> None:
        """A pass has done the due work of its kind: its next deadline is `at`, whatever was noted."""
        self.deadlines[kind] = at
        self.replaced.add(kind)

    # the next deadline of each kind strictly after `now` (index-backed: the indexes of migration 3 in tables.py); due
    # work a pass left (rows another server holds, a schedule skipped) is not reported, so it cannot
    # make the loops spin
    NEXT_DEADLINE = {
        dl.TIMEOUT_PROMISES: ("SELECT MIN(timeout) FROM promises WHERE state = 1 AND timeout > ?", 1),
        dl.SCHEDULE_PROMISES: ("SELECT MIN(next_run_time) FROM schedules WHERE next_run_time > ?", 1),
        dl.TIMEOUT_LOCKS: ("SELECT MIN(expires_at) FROM locks WHERE expires_at > ?", 1),
        dl.ENQUEUE_TASKS: ("SELECT MIN(expires_at) FROM tasks WHERE state = 1 AND expires_at > ?", 1),
        dl.TIMEOUT_TASKS: ("SELECT MIN(d) FROM (SELECT MIN(expires_at) AS d FROM tasks WHERE state IN (2, 4)"
                           " AND expires_at > ? UNION ALL SELECT MIN(timeout) AS d FROM tasks"
                           " WHERE state IN (2, 4) AND timeout > ?) AS next", 2),
    }

    def publish_deadlines(self, deadlines: dict[str, int]) -> None:
        """Tells the other servers on this database (PostgreSQL; one server on SQLite: nothing)."""

    def next_deadline(self, kind: str, now: int) -> int:
        sql, uses = self.NEXT_DEADLINE[kind]
        row = self.one(sql, (now,) * uses)
        return dl.NEVER if row is None or row[0] is None else row[0]

    # -- plumbing
    def q(self, sql: str) -> str:
        if self.placeholder == "?":
            return sql
        cache = type(self)._converted
        out = cache.get(sql)
        if out is None:
            out = cache[sql] = sql.replace("?", self.placeholder)
        return out

    def _run(self, sql: str, params: Iterable[Any]) -> None:
        try:
            self.cur.execute(self.q(sql), tuple(params))
        except self.driver_error as e:
            raise self.store_error(e) from e

    def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        self._run(sql, params)
        return self.cur.rowcount

    def one(self, sql: str, params: Iterable[Any] = ()):
        self._run(sql, params)
        return self.cur.fetchone()

    def all(self, sql: str, params: Iterable[Any] = ()):
        self._run(sql, params)
        return self.cur.fetchall()

    def blob(self, data: bytes) -> Any:
        return data

    def json_value(self, text: str) -> Any:
        return text

    # -- dialect hooks
    def tag_filter(self, tags: dict[str, str]) -> tuple[str, list]:
        # flat keys matched exactly (as PostgreSQL's @>); a JSON path built from the key would fail on `[`
        clauses, params = [], []
        for k, v in sorted(tags.items()):
            clauses.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE json_each.key = ? AND json_each.value = ?)")
            params.extend([k, v])
        return " AND ".join(clauses), params

    # appended to reads of due background work; PostgreSQL locks those rows (several servers, one database)
    LOCK_DUE = ""

    ENQUEUEABLE = (
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE sort_id IN ("
        f" SELECT MIN(sort_id) FROM tasks WHERE state = {TASK_INIT} AND expires_at <= ?"
        f" AND root_promise_id NOT IN (SELECT root_promise_id FROM tasks WHERE state IN {TASK_SENT_OR_CLAIMED})"
        " GROUP BY root_promise_id) ORDER BY root_promise_id LIMIT ?")

    def _search_where(self, pattern: str, tags: dict[str, str], limit: int, sort_id: int | None,
                      extra: str | None = None, extra_params: list | None = None) -> tuple[str, list]:
        """A search page's WHERE (id pattern, more conditions, the cursor's sort id, tags) and its
        parameters, ending with the LIMIT's."""
        where, params = ["id LIKE ?"], [pattern]
        if extra:
            where.append(extra)
            params.extend(extra_params or [])
        if sort_id is not None:
            where.append("sort_id < ?")
            params.append(sort_id)
        if tags:
            clause, tag_params = self.tag_filter(tags)
            where.append(clause)
            params.extend(tag_params)
        params.append(limit)
        return " AND ".join(where), params

    # -- promises
    def read_promise(self, promise_id: str) -> Promise | None:
        row = self.one(READ_PROMISE, (promise_id,))
        return promise_from_row(row) if row else None

    def search_promises(self, pattern: str, state_mask: int, tags: dict[str, str], limit: int,
                        sort_id: int | None) -> list[Promise]:
        where, params = self._search_where(pattern, tags, limit, sort_id, "(state & ?) != 0", [state_mask])
        rows = self.all(f"SELECT {PROMISE_COLUMNS} FROM promises WHERE {where} ORDER BY sort_id DESC LIMIT ?", params)
        return [promise_from_row(r) for r in rows]

    def insert_promise(self, p: Promise) -> bool:
        """Inserts `p` unless its id exists; True if inserted."""
        n = self.execute(
            "INSERT INTO promises (id, state, param_headers, param_data, timeout, idempotency_key_for_create, tags,"
            " created_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (p.id, p.state.value, self.json_value(_json_map(p.param.headers)), self.blob(p.param.data), p.timeout,
             p.idempotency_key_for_create, self.json_value(_json_map(p.tags)), p.created_on))
        if n == 1 and p.state is PromiseState.PENDING:
            self.note_deadline(dl.TIMEOUT_PROMISES, p.timeout)
        return n == 1

    def update_promise(self, promise_id: str, state: PromiseState, value: Value, ikey: str | None,
                       completed_on: int) -> bool:
        return self.execute(
            "UPDATE promises SET state = ?, value_headers = ?, value_data = ?, idempotency_key_for_complete = ?,"
            f" completed_on = ? WHERE id = ? AND state = {PENDING}",
            (state.value, self.json_value(_json_map(value.headers)), self.blob(value.data), ikey, completed_on,
             promise_id)) == 1

    def read_expired_promises(self, now: int, limit: int) -> list[Promise]:
        rows = self.all(f"SELECT {PROMISE_COLUMNS} FROM promises WHERE state = {PENDING} AND timeout <= ? LIMIT ?"
                        f"{self.LOCK_DUE}", (now, limit))
        return [promise_from_row(r) for r in rows]

    # -- callbacks
    def insert_callback(self, cb: Callback) -> bool:
        return self.execute(
            "INSERT INTO callbacks (id, promise_id, root_promise_id, recv, mesg, timeout, created_on)"
            " SELECT ?, ?, ?, ?, ?, ?, ?"
            f" WHERE EXISTS (SELECT 1 FROM promises WHERE id = ? AND state = {PENDING})"
            " AND NOT EXISTS (SELECT 1 FROM callbacks WHERE id = ?) ON CONFLICT (id) DO NOTHING",
            (cb.id, cb.promise_id, cb.mesg.root, self.blob(cb.recv.encode()),
             self.blob(gojson.dumps(cb.mesg.to_json()).encode()), cb.timeout, cb.created_on, cb.promise_id,
             cb.id)) == 1

    def move_callbacks_to_tasks(self, promise_id: str, created_on: int) -> int:
        """A completed promise's callbacks become tasks (created in id order) and are deleted; returns how
        many tasks were created."""
        created = self.create_tasks_from_callbacks(promise_id, created_on)
        self.delete_callbacks(promise_id)
        return created

    def delete_callbacks(self, promise_id: str) -> int:
        return self.execute("DELETE FROM callbacks WHERE promise_id = ?", (promise_id,))

    def create_tasks_from_callbacks(self, promise_id: str, created_on: int) -> int:
        created = self.execute(
            "INSERT INTO tasks (id, recv, mesg, timeout, root_promise_id, created_on)"
            " SELECT id, recv, mesg, timeout, root_promise_id, ? FROM callbacks WHERE promise_id = ?"
            " ORDER BY id ON CONFLICT (id) DO NOTHING", (created_on, promise_id))
        if created:
            self.note_deadline(dl.ENQUEUE_TASKS, 0)  # new INIT tasks: to be sent at once
        return created

    # -- tasks
    def complete_tasks_by_root(self, root_id: str, completed_on: int) -> int:
        return self.execute(f"UPDATE tasks SET state = {TASK_COMPLETED}, completed_on = ? WHERE root_promise_id = ?"
                            f" AND state IN {TASK_OPEN}", (completed_on, root_id))

    def _note_task(self, t: Task, previous_states: int = 0) -> None:
        if t.state is TaskState.INIT:
            self.note_deadline(dl.ENQUEUE_TASKS, t.expires_at)
        elif t.state in (TaskState.ENQUEUED, TaskState.CLAIMED):
            self.note_deadline(dl.TIMEOUT_TASKS, min(t.expires_at or t.timeout, t.timeout))
        elif previous_states & (TaskState.ENQUEUED | TaskState.CLAIMED):
            self.note_deadline(dl.ENQUEUE_TASKS, 0)  # it no longer holds back its root's other tasks

    def insert_task(self, t: Task) -> bool:
        self._note_task(t)
        return self.execute(
            "INSERT INTO tasks (id, recv, mesg, timeout, process_id, state, root_promise_id, ttl, expires_at,"
            " created_on, counter, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (t.id, self.blob(t.recv.encode()), self.blob(gojson.dumps(t.mesg.to_json()).encode()), t.timeout,
             t.process_id, t.state.value, t.root_promise_id, t.ttl, t.expires_at, t.created_on, t.counter,
             t.attempt)) == 1

    def read_task(self, task_id: str) -> Task | None:
        row = self.one(READ_TASK, (task_id,))
        return task_from_row(row) if row else None

    def update_task(self, t: Task, expected_states: int, expected_counter: int) -> bool:
        self._note_task(t, int(expected_states))
        return self.execute(
            "UPDATE tasks SET process_id = ?, state = ?, counter = ?, attempt = ?, ttl = ?, expires_at = ?,"
            " completed_on = ? WHERE id = ? AND (state & ?) != 0 AND counter = ?",
            (t.process_id, t.state.value, t.counter, t.attempt, t.ttl, t.expires_at, t.completed_on, t.id,
             int(expected_states), expected_counter)) == 1

    def read_expired_tasks(self, now: int, limit: int) -> list[Task]:
        rows = self.all(f"SELECT {TASK_COLUMNS} FROM tasks WHERE (state & {TASK_TIMED_MASK}) != 0 AND"
                        " ((expires_at != 0 AND expires_at <= ?) OR timeout <= ?)"
                        f" ORDER BY root_promise_id, sort_id LIMIT ?{self.LOCK_DUE}", (now, now, limit))
        return [task_from_row(r) for r in rows]

    def read_enqueueable_tasks(self, now: int, limit: int) -> list[Task]:
        return [task_from_row(r) for r in self.all(self.ENQUEUEABLE, (now, limit))]

    def heartbeat_tasks(self, process_id: str, now: int) -> int:
        return self.execute(f"UPDATE tasks SET expires_at = {CLAMPED_EXPIRY}"
                            f" WHERE process_id = ? AND state = {TASK_CLAIMED}",
                            (now, now, process_id))

    def valid_fence(self, task_id: str, counter: int) -> bool:
        row = self.one(f"SELECT COUNT(*) FROM tasks WHERE id = ? AND counter = ? AND state = {TASK_CLAIMED}",
                       (task_id, counter))
        return row[0] == 1

    # -- schedules
    def read_schedule(self, schedule_id: str) -> Schedule | None:
        row = self.one(READ_SCHEDULE, (schedule_id,))
        return schedule_from_row(row) if row else None

    def search_schedules(self, pattern: str, tags: dict[str, str], limit: int, sort_id: int | None) -> list[Schedule]:
        where, params = self._search_where(pattern, tags, limit, sort_id)
        # partial records, as the reference's search returns (spec 3.7.9)
        rows = self.all("SELECT id, NULL, cron, tags, NULL, NULL, NULL, NULL, NULL, last_run_time, next_run_time,"
                        f" idempotency_key, created_on, sort_id FROM schedules WHERE {where}"
                        " ORDER BY sort_id DESC LIMIT ?", params)
        return [schedule_from_row(r) for r in rows]

    def insert_schedule(self, s: Schedule) -> bool:
        self.note_deadline(dl.SCHEDULE_PROMISES, s.next_run_time)
        n = self.execute(
            "INSERT INTO schedules (id, description, cron, tags, promise_id, promise_timeout, promise_param_headers,"
            " promise_param_data, promise_tags, next_run_time, idempotency_key, created_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (s.id, s.description, s.cron, self.json_value(_json_map(s.tags)), s.promise_id, s.promise_timeout,
             self.json_value(_json_map(s.promise_param.headers)), self.blob(s.promise_param.data),
             self.json_value(_json_map(s.promise_tags)), s.next_run_time, s.idempotency_key, s.created_on))
        return n == 1

    def delete_schedule(self, schedule_id: str) -> bool:
        return self.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)) == 1

    def update_schedule(self, schedule_id: str, expected_next_run_time: int, next_run_time: int) -> bool:
        """Advance a schedule that fired: only if its next run is still the one that fired (else another
        server or request moved it first)."""
        self.note_deadline(dl.SCHEDULE_PROMISES, next_run_time)
        return self.execute("UPDATE schedules SET last_run_time = next_run_time, next_run_time = ?"
                            " WHERE id = ? AND next_run_time = ?",
                            (next_run_time, schedule_id, expected_next_run_time)) == 1

    def read_due_schedules(self, now: int, limit: int) -> list[Schedule]:
        rows = self.all(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE next_run_time <= ?"
                        f" ORDER BY next_run_time, sort_id LIMIT ?{self.LOCK_DUE}", (now, limit))
        return [schedule_from_row(r) for r in rows]

    # -- locks
    def acquire_lock(self, lock: Lock) -> bool:
        self.note_deadline(dl.TIMEOUT_LOCKS, lock.expires_at)
        return self.execute(
            "INSERT INTO locks (resource_id, execution_id, process_id, ttl, expires_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (resource_id) DO UPDATE SET process_id = excluded.process_id, ttl = excluded.ttl,"
            " expires_at = excluded.expires_at WHERE locks.execution_id = excluded.execution_id",
            (lock.resource_id, lock.execution_id, lock.process_id, lock.ttl, lock.expires_at)) == 1

    def release_lock(self, resource_id: str, execution_id: str) -> bool:
        return self.execute("DELETE FROM locks WHERE resource_id = ? AND execution_id = ?",
                            (resource_id, execution_id)) == 1

    def heartbeat_locks(self, process_id: str, now: int) -> int:
        return self.execute(f"UPDATE locks SET expires_at = {CLAMPED_EXPIRY} WHERE process_id = ?",
                            (now, now, process_id))

    def timeout_locks(self, now: int) -> int:
        return self.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))

    # -- stored replies of deduplicated requests
    def read_reply(self, key: str) -> bytes | None:
        row = self.one("SELECT reply FROM replies WHERE key = ?", (key,))
        return bytes(row[0]) if row else None

    def insert_reply(self, key: str, reply: bytes, now: int) -> None:
        self.execute("INSERT INTO replies (key, reply, created_on) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                     (key, self.blob(reply), now))

    def delete_replies_before(self, cutoff: int, limit: int) -> int:
        """Delete up to `limit` stored replies created before `cutoff`; returns how many."""
        return self.execute("DELETE FROM replies WHERE key IN"
                            " (SELECT key FROM replies WHERE created_on < ? LIMIT ?)", (cutoff, limit))
