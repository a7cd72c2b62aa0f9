"""The one call every transport makes when it has answered a request: metrics and the debug log line."""
from __future__ import annotations

import logging
import time

from . import metrics
from .logs import log_request, request_log


def request_log_enabled() -> bool:
    return request_log.isEnabledFor(logging.DEBUG)


def finished(transport: str, operation: str, code: int, seconds: float, request_id: str | None = None,
             status: int | None = None) -> None:
    """`code` is the core's 5-digit code; `status` the transport's own (HTTP status) when it has one."""
    metrics.api_request(transport, operation, code, seconds)
    log_request(transport, operation, status if status is not None else code // 100, code, seconds, request_id)


def future_finished(transport: str, operation: str, future, request_id: str | None = None) -> None:
    """For transports that hand the kernel's future on (Kafka): records when it settles."""
    if not metrics.enabled() and not request_log_enabled():
        return
    started = time.perf_counter()
    if transport == "kafka":
        metrics.kafka_in_flight_delta(1)

    def done(f) -> None:
        if transport == "kafka":
            metrics.kafka_in_flight_delta(-1)
        try:
            code = f.result().code
        except Exception as e:  # noqa: BLE001 - the code of whatever failed it
            code = getattr(e, "code", 50000)
        finished(transport, operation, code, time.perf_counter() - started, request_id)

    future.add_done_callback(done)
