"""Decides at promise creation whether an invoke task is created, and for which recipient (spec 5.4)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from . import gojson


@dataclass(frozen=True, slots=True)
class TagSource:
    name: str
    key: str

    def route(self, tags: dict[str, str]) -> str | None:
        """The recipient as raw JSON text, or None when this source does not match."""
        value = tags.get(self.key)
        if value is None:
            return None
        try:
            decoded = json.loads(value)
        except ValueError:
            return gojson.dumps(value)  # not JSON: a logical recipient such as `poll://any@default`
        # JSON values must be exactly {type, data} with a non-empty type; `null` no longer crashes.
        if isinstance(decoded, dict) and set(decoded) <= {"type", "data"}:
            kind = decoded.get("type")
            if isinstance(kind, str) and kind:
                return gojson.dumps({"type": kind, "data": decoded.get("data")})
        return None


class Router:
    def __init__(self, sources: list[TagSource] | None = None):
        sources = list(sources or [])
        if not any(s.name == "default" for s in sources):
            sources.append(TagSource("default", "resonate:invoke"))
        self.sources = sources

    def route(self, tags: dict[str, str]) -> str | None:
        for source in self.sources:
            recv = source.route(tags)
            if recv is not None:
                return recv
        return None
