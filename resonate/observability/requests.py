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


class RouteRecorder:
    """What `InFlight` + `finished` + `metrics.http_request` record for one route, with its metric children
    bound once and the request log doing work only when its level is on (a transport's hot path)."""

    __slots__ = ("transport", "operation", "metrics")

    def __init__(self, transport: str, operation: str, method: str | None = None, path: str | None = None):
        self.transport, self.operation = transport, operation
        self.metrics = metrics.RouteMetrics(transport, operation, method, path)

    def begin(self):
        """Counts the request in flight; hand the result to `leave` once answered."""
        return self.metrics.in_flight()

    def leave(self, gauge) -> None:
        if gauge is not None:
            gauge.dec()

    def finish(self, code: int, status: int, seconds: float, request_id: str | None = None) -> None:
        self.metrics.done(code, status, seconds)
        if request_log.isEnabledFor(logging.DEBUG):
            log_request(self.transport, self.operation, status, code, seconds, request_id)


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
