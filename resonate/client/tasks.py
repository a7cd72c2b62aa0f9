"""`resonate tasks claim|complete|heartbeat`."""
from __future__ import annotations

from .common import report
from .http import Api, ClientFailure, EXIT_USAGE, decode_json, run

CLAIMED = COMPLETED = 201
ALREADY_COMPLETED = HEARTBEATED = 200


def _positive_counter(ns) -> None:
    if ns.counter <= 0:  # the reference's own check: counters start at 1
        raise ClientFailure("Error: counter is required (a task counter starts at 1)", EXIT_USAGE)


def claim(ns) -> int:
    def command():
        _positive_counter(ns)
        if not ns.pid:
            raise ClientFailure("Error: pid is required", EXIT_USAGE)
        body = {"id": ns.id, "counter": ns.counter, "processId": ns.pid, "ttl": ns.ttl}
        with Api(ns) as api:
            api.call("POST", "/tasks/claim", ok=(CLAIMED,), json_body=body)
        print(f"Task claimed: {ns.id}")
    return run(command)


def complete(ns) -> int:
    def command():
        _positive_counter(ns)
        with Api(ns) as api:
            response = api.call("POST", "/tasks/complete", ok=(COMPLETED, ALREADY_COMPLETED),
                                json_body={"id": ns.id, "counter": ns.counter})
        # the reference prints a 200 (completed before) as an error, exiting 0; it is a deduplicated success
        report(response, f"Task completed: {ns.id}")
    return run(command)


def heartbeat(ns) -> int:
    def command():
        with Api(ns) as api:
            answer = decode_json(api.call("POST", "/tasks/heartbeat", ok=(HEARTBEATED,),
                                          json_body={"processId": ns.pid}))
        print(f"Tasks heartbeated: {answer.get('tasksAffected', 0)}")
    return run(command)
