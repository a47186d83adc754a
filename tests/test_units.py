"""Durations and rates with units."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from npsim.units import (
    PerSecond,
    Seconds,
    format_duration,
    format_rate,
    parse_duration,
    parse_rate,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300s", 300.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("40us", 40e-6),
        ("40µs", 40e-6),
        ("100ns", 100e-9),
        (".5s", 0.5),
        ("1e3ms", 1.0),
        ("2.5e-1s", 0.25),
        (" 10 ms ", 0.01),
        ("0s", 0.0),
        (0, 0.0),  # zero needs no unit
        (0.0, 0.0),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (60, "a duration needs a unit: write '60s' or '60ms', not the bare number 60"),
        (0.5, "a duration needs a unit: write '0.5s' or '0.5ms'"),
        ("60", "expected a duration such as '300s', '5m', '250ms' or '40us', got '60'"),
        ("5 sec", "got '5 sec'"),
        ("5d", "got '5d'"),
        ("5S", "got '5S'"),  # units are lower case: 5M would read as mega
        ("-5s", "got '-5s'"),
        ("s", "got 's'"),
        ("", "got ''"),
        ("fast", "got 'fast'"),
        ("500/s", "got '500/s'"),
        (True, "expected a duration with a unit such as '250ms', got True"),
    ],
)
def test_parse_duration_errors(text: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("500/s", 500.0),
        ("30/m", 0.5),
        ("30/min", 0.5),
        ("3600/h", 1.0),
        ("2/ms", 2000.0),
        ("1.5/s", 1.5),
        ("500 / s", 500.0),
        ("1e3/s", 1000.0),
    ],
)
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "expected a rate such as '500/s' or '30/m', got 'fast'"),
        ("500", "got '500'"),
        ("500s", "got '500s'"),
        ("500/sec", "got '500/sec'"),
        ("500 rps", "got '500 rps'"),
        ("/s", "got '/s'"),
        (500, "a rate needs a unit: write '500/s', not the bare number 500"),
        (0, "a rate needs a unit"),
        (True, "expected a rate such as '500/s' or '30/m', got True"),
    ],
)
def test_parse_rate_errors(text: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate(text)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (3600, "1h"),
        (120, "2m"),
        (90, "90s"),  # not a whole number of minutes
        (1.5, "1.5s"),
        (0.005, "5ms"),
        (40e-6, "40us"),
        (5e-8, "50ns"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-9)


@pytest.mark.parametrize("noise", [2.276e-16, -3e-13, 9e-11])
def test_format_duration_reads_clock_rounding_as_zero(noise: float) -> None:
    """A mean of waits that are all zero but for float rounding prints as none."""
    assert format_duration(noise) == "0s"
    assert format_duration(1e-10) == "0.1ns"


def test_format_rate() -> None:
    assert format_rate(500.0) == "500/s"
    assert parse_rate(format_rate(1 / 3)) == pytest.approx(1 / 3, rel=1e-5)


class _Timing(BaseModel):
    duration: Seconds
    rate: PerSecond


def test_fields_require_units_in_yaml_but_not_from_python() -> None:
    from_yaml = _Timing.model_validate({"duration": "5m", "rate": "30/m"},
                                       context={"yaml": True})
    assert (from_yaml.duration, from_yaml.rate) == (300.0, 0.5)
    # Python callers work in seconds and events per second
    assert _Timing(duration=2.5, rate=100).duration == 2.5
    with pytest.raises(ValidationError) as info:
        _Timing.model_validate({"duration": 60, "rate": 500}, context={"yaml": True})
    errors = {e["loc"]: e["msg"] for e in info.value.errors()}
    assert "a duration needs a unit" in errors[("duration",)]
    assert "a rate needs a unit" in errors[("rate",)]


def test_fields_are_non_negative() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _Timing(duration=-1.0, rate=1.0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _Timing(duration=1.0, rate=-1.0)


def test_json_dump_round_trips_exactly() -> None:
    value = _Timing(duration=0.1 + 0.2, rate=1 / 3)
    dumped = value.model_dump(mode="json")
    assert dumped == {"duration": f"{0.1 + 0.2!r}s", "rate": f"{1 / 3!r}/s"}
    again = _Timing.model_validate(dumped, context={"yaml": True})
    assert again == value
