"""Prometheus metrics: the reference v0.8.2's families (same names, types and labels where we have a
counterpart) plus ours for what the reference cannot show (kernel batches, background passes, Kafka).

Every recording function is a no-op until `enable()` (the composition root calls it when
--metrics-addr is set), so a server without metrics pays one boolean test per call. The counters,
histograms and in-flight gauges recorded per request are `folded`'s: recording appends one event to a
deque, folded into the series when scraped (or when many are pending), with /metrics output identical to
prometheus_client's own Counter/Histogram/Gauge. Gauges that are `set` stay prometheus_client's.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, disable_created_metrics, start_http_server

from . import folded
from .folded import Counter, Histogram, fold_if_full, record

disable_created_metrics()  # the reference exposes no *_created series
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ... as Go's
GO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # prometheus/client_golang DefBuckets
_enabled = False

# core operation -> the reference's request type label
REQUEST_TYPES = {
    "promises.read": "ReadPromise", "promises.search": "SearchPromises", "promises.create": "CreatePromise",
    "promises.createtask": "CreatePromiseAndTask", "promises.complete": "CompletePromise",
    "promises.callback": "CreateCallback", "promises.subscribe": "CreateSubscription",
    "schedules.read": "ReadSchedule", "schedules.search": "SearchSchedules", "schedules.create": "CreateSchedule",
    "schedules.delete": "DeleteSchedule", "locks.acquire": "AcquireLock", "locks.release": "ReleaseLock",
    "locks.heartbeat": "HeartbeatLocks", "tasks.claim": "ClaimTask", "tasks.complete": "CompleteTask",
    "tasks.drop": "DropTask", "tasks.heartbeat": "HeartbeatTasks",
}

# -- the reference's families
api_requests_total = Counter("api_requests", "total number of api requests", ["type", "protocol", "status"],
                             registry=REGISTRY)
api_requests_in_flight = folded.Gauge("api_requests_in_flight", "number of in flight api requests",
                                      ["type", "protocol"], registry=REGISTRY)
api_duration_seconds = Histogram("api_duration_seconds", "duration of api requests in seconds", ["type", "protocol"],
                                 buckets=GO_BUCKETS, registry=REGISTRY)
http_requests_total = Counter("http_requests", "count of http requests", ["method", "path", "status"],
                              registry=REGISTRY)
http_requests_duration_seconds = Histogram("http_requests_duration_seconds", "duration of http requests in seconds",
                                           ["method", "path"], buckets=GO_BUCKETS, registry=REGISTRY)
promises_total = Counter("promises", "count of promises", ["state"], registry=REGISTRY)
tasks_total = Counter("tasks", "count of tasks", ["state"], registry=REGISTRY)
schedules_total = Counter("schedules", "count of schedules", ["state"], registry=REGISTRY)
aio_submissions_total = Counter("aio_submissions", "total number of aio submissions", ["type", "status"],
                                registry=REGISTRY)
aio_submissions_in_flight = Gauge("aio_submissions_in_flight", "number of in flight aio submissions", ["type"],
                                  registry=REGISTRY)
aio_duration_seconds = Histogram("aio_duration_seconds", "duration of aio submissions in seconds", ["type"],
                                 buckets=GO_BUCKETS, registry=REGISTRY)
aio_worker_count = Gauge("aio_worker_count", "number of aio subsystem workers", ["type"], registry=REGISTRY)
aio_plugin_connections = Gauge("aio_plugin_connections", "number of aio plugin connections", ["type"],
                               registry=REGISTRY)

# -- ours
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
kernel_batch_size = Histogram("resonate_kernel_batch_size", "requests committed in one store transaction",
                              buckets=BATCH_BUCKETS, registry=REGISTRY)
kernel_commit_duration_seconds = Histogram("resonate_kernel_commit_duration_seconds",
                                           "duration of one kernel transaction (run every request, commit)",
                                           buckets=GO_BUCKETS, registry=REGISTRY)
kernel_queue_depth = Gauge("resonate_kernel_queue_depth", "requests queued for the kernel, not yet answered",
                           registry=REGISTRY)
kernel_batch_retries_total = Counter("resonate_kernel_batch_retries",
                                    "store transactions run again after a failure that may pass",
                                    ["reason"], registry=REGISTRY)
background_passes_total = Counter("resonate_background_passes", "background passes run by the kernel",
                                  ["pass", "status"], registry=REGISTRY)
poll_connections = Gauge("resonate_poll_connections", "open poll (server-sent event) streams", registry=REGISTRY)
kafka_records_consumed_total = Counter("resonate_kafka_records_consumed", "request records read from Kafka",
                                       ["topic"], registry=REGISTRY)
kafka_records_replied_total = Counter("resonate_kafka_records_replied", "replies produced to Kafka",
                                      ["topic"], registry=REGISTRY)
kafka_records_dead_lettered_total = Counter("resonate_kafka_records_dead_lettered",
                                            "request records sent to the dead-letter topic", ["topic"],
                                            registry=REGISTRY)
kafka_records_deduplicated_total = Counter("resonate_kafka_records_deduplicated",
                                           "redelivered requests answered from the stored reply", ["topic"],
                                           registry=REGISTRY)
kafka_in_flight = folded.Gauge("resonate_kafka_in_flight", "Kafka requests being processed", registry=REGISTRY)
kafka_lag = Gauge("resonate_kafka_lag", "records not yet consumed, per partition", ["topic", "partition"],
                  registry=REGISTRY)


def enable() -> None:
    global _enabled
    _enabled = True


def disable() -> None:
    global _enabled
    _enabled = False


def enabled() -> bool:
    return _enabled


def serve(host: str, port: int):
    """Starts the /metrics endpoint on its own thread; returns (server, thread) for `close`."""
    return start_http_server(port, addr=host, registry=REGISTRY)


# -- recording: transports (each call appends events; `folded.fold` applies them under its lock)

# Counter series are bound on the recording thread at first use, as prometheus_client's are, so /metrics
# lists them in the same order; histogram series are bound when their first event is folded (events are
# folded in the order they were recorded, so that order is the same too).
_api_requests_ones: dict[tuple[str, str, int], Any] = {}  # (protocol, operation, code) -> step counter


def api_request(protocol: str, operation: str, code: int, seconds: float) -> None:
    if not _enabled:
        return
    ones = _api_requests_ones.get((protocol, operation, code))
    if ones is None:
        ones = _api_requests_ones[protocol, operation, code] = api_requests_total.labels(
            REQUEST_TYPES.get(operation, operation), protocol, code).series.ones
    next(ones)
    record((_fold_api_request, protocol, operation, seconds))
    fold_if_full()


def _fold_api_request(event) -> None:
    _, protocol, operation, seconds = event
    api_duration_seconds.series((REQUEST_TYPES.get(operation, operation), protocol)).add(seconds)


_in_flight_by_operation: dict[tuple[str, str], Any] = {}  # (operation, protocol) -> its gauge child


class InFlight:
    """`with InFlight(protocol, operation):` keeps api_requests_in_flight up to date."""

    __slots__ = ("gauge",)

    def __init__(self, protocol: str, operation: str):
        if _enabled:
            gauge = _in_flight_by_operation.get((operation, protocol))
            if gauge is None:
                gauge = _in_flight_by_operation[operation, protocol] = api_requests_in_flight.labels(
                    REQUEST_TYPES.get(operation, operation), protocol)
            self.gauge = gauge
        else:
            self.gauge = None

    def __enter__(self):
        if self.gauge is not None:
            self.gauge.inc()
        return self

    def __exit__(self, *exc):
        if self.gauge is not None:
            self.gauge.dec()
        return False


class RouteMetrics:
    """One route's series, as InFlight + api_request (+ http_request when `method` is given) record them:
    one event per answered request, folded into series bound on first use, so series never used stay
    absent from /metrics."""

    __slots__ = ("kind", "protocol", "method", "path", "_in_flight", "_duration", "_http_duration",
                 "_by_code", "_by_status", "_fold")

    def __init__(self, protocol: str, operation: str, method: str | None = None, path: str | None = None):
        self.kind = REQUEST_TYPES.get(operation, operation)
        self.protocol, self.method, self.path = protocol, method, path
        self._in_flight = self._duration = self._http_duration = None
        self._by_code: dict[int, Any] = {}  # code -> its api_requests_total series' step counter
        self._by_status: dict[int, Any] = {}  # status -> its http_requests_total series' step counter
        self._fold = self._fold_done

    def in_flight(self):
        """The in-flight gauge child, incremented; None when metrics are off."""
        if not _enabled:
            return None
        gauge = self._in_flight
        if gauge is None:
            gauge = self._in_flight = api_requests_in_flight.labels(self.kind, self.protocol)
        gauge.inc()
        return gauge

    def done(self, code: int, status: int, seconds: float) -> None:
        if not _enabled:
            return
        ones = self._by_code.get(code)
        if ones is None:
            ones = self._by_code[code] = api_requests_total.labels(self.kind, self.protocol, code).series.ones
        next(ones)
        if self.method is not None:
            ones = self._by_status.get(status)
            if ones is None:
                ones = self._by_status[status] = http_requests_total.labels(self.method, self.path, status).series.ones
            next(ones)
        record((self._fold, seconds))
        fold_if_full()

    def _fold_done(self, event) -> None:
        """The request's duration into api_duration_seconds (and http_requests_duration_seconds: the same
        bounds, so one bucket search)."""
        seconds = event[1]
        duration = self._duration
        if duration is None:
            duration = self._duration = api_duration_seconds.series((self.kind, self.protocol))
        bucket = bisect_left(duration.bounds, seconds)
        duration.counts[bucket] += 1
        duration.sum += seconds
        if self.method is None:
            return
        duration = self._http_duration
        if duration is None:
            duration = self._http_duration = http_requests_duration_seconds.series((self.method, self.path))
        duration.counts[bucket] += 1
        duration.sum += seconds


def http_request(method: str, path: str, status: int, seconds: float) -> None:
    if not _enabled:
        return
    http_requests_total.labels(method, path, status).inc()
    record((_fold_http_request, method, path, seconds))
    fold_if_full()


def _fold_http_request(event) -> None:
    _, method, path, seconds = event
    http_requests_duration_seconds.series((method, path)).add(seconds)


# -- recording: kernel

def kernel_batch(outcomes: Iterable[tuple[Any, bool, Any]], size: int, seconds: float, ok: bool = True) -> None:
    """One committed (or failed) transaction: its size and duration, the store submission, and the state
    changes its requests made (promises_total, tasks_total, schedules_total, background passes). The
    changes are read here, so the event holds label tuples, never the requests or their answers."""
    if not _enabled:
        return
    changes: list[tuple] = []
    add = changes.append
    for request, succeeded, value in outcomes:
        count = _STATE_CHANGES.get(type(request).__name__)
        if count is not None:
            count(add, request, succeeded, value)
    aio_submissions_total.labels("store", "success" if ok else "failure").inc()
    record((_fold_kernel_batch, size, seconds, changes))
    fold_if_full()


def _fold_kernel_batch(event) -> None:
    _, size, seconds, changes = event
    kernel_batch_size.series(()).add(size)
    kernel_commit_duration_seconds.series(()).add(seconds)
    aio_duration_seconds.series(("store",)).add(seconds)
    for family, labels, amount in changes:
        family.series(labels).value += amount


_store_reads: list = []  # aio_submissions_total{store,success}'s step counter, bound on first use
_store_read_durations: list = []  # aio_duration_seconds{store}'s series, bound by the first fold


def store_read(seconds: float) -> None:
    """A read answered beside the writer (`Kernel._read_now`): one store submission, as a batch is."""
    if not _enabled:
        return
    if not _store_reads:
        _store_reads.append(aio_submissions_total.labels("store", "success").series.ones)
    next(_store_reads[0])
    record((_fold_store_read, seconds))
    fold_if_full()


def _fold_store_read(event) -> None:
    if not _store_read_durations:
        _store_read_durations.append(aio_duration_seconds.series(("store",)))
    _store_read_durations[0].add(event[1])


def _code(value) -> int:
    return getattr(value, "code", 0)


def _body_state(value) -> str | None:
    body = getattr(value, "body", None)
    state = getattr(body, "state", None)
    if state is None and isinstance(body, dict):
        state = body.get("state")
    return state.lower() if isinstance(state, str) else None


# a state change: (family, label values, amount), folded into that series
_PROMISE_CREATED = (promises_total, ("created",), 1)
_TASK_CREATED = (tasks_total, ("created",), 1)


def _created(counter: Counter):
    change = (counter, ("created",), 1)

    def count(add, request, ok, value):
        if ok and _code(value) == 20100:
            add(change)
    return count


def _promise_and_task_created(add, request, ok, value):
    if ok and _code(value) == 20100:
        add(_PROMISE_CREATED)
        add(_TASK_CREATED)


def _promise_completed(add, request, ok, value):
    if ok and _code(value) == 20100:
        add((promises_total, (_body_state(value) or request.state.lower(),), 1))


def _task_state(state: str):
    change = (tasks_total, (state,), 1)

    def count(add, request, ok, value):
        if ok and _code(value) in (20000, 20100):
            add(change)
    return count


def _schedule_deleted(add, request, ok, value):
    if ok:
        add((schedules_total, ("deleted",), 1))


def _background(name: str, on_success: Callable[[int], tuple] | None = None):
    succeeded, failed = (background_passes_total, (name, "success"), 1), (background_passes_total, (name, "failure"), 1)

    def count(add, request, ok, value):
        add(succeeded if ok else failed)
        done = getattr(value, "body", 0) if ok else 0
        if on_success is not None and isinstance(done, int) and done > 0:
            add(on_success(done))
    return count


_STATE_CHANGES: dict[str, Callable] = {
    "CreatePromise": _created(promises_total),
    "CreatePromiseAndTask": _promise_and_task_created,
    "CompletePromise": _promise_completed,
    "CreateSchedule": _created(schedules_total),
    "DeleteSchedule": _schedule_deleted,
    "ClaimTask": _task_state("claimed"),
    "CompleteTask": _task_state("completed"),
    "DropTask": _task_state("dropped"),
    "TimeoutPromises": _background("TimeoutPromises", lambda n: (promises_total, ("timedout",), n)),
    "SchedulePromises": _background("SchedulePromises"),  # its count includes skipped schedules
    "TimeoutLocks": _background("TimeoutLocks"),
    "EnqueueTasks": _background("EnqueueTasks"),
    "TimeoutTasks": _background("TimeoutTasks"),  # its count mixes timed-out and released claims
}


def register_background_pass(request_type_name: str) -> None:
    """A pass added elsewhere (e.g. Kafka reply pruning) gets counted like the built-in ones."""
    _STATE_CHANGES.setdefault(request_type_name, _background(request_type_name))


# -- recording: delivery

def send(plugin: str, ok: bool, seconds: float) -> None:
    """One delivery attempt through a sender plugin (the reference's `sender:<plugin>` submissions)."""
    if not _enabled:
        return
    aio_submissions_total.labels("sender", "success").inc()
    aio_submissions_total.labels(f"sender:{plugin}", "success" if ok else "failure").inc()
    record((_fold_send, seconds))
    fold_if_full()


def _fold_send(event) -> None:
    aio_duration_seconds.series(("sender",)).add(event[1])


# -- gauges read when scraped

def watch(gauge_or_child, read: Callable[[], float]) -> None:
    """Sets a gauge from `read()` at every scrape (queue depth, connections, workers)."""
    def safe() -> float:
        try:
            return float(read())
        except Exception:
            return 0.0
    gauge_or_child.set_function(safe)


# -- recording: Kafka (called by resonate/api/kafka)

def kafka_consumed(topic: str, count: int = 1) -> None:
    if _enabled:
        kafka_records_consumed_total.labels(topic).inc(count)


def kafka_replied(topic: str) -> None:
    if _enabled:
        kafka_records_replied_total.labels(topic).inc()


def kernel_batch_retried(reason: str) -> None:
    """A transaction rolled back for a reason that may pass (a deadlock, a serialization failure, a busy
    database, a lost connection), to run again: rare, so counted at once."""
    if _enabled:
        kernel_batch_retries_total.labels(reason).inc()


def kafka_dead_lettered(topic: str) -> None:
    if _enabled:
        kafka_records_dead_lettered_total.labels(topic).inc()


def kafka_deduplicated(topic: str) -> None:
    if _enabled:
        kafka_records_deduplicated_total.labels(topic).inc()


def kafka_in_flight_delta(delta: int) -> None:
    if _enabled:
        kafka_in_flight.inc(delta)


def kafka_partition_lag(topic: str, partition: int, lag: int) -> None:
    if _enabled:
        kafka_lag.labels(topic, str(partition)).set(lag)
