"""Durations and rates written with units, as scenario files carry them.

NodePort work mixes microseconds (DNAT, hops), milliseconds (service) and minutes
(runs, failures), so a bare number is ambiguous: every duration and rate in a scenario
carries its unit. Internally npsim works in seconds and events per second.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, ValidationInfo

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_DURATION_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zµ]+)\s*$")
_RATE_RE = re.compile(rf"^\s*({_NUMBER})\s*/\s*([a-z]+)\s*$")


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration such as ``300s``, ``5m``, ``250ms``, ``40us`` or ``1.5h``.

    A bare ``0`` is accepted (zero needs no unit); any other bare number is refused,
    because ``5`` could mean 5 s or 5 ms.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration with a unit such as '250ms', got {text!r}")
    if isinstance(text, int | float):
        if text == 0:
            return 0.0
        raise ValueError(
            f"a duration needs a unit: write '{text}s' or '{text}ms', not the bare number {text}"
        )
    match = _DURATION_RE.match(str(text))
    if not match or match.group(2) not in _DURATION_UNITS:
        raise ValueError(
            f"expected a duration such as '300s', '5m', '250ms' or '40us', got {text!r}"
        )
    value = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is too large a duration")
    return value


def parse_rate(text: str | int | float) -> float:
    """Events per second in a rate such as ``500/s``, ``30/m`` or ``2/ms``."""
    if isinstance(text, bool):
        raise ValueError(f"expected a rate such as '500/s' or '30/m', got {text!r}")
    if isinstance(text, int | float):
        raise ValueError(f"a rate needs a unit: write '{text}/s', not the bare number {text}")
    match = _RATE_RE.match(str(text))
    if not match or match.group(2) not in _DURATION_UNITS:
        raise ValueError(f"expected a rate such as '500/s' or '30/m', got {text!r}")
    value = float(match.group(1)) / _DURATION_UNITS[match.group(2)]
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is too large a rate")
    return value


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_SIZE_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes in a size such as ``4GiB``, ``500MB`` or ``1048576``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE_RE.match(str(text))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as '4GiB' or '500MB', got {text!r}")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value > 1 << 60:
        raise ValueError(f"{text!r} is too large a size")
    return int(value)


def format_size(size: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


# below this a duration is the rounding of the simulation's float clock, not time spent:
# a difference of two times near t = 10,000 s is off by up to an ulp, 1.8e-12 s (a mean
# queue wait of 2.3e-16 s read "2.276e-07ns"); nothing a scenario models is this short
ROUNDING = 1e-10


def format_duration(seconds: float, digits: int = 6) -> str:
    """The shortest readable unit for a duration in seconds (summaries, messages)."""
    if seconds != seconds:  # NaN
        return "-"
    if abs(seconds) < ROUNDING:
        return "0s"
    for unit, scale in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        whole_minutes = unit in ("h", "m") and seconds % scale == 0
        if abs(seconds) >= scale and (unit not in ("h", "m") or whole_minutes):
            return f"{seconds / scale:.{digits}g}{unit}"
    return f"{seconds / 1e-9:.{digits}g}ns"


def format_rate(per_second: float) -> str:
    return f"{per_second:.6g}/s"


def _seconds_field(value: object, info: ValidationInfo) -> float:
    """Scenario files must write units; Python callers may pass plain seconds."""
    from_yaml = bool(info.context and info.context.get("yaml"))
    if not from_yaml and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_duration(value)  # type: ignore[arg-type]


def _rate_field(value: object, info: ValidationInfo) -> float:
    from_yaml = bool(info.context and info.context.get("yaml"))
    if not from_yaml and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_rate(value)  # type: ignore[arg-type]


def _exact_seconds(value: float) -> str:
    # repr round-trips exactly, so a resolved scenario repeats the run bit for bit
    return f"{value!r}s"


def _exact_rate(value: float) -> str:
    return f"{value!r}/s"


Seconds = Annotated[
    float,
    BeforeValidator(_seconds_field),
    Field(ge=0, allow_inf_nan=False),
    PlainSerializer(_exact_seconds, when_used="json"),
]
"""A non-negative duration in seconds, written with a unit in YAML."""

def _positive_wait(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0s (0 would fail every request at once; leave "
                         "the field out for no deadline)")
    return value


Timeout = Annotated[Seconds, AfterValidator(_positive_wait)]
"""How long a client waits for an answer or a connection: more than zero."""

PerSecond = Annotated[
    float,
    BeforeValidator(_rate_field),
    Field(ge=0, allow_inf_nan=False),
    PlainSerializer(_exact_rate, when_used="json"),
]
"""A non-negative rate in events per second, written like ``500/s`` in YAML."""
