"""The folded metric families (`resonate.observability.folded`): /metrics output byte for byte as
prometheus_client's own Counter/Histogram/Gauge, exact counts from many threads, bounded pending events,
and the recording functions of `metrics` counting what they counted before."""
from __future__ import annotations

import random
import threading

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from resonate.core.kernel import Kernel
from resonate.core.operations import Result
from resonate.core.requests import CompletePromise, CreatePromise, ReadPromise
from resonate.core.store.sqlite import SqliteStore
from resonate.observability import folded, metrics
from resonate.observability.requests import RouteRecorder, finished

BUCKETS = metrics.GO_BUCKETS


def twins():
    """The same three families, folded and prometheus_client's, each in a registry of its own."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    made = {}
    for registry, module in ((ours, folded), (theirs, prometheus_client)):
        made[module] = (
            module.Counter("things", "count of things", ["kind", "status"], registry=registry),
            module.Histogram("thing_duration_seconds", "duration of things", ["kind"], buckets=BUCKETS,
                             registry=registry),
            module.Gauge("things_in_flight", "things now", ["kind"], registry=registry),
            module.Histogram("thing_batch_size", "unlabelled", buckets=(1, 2, 5, 10), registry=registry),
        )
    return ours, theirs, made[folded], made[prometheus_client]


def apply(families, events) -> None:
    counter, histogram, gauge, batch = families
    for kind, status, seconds, size in events:
        counter.labels(kind, status).inc()
        histogram.labels(kind).observe(seconds)
        gauge.labels(kind).inc()
        if status == 500:
            gauge.labels(kind).dec()
        batch.observe(size)


def test_scrape_output_is_byte_identical_to_prometheus_clients_own_metrics():
    rng = random.Random(7)
    ours, theirs, folded_families, client_families = twins()
    assert generate_latest(ours) == generate_latest(theirs)  # no labelled series yet, the unlabelled one at 0
    values = list(BUCKETS) + [0.0, 1e-9, 0.0049999, 0.0050001, 10.5, 1e6]  # every bound exactly, and beside
    events = [(rng.choice(["ReadPromise", "CreatePromise", "x y\"z"]), rng.choice([200, 404, 500]),
               rng.choice(values + [rng.random() * 3 for _ in range(3)]), rng.choice([1, 2, 3, 5, 7, 10, 11]))
              for _ in range(2000)]
    apply(folded_families, events)
    apply(client_families, events)
    scraped = generate_latest(ours)
    assert scraped == generate_latest(theirs)
    assert b'things_total{kind="ReadPromise",status="404"}' in scraped
    assert b'thing_duration_seconds_bucket{kind="CreatePromise",le="0.005"}' in scraped


def test_a_value_equal_to_a_bound_is_counted_in_that_bound_bucket():
    registry = CollectorRegistry()
    histogram = folded.Histogram("edge_seconds", "edges", buckets=(0.1, 1, 10), registry=registry)
    for value in (0.1, 1, 10, 10.000001):
        histogram.observe(value)
    get = registry.get_sample_value
    assert [get("edge_seconds_bucket", {"le": le}) for le in ("0.1", "1.0", "10.0", "+Inf")] == [1, 2, 3, 4]
    assert get("edge_seconds_count") == 4 and get("edge_seconds_sum") == pytest.approx(21.100001)


def test_a_labelled_series_is_absent_until_first_used():
    registry = CollectorRegistry()
    counter = folded.Counter("events", "events", ["kind"], registry=registry)
    histogram = folded.Histogram("event_seconds", "event durations", ["kind"], buckets=BUCKETS, registry=registry)
    scraped = generate_latest(registry)
    assert b"# TYPE events_total counter" in scraped
    assert b"events_total{" not in scraped and b"event_seconds_count{" not in scraped
    counter.labels("a").inc(2)
    histogram.labels("a").observe(0.3)
    scraped = generate_latest(registry)
    assert b'events_total{kind="a"} 2.0' in scraped and b'event_seconds_count{kind="a"} 1.0' in scraped
    assert b'kind="b"' not in scraped
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("a", "b")


def test_counts_are_exact_from_many_threads_folding_as_they_go(monkeypatch):
    monkeypatch.setattr(folded, "FOLD_AT", 50)  # folds race with the recorders and with scrapes
    registry = CollectorRegistry()
    counter = folded.Counter("hits", "hits", ["thread"], registry=registry)
    shared = folded.Counter("shared_hits", "hits on one series", registry=registry)
    histogram = folded.Histogram("hit_seconds", "hit durations", buckets=(0.5, 1), registry=registry)
    gauge = folded.Gauge("hits_in_flight", "hits in flight", registry=registry)
    threads, per_thread, start = 8, 5000, threading.Barrier(9)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            gauge.inc()
            counter.labels(n).inc()
            shared.inc()
            histogram.observe(i % 3 * 0.5)  # 0, 0.5, 1.0: every bucket bound
            gauge.dec()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    while any(w.is_alive() for w in workers):
        generate_latest(registry)  # scrapes while recording
    for w in workers:
        w.join()
    get = registry.get_sample_value
    assert [get("hits_total", {"thread": str(n)}) for n in range(threads)] == [per_thread] * threads
    assert get("shared_hits_total") == threads * per_thread
    assert get("hit_seconds_count") == threads * per_thread
    thirds = threads * sum(1 for i in range(per_thread) if i % 3 == 0)
    halves = threads * sum(1 for i in range(per_thread) if i % 3 == 1)
    assert get("hit_seconds_bucket", {"le": "0.5"}) == thirds + halves
    assert get("hit_seconds_bucket", {"le": "1.0"}) == threads * per_thread
    assert get("hit_seconds_sum") == threads * sum(i % 3 * 0.5 for i in range(per_thread))
    assert get("hits_in_flight") == 0


def test_pending_events_stay_bounded(monkeypatch):
    monkeypatch.setattr(folded, "FOLD_AT", 100)
    registry = CollectorRegistry()
    counter = folded.Counter("bounded", "bounded", registry=registry)
    folded.fold()
    most = 0
    for _ in range(10_000):
        counter.inc()
        most = max(most, folded.pending_count())
    assert most <= 101
    assert registry.get_sample_value("bounded_total") == 10_000


def test_recording_functions_count_exactly_from_many_threads(monkeypatch):
    monkeypatch.setattr(folded, "FOLD_AT", 200)
    get = metrics.REGISTRY.get_sample_value
    api = {"type": "CreatePromise", "protocol": "grpc", "status": "20100"}
    http_api = {"type": "ReadPromise", "protocol": "http", "status": "20000"}
    http = {"method": "GET", "path": "/promises/*id", "status": "200"}
    store = {"type": "store", "status": "success"}
    names = [("api_requests_total", api), ("api_duration_seconds_count", {"type": "CreatePromise", "protocol": "grpc"}),
             ("api_requests_total", http_api), ("http_requests_total", http),
             ("http_requests_duration_seconds_count", {"method": "GET", "path": "/promises/*id"}),
             ("aio_submissions_total", store), ("aio_duration_seconds_count", {"type": "store"}),
             ("resonate_kernel_batch_size_count", None), ("promises_total", {"state": "created"}),
             ("promises_total", {"state": "resolved"}),
             ("resonate_background_passes_total", {"pass": "TimeoutPromises", "status": "success"}),
             ("promises_total", {"state": "timedout"})]
    before = [get(name, labels) or 0 for name, labels in names]
    route = RouteRecorder("http", "promises.read", "GET", "/promises/*id")
    created = (CreatePromise.__new__(CreatePromise), True, Result(20100, None))
    resolved = (CompletePromise.__new__(CompletePromise), True, Result(20100, {"state": "RESOLVED"}))
    timed_out = (type("TimeoutPromises", (), {})(), True, Result(20000, 3))
    threads, per_thread, start = 6, 2000, threading.Barrier(6)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            with metrics.InFlight("grpc", "promises.create"):
                finished("grpc", "promises.create", 20100, 0.001)
            gauge = route.begin()
            route.leave(gauge)
            route.finish(20000, 200, 0.0002)
            metrics.kernel_batch([created, created, resolved, timed_out], 4, 0.003)
            metrics.store_read(0.0001)

    metrics.enable()
    try:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        metrics.disable()
    n = threads * per_thread
    after = [get(name, labels) or 0 for name, labels in names]
    assert [a - b for a, b in zip(after, before)] == [n, n, n, n, n, 2 * n, 2 * n, n, 2 * n, n, n, 3 * n]
    assert get("api_requests_in_flight", {"type": "CreatePromise", "protocol": "grpc"}) == 0
    assert get("api_requests_in_flight", {"type": "ReadPromise", "protocol": "http"}) == 0


def test_recording_is_a_no_op_while_disabled():
    metrics.disable()
    folded.fold()
    metrics.api_request("grpc", "promises.read", 20000, 0.1)
    metrics.kernel_batch([], 0, 0.1)
    metrics.store_read(0.1)
    assert RouteRecorder("http", "promises.read", "GET", "/x").begin() is None
    assert folded.pending_count() == 0


def test_a_read_answered_beside_the_writer_counts_as_one_store_submission(tmp_path):
    get = metrics.REGISTRY.get_sample_value
    kernel = Kernel(SqliteStore(str(tmp_path / "reads.db")))
    kernel.start()
    metrics.enable()
    try:
        assert kernel.concurrent_reads
        before = [get("aio_submissions_total", {"type": "store", "status": "success"}) or 0,
                  get("aio_duration_seconds_count", {"type": "store"}) or 0]
        future = kernel.submit(ReadPromise(id="nobody"))
        assert getattr(future.exception(), "code", None) == 40400
        after = [get("aio_submissions_total", {"type": "store", "status": "success"}),
                 get("aio_duration_seconds_count", {"type": "store"})]
    finally:
        metrics.disable()
        kernel.stop()
    assert [a - b for a, b in zip(after, before)] == [1, 1]
