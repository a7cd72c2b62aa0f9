"""`resonate schedules get|search|create|delete`."""
from __future__ import annotations

from .common import CREATED, DEDUPLICATED, report, show, value_of
from .common import search as common_search
from .http import Api, path_segment, run
from .render import go_schedule, schedule_view, schedules_table

DELETED = 204


def get(ns) -> int:
    return show(ns, "schedules", go_schedule, schedule_view)


def search(ns) -> int:
    return common_search(ns, "schedules", go_schedule, schedules_table)


def create(ns) -> int:
    def command():
        param = value_of(ns, "promise_data", "promise_headers")
        body: dict = {"id": ns.id, "cron": ns.cron, "promiseId": ns.promise_id, "promiseParam": param,
                      "promiseTimeout": ns.promise_timeout}
        if ns.description is not None:
            # The reference client sends `description`, which v0.8.2's HTTP API ignores: it reads `desc`.
            # Sending both stores the description on either server.
            body["description"] = body["desc"] = ns.description
        if ns.tags is not None:
            body["tags"] = ns.tags
        if ns.promise_tags is not None:
            body["promiseTags"] = ns.promise_tags
        with Api(ns) as api:
            response = api.call("POST", "/schedules", ok=(CREATED, DEDUPLICATED), json_body=body)
        report(response, f"Created schedule: {ns.id}")
    return run(command)


def delete(ns) -> int:
    def command():
        with Api(ns) as api:
            api.call("DELETE", f"/schedules/{path_segment(ns.id)}", ok=(DELETED,))
        print(f"Deleted schedule: {ns.id}")
    return run(command)
