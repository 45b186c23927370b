"""Durations and times as users write them for --since, --until, --window and --older-than."""

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failpath.core import ConfigError
from failpath.watch.timespec import format_duration, format_time, parse_duration, parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800),
     ("250ms", 0.25), ("2.5s", 2.5), ("45", 45), (" 10M ", 600)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "-5m", "0s", "5m junk", "m5", "1h-30m", "nan", "inf"])
def test_bad_durations_name_the_option_and_the_value(text):
    with pytest.raises(ConfigError) as info:
        parse_duration(text, option="--window")
    assert "--window" in str(info.value)
    assert repr(text) in str(info.value) or "empty" in str(info.value)


def test_times_relative_iso_and_now():
    now = 1_714_564_800.0  # 2024-05-01T12:00:00Z
    assert parse_time("1h", now=now) == now - 3600
    assert parse_time("now", now=now) == now
    assert parse_time("2024-05-01T12:00:00Z", now=now) == now
    assert parse_time("2024-05-01T14:00:00+02:00", now=now) == now
    local = datetime(2024, 5, 1, 12, 0).timestamp()  # no zone: the machine's local time
    assert parse_time("2024-05-01T12:00", now=now) == local
    assert format_time(now) == "2024-05-01T12:00:00Z"


@pytest.mark.parametrize("text", ["yesterday", "1x", "2024-13-01", "12:00pm", ""])
def test_bad_times_say_what_is_accepted(text):
    with pytest.raises(ConfigError) as info:
        parse_time(text, option="--since")
    message = str(info.value)
    assert message.startswith("--since") and "ISO 8601" in message


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=10_000_000))
def test_format_and_parse_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_iso_times_round_trip_to_the_second(moment):
    seconds = moment.replace(tzinfo=timezone.utc, microsecond=0).timestamp()
    assert parse_time(format_time(seconds)) == seconds
