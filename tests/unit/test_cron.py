"""robfig/cron v3 dialect: parsing, Next() against hand-computed instants, robfig's own test table,
and a brute-force oracle for zones without DST."""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from resonate.core import cron
from resonate.core.cron import (
    ZERO_TIME_MS,
    ConstantDelaySchedule,
    CronError,
    SpecSchedule,
    parse_cron,
    parse_go_duration,
)


def ms(iso: str) -> int:
    """Epoch ms of an ISO-8601 instant with an explicit offset (``Z`` allowed)."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def local_zone(monkeypatch):
    """Pin the "server local" zone used by expressions without a TZ prefix."""

    def pin(name: str) -> None:
        monkeypatch.setattr(cron, "local_zone", lambda: ZoneInfo(name))

    pin("UTC")
    return pin


MONDAY_2024 = "2024-01-01T00:00:00Z"  # a Monday


# --------------------------------------------------------------------------------------------
# Next(): hand-computed expectations


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # seconds first in the 6-field form
        ("*/5 * * * * *", MONDAY_2024, "2024-01-01T00:00:05Z"),
        ("*/5 * * * * *", "2024-01-01T00:00:07.500Z", "2024-01-01T00:00:10Z"),
        ("*/5 * * * * *", "2024-01-01T00:00:04.999Z", "2024-01-01T00:00:05Z"),
        ("30 15 10 * * *", MONDAY_2024, "2024-01-01T10:15:30Z"),
        ("10/25 * * * * *", MONDAY_2024, "2024-01-01T00:00:10Z"),
        ("10/25 * * * * *", "2024-01-01T00:00:10Z", "2024-01-01T00:00:35Z"),
        ("10/25 * * * * *", "2024-01-01T00:00:35Z", "2024-01-01T00:01:10Z"),
        # 5 fields: seconds are 0
        ("* * * * *", "2024-01-01T00:00:00.001Z", "2024-01-01T00:01:00Z"),
        ("0 0 * * *", MONDAY_2024, "2024-01-02T00:00:00Z"),
        ("0 0 * * *", "2024-01-01T23:59:59.999Z", "2024-01-02T00:00:00Z"),
        ("0 0 * * *", "2023-12-31T23:59:59Z", MONDAY_2024),
        ("0 0 1 1 *", MONDAY_2024, "2025-01-01T00:00:00Z"),
        ("0 0 1 1 *", "2023-12-31T23:59:59.999Z", MONDAY_2024),
        ("5/20 * * * *", MONDAY_2024, "2024-01-01T00:05:00Z"),
        ("5/20 * * * *", "2024-01-01T00:45:00Z", "2024-01-01T01:05:00Z"),
        ("0 10-20/5 * * *", MONDAY_2024, "2024-01-01T10:00:00Z"),
        ("0 10-20/5 * * *", "2024-01-01T10:00:00Z", "2024-01-01T15:00:00Z"),
        ("0 10-20/5 * * *", "2024-01-01T20:00:00Z", "2024-01-02T10:00:00Z"),
        ("0 0 1,,15 * *", MONDAY_2024, "2024-01-15T00:00:00Z"),  # empty list items are skipped
        ("+5 * * * *", MONDAY_2024, "2024-01-01T00:05:00Z"),  # strconv.Atoi accepts a sign
        ("0 *-5 * * *", MONDAY_2024, "2024-01-01T01:00:00Z"),  # robfig ignores what follows "*"
        ("0 0 ? ? ?", MONDAY_2024, "2024-01-02T00:00:00Z"),  # "?" is "*" in every field
        ("\t0  0 * *\t* ", MONDAY_2024, "2024-01-02T00:00:00Z"),  # any whitespace separates
        # month and weekday names, case-insensitive
        ("0 0 1 JUL *", MONDAY_2024, "2024-07-01T00:00:00Z"),
        ("0 0 1 jul-Aug/1 *", "2024-07-01T00:00:00Z", "2024-08-01T00:00:00Z"),
        ("0 12 * * sat", MONDAY_2024, "2024-01-06T12:00:00Z"),
        ("0 0 * feb Sun", MONDAY_2024, "2024-02-04T00:00:00Z"),
        ("0 0 * * MON/2", MONDAY_2024, "2024-01-03T00:00:00Z"),  # Mon, Wed, Fri
        # leap day and impossible dates
        ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("0 0 29 2 *", MONDAY_2024, "2024-02-29T00:00:00Z"),
        ("0 0 30 2 *", MONDAY_2024, None),
        ("0 0 31 4,6,9,11 *", MONDAY_2024, None),
        ("0 0 , * *", MONDAY_2024, None),  # a field of commas only has no value at all
        # descriptors
        ("@yearly", MONDAY_2024, "2025-01-01T00:00:00Z"),
        ("@annually", "2024-06-15T12:00:00Z", "2025-01-01T00:00:00Z"),
        ("@monthly", MONDAY_2024, "2024-02-01T00:00:00Z"),
        ("@weekly", MONDAY_2024, "2024-01-07T00:00:00Z"),  # Sunday 00:00
        ("@daily", MONDAY_2024, "2024-01-02T00:00:00Z"),
        ("@midnight", "2024-01-01T12:00:00Z", "2024-01-02T00:00:00Z"),
        ("@hourly", MONDAY_2024, "2024-01-01T01:00:00Z"),
        ("@hourly", "2024-01-01T00:59:59.999Z", "2024-01-01T01:00:00Z"),
        # @every: (input truncated to the second) + duration, at least 1 s, sub-second part dropped
        ("@every 1h30m", MONDAY_2024, "2024-01-01T01:30:00Z"),
        ("@every 1h30m", "2024-01-01T00:00:00.999Z", "2024-01-01T01:30:00Z"),
        ("@every 500ms", MONDAY_2024, "2024-01-01T00:00:01Z"),
        ("@every 1.5s", "2024-01-01T00:00:00.600Z", "2024-01-01T00:00:01Z"),
        ("@every 2.9s", MONDAY_2024, "2024-01-01T00:00:02Z"),
        ("@every 0", MONDAY_2024, "2024-01-01T00:00:01Z"),
        ("@every -5s", MONDAY_2024, "2024-01-01T00:00:01Z"),
        ("@every 48h", MONDAY_2024, "2024-01-03T00:00:00Z"),
        ("CRON_TZ=America/New_York @every 1m", MONDAY_2024, "2024-01-01T00:01:00Z"),
        # time zones
        ("CRON_TZ=America/New_York 0 9 * * MON-FRI", "2024-01-05T15:00:00Z", "2024-01-08T14:00:00Z"),
        ("CRON_TZ=America/New_York 0 9 * * MON-FRI", "2024-01-08T13:59:59Z", "2024-01-08T14:00:00Z"),
        # across the spring-forward weekend: 09:00 EDT is 13:00Z
        ("CRON_TZ=America/New_York 0 9 * * MON-FRI", "2024-03-08T15:00:00Z", "2024-03-11T13:00:00Z"),
        ("TZ=Asia/Kolkata 0 0 * * *", MONDAY_2024, "2024-01-01T18:30:00Z"),
        ("TZ=Asia/Kathmandu 30 15 * * *", MONDAY_2024, "2024-01-01T09:45:00Z"),
        ("TZ=Europe/London   @daily", "2024-07-01T00:00:00Z", "2024-07-01T23:00:00Z"),
        ("TZ=UTC 0 0 * * *", MONDAY_2024, "2024-01-02T00:00:00Z"),
        ("TZ= 0 0 * * *", MONDAY_2024, "2024-01-02T00:00:00Z"),  # Go: LoadLocation("") is UTC
    ],
)
def test_next(local_zone, expr, after, expected):
    expected_ms = ZERO_TIME_MS if expected is None else ms(expected)
    assert parse_cron(expr).next(ms(after)) == expected_ms


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # dom and dow both restricted: either may match (OR)
        ("0 0 13 * FRI", MONDAY_2024, "2024-01-05T00:00:00Z"),
        ("0 0 13 * FRI", "2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z"),
        ("0 0 13 * FRI", "2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z"),
        ("0 0 1-7 * MON", MONDAY_2024, "2024-01-02T00:00:00Z"),
        ("0 0 */2 * FRI", MONDAY_2024, "2024-01-03T00:00:00Z"),  # "*/2" has no star bit: OR
        ("0 0 13 * */2", MONDAY_2024, "2024-01-02T00:00:00Z"),  # Tuesday is an even weekday
        # one of them is "*" or "?" (or "*/1"): both must match (AND)
        ("0 0 13 * *", MONDAY_2024, "2024-01-13T00:00:00Z"),
        ("0 0 13 * ?", MONDAY_2024, "2024-01-13T00:00:00Z"),
        ("0 0 13 * */1", MONDAY_2024, "2024-01-13T00:00:00Z"),
        ("0 0 * * FRI", MONDAY_2024, "2024-01-05T00:00:00Z"),
        ("0 0 ? * FRI", "2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z"),
        ("0 0 */1 * FRI", MONDAY_2024, "2024-01-05T00:00:00Z"),
        ("0 0 *,13 * FRI", MONDAY_2024, "2024-01-05T00:00:00Z"),  # a star anywhere in the list
    ],
)
def test_day_of_month_and_day_of_week_rule(local_zone, expr, after, expected):
    assert parse_cron(expr).next(ms(after)) == ms(expected)


def test_star_bit_is_kept_for_step_one_and_cleared_for_larger_steps():
    assert parse_cron("0 0 * * *").dom & cron._STAR_BIT
    assert parse_cron("0 0 */1 * *").dom & cron._STAR_BIT
    assert parse_cron("0 0 ?/1 * *").dom & cron._STAR_BIT
    assert not parse_cron("0 0 */2 * *").dom & cron._STAR_BIT
    assert not parse_cron("0 0 1-31 * *").dom & cron._STAR_BIT


@pytest.mark.parametrize(
    ("expr", "field", "values"),
    [
        ("*/15 * * * *", "minute", {0, 15, 30, 45}),
        ("0 1-5/2 * * *", "hour", {1, 3, 5}),
        ("0 0 20/4 * *", "dom", {20, 24, 28}),
        ("0 0 * JAN,mar,Dec *", "month", {1, 3, 12}),
        ("0 0 * * SUN-tue,sat", "dow", {0, 1, 2, 6}),
        ("0 0 * * 0-6/3", "dow", {0, 3, 6}),
        ("0 0 * * *", "second", {0}),
        ("7,8 0 0 * * *", "second", {7, 8}),
        ("* * * * * *", "second", set(range(60))),
    ],
)
def test_field_values(expr, field, values):
    bits = getattr(parse_cron(expr), field) & ~cron._STAR_BIT
    assert {value for value in range(64) if bits >> value & 1} == values


# --------------------------------------------------------------------------------------------
# Parse errors


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "xyz",
        "* * * *",  # 4 fields
        "* * * * * * *",  # 7 fields
        "0 0 * * 7",  # Sunday is 0 only
        "0 0 * * 0-7",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 * * 1#2",
        "0 0 * * 5L",
        "H * * * *",
        "60 * * * * *",
        "* 60 * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 32 * *",
        "0 0 * 0 *",
        "0 0 * 13 *",
        "*/0 * * * *",
        "TZ=America/New_York 15/0 * * * *",
        "5-3 * * * *",
        "1-2-3 * * * *",
        "1/2/3 * * * *",
        "-1 * * * *",
        "*/-1 * * * *",
        "a * * * *",
        "1.5 * * * *",
        "0x1 * * * *",
        "99999999999999999999 * * * *",
        "0 0 * * XYZ",
        "0 0 * FOO *",
        "0 0 * * MON-FOO",
        "0 0 * * JAN",  # month name in the weekday field
        "0 0 * SUN *",  # weekday name in the month field
        "0 0 * * MONDAY",
        "@foo",
        "@every",
        "@every ",
        "@every 1x",
        "@every 1h 30m",
        "@every  1h",
        "@every1h",
        "@Daily",  # descriptors are case-sensitive
        "@daily ",  # and not trimmed without a TZ prefix
        " @daily",
        "TZ=Mars/Olympus_Mons 0 0 * * *",
        "TZ=UTC",  # no space after the zone: the reference panics
        "CRON_TZ=America/New_York",
        "CRON_TZ=../../etc/passwd 0 0 * * *",
        "TZ=/etc/localtime 0 0 * * *",
        "TZ=America 0 0 * * *",  # a directory, not a zone
        "TZ=UTC 0 0 * *",
    ],
)
def test_invalid_expressions_raise(expr):
    with pytest.raises(CronError):
        parse_cron(expr)


def test_cron_error_is_a_value_error_and_rejects_non_strings():
    assert issubclass(CronError, ValueError)
    with pytest.raises(CronError):
        parse_cron(None)  # type: ignore[arg-type]


def test_error_messages_follow_robfig():
    with pytest.raises(CronError, match=r"end of range \(7\) above maximum \(6\): 7"):
        parse_cron("0 0 * * 7")
    with pytest.raises(CronError, match=r"expected 5 to 6 fields, found 4"):
        parse_cron("* * * *")
    with pytest.raises(CronError, match="unrecognized descriptor: @foo"):
        parse_cron("@foo")
    with pytest.raises(CronError, match="provided bad location Mars/X"):
        parse_cron("TZ=Mars/X * * * * *")


def test_parse_returns_schedule_kinds():
    assert isinstance(parse_cron("@every 1s"), ConstantDelaySchedule)
    assert parse_cron("@every 90m").delay_seconds == 5400
    assert isinstance(parse_cron("0 0 * * *"), SpecSchedule)
    assert isinstance(parse_cron("@daily"), SpecSchedule)


# --------------------------------------------------------------------------------------------
# Go durations


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("-0", 0),
        ("1h30m", 5_400_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("500ms", 500_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("+2m", 120_000_000_000),
        ("-1.5s", -1_500_000_000),
        ("1us", 1_000),
        ("1\u00b5s", 1_000),
        ("1\u03bcs", 1_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("0.000000001s", 1),
        ("0.0000000009s", 0),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
        ("2562047h", 2562047 * 3_600_000_000_000),
    ],
)
def test_parse_go_duration(text, nanoseconds):
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    "text",
    ["", "+", "-", "1", "s", ".s", "-.s", "1x", "1h 2m", " 1h", "1H", "9223372036854775808ns", "2562048h", "1e3s"],
)
def test_parse_go_duration_rejects(text):
    with pytest.raises(CronError):
        parse_go_duration(text)


# --------------------------------------------------------------------------------------------
# Local zone


def test_expressions_without_prefix_use_the_local_zone(local_zone):
    local_zone("America/New_York")
    assert parse_cron("0 0 * * *").next(ms(MONDAY_2024)) == ms("2024-01-01T05:00:00Z")
    assert parse_cron("TZ=Local 0 0 * * *").next(ms(MONDAY_2024)) == ms("2024-01-01T05:00:00Z")
    assert parse_cron("TZ=UTC 0 0 * * *").next(ms(MONDAY_2024)) == ms("2024-01-02T00:00:00Z")
    local_zone("Asia/Kolkata")  # robfig TestNextWithTz
    assert parse_cron("14 14 * * *").next(ms("2016-01-03T13:09:03+05:30")) == ms("2016-01-03T14:14:00+05:30")
    assert parse_cron("14 14 * * ?").next(ms("2016-01-03T04:09:03+05:30")) == ms("2016-01-03T14:14:00+05:30")


@pytest.mark.parametrize(
    ("tz", "expected_key"),
    [("Asia/Tokyo", "Asia/Tokyo"), (":Europe/Paris", "Europe/Paris"), ("", None), ("UTC", None), ("No/Such", None)],
)
def test_local_zone_follows_tz_variable_like_go(monkeypatch, tz, expected_key):
    monkeypatch.setenv("TZ", tz)
    cron.local_zone.cache_clear()
    try:
        zone = cron.local_zone()
        if expected_key is None:
            assert zone is timezone.utc
        else:
            assert zone.key == expected_key
    finally:
        cron.local_zone.cache_clear()


# --------------------------------------------------------------------------------------------
# robfig/cron v3 spec_test.go TestNext, ported (6-field specs are seconds-first, like ours).
# "Mon Jul 9 ..." times are in Go's local zone (UTC here); a "TZ=<zone> <time>" input makes the
# schedule run in that zone (Go uses the input's location), which we get by pinning the local zone.

ROBFIG_NEXT = [
    ("Mon Jul 9 14:45 2012", "0 0/15 * * * *", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59 2012", "0 0/15 * * * *", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59:59 2012", "0 0/15 * * * *", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 15:45 2012", "0 20-35/15 * * * *", "Mon Jul 9 16:20 2012"),
    ("Mon Jul 9 23:46 2012", "0 */15 * * * *", "Tue Jul 10 00:00 2012"),
    ("Mon Jul 9 23:45 2012", "0 20-35/15 * * * *", "Tue Jul 10 00:20 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * * * *", "Tue Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 1/2 * * *", "Tue Jul 10 01:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 10-12 * * *", "Tue Jul 10 10:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 1/2 */2 * *", "Thu Jul 11 01:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * 9-20 * *", "Wed Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * 9-20 Jul *", "Wed Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 0 9 Apr-Oct ?", "Thu Aug 9 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 0 */5 Apr,Aug,Oct Mon", "Tue Aug 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 0 */5 Oct Mon", "Mon Oct 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 0 * Feb Mon", "Mon Feb 4 00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 0 * Feb Mon/2", "Fri Feb 1 00:00 2013"),
    ("Mon Dec 31 23:59:45 2012", "0 * * * * *", "Tue Jan 1 00:00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 0 29 Feb ?", "Mon Feb 29 00:00 2016"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 30 2 11 Mar ?", "2013-03-11T02:30:00-0400"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 0 * * * ?", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "TZ=America/New_York 0 0 * * * ?", "2012-03-11T03:00:00-0400"),
    ("2012-03-11T03:00:00-0400", "TZ=America/New_York 0 0 * * * ?", "2012-03-11T04:00:00-0400"),
    ("2012-03-11T04:00:00-0400", "TZ=America/New_York 0 0 * * * ?", "2012-03-11T05:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "CRON_TZ=America/New_York 0 0 * * * ?", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "CRON_TZ=America/New_York 0 0 * * * ?", "2012-03-11T03:00:00-0400"),
    ("2012-03-11T03:00:00-0400", "CRON_TZ=America/New_York 0 0 * * * ?", "2012-03-11T04:00:00-0400"),
    ("2012-03-11T04:00:00-0400", "CRON_TZ=America/New_York 0 0 * * * ?", "2012-03-11T05:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 0 1 * * ?", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "TZ=America/New_York 0 0 1 * * ?", "2012-03-12T01:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 0 2 * * ?", "2012-03-12T02:00:00-0400"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 30 2 04 Nov ?", "2012-11-04T02:30:00-0500"),
    ("2012-11-04T01:45:00-0400", "TZ=America/New_York 0 30 1 04 Nov ?", "2012-11-04T01:30:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 0 * * * ?", "2012-11-04T01:00:00-0400"),
    ("2012-11-04T01:00:00-0400", "TZ=America/New_York 0 0 * * * ?", "2012-11-04T01:00:00-0500"),
    ("2012-11-04T01:00:00-0500", "TZ=America/New_York 0 0 * * * ?", "2012-11-04T02:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 0 1 * * ?", "2012-11-04T01:00:00-0400"),
    ("2012-11-04T01:00:00-0400", "TZ=America/New_York 0 0 1 * * ?", "2012-11-04T01:00:00-0500"),
    ("2012-11-04T01:00:00-0500", "TZ=America/New_York 0 0 1 * * ?", "2012-11-05T01:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 0 2 * * ?", "2012-11-04T02:00:00-0500"),
    ("2012-11-04T02:00:00-0500", "TZ=America/New_York 0 0 2 * * ?", "2012-11-05T02:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 0 3 * * ?", "2012-11-04T03:00:00-0500"),
    ("2012-11-04T03:00:00-0500", "TZ=America/New_York 0 0 3 * * ?", "2012-11-05T03:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 0 * * * ?", "2012-11-04T01:00:00-0400"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0400", "0 0 * * * ?", "2012-11-04T01:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0500", "0 0 * * * ?", "2012-11-04T02:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 0 1 * * ?", "2012-11-04T01:00:00-0400"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0400", "0 0 1 * * ?", "2012-11-04T01:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0500", "0 0 1 * * ?", "2012-11-05T01:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 0 2 * * ?", "2012-11-04T02:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T02:00:00-0500", "0 0 2 * * ?", "2012-11-05T02:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 0 3 * * ?", "2012-11-04T03:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T03:00:00-0500", "0 0 3 * * ?", "2012-11-05T03:00:00-0500"),
    ("Mon Jul 9 23:35 2012", "0 0 0 30 Feb ?", ""),
    ("Mon Jul 9 23:35 2012", "0 0 0 31 Apr ?", ""),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 0 3 3 * ?", "2012-12-03T03:00:00-0500"),
    # DST makes midnight not exist (robfig issue 157)
    ("2018-10-17T05:00:00-0400", "TZ=America/Sao_Paulo 0 0 9 10 * ?", "2018-11-10T06:00:00-0500"),
    ("2018-02-14T05:00:00-0500", "TZ=America/Sao_Paulo 0 0 9 22 * ?", "2018-02-22T07:00:00-0500"),
]


def robfig_time(value: str) -> tuple[int, str]:
    """(epoch ms, zone the schedule runs in) for a robfig test time string."""
    if value == "":
        return ZERO_TIME_MS, "UTC"
    zone = "UTC"
    if value.startswith("TZ="):
        prefix, value = value.split()
        zone = prefix[len("TZ="):]
    for layout in ("%a %b %d %H:%M %Y", "%a %b %d %H:%M:%S %Y"):
        try:
            return int(datetime.strptime(value, layout).replace(tzinfo=timezone.utc).timestamp() * 1000), zone
        except ValueError:
            pass
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000), zone


@pytest.mark.parametrize(("after", "spec", "expected"), ROBFIG_NEXT)
def test_robfig_next_table(local_zone, after, spec, expected):
    after_ms, zone = robfig_time(after)
    local_zone(zone)
    assert parse_cron(spec).next(after_ms) == robfig_time(expected)[0]


# --------------------------------------------------------------------------------------------
# Robustness


def test_inputs_outside_go_nanosecond_range_wrap_like_the_reference():
    # The reference converts with time.Unix(0, ms*1e6), whose int64 product wraps: Go's zero time
    # (stored as nextRunTime by never-matching schedules) becomes 1754-08-30T22:43:41.128Z.
    # Expected values were produced by robfig/cron v3.0.1 itself.
    assert parse_cron("@every -3s").next(ZERO_TIME_MS) == -6795364578000
    assert parse_cron("CRON_TZ=UTC @hourly").next(ZERO_TIME_MS) == -6795363600000
    assert parse_cron("0 0 30 2 *").next(ZERO_TIME_MS) == ZERO_TIME_MS
    # just past 2262-04-11T23:47:16.854775807Z the product wraps to 1677
    assert parse_cron("@every 1s").next(9223372036855) == -9223372036000
    assert parse_cron("CRON_TZ=America/New_York 0 0 * * *").next(9223372036855) < 0


def test_negative_milliseconds_round_down_to_the_second():
    assert parse_cron("@every 1s").next(-1) == 0  # -1 ms is in second -1; plus 1 s
    assert parse_cron("TZ=UTC * * * * * *").next(-1) == 0
    assert parse_cron("TZ=UTC * * * * * *").next(-1000) == 0


def test_unsatisfiable_schedules_answer_quickly():
    started = time.perf_counter()
    for expr in ("0 0 30 2 *", "0 0 31 2,4 *", "0 0 0 , * *", ", * * * *"):
        assert parse_cron(expr).next(ms(MONDAY_2024)) == ZERO_TIME_MS
    assert time.perf_counter() - started < 5  # a second-by-second scan would take hours


# --------------------------------------------------------------------------------------------
# Brute-force oracle for zones with a fixed offset: enumerate days, then the earliest time of day.


def oracle_next(schedule: SpecSchedule, zone: ZoneInfo, after_ms: int) -> int:
    def values(bits: int, low: int, high: int) -> list[int]:
        return [value for value in range(low, high + 1) if bits >> value & 1]

    seconds = values(schedule.second, 0, 59)
    minutes = values(schedule.minute, 0, 59)
    hours = values(schedule.hour, 0, 23)
    star = bool((schedule.dom | schedule.dow) & cron._STAR_BIT)
    start = datetime.fromtimestamp(after_ms // 1000 + 1, zone).replace(tzinfo=None)
    day = start.date()
    while day.year <= start.year + 5:
        dom_ok = bool(schedule.dom >> day.day & 1)
        dow_ok = bool(schedule.dow >> ((day.weekday() + 1) % 7) & 1)
        if schedule.month >> day.month & 1 and ((dom_ok and dow_ok) if star else (dom_ok or dow_ok)):
            for hour in hours:
                for minute in minutes:
                    for second in seconds:
                        candidate = datetime(day.year, day.month, day.day, hour, minute, second)
                        if candidate >= start:
                            return int(candidate.replace(tzinfo=zone).timestamp()) * 1000
        day += timedelta(days=1)
    return ZERO_TIME_MS


def random_field(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    def value() -> str:
        number = rng.randint(low, high)
        if names and rng.random() < 0.3:
            name = names[number - low]
            return rng.choice([name, name.upper(), name.capitalize()])
        return str(number)

    def item() -> str:
        kind = rng.randrange(7)
        if kind == 0:
            return rng.choice(["*", "?"])
        if kind == 1:
            return f"{rng.choice(['*', '?'])}/{rng.randint(1, high - low + 2)}"
        if kind == 2:
            a, b = sorted((rng.randint(low, high), rng.randint(low, high)))
            return f"{a}-{b}"
        if kind == 3:
            a, b = sorted((rng.randint(low, high), rng.randint(low, high)))
            return f"{a}-{b}/{rng.randint(1, 10)}"
        if kind == 4:
            return f"{rng.randint(low, high)}/{rng.randint(1, 20)}"
        return value()

    return ",".join(item() for _ in range(rng.choice([1, 1, 1, 2, 3])))


MONTH_NAMES = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DOW_NAMES = "sun mon tue wed thu fri sat".split()


@pytest.mark.parametrize("zone_name", ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Etc/GMT+7"])
def test_next_matches_brute_force_oracle(zone_name):
    rng = random.Random(f"cron-{zone_name}")
    zone = ZoneInfo(zone_name)
    for _ in range(150):
        fields = [
            random_field(rng, 0, 59, None),
            random_field(rng, 0, 59, None),
            random_field(rng, 0, 23, None),
            random_field(rng, 1, 31, None),
            random_field(rng, 1, 12, MONTH_NAMES),
            random_field(rng, 0, 6, DOW_NAMES),
        ]
        if rng.random() < 0.5:
            fields = fields[1:]  # 5-field form: seconds fixed at 0
        expr = f"CRON_TZ={zone_name} " + " ".join(fields)
        schedule = parse_cron(expr)
        after_ms = ms("2021-01-01T00:00:00Z") + rng.randrange(4 * 365 * 86400 * 1000)
        assert schedule.next(after_ms) == oracle_next(schedule, zone, after_ms), expr


def test_consecutive_runs_of_a_daily_schedule_step_one_day_in_utc():
    schedule = parse_cron("TZ=UTC 0 30 6 * * *")
    current = ms(MONDAY_2024)
    runs = []
    for _ in range(400):
        current = schedule.next(current)
        runs.append(current)
    assert runs[0] == ms("2024-01-01T06:30:00Z")
    assert all(b - a == 86_400_000 for a, b in zip(runs, runs[1:]))
    assert datetime.fromtimestamp(runs[-1] / 1000, timezone.utc).date() == date(2024, 1, 1) + timedelta(days=399)


# Go's time_test.go dateTests (Local = America/Los_Angeles): time.Date normalises out-of-range
# fields and resolves DST gaps/overlaps in its own way, which Next() relies on.
@pytest.mark.parametrize(
    ("fields", "unix"),
    [
        ((2011, 11, 6, 1, 0, 0), 1320566400),  # 1:00:00 PDT (first of the two 1 o'clocks)
        ((2011, 11, 6, 1, 59, 59), 1320569999),  # 1:59:59 PDT
        ((2011, 11, 6, 2, 0, 0), 1320573600),  # 2:00:00 PST
        ((2011, 3, 13, 1, 0, 0), 1300006800),  # 1:00:00 PST
        ((2011, 3, 13, 1, 59, 59), 1300010399),  # 1:59:59 PST
        ((2011, 3, 13, 3, 0, 0), 1300010400),  # 3:00:00 PDT
        ((2011, 3, 13, 2, 30, 0), 1300008600),  # 2:30 does not exist: Go gives 1:30 PST
        ((2012, 12, 24, 0, 0, 0), 1356336000),
        ((2011, 11, 18, 7, 56, 26), 1321631786),
        ((2011, 11, 19, -17, 56, 26), 1321631786),
        ((2011, 11, 17, 31, 56, 26), 1321631786),
        ((2011, 11, 18, 6, 116, 26), 1321631786),
        ((2011, 10, 49, 7, 56, 26), 1321631786),
        ((2011, 11, 18, 7, 55, 86), 1321631786),
        ((2012, 1, -43, 7, 56, 26), 1321631786),
        ((2012, -1, 18, 7, 56, 26), 1321631786),
        ((2010, 23, 18, 7, 56, 26), 1321631786),
        ((1970, 1, 15297, 7, 56, 26), 1321631786),
    ],
)
def test_wall_clock_date_matches_go_time_date(fields, unix):
    assert cron._WallClock(ZoneInfo("America/Los_Angeles")).date(*fields) == unix
