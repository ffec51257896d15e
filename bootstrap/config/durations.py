"""Go durations (``time.ParseDuration`` / ``Duration.String``), for the config and the command line.

Kept apart from the config model so that parsing a ``--timeout`` flag does not load pydantic.
"""

from __future__ import annotations

import re
from datetime import timedelta

_GO_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
_GO_MAX_NS = (1 << 63) - 1  # a Go time.Duration is an int64 count of nanoseconds


def parse_go_duration(text: str) -> timedelta:
    """Parse a Go duration string (``8760h``, ``4m0s``, ``1h30m``, ``500ms``) to a timedelta.

    Raises ``ValueError`` for anything Go's ``time.ParseDuration`` would reject, including values
    beyond its int64-nanosecond range (about 2562047h) and non-ASCII digits.
    """
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    if not s:
        raise ValueError(f"{text!r} is not a Go duration")
    pos = 0
    total_ns = 0
    while pos < len(s):
        match = _GO_DURATION_PART.match(s, pos)
        whole, frac, unit = match.groups() if match else ("", None, "")
        if match is None or (not whole and not frac):
            raise ValueError(f"{text!r} is not a Go duration")
        scale = _GO_UNITS_NS[unit]
        total_ns += int(whole or "0") * scale
        if frac:
            total_ns += int(frac) * scale // 10 ** len(frac)
        if total_ns > _GO_MAX_NS:
            raise ValueError(f"{text!r} is out of range for a Go duration (at most 2562047h)")
        pos = match.end()
    return timedelta(microseconds=sign * (total_ns // 1000))


def _trim_fraction(whole: int, frac: int, digits: int) -> str:
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def format_go_duration(value: timedelta) -> str:
    """Print a timedelta the way Go's ``time.Duration.String`` does (``8760h0m0s``, ``4m0s``, ``500ms``)."""
    total_us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if total_us == 0:
        return "0s"
    sign = "-" if total_us < 0 else ""
    us = abs(total_us)
    if us < 1_000:
        return f"{sign}{us}µs"
    if us < 1_000_000:
        return f"{sign}{_trim_fraction(us // 1_000, us % 1_000, 3)}ms"
    hours, rest = divmod(us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds = _trim_fraction(rest // 1_000_000, rest % 1_000_000, 6) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"
