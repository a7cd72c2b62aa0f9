"""Checks on client-supplied recipients (`recv`), made when they are registered.

A recipient's URL and headers end up on another wire (an HTTP request line and headers, Kafka record
headers), so they are checked before they are stored: header names must be HTTP tokens, and no URL
or header value may hold a control character (CR/LF would inject headers or a second request).
A refused recipient is a 40000 naming the field; the rest of the recipient is stored as given.
"""
from __future__ import annotations

import json
import re
from typing import Any

from .codes import invalid
from .router import Router

# RFC 9110 section 5.6.2: token = 1*tchar
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# a field value may hold visible characters, spaces and tabs, and bytes >= 0x80; no other control character
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_ROUTER = Router()  # the tags that become an invoke task's recipient at promise creation


def _entry(data: dict, name: str) -> tuple[str, Any] | None:
    """A key matched case-insensitively, as Go decodes JSON into a struct (the last match wins)."""
    found = None
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == name:
            found = (key, value)
    return found


def check_headers(headers: Any, field: str) -> None:
    if not isinstance(headers, dict):
        return  # not a header map: the sender ignores it
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise invalid(f"the field {field} holds an invalid header name {name!r}")
        if isinstance(value, str) and _CONTROL.search(value):
            raise invalid(f"the field {field}.{name} must not contain control characters (CR, LF, ...)")


def check_url(url: Any, field: str) -> None:
    if isinstance(url, str) and (_CONTROL.search(url) or "\t" in url):
        raise invalid(f"the field {field} must not contain control characters (CR, LF, ...)")


def check_recv(recv: str, field: str = "recv") -> str:
    """`recv` (raw JSON text): a URL string, or `{type, data}` whose data may carry `url` and `headers`."""
    try:
        value = json.loads(recv)
    except (TypeError, ValueError):
        return recv  # not JSON: never deliverable, refused at send time as an unknown recipient
    if isinstance(value, str):
        check_url(value, field)
    elif isinstance(value, dict) and isinstance(value.get("data"), dict):
        data = value["data"]
        for name, check in (("url", check_url), ("headers", check_headers)):
            entry = _entry(data, name)
            if entry is not None:
                check(entry[1], f"{field}.data.{entry[0]}")
    return recv


def check_head(head: dict[str, str], field_names: dict[str, str] | None = None) -> dict[str, str]:
    """The message head (trace context) is sent as headers too."""
    for name, value in head.items():
        if _CONTROL.search(value):
            label = (field_names or {}).get(name, name)
            raise invalid(f"the field {label} must not contain control characters (CR, LF, ...)")
    return head


def check_routed_tags(tags: dict[str, str], field: str = "tags") -> dict[str, str]:
    """A tag that routes the promise to a recipient (`resonate:invoke`) is a recipient too."""
    for source in _ROUTER.sources:
        if source.key in tags:
            recv = source.route(tags)
            if recv is not None:
                check_recv(recv, f"{field}.{source.key}")
    return tags
