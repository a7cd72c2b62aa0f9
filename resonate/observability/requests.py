"""The one call every transport makes when it has answered a request: metrics and the debug log line."""
from __future__ import annotations

from . import metrics
from .logs import log_request


def finished(transport: str, operation: str, code: int, seconds: float, request_id: str | None = None,
             status: int | None = None) -> None:
    """`code` is the core's 5-digit code; `status` the transport's own (HTTP status) when it has one."""
    metrics.api_request(transport, operation, code, seconds)
    log_request(transport, operation, status if status is not None else code // 100, code, seconds, request_id)
