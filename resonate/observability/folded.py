"""Counters, histograms and gauges whose recording costs one deque append, folded into plain Python
numbers when scraped.

prometheus_client takes a lock per `inc`/`observe` and walks the buckets in Python: about 1-1.5 us per
call, 7-12 us per HTTP request. Here a recording thread only appends an event tuple to one shared deque
(`deque.append` and `popleft` are atomic in CPython, so concurrent recorders lose nothing without a lock).
Events are folded, in the order they were appended, under one lock: when a family is collected (every
scrape folds everything first) and when the deque holds more than `FOLD_AT` events, by the thread that
recorded the one too many, so memory stays bounded. An event is `(fold, *args)`: folding calls
`fold(event)`. The families are exposed with prometheus_client's own metric families and
`floatToGoString`, so /metrics reads byte for byte as prometheus_client's Counter/Histogram/Gauge would.

Steps of one (a counter's `inc()`, a gauge's `inc()`/`dec()`) need no event at all: they are `next()` on an
`itertools.count`, one C call that is atomic in CPython, read back (without consuming it) when collected.
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from itertools import count
from typing import Any, Callable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import INF, floatToGoString

# pending events beyond which the recording thread folds them. Small: events folded while still in the
# CPU cache and before a young garbage collection promotes them cost measurably less in the server (4096
# pending cost ~5 us more per request than 64, docs/performance.md section 12); a fold is ~20 us.
FOLD_AT = 64

_pending: deque = deque()
record: Callable[[tuple], None] = _pending.append
pending_count: Callable[[], int] = _pending.__len__
# held while folding or reading series; re-entrant: a fold binds the series a combined event first uses
fold_lock = threading.RLock()


def fold() -> None:
    """Applies every event appended so far (in order). Events appended meanwhile wait for the next fold."""
    with fold_lock:
        pop = _pending.popleft
        for _ in range(len(_pending)):
            event = pop()
            event[0](event)


def fold_if_full() -> None:
    if len(_pending) > FOLD_AT:
        fold()


def steps(counter: count) -> int:
    """How many times `next` was called on `counter` (an `itertools.count()` from 0), without a call."""
    return int(repr(counter)[6:-1])  # "count(N)"


class CounterSeries:
    __slots__ = ("value", "ones", "fold")

    def __init__(self):
        self.value = 0.0  # folded amounts
        self.ones = count()  # increments by one: `next(series.ones)`, no event
        self.fold = self._fold  # bound once: an event carries it

    def _fold(self, event) -> None:
        self.value += event[1]

    def total(self) -> float:
        return self.value + steps(self.ones)


class GaugeSeries(CounterSeries):
    __slots__ = ("down",)

    def __init__(self):
        super().__init__()
        self.down = count()  # decrements by one

    def total(self) -> float:
        down = steps(self.down)  # read first: every step down follows its step up
        return self.value + steps(self.ones) - down


class HistogramSeries:
    __slots__ = ("bounds", "counts", "sum", "fold")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative; the last bound is +Inf
        self.sum = 0.0
        self.fold = self._fold

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le`: a value equal to a bound is in its bucket
        self.sum += value

    def _fold(self, event) -> None:
        self.add(event[1])


class _Child:
    """One series' recording handle, as prometheus_client's label children are used."""

    __slots__ = ("series", "_fold", "_up", "_down")

    def __init__(self, series):
        self.series = series
        self._fold = series.fold
        self._up = getattr(series, "ones", None)
        self._down = getattr(series, "down", None)


class CounterChild(_Child):
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        if amount == 1:
            next(self._up)
            return
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        record((self._fold, amount))
        if pending_count() > FOLD_AT:
            fold()


class GaugeChild(_Child):
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        if amount == 1:
            next(self._up)
            return
        record((self._fold, amount))
        if pending_count() > FOLD_AT:
            fold()

    def dec(self, amount: float = 1) -> None:
        if amount == 1:
            next(self._down)
            return
        record((self._fold, -amount))
        if pending_count() > FOLD_AT:
            fold()


class HistogramChild(_Child):
    __slots__ = ()

    def observe(self, amount: float) -> None:
        record((self._fold, amount))
        if pending_count() > FOLD_AT:
            fold()


class _Family:
    """A collector owning one family's series, registered where prometheus_client's metric would be (so the
    families keep their order on /metrics). A labelled family's series exist from their first `labels`
    call, as prometheus_client's; an unlabelled one's from the start."""

    child_type: type = _Child

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), registry=None):
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._series: dict[tuple[str, ...], Any] = {}
        self._children: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:
            self._only = self.labels()
        if registry is not None:
            registry.register(self)

    def new_series(self):
        raise NotImplementedError

    def series(self, values: tuple[str, ...]):
        """The series of these label values (strings), created on first use. Call under `fold_lock`."""
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = self.new_series()
        return series

    def labels(self, *values: Any):
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values, got {len(key)}")
            with fold_lock:
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self.child_type(self.series(key))
        return child

    def describe(self):
        return [self.empty()]

    def collect(self):
        fold()
        with fold_lock:
            family = self.empty()
            for values, series in self._series.items():
                self.add_to(family, list(values), series)
        return [family]

    def empty(self):
        raise NotImplementedError

    def add_to(self, family, values: list[str], series) -> None:
        raise NotImplementedError


class Counter(_Family):
    child_type = CounterChild

    def new_series(self):
        return CounterSeries()

    def inc(self, amount: float = 1) -> None:
        self._only.inc(amount)

    def empty(self):
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def add_to(self, family, values, series) -> None:
        family.add_metric(values, series.total())


class Gauge(_Family):
    """A gauge moved by `inc`/`dec` only (in-flight counts); gauges that are `set` stay prometheus_client's."""

    child_type = GaugeChild

    def new_series(self):
        return GaugeSeries()

    def inc(self, amount: float = 1) -> None:
        self._only.inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._only.dec(amount)

    def empty(self):
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def add_to(self, family, values, series) -> None:
        family.add_metric(values, series.total())


class Histogram(_Family):
    child_type = HistogramChild

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), buckets=(),
                 registry=None):
        bounds = [float(b) for b in buckets]
        if not bounds or bounds[-1] != INF:
            bounds.append(INF)
        self.bounds = tuple(bounds)
        self._les = [floatToGoString(b) for b in self.bounds]
        super().__init__(name, documentation, labelnames, registry)

    def new_series(self):
        return HistogramSeries(self.bounds)

    def observe(self, amount: float) -> None:
        self._only.observe(amount)

    def empty(self):
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def add_to(self, family, values, series) -> None:
        cumulative, buckets = 0.0, []
        for le, count in zip(self._les, series.counts):
            cumulative += count
            buckets.append((le, cumulative))
        family.add_metric(values, buckets, series.sum)
