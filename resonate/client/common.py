"""What several commands share: reading one resource, searching with cursors, reporting a write."""
from __future__ import annotations

import sys
from typing import Callable, Iterator

from .http import Api, decode_json, encode_data, path_segment, run
from .render import go_json

CREATED, DEDUPLICATED = 201, 200


def report(response, text: str) -> None:
    """`Created promise: foo`, with ` (deduplicated)` when the server answered a replay (200)."""
    print(text + (" (deduplicated)" if response.status_code == DEDUPLICATED else ""))


def value_of(ns, data_attr: str = "data", headers_attr: str = "headers") -> dict:
    """A promise value (or param) from `--data` and `--header`: only what was given, the data base64."""
    value: dict = {}
    if getattr(ns, headers_attr) is not None:
        value["headers"] = getattr(ns, headers_attr)
    if getattr(ns, data_attr) is not None:
        value["data"] = encode_data(getattr(ns, data_attr))
    return value


def show(ns, collection: str, as_json: Callable[[dict], dict], view: Callable[[dict], str]) -> int:
    """`get <id>`: the key/value view, or `-o json` as the reference's client re-encodes it."""
    def command():
        with Api(ns) as api:
            item = decode_json(api.call("GET", f"/{collection}/{path_segment(ns.id)}", ok=(200,)))
        if ns.output == "json":
            print(go_json(as_json(item), indent=True))
        else:
            sys.stdout.write(view(item))
    return run(command)


def search_query(ns) -> dict:
    params = {"id": ns.id, "limit": ns.limit}
    if getattr(ns, "state", None) is not None:
        params["state"] = ns.state
    for key, value in (ns.tags or {}).items():
        params[f"tags[{key}]"] = value
    if ns.cursor is not None:
        params["cursor"] = ns.cursor
    return params


def pages(api: Api, collection: str, params: dict, follow: bool) -> Iterator[list[dict]]:
    """Each page of a search; with `follow`, the next pages too, through the cursors."""
    query = params
    while True:
        answer = decode_json(api.call("GET", f"/{collection}", ok=(200,), params=params))
        yield answer.get(collection) or []
        cursor = answer.get("cursor")
        if not follow or not cursor:
            return
        params = {**query, "cursor": cursor}


def search(ns, collection: str, as_json: Callable[[dict], dict], table: Callable[[list[dict]], str]) -> int:
    """`search <q>`: an aligned table, or `-o json`, one line per item; `--all` follows the cursors."""
    def command():
        with Api(ns) as api:
            found = []
            for page in pages(api, collection, search_query(ns), ns.all):
                if ns.output == "json":  # printed as each page arrives
                    for item in page:
                        print(go_json(as_json(item), indent=False))
                else:
                    found += page
        if ns.output != "json":
            sys.stdout.write(table(found))
    return run(command)
