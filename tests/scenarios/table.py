"""The rows. Ids use `{p}` so every scenario runs in its own namespace on one shared server."""
from __future__ import annotations

from . import ABSENT, ANY, FUTURE, PAST, Scenario, Step, b64

P = "{p}"


def create(pid, code, timeout=FUTURE, **extra):
    return Step("promises.create", {"id": pid, "timeout": timeout, **extra}, code)


def complete(pid, state, code, **extra):
    return Step("promises.complete", {"id": pid, "state": state, **extra}, code)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


SCENARIOS: list[Scenario] = []


def scenario(name, *steps, needs=()):
    SCENARIOS.append(Scenario(name, list(steps), frozenset(needs)))


# --- create promise: idempotency / strict table (spec 3.6) -------------------------------------
scenario("create new promise",
         Step("promises.create", {"id": f"{P}a", "timeout": FUTURE, "param": {"headers": {"a": "b"}, "data": b64("x")},
                                  "tags": {"t": "1"}}, 20100,
              {"id": f"{P}a", "state": "PENDING", "param": {"headers": {"a": "b"}, "data": b64("x")}, "value": {},
               "timeout": FUTURE, "tags": {"t": "1"}, "createdOn": _is_int, "idempotencyKeyForCreate": ABSENT,
               "completedOn": ABSENT}))
scenario("create pending, same key -> 200",
         create(f"{P}a", 20100, idempotencyKey="k"),
         Step("promises.create", {"id": f"{P}a", "timeout": FUTURE, "idempotencyKey": "k"}, 20000,
              {"state": "PENDING", "idempotencyKeyForCreate": "k"}))
scenario("create pending, same key, strict -> 200",
         create(f"{P}a", 20100, idempotencyKey="k"),
         create(f"{P}a", 20000, idempotencyKey="k", strict=True))
scenario("create pending, different key -> 409",
         create(f"{P}a", 20100, idempotencyKey="k"), create(f"{P}a", 40900, idempotencyKey="other"))
scenario("create pending, no keys -> 409", create(f"{P}a", 20100), create(f"{P}a", 40900))
scenario("create pending, stored key only -> 409", create(f"{P}a", 20100, idempotencyKey="k"), create(f"{P}a", 40900))
scenario("create completed, non-strict, same key -> 200",
         create(f"{P}a", 20100, idempotencyKey="k"), complete(f"{P}a", "RESOLVED", 20100),
         Step("promises.create", {"id": f"{P}a", "timeout": FUTURE, "idempotencyKey": "k"}, 20000,
              {"state": "RESOLVED"}))
scenario("create completed, non-strict, other key -> 409",
         create(f"{P}a", 20100, idempotencyKey="k"), complete(f"{P}a", "RESOLVED", 20100),
         create(f"{P}a", 40900, idempotencyKey="x"))
scenario("create completed, strict, same key -> 409",
         create(f"{P}a", 20100, idempotencyKey="k"), complete(f"{P}a", "REJECTED", 20100),
         create(f"{P}a", 40900, idempotencyKey="k", strict=True))
scenario("create dedup ignores other fields",
         create(f"{P}a", 20100, idempotencyKey="k"),
         Step("promises.create", {"id": f"{P}a", "timeout": 5, "idempotencyKey": "k", "tags": {"x": "y"}}, 20000,
              {"timeout": FUTURE, "tags": ABSENT}))
scenario("create with past timeout is pending, then times out",
         Step("promises.create", {"id": f"{P}a", "timeout": PAST}, 20100, {"state": "PENDING"}),
         Step("promises.read", {"id": f"{P}a"}, 20000,
              {"state": "REJECTED_TIMEDOUT", "completedOn": PAST, "value": {}, "idempotencyKeyForComplete": ABSENT}))
scenario("create on expired promise, same key -> 200 timed out",
         create(f"{P}a", 20100, timeout=PAST, idempotencyKey="k"),
         Step("promises.create", {"id": f"{P}a", "timeout": FUTURE, "idempotencyKey": "k"}, 20000,
              {"state": "REJECTED_TIMEDOUT"}))
scenario("create on expired promise, strict -> 409",
         create(f"{P}a", 20100, timeout=PAST, idempotencyKey="k"),
         create(f"{P}a", 40900, idempotencyKey="k", strict=True))
scenario("resonate:timeout resolves on timeout",
         create(f"{P}a", 20100, timeout=PAST, tags={"resonate:timeout": "true"}),
         Step("promises.read", {"id": f"{P}a"}, 20000, {"state": "RESOLVED", "completedOn": PAST}))

# --- complete promise table (spec 3.6, cases A-H) ----------------------------------------------
scenario("complete A: not found", complete(f"{P}missing", "RESOLVED", 40400))
for state in ("RESOLVED", "REJECTED", "REJECTED_CANCELED"):
    scenario(f"complete B: pending -> {state}",
             create(f"{P}a", 20100),
             Step("promises.complete", {"id": f"{P}a", "state": state, "value": {"data": b64("v")},
                                        "idempotencyKey": "ck"}, 20100,
                  {"state": state, "value": {"data": b64("v")}, "idempotencyKeyForComplete": "ck",
                   "completedOn": _is_int}))
scenario("complete lower-case state",
         create(f"{P}a", 20100), Step("promises.complete", {"id": f"{P}a", "state": "resolved"}, 20100,
                                      {"state": "RESOLVED"}))
scenario("complete C: expired with resonate:timeout -> 40301",
         create(f"{P}a", 20100, timeout=PAST, tags={"resonate:timeout": "true"}),
         complete(f"{P}a", "REJECTED", 40301, idempotencyKey="k"),
         Step("promises.read", {"id": f"{P}a"}, 20000, {"state": "RESOLVED"}))
scenario("complete D: expired, strict -> 40304",
         create(f"{P}a", 20100, timeout=PAST), complete(f"{P}a", "RESOLVED", 40304, strict=True),
         Step("promises.read", {"id": f"{P}a"}, 20000, {"state": "REJECTED_TIMEDOUT"}))
scenario("complete E: expired, non-strict -> 200 timed out",
         create(f"{P}a", 20100, timeout=PAST),
         Step("promises.complete", {"id": f"{P}a", "state": "RESOLVED"}, 20000, {"state": "REJECTED_TIMEDOUT"}))
scenario("complete F: already timed out, non-strict -> 200",
         create(f"{P}a", 20100, timeout=PAST), Step("promises.read", {"id": f"{P}a"}, 20000),
         Step("promises.complete", {"id": f"{P}a", "state": "REJECTED", "idempotencyKey": "zz"}, 20000,
              {"state": "REJECTED_TIMEDOUT"}))
scenario("complete F': already timed out, strict -> 40304",
         create(f"{P}a", 20100, timeout=PAST), Step("promises.read", {"id": f"{P}a"}, 20000),
         complete(f"{P}a", "REJECTED", 40304, strict=True))
scenario("complete G: same key, non-strict, other state -> 200 original",
         create(f"{P}a", 20100), complete(f"{P}a", "RESOLVED", 20100, idempotencyKey="k"),
         Step("promises.complete", {"id": f"{P}a", "state": "REJECTED", "idempotencyKey": "k"}, 20000,
              {"state": "RESOLVED"}))
scenario("complete G: same key, strict, same state -> 200",
         create(f"{P}a", 20100), complete(f"{P}a", "REJECTED", 20100, idempotencyKey="k"),
         complete(f"{P}a", "REJECTED", 20000, idempotencyKey="k", strict=True))
scenario("complete H: same key, strict, other state -> 40301",
         create(f"{P}a", 20100), complete(f"{P}a", "RESOLVED", 20100, idempotencyKey="k"),
         complete(f"{P}a", "REJECTED", 40301, idempotencyKey="k", strict=True))
scenario("complete H: no keys -> 403 by state",
         create(f"{P}r", 20100), complete(f"{P}r", "RESOLVED", 20100), complete(f"{P}r", "RESOLVED", 40301),
         create(f"{P}j", 20100), complete(f"{P}j", "REJECTED", 20100), complete(f"{P}j", "REJECTED", 40302),
         create(f"{P}c", 20100), complete(f"{P}c", "REJECTED_CANCELED", 20100),
         complete(f"{P}c", "REJECTED_CANCELED", 40303))
scenario("complete H: different key -> 403",
         create(f"{P}a", 20100), complete(f"{P}a", "RESOLVED", 20100, idempotencyKey="k"),
         complete(f"{P}a", "RESOLVED", 40301, idempotencyKey="other"))
scenario("complete rejects PENDING and REJECTED_TIMEDOUT and unknown states",
         create(f"{P}a", 20100), complete(f"{P}a", "PENDING", 40000), complete(f"{P}a", "REJECTED_TIMEDOUT", 40000),
         complete(f"{P}a", "DONE", 40000))

# --- read / search --------------------------------------------------------------------------
scenario("read not found", Step("promises.read", {"id": f"{P}nope"}, 40400))
scenario("search by id pattern, state and tags, paged",
         create(f"{P}s1", 20100, tags={"k": "v"}), create(f"{P}s2", 20100, tags={"k": "v"}),
         create(f"{P}s3", 20100, tags={"k": "w"}), complete(f"{P}s2", "RESOLVED", 20100),
         Step("promises.search", {"id": f"{P}s*"}, 20000,
              {"cursor": None, "promises": [{"id": f"{P}s3"}, {"id": f"{P}s2"}, {"id": f"{P}s1"}]}),
         Step("promises.search", {"id": f"{P}s*", "state": "pending"}, 20000,
              {"promises": [{"id": f"{P}s3"}, {"id": f"{P}s1"}]}),
         Step("promises.search", {"id": f"{P}s*", "state": "resolved"}, 20000, {"promises": [{"id": f"{P}s2"}]}),
         Step("promises.search", {"id": f"{P}s*", "tags": {"k": "v"}}, 20000,
              {"promises": [{"id": f"{P}s2"}, {"id": f"{P}s1"}]}),
         Step("promises.search", {"id": f"{P}s*", "limit": 2}, 20000,
              {"cursor": lambda c: isinstance(c, str) and c.count(".") == 2,
               "promises": [{"id": f"{P}s3"}, {"id": f"{P}s2"}]}),
         Step("promises.search", {"id": f"{P}s1"}, 20000, {"promises": [{"id": f"{P}s1"}]}))
scenario("search rejected group includes timed out and canceled",
         create(f"{P}t", 20100, timeout=PAST), create(f"{P}c", 20100), complete(f"{P}c", "REJECTED_CANCELED", 20100),
         Step("promises.read", {"id": f"{P}t"}, 20000, {"state": "REJECTED_TIMEDOUT"}),
         Step("promises.search", {"id": f"{P}*", "state": "rejected"}, 20000,
              {"promises": [{"id": f"{P}c", "state": "REJECTED_CANCELED"},
                            {"id": f"{P}t", "state": "REJECTED_TIMEDOUT"}]}))
scenario("search tags match flat keys exactly, whatever their characters",
         create(f"{P}a", 20100, tags={"a.b": "1", "x[": "2", "": "3"}),
         Step("promises.search", {"id": f"{P}*", "tags": {"a.b": "1"}}, 20000, {"promises": [{"id": f"{P}a"}]}),
         Step("promises.search", {"id": f"{P}*", "tags": {"x[": "2", "": "3"}}, 20000,
              {"promises": [{"id": f"{P}a"}]}),
         Step("promises.search", {"id": f"{P}*", "tags": {"a": "1"}}, 20000, {"promises": []}),
         Step("promises.search", {"id": f"{P}*", "tags": {"[": "1"}}, 20000, {"promises": []}))
scenario("search validation",
         Step("promises.search", {}, 40000), Step("promises.search", {"id": ""}, 40000),
         Step("promises.search", {"id": "*", "state": "done"}, 40000),
         Step("promises.search", {"id": "*", "limit": 101}, 40000),
         Step("promises.search", {"id": "*", "limit": -1}, 40000),
         Step("promises.search", {"id": "*", "cursor": "not-a-jwt"}, 40000))

# --- create promise and task ---------------------------------------------------------------
scenario("create promise and task with router match -> claimed task",
         Step("promises.createtask", {"promise": {"id": f"{P}a", "timeout": FUTURE,
                                                  "tags": {"resonate:invoke": "poll://any@nobody"}},
                                      "task": {"processId": "pid", "ttl": 60000}}, 20100,
              {"promise": {"id": f"{P}a", "state": "PENDING"},
               "task": {"id": f"__invoke:{P}a", "counter": 1, "timeout": FUTURE, "rootPromiseId": f"{P}a",
                        "processId": "pid"}}),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 1, "processId": "x", "ttl": 1000}, 40306),
         Step("tasks.complete", {"id": f"__invoke:{P}a", "counter": 1}, 20100,
              {"id": f"__invoke:{P}a", "processId": ABSENT, "completedOn": _is_int}),
         Step("tasks.complete", {"id": f"__invoke:{P}a", "counter": 7}, 20000))
scenario("create promise and task without router match -> task null",
         Step("promises.createtask", {"promise": {"id": f"{P}a", "timeout": FUTURE},
                                      "task": {"processId": "pid", "ttl": 1}}, 20100, {"task": None}),
         Step("promises.createtask", {"promise": {"id": f"{P}a", "timeout": FUTURE},
                                      "task": {"processId": "pid", "ttl": 1}}, 40900))
scenario("create promise and task validation",
         Step("promises.createtask", {"promise": {"id": f"{P}a"}, "task": {"processId": "p", "ttl": -1}}, 40000),
         Step("promises.createtask", {"promise": {"id": f"{P}a"}, "task": {"ttl": 1}}, 40000),
         Step("promises.createtask", {"promise": {}, "task": {"processId": "p"}}, 40000))

# --- invoke tasks through the router, claim / complete / drop / heartbeat --------------------
scenario("router creates an invoke task; claim, drop, complete with counters",
         create(f"{P}a", 20100, tags={"resonate:invoke": "poll://any@nobody"}),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 2, "processId": "p1", "ttl": 60000}, 40308),
         Step("tasks.complete", {"id": f"__invoke:{P}a", "counter": 1}, 40309),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 1, "processId": "p1", "ttl": 60000}, 20100,
              {"type": "invoke", "promises": {"root": {"id": f"{P}a", "data": {"id": f"{P}a", "state": "PENDING"},
                                                       "href": lambda h: "/promises/" in h},
                                              "leaf": ABSENT}}),
         Step("tasks.heartbeat", {"processId": "p1"}, 20000, {"tasksAffected": 1}),
         Step("tasks.drop", {"id": f"__invoke:{P}a", "counter": 9}, 40308),
         Step("tasks.drop", {"id": f"__invoke:{P}a", "counter": 1}, 20100),
         Step("tasks.drop", {"id": f"__invoke:{P}a", "counter": 2}, 20000),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 1, "processId": "p1", "ttl": 1}, 40308),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 2, "processId": "p2", "ttl": 60000}, 20100),
         Step("tasks.complete", {"id": f"__invoke:{P}a", "counter": 1}, 40308),
         Step("tasks.complete", {"id": f"__invoke:{P}a", "counter": 2}, 20100, {"counter": 2}),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 2, "processId": "p2", "ttl": 1}, 40307),
         Step("tasks.heartbeat", {"processId": "p2"}, 20000, {"tasksAffected": 0}))
scenario("task not found",
         Step("tasks.claim", {"id": f"{P}none", "counter": 1, "processId": "p", "ttl": 1}, 40403),
         Step("tasks.complete", {"id": f"{P}none", "counter": 1}, 40403),
         Step("tasks.drop", {"id": f"{P}none", "counter": 1}, 40403))
scenario("task validation",
         Step("tasks.claim", {"id": f"{P}t", "counter": 0, "processId": "p", "ttl": 1}, 40000),
         Step("tasks.claim", {"id": f"{P}t", "counter": 1, "processId": "", "ttl": 1}, 40000),
         Step("tasks.claim", {"id": f"{P}t", "counter": 1, "processId": "p", "ttl": -5}, 40000),
         Step("tasks.complete", {"id": "", "counter": 1}, 40000),
         Step("tasks.heartbeat", {"processId": ""}, 40000))
scenario("completing the root promise completes its tasks",
         create(f"{P}a", 20100, tags={"resonate:invoke": "poll://any@nobody"}),
         Step("tasks.claim", {"id": f"__invoke:{P}a", "counter": 1, "processId": "p", "ttl": 60000}, 20100),
         complete(f"{P}a", "RESOLVED", 20100),
         Step("tasks.complete", {"id": f"__invoke:{P}a", "counter": 1}, 20000, {"processId": "p"}),
         Step("tasks.drop", {"id": f"__invoke:{P}a", "counter": 1}, 20000))

# --- fencing tokens ---------------------------------------------------------------------
scenario("fencing token: invalid -> 412, valid -> proceeds",
         create(f"{P}root", 20100, tags={"resonate:invoke": "poll://any@nobody"}),
         create(f"{P}child", 41200, taskId=f"__invoke:{P}root", taskCounter=1),
         Step("tasks.claim", {"id": f"__invoke:{P}root", "counter": 1, "processId": "p", "ttl": 60000}, 20100),
         create(f"{P}child", 41200, taskId=f"__invoke:{P}root", taskCounter=2),
         create(f"{P}child", 20100, taskId=f"__invoke:{P}root", taskCounter=1),
         complete(f"{P}missing", "RESOLVED", 41200, taskId=f"{P}nope", taskCounter=1),
         complete(f"{P}child", "RESOLVED", 20100, taskId=f"__invoke:{P}root", taskCounter=1),
         needs={"fencing"})

# --- callbacks and subscriptions ------------------------------------------------------------
scenario("callback: register, idempotent, on completed, not found, self-reference",
         create(f"{P}leaf", 20100), create(f"{P}root", 20100),
         Step("promises.callback", {"promiseId": f"{P}leaf", "rootPromiseId": f"{P}root",
                                    "recv": "poll://any@nobody", "timeout": FUTURE}, 20100,
              {"callback": {"id": f"__resume:{P}root:{P}leaf", "promiseId": f"{P}leaf", "rootPromiseId": "",
                            "timeout": FUTURE, "createdOn": _is_int}, "promise": {"id": f"{P}leaf"}}),
         Step("promises.callback", {"promiseId": f"{P}leaf", "rootPromiseId": f"{P}root",
                                    "recv": "poll://any@nobody", "timeout": FUTURE}, 20000, {"callback": None}),
         Step("promises.callback", {"promiseId": f"{P}none", "rootPromiseId": f"{P}root", "recv": "x"}, 40400),
         Step("promises.callback", {"promiseId": f"{P}leaf", "rootPromiseId": f"{P}leaf", "recv": "x"}, 40000),
         Step("promises.callback", {"promiseId": f"{P}leaf", "rootPromiseId": f"{P}root"}, 40000),
         complete(f"{P}leaf", "RESOLVED", 20100),
         Step("promises.callback", {"promiseId": f"{P}leaf", "rootPromiseId": f"{P}other", "recv": "x"}, 20000,
              {"callback": None, "promise": {"state": "RESOLVED"}}))
scenario("callback fires a resume task that can be claimed with both promises",
         create(f"{P}leaf", 20100), create(f"{P}root", 20100),
         Step("promises.callback", {"promiseId": f"{P}leaf", "rootPromiseId": f"{P}root",
                                    "recv": "poll://any@nobody", "timeout": FUTURE}, 20100),
         complete(f"{P}leaf", "RESOLVED", 20100),
         Step("tasks.claim", {"id": f"__resume:{P}root:{P}leaf", "counter": 1, "processId": "p", "ttl": 60000},
              20100, {"type": "resume", "promises": {"leaf": {"id": f"{P}leaf", "data": {"state": "RESOLVED"}},
                                                     "root": {"id": f"{P}root", "data": {"state": "PENDING"}}}}))
scenario("subscription: register, idempotent, not found",
         create(f"{P}a", 20100),
         Step("promises.subscribe", {"id": "s1", "promiseId": f"{P}a", "recv": "poll://any@nobody",
                                     "timeout": FUTURE}, 20100,
              {"callback": {"id": f"__notify:{P}a:s1", "promiseId": f"{P}a"}, "promise": {"id": f"{P}a"}}),
         Step("promises.subscribe", {"id": "s1", "promiseId": f"{P}a", "recv": "poll://any@nobody"}, 20000,
              {"callback": None}),
         Step("promises.subscribe", {"id": "s1", "promiseId": f"{P}none", "recv": "x"}, 40400),
         Step("promises.subscribe", {"id": "", "promiseId": f"{P}a", "recv": "x"}, 40000))

# --- schedules ------------------------------------------------------------------------------
scenario("schedule create, idempotent, conflict, read, search, delete",
         Step("schedules.create", {"id": f"{P}s", "desc": "d", "cron": "0 0 1 1 *", "tags": {"a": "b"},
                                   "promiseId": "{{.id}}.{{.timestamp}}", "promiseTimeout": 1000,
                                   "promiseParam": {"data": b64("p")}, "promiseTags": {"x": "y"},
                                   "idempotencyKey": "k"}, 20100,
              {"id": f"{P}s", "desc": "d", "cron": "0 0 1 1 *", "tags": {"a": "b"},
               "promiseId": "{{.id}}.{{.timestamp}}", "promiseTimeout": 1000, "promiseParam": {"data": b64("p")},
               "promiseTags": {"x": "y"}, "lastRunTime": ABSENT, "nextRunTime": _is_int, "idempotencyKey": "k",
               "createdOn": _is_int}),
         Step("schedules.create", {"id": f"{P}s", "cron": "* * * * *", "promiseId": "x", "idempotencyKey": "k"},
              20000, {"cron": "0 0 1 1 *"}),
         Step("schedules.create", {"id": f"{P}s", "cron": "* * * * *", "promiseId": "x"}, 40901),
         Step("schedules.read", {"id": f"{P}s"}, 20000, {"id": f"{P}s", "desc": "d"}),
         Step("schedules.search", {"id": f"{P}*"}, 20000,
              {"cursor": None, "schedules": [{"id": f"{P}s", "promiseId": "", "promiseTimeout": 0,
                                              "promiseParam": {}, "desc": ABSENT, "tags": {"a": "b"}}]}),
         Step("schedules.search", {"id": f"{P}*", "tags": {"a": "c"}}, 20000, {"schedules": []}),
         Step("schedules.delete", {"id": f"{P}s"}, 20400),
         Step("schedules.delete", {"id": f"{P}s"}, 40401),
         Step("schedules.read", {"id": f"{P}s"}, 40401))
scenario("schedule validation",
         Step("schedules.create", {"id": f"{P}s", "cron": "not a cron", "promiseId": "x"}, 40000),
         Step("schedules.create", {"id": f"{P}s", "cron": "* * * * * * *", "promiseId": "x"}, 40000),
         Step("schedules.create", {"id": f"{P}s", "cron": "* * * * *"}, 40000),
         Step("schedules.create", {"id": "", "cron": "* * * * *", "promiseId": "x"}, 40000),
         Step("schedules.search", {"id": "*", "limit": 1000}, 40000))

# --- locks ----------------------------------------------------------------------------------
scenario("locks: acquire, re-acquire, contention, heartbeat, release",
         Step("locks.acquire", {"resourceId": f"{P}r", "executionId": "e1", "processId": "p1", "ttl": 60000},
              20100, {"resourceId": f"{P}r", "executionId": "e1", "processId": "p1", "ttl": 60000,
                      "expiresAt": _is_int}),
         Step("locks.acquire", {"resourceId": f"{P}r", "executionId": "e1", "processId": "p9", "ttl": 1000},
              20100, {"processId": "p9", "ttl": 1000}),
         Step("locks.acquire", {"resourceId": f"{P}r", "executionId": "e2", "processId": "p2", "ttl": 1}, 40305),
         Step("locks.heartbeat", {"processId": "p9"}, 20000, {"locksAffected": 1}),
         Step("locks.release", {"resourceId": f"{P}r", "executionId": "e2"}, 40402),
         Step("locks.release", {"resourceId": f"{P}r", "executionId": "e1"}, 20400),
         Step("locks.release", {"resourceId": f"{P}r", "executionId": "e1"}, 40402),
         Step("locks.acquire", {"resourceId": f"{P}r", "executionId": "e2", "processId": "p2", "ttl": 1}, 20100))
scenario("locks: validation",
         Step("locks.acquire", {"resourceId": "", "executionId": "e", "processId": "p", "ttl": 1}, 40000),
         Step("locks.acquire", {"resourceId": f"{P}r", "executionId": "e", "processId": "p", "ttl": -1}, 40000),
         Step("locks.release", {"resourceId": f"{P}r"}, 40000),
         Step("locks.heartbeat", {}, 40000))
scenario("ttl near int64 max is clamped, never overflows",
         Step("locks.acquire", {"resourceId": f"{P}r", "executionId": "e", "processId": "p",
                                "ttl": 2**63 - 1}, 20100, {"expiresAt": 2**63 - 1}),
         Step("locks.heartbeat", {"processId": "p"}, 20000, {"locksAffected": ANY}))

scenario("ids are bounded and free of NUL on every store",
         Step("promises.create", {"id": "x" * 1025, "timeout": FUTURE}, 40000),
         Step("promises.create", {"id": f"{P}a\x00b", "timeout": FUTURE}, 40000),
         Step("promises.create", {"id": f"{P}a", "timeout": FUTURE, "tags": {"k": "v\x00"}}, 40000),
         Step("locks.acquire", {"resourceId": "r" * 2000, "executionId": "e", "processId": "p", "ttl": 1}, 40000),
         Step("promises.createtask", {"promise": {"id": f"{P}b", "tags": {"resonate:invoke": "x"}},
                                      "task": {"processId": "p" * 5000, "ttl": 1}}, 40000),
         Step("promises.read", {"id": f"{P}b"}, 40400))

# --- bad input that every transport must reject with 40000 -----------------------------------
scenario("wrong types are 40000",
         Step("promises.create", {"id": 5, "timeout": FUTURE}, 40000),
         Step("promises.create", {"id": f"{P}a", "timeout": "soon"}, 40000),
         Step("promises.create", {"id": f"{P}a", "timeout": 2**63}, 40000),
         Step("promises.create", {"id": f"{P}a", "timeout": 1.5}, 40000),
         Step("promises.create", {"id": f"{P}a", "param": {"data": "%%%"}}, 40000),
         Step("promises.create", {"id": f"{P}a", "tags": {"a": 1}}, 40000),
         Step("promises.create", {"timeout": FUTURE}, 40000),
         needs={"json-types"})
