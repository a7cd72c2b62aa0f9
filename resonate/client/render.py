"""Output exactly as the v0.8.2 client prints it: Go's text/tabwriter layout and encoding/json shapes."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

# The reference writes its views with tabwriter.NewWriter(out, minwidth 0, tabwidth 0, padding 2, ' ', 0)
TAB_PADDING = 2


def tabwrite(text: str) -> str:
    """Lay out tab-terminated cells as Go's text/tabwriter does: a column block is a run of consecutive
    lines having a cell in that column; each block is as wide as its widest cell plus the padding. The
    last cell of a line is not tab-terminated, so it belongs to no column and is never padded."""
    lines = [line.split("\t") for line in text.split("\n")]
    trailing_newline = lines and lines[-1] == [""]
    if trailing_newline:
        lines.pop()
    out: list[str] = []
    _format(lines, 0, len(lines), [], out)
    return "\n".join(out) + ("\n" if trailing_newline else "")


def _format(lines: list[list[str]], start: int, end: int, widths: list[int], out: list[str]) -> None:
    column = len(widths)
    written = start
    line = start
    while line < end:
        if column >= len(lines[line]) - 1:
            line += 1
            continue
        _write(lines, written, line, widths, out)
        block_start = line
        width = 0
        while line < end and column < len(lines[line]) - 1:
            width = max(width, len(lines[line][column]) + TAB_PADDING)
            line += 1
        _format(lines, block_start, line, widths + [width], out)
        written = line
    _write(lines, written, end, widths, out)


def _write(lines: list[list[str]], start: int, end: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[start:end]:
        text = []
        for j, cell in enumerate(cells):
            text.append(cell.ljust(widths[j]) if j < len(widths) else cell)
        out.append("".join(text))


# -- JSON, as Go's encoding/json writes the reference client's structs --------------------------------------

def _go_escape(text: str) -> str:
    # Go escapes these even inside strings; they can only occur inside strings in JSON text
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def go_json(value: Any, indent: bool) -> str:
    if indent:
        return _go_escape(json.dumps(value, ensure_ascii=False, indent=2))
    return _go_escape(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _go_map(value: Any) -> Any:
    """A Go map[string]string: null stays null, keys sorted."""
    if not isinstance(value, dict):
        return None
    return {k: value[k] for k in sorted(value)}


def _go_value(value: Any) -> dict:
    """The reference's Value struct: data and headers, each left out when absent."""
    value = value if isinstance(value, dict) else {}
    out: dict = {}
    if value.get("data") is not None:
        out["data"] = value["data"]
    if value.get("headers") is not None:
        out["headers"] = _go_map(value["headers"])
    return out


def _put_optional(out: dict, source: dict, key: str) -> None:
    if source.get(key) is not None:
        out[key] = source[key]


def go_promise(p: dict) -> dict:
    """A promise as the reference's client re-encodes it (its struct's fields, in order, omitempty kept)."""
    out: dict = {}
    _put_optional(out, p, "completedOn")
    _put_optional(out, p, "createdOn")
    out["id"] = p.get("id", "")
    _put_optional(out, p, "idempotencyKeyForComplete")
    _put_optional(out, p, "idempotencyKeyForCreate")
    out["param"] = _go_value(p.get("param"))
    out["state"] = p.get("state", "")
    out["tags"] = _go_map(p.get("tags"))
    out["timeout"] = p.get("timeout", 0)
    out["value"] = _go_value(p.get("value"))
    return out


def description(s: dict) -> str:
    """v0.8.2's HTTP API answers with the key `desc` (its openapi says `description`); show either."""
    return s.get("description") or s.get("desc") or ""


def go_schedule(s: dict) -> dict:
    out: dict = {}
    _put_optional(out, s, "createdOn")
    out["cron"] = s.get("cron", "")
    out["description"] = description(s)
    out["id"] = s.get("id", "")
    _put_optional(out, s, "idempotencyKey")
    _put_optional(out, s, "lastRunTime")
    _put_optional(out, s, "nextRunTime")
    out["promiseId"] = s.get("promiseId", "")
    out["promiseParam"] = _go_value(s.get("promiseParam"))
    out["promiseTags"] = _go_map(s.get("promiseTags"))
    out["promiseTimeout"] = s.get("promiseTimeout", 0)
    out["tags"] = _go_map(s.get("tags"))
    return out


# -- the human views ------------------------------------------------------------------------------------

def pretty_data(data: str) -> str:
    """Data is base64 on the wire; shown decoded, or as sent when it is not base64."""
    try:
        return base64.b64decode(data, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return data


def pretty_headers(headers: Any, separator: str) -> list[str]:
    if not isinstance(headers, dict):
        return []
    return [f"{k}{separator}{headers[k]}" for k in sorted(headers)]


def _value_lines(value: Any, indent: str) -> list[str]:
    value = value if isinstance(value, dict) else {}
    lines = [f"{indent}Headers:"]
    lines += [f"{indent}\t{h}" for h in pretty_headers(value.get("headers"), ":\t")]
    lines.append(f"{indent}Data:")
    if value.get("data") is not None:
        lines.append(f"{indent}\t{pretty_data(value['data'])}")
    return lines


def promise_view(p: dict) -> str:
    lines = [f"Id:\t{p.get('id', '')}", f"State:\t{p.get('state', '')}", f"Timeout:\t{p.get('timeout', 0)}", "",
             f"Idempotency Key (create):\t{p.get('idempotencyKeyForCreate') or ''}",
             f"Idempotency Key (complete):\t{p.get('idempotencyKeyForComplete') or ''}", "",
             "Param:", *_value_lines(p.get("param"), "\t"), "",
             "Value:", *_value_lines(p.get("value"), "\t"), "",
             "Tags:", *[f"\t{t}" for t in pretty_headers(p.get("tags"), ":\t")]]
    return tabwrite("\n".join(lines) + "\n")


def table(header: list[str], rows: list[list]) -> str:
    """An aligned table; the last column (the tags) is never padded, as the reference's."""
    return tabwrite("".join("\t".join(str(cell) for cell in row) + "\n" for row in [header, *rows]))


def promises_table(promises: list[dict]) -> str:
    return table(["ID", "STATE", "TIMEOUT", "TAGS"],
                 [[p.get("id", ""), p.get("state", ""), p.get("timeout", 0),
                   " ".join(pretty_headers(p.get("tags"), ":"))] for p in promises])


def schedule_view(s: dict) -> str:
    lines = [f"Id:\t{s.get('id', '')}", f"Description:\t{description(s)}", "",
             f"Cron:\t{s.get('cron', '')}", f"Last run time:\t{s.get('lastRunTime') or 0}",
             f"Next run time:\t{s.get('nextRunTime') or 0}", "",
             "Tags:", *[f"\t{t}" for t in pretty_headers(s.get("tags"), ":\t")], "",
             f"Promise id:\t{s.get('promiseId', '')}", f"Promise timeout:\t{s.get('promiseTimeout', 0)}",
             "Promise param:", *_value_lines(s.get("promiseParam"), "\t"),
             "Promise tags:", *[f"\t{t}" for t in pretty_headers(s.get("promiseTags"), ":\t")]]
    return tabwrite("\n".join(lines) + "\n")


def schedules_table(schedules: list[dict]) -> str:
    return table(["ID", "CRON", "LAST RUN TIME", "NEXT RUN TIME", "TAGS"],
                 [[s.get("id", ""), s.get("cron", ""), s.get("lastRunTime") or 0, s.get("nextRunTime") or 0,
                   " ".join(pretty_headers(s.get("tags"), ":"))] for s in schedules])
