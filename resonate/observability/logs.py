"""Logs on stdout: `time=… level=INFO msg="…" key=value` lines like the reference's (Go slog text), or one
JSON object per line with --log-format json. Structured fields travel in `extra={"fields": {...}}`.

At debug, every API request is one line (`request`): transport, operation, status, duration and the
request id (HTTP `request-id` header, Kafka correlationId).
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR",
               logging.CRITICAL: "ERROR"}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "fields", "color_message"}

request_log = logging.getLogger("resonate.request")


def thread_stacks(depth: int | None = None) -> str:
    """Where every thread of this process is (its innermost `depth` frames, or all), for a log line or a
    timeout's message."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        stack = traceback.format_stack(frame)
        out.append(f"thread {names.get(ident, ident)}:\n" + "".join(stack[-depth:] if depth else stack))
    return "\n".join(out)


def _timestamp(record: logging.LogRecord) -> str:
    local = time.localtime(record.created)
    offset = time.strftime("%z", local)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(record.msecs):03d}" +
            (offset[:3] + ":" + offset[3:] if offset not in ("", "+0000") else "Z"))


def _fields(record: logging.LogRecord) -> dict:
    fields = dict(getattr(record, "fields", None) or {})
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields.setdefault(key, value)
    return fields


def _quote(value) -> str:
    text = value if isinstance(value, str) else (json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"time={_timestamp(record)}", f"level={LEVEL_NAMES.get(record.levelno, record.levelname)}",
                 f"msg={_quote(record.getMessage())}"]
        if record.name not in ("resonate", "root"):
            parts.append(f"logger={record.name}")
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": _timestamp(record), "level": LEVEL_NAMES.get(record.levelno, record.levelname),
               "msg": record.getMessage(), "logger": record.name}
        for key, value in _fields(record).items():
            doc[key] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str = "info", fmt: str = "text", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    # libraries are noisy at debug; their warnings still show
    for noisy in ("kafka", "uvicorn", "httpx", "httpcore", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_request(transport: str, operation: str, status: int, code: int | None, seconds: float,
                request_id: str | None) -> None:
    """One line per API request, at debug (checked first, so it costs nothing at info)."""
    if not request_log.isEnabledFor(logging.DEBUG):
        return
    fields = {"transport": transport, "operation": operation, "status": status}
    if code is not None:
        fields["code"] = code
    fields["duration_ms"] = round(seconds * 1000, 3)
    if request_id:
        fields["request_id" if transport != "kafka" else "correlation_id"] = request_id
    request_log.debug("request", extra={"fields": fields})
