"""`resonate schedules get|search|create|delete`."""
from __future__ import annotations

import sys

from .http import Api, decode_json, encode_data, path_segment, run
from .promises import CREATED, DEDUPLICATED, pages, search_query
from .render import go_json, go_schedule, schedule_view, schedules_table

DELETED = 204


def get(ns) -> int:
    def command():
        with Api(ns) as api:
            schedule = decode_json(api.call("GET", f"/schedules/{path_segment(ns.id)}", ok=(200,)))
        if ns.output == "json":
            print(go_json(go_schedule(schedule), indent=True))
        else:
            sys.stdout.write(schedule_view(schedule))
    return run(command)


def search(ns) -> int:
    def command():
        with Api(ns) as api:
            found = []
            for page in pages(api, "/schedules", search_query(ns), "schedules", ns.all):
                if ns.output == "json":
                    for schedule in page:
                        print(go_json(go_schedule(schedule), indent=False))
                else:
                    found += page
        if ns.output != "json":
            sys.stdout.write(schedules_table(found))
    return run(command)


def create(ns) -> int:
    def command():
        param: dict = {}
        if ns.promise_headers is not None:
            param["headers"] = ns.promise_headers
        if ns.promise_data is not None:
            param["data"] = encode_data(ns.promise_data)
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
        suffix = " (deduplicated)" if response.status_code == DEDUPLICATED else ""
        print(f"Created schedule: {ns.id}{suffix}")
    return run(command)


def delete(ns) -> int:
    def command():
        with Api(ns) as api:
            api.call("DELETE", f"/schedules/{path_segment(ns.id)}", ok=(DELETED,))
        print(f"Deleted schedule: {ns.id}")
    return run(command)
