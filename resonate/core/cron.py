"""Cron schedules in the robfig/cron v3 dialect used by the reference server.

The reference parses with ``SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor`` and
calls ``Schedule.Next``; both are reproduced here, quirks included:

* 5 fields ``min hour dom month dow`` or 6 fields with the seconds *first*;
* ``*``/``?`` set a "star bit" unless followed by a step greater than 1 (``*/1`` keeps it,
  ``*/2`` does not).  When dom or dow carries the star bit, both must match, otherwise either;
* ``*-5`` is accepted and means ``*`` (robfig ignores what follows the star);
* ``Next`` walks month -> day -> hour -> minute -> second in the schedule's wall-clock time using
  Go's ``time.Date`` normalisation and DST resolution, and gives up after five years with Go's
  zero time.

Times are epoch milliseconds.  Calendar arithmetic is done on plain integers so that any instant
(including Go's zero time, year 1) can be handled without ``datetime`` range errors; ``zoneinfo`` is
only asked for UTC offsets.
"""

from __future__ import annotations

import functools
import os
import re
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from .model import INT64_MAX

__all__ = [
    "CronError",
    "Schedule",
    "SpecSchedule",
    "ConstantDelaySchedule",
    "ZERO_TIME_MS",
    "parse_cron",
    "parse_go_duration",
    "local_zone",
]

# Go's zero time.Time{} (0001-01-01T00:00:00Z) as epoch milliseconds.
ZERO_TIME_MS = -62135596800000

_STAR_BIT = 1 << 63
_SECONDS_PER_DAY = 86400


class CronError(ValueError):
    """The expression is not a valid cron expression for the reference parser."""


# --------------------------------------------------------------------------------------------
# Time zones


_UTC: tzinfo = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# datetime covers years 1..9999; clamp lookups a year inside so local conversions cannot overflow.
_MIN_LOOKUP_S = -62104060800  # 0002-01-01T00:00:00Z
_MAX_LOOKUP_S = 253370764800  # 9999-01-01T00:00:00Z


def _offset_at(zone: tzinfo, unix_s: int) -> int:
    """UTC offset in seconds of ``zone`` at the instant ``unix_s``."""
    if zone is _UTC:
        return 0
    clamped = min(max(unix_s, _MIN_LOOKUP_S), _MAX_LOOKUP_S)
    offset = (_EPOCH + timedelta(seconds=clamped)).astimezone(zone).utcoffset()
    if offset is None:
        return 0
    return offset.days * _SECONDS_PER_DAY + offset.seconds


def _load_zone(name: str) -> tzinfo | None:
    """Go ``time.LoadLocation``; ``None`` stands for ``time.Local``."""
    if name in ("", "UTC"):
        return _UTC
    if name == "Local":
        return None
    if ".." in name or name[0] in "/\\":
        raise CronError(f"provided bad location {name}: time: invalid location name")
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError, OSError, ...: all mean "unknown zone"
        raise CronError(f"provided bad location {name}: unknown time zone {name}") from exc


@functools.lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """The process's local zone, resolved like Go's ``time.Local`` (``$TZ``, then /etc/localtime)."""
    tz = os.environ.get("TZ")
    try:
        if tz is None:
            with open("/etc/localtime", "rb") as file:
                return ZoneInfo.from_file(file, key="Local")
        if tz.startswith(":"):
            tz = tz[1:]
        if tz.startswith("/"):
            with open(tz, "rb") as file:
                return ZoneInfo.from_file(file, key=tz)
        if tz not in ("", "UTC"):
            return ZoneInfo(tz)
    except Exception:  # Go silently falls back to UTC when the local zone cannot be loaded
        pass
    return _UTC


# --------------------------------------------------------------------------------------------
# Integer calendar (proleptic Gregorian, any year), after H. Hinnant's days_from_civil.


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year_of_era + era * 400 + (month <= 2), month, day


class _WallClock:
    """Go ``time.Time`` operations in one zone, on instants expressed as epoch seconds."""

    __slots__ = ("zone",)

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    def fields(self, instant: int) -> tuple[int, int, int, int, int, int, int]:
        """(year, month, day, hour, minute, second, weekday with Sunday = 0) of the local time."""
        wall = instant + _offset_at(self.zone, instant)
        days, second_of_day = divmod(wall, _SECONDS_PER_DAY)
        year, month, day = _civil_from_days(days)
        return (
            year,
            month,
            day,
            second_of_day // 3600,
            second_of_day // 60 % 60,
            second_of_day % 60,
            (days + 4) % 7,  # 1970-01-01 was a Thursday
        )

    def date(self, year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
        """Go ``time.Date``: out-of-range fields carry over, and a wall time that does not exist or
        exists twice is resolved exactly as Go does (offset looked up at the wall time read as UTC,
        then re-looked-up at the resulting instant)."""
        year += (month - 1) // 12
        month = (month - 1) % 12 + 1
        wall = (_days_from_civil(year, month, 1) + day - 1) * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
        first_guess = _offset_at(self.zone, wall)
        if first_guess == 0:
            return wall
        return wall - _offset_at(self.zone, wall - first_guess)


# --------------------------------------------------------------------------------------------
# Schedules


def _go_unix_seconds(unix_ms: int) -> int:
    """Whole seconds (rounded down) of the reference's ``time.Unix(0, unixMilli*1e6)``.

    The nanosecond product wraps around int64 outside 1677..2262; reproduced because the
    reference feeds Go's zero time (-62135596800000) back into Next for never-matching schedules.
    """
    nanoseconds = (unix_ms * 1_000_000 + (1 << 63)) % (1 << 64) - (1 << 63)
    return nanoseconds // 1_000_000_000


class Schedule(ABC):
    """A parsed cron expression."""

    @abstractmethod
    def next(self, after_ms: int) -> int:
        """The next activation strictly after ``after_ms`` (epoch ms), or ``ZERO_TIME_MS``."""


_SECONDS = (0, 59)
_MINUTES = (0, 59)
_HOURS = (0, 23)
_DOM = (1, 31)
_MONTHS = (1, 12)
_DOW = (0, 6)


def _bits(low: int, high: int) -> int:
    return ((1 << (high + 1)) - 1) ^ ((1 << low) - 1)


# Guards the server against a pathological zone making the walk spin; far above any real walk
# (five years of month/day steps is a few thousand iterations).
_MAX_STEPS = 200_000


class SpecSchedule(Schedule):
    """robfig ``SpecSchedule``: one bit set per field; ``zone`` None means the local zone."""

    __slots__ = ("second", "minute", "hour", "dom", "month", "dow", "zone", "_never")

    def __init__(self, second: int, minute: int, hour: int, dom: int, month: int, dow: int, zone: tzinfo | None):
        self.second = second
        self.minute = minute
        self.hour = hour
        self.dom = dom
        self.month = month
        self.dow = dow
        self.zone = zone
        self._never = self._can_never_match()

    def _can_never_match(self) -> bool:
        # Only a field made of commas alone (",") has no bits; robfig would then walk every second
        # of five years before giving up, so answer straight away.
        if not (self.second & _bits(*_SECONDS) and self.minute & _bits(*_MINUTES)):
            return True
        if not (self.hour & _bits(*_HOURS) and self.month & _bits(*_MONTHS)):
            return True
        any_dom = self.dom & _bits(*_DOM) != 0
        any_dow = self.dow & _bits(*_DOW) != 0
        if self._days_must_both_match():
            return not (any_dom and any_dow)
        return not (any_dom or any_dow)

    def _days_must_both_match(self) -> bool:
        return bool(self.dom & _STAR_BIT or self.dow & _STAR_BIT)

    def _day_matches(self, day: int, weekday: int) -> bool:
        dom_match = self.dom >> day & 1
        dow_match = self.dow >> weekday & 1
        if self._days_must_both_match():
            return bool(dom_match and dow_match)
        return bool(dom_match or dow_match)

    def next(self, after_ms: int) -> int:
        if self._never:
            return ZERO_TIME_MS
        clock = _WallClock(self.zone if self.zone is not None else local_zone())
        # The upcoming whole second (Go: t.Add(1s - nanoseconds)).
        t = _go_unix_seconds(after_ms) + 1
        year, month, day, hour, minute, second, weekday = clock.fields(t)
        year_limit = year + 5
        added = False  # whether a field has been advanced (lower fields then start from zero)
        steps = 0

        # Each `continue` of this loop is robfig's `goto WRAP`.
        while True:
            steps += 1
            year, month, day, hour, minute, second, weekday = clock.fields(t)
            if year > year_limit or steps > _MAX_STEPS:
                return ZERO_TIME_MS

            wrapped = False
            while not self.month >> month & 1:
                if not added:
                    added = True
                    t = clock.date(year, month, 1, 0, 0, 0)
                    year, month, day, hour, minute, second, weekday = clock.fields(t)
                t = clock.date(year, month + 1, day, hour, minute, second)  # AddDate(0, 1, 0)
                year, month, day, hour, minute, second, weekday = clock.fields(t)
                if month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue

            while not self._day_matches(day, weekday):
                steps += 1
                if steps > _MAX_STEPS:
                    return ZERO_TIME_MS
                if not added:
                    added = True
                    t = clock.date(year, month, day, 0, 0, 0)
                    year, month, day, hour, minute, second, weekday = clock.fields(t)
                t = clock.date(year, month, day + 1, hour, minute, second)  # AddDate(0, 0, 1)
                year, month, day, hour, minute, second, weekday = clock.fields(t)
                # Midnight may not exist on DST days; robfig nudges back to the day's start.
                if hour != 0:
                    t += (24 - hour) * 3600 if hour > 12 else -hour * 3600
                    year, month, day, hour, minute, second, weekday = clock.fields(t)
                if day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue

            while not self.hour >> hour & 1:
                if not added:
                    added = True
                    t = clock.date(year, month, day, hour, 0, 0)
                t += 3600
                year, month, day, hour, minute, second, weekday = clock.fields(t)
                if hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue

            while not self.minute >> minute & 1:
                if not added:
                    added = True
                    t -= t % 60  # Go's Truncate works on the absolute instant, not the wall clock
                t += 60
                year, month, day, hour, minute, second, weekday = clock.fields(t)
                if minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue

            while not self.second >> second & 1:
                added = True  # t is already a whole second, so Truncate(time.Second) is a no-op
                t += 1
                year, month, day, hour, minute, second, weekday = clock.fields(t)
                if second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue

            return t * 1000


class ConstantDelaySchedule(Schedule):
    """``@every <duration>``: fires every ``delay_seconds`` after the input, ignoring any zone."""

    __slots__ = ("delay_seconds",)

    def __init__(self, delay_seconds: int) -> None:
        self.delay_seconds = delay_seconds

    def next(self, after_ms: int) -> int:
        return (_go_unix_seconds(after_ms) + self.delay_seconds) * 1000


# --------------------------------------------------------------------------------------------
# Parsing

# Go's unicode.IsSpace, used by strings.Fields / strings.TrimSpace (Python's str.split also splits
# on U+001C..U+001F, which Go does not).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_GO_FIELDS = re.compile(f"[^{_GO_SPACE}]+")
_GO_TRIM = re.compile(f"^[{_GO_SPACE}]+|[{_GO_SPACE}]+$")
_GO_ATOI = re.compile(r"[+-]?[0-9]+")

_MONTH_NAMES = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DOW_NAMES = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


def _parse_uint(text: str) -> int:
    """robfig ``mustParseInt``: Go ``strconv.Atoi`` (ASCII digits, optional sign), then >= 0."""
    if not _GO_ATOI.fullmatch(text):
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    number = int(text)
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": value out of range')
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {text}")
    return number


def _parse_int_or_name(text: str, names: dict[str, int] | None) -> int:
    if names is not None:
        # Go's strings.ToLower maps U+0130 to a plain "i" (Python would add a combining dot).
        number = names.get(text.replace("\u0130", "i").lower())
        if number is not None:
            return number
    return _parse_uint(text)


def _parse_range(expr: str, bounds: tuple[int, int], names: dict[str, int] | None) -> int:
    """robfig ``getRange``: ``number | number "-" number [ "/" number ]`` (or ``*``/``?``)."""
    low, high = bounds
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single_value = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = low, high, _STAR_BIT
    else:
        start = _parse_int_or_name(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _parse_int_or_name(low_and_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")

    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _parse_uint(range_and_step[1])
        if single_value:  # "N/step" means "N-max/step"
            end = high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")

    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")

    bits = 0
    for value in range(start, end + 1, step):
        bits |= 1 << value
    return bits | extra


def _parse_field(field: str, bounds: tuple[int, int], names: dict[str, int] | None = None) -> int:
    bits = 0
    for expr in field.split(","):
        if expr:  # strings.FieldsFunc drops empty list items
            bits |= _parse_range(expr, bounds, names)
    return bits


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_go_duration(text: str) -> int:
    """Go ``time.ParseDuration``, in nanoseconds; raises CronError on invalid input."""
    invalid = CronError(f'time: invalid duration "{text}"')
    rest = text
    negative = False
    if rest and rest[0] in "+-":
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise invalid
        digits = len(rest) - len(rest.lstrip("0123456789"))
        integer_text, rest = rest[:digits], rest[digits:]
        integer = int(integer_text) if integer_text else 0
        if integer > 1 << 63:
            raise invalid
        fraction, scale, has_fraction_digits = 0, 1.0, False
        if rest.startswith("."):
            rest = rest[1:]
            digits = len(rest) - len(rest.lstrip("0123456789"))
            fraction_text, rest = rest[:digits], rest[digits:]
            has_fraction_digits = digits > 0
            for char in fraction_text:  # Go stops accumulating precision instead of overflowing
                candidate = fraction * 10 + ord(char) - 48
                if fraction > ((1 << 63) - 1) // 10 or candidate > 1 << 63:
                    break
                fraction, scale = candidate, scale * 10
        if not integer_text and not has_fraction_digits:
            raise invalid
        unit_length = 0
        while unit_length < len(rest) and not (rest[unit_length] == "." or "0" <= rest[unit_length] <= "9"):
            unit_length += 1
        if unit_length == 0:
            raise CronError(f'time: missing unit in duration "{text}"')
        unit_name, rest = rest[:unit_length], rest[unit_length:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise CronError(f'time: unknown unit "{unit_name}" in duration "{text}"')
        if integer > (1 << 63) // unit:
            raise invalid
        value = integer * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))  # float64 maths, as Go does
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > INT64_MAX:
        raise invalid
    return total


def _every(duration_ns: int) -> ConstantDelaySchedule:
    """robfig ``Every``: at least one second, sub-second part dropped."""
    seconds = max(duration_ns, 1_000_000_000) // 1_000_000_000
    return ConstantDelaySchedule(seconds)


def _descriptor(spec: str, zone: tzinfo | None) -> Schedule:
    all_dom = _bits(*_DOM) | _STAR_BIT
    all_months = _bits(*_MONTHS) | _STAR_BIT
    all_dow = _bits(*_DOW) | _STAR_BIT
    if spec in ("@yearly", "@annually"):
        return SpecSchedule(1, 1, 1, 1 << 1, 1 << 1, all_dow, zone)
    if spec == "@monthly":
        return SpecSchedule(1, 1, 1, 1 << 1, all_months, all_dow, zone)
    if spec == "@weekly":
        return SpecSchedule(1, 1, 1, all_dom, all_months, 1, zone)
    if spec in ("@daily", "@midnight"):
        return SpecSchedule(1, 1, 1, all_dom, all_months, all_dow, zone)
    if spec == "@hourly":
        return SpecSchedule(1, 1, _bits(*_HOURS) | _STAR_BIT, all_dom, all_months, all_dow, zone)
    every = "@every "
    if spec.startswith(every):
        try:
            return _every(parse_go_duration(spec[len(every):]))
        except CronError as exc:
            raise CronError(f"failed to parse duration {spec}: {exc}") from None
    raise CronError(f"unrecognized descriptor: {spec}")


def parse_cron(expr: str) -> Schedule:
    """Parse ``expr`` like the reference (robfig v3 with optional leading seconds and descriptors)."""
    if not isinstance(expr, str):
        raise CronError("cron expression must be a string")
    return _parse_cached(expr)


@functools.lru_cache(maxsize=1024)
def _parse_cached(expr: str) -> Schedule:
    if not expr:
        raise CronError("empty spec string")
    spec = expr
    zone: tzinfo | None = None
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        space = spec.find(" ")
        if space < 0:
            # The reference slices with index -1 here and panics; we reject the expression.
            raise CronError(f"missing space after time zone: {expr}")
        zone = _load_zone(spec[spec.index("=") + 1 : space])
        spec = _GO_TRIM.sub("", spec[space:])

    if spec.startswith("@"):
        return _descriptor(spec, zone)

    fields = _GO_FIELDS.findall(spec)
    if not 5 <= len(fields) <= 6:
        raise CronError(f"expected 5 to 6 fields, found {len(fields)}: [{' '.join(fields)}]")
    if len(fields) == 5:
        fields.insert(0, "0")  # seconds are optional and come first
    return SpecSchedule(
        second=_parse_field(fields[0], _SECONDS),
        minute=_parse_field(fields[1], _MINUTES),
        hour=_parse_field(fields[2], _HOURS),
        dom=_parse_field(fields[3], _DOM),
        month=_parse_field(fields[4], _MONTHS, _MONTH_NAMES),
        dow=_parse_field(fields[5], _DOW, _DOW_NAMES),
        zone=zone,
    )
