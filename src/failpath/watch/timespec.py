"""Durations and points in time as a user writes them: ``90s``, ``5m``, ``1h30m``, ``2d``, ISO 8601.

Used by ``--since``, ``--until``, ``--window`` and ``--older-than``. A bad value raises
:class:`~failpath.core.ConfigError` naming the option, the value and what is accepted.
"""

from __future__ import annotations

import math
import re
import time as _time
from datetime import datetime, timezone

from failpath.core import ConfigError

__all__ = ["parse_duration", "parse_time", "format_duration", "format_time"]

_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ACCEPTED = "a duration such as 90s, 5m, 1h30m, 2d, 1w"


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in ``text`` (``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``; a bare number means seconds).

    Raises ``ConfigError`` naming ``option`` when the text is not a positive duration.
    """
    raw = text.strip().lower().replace(" ", "")
    if not raw:
        raise ConfigError(f"{option}: empty value; expected {_ACCEPTED}")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is None:
        pos = 0
        seconds = 0.0
        for match in _PART.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or pos == 0:
            raise ConfigError(f"{option}: cannot read {text!r} as a duration; expected {_ACCEPTED}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{option}: {text!r} is not a positive duration; expected {_ACCEPTED}")
    return seconds


def parse_time(text: str, *, option: str = "time", now: float | None = None) -> float:
    """Unix seconds for ``text``: a duration ago (``1h`` = one hour before now), ``now``, or an ISO 8601 time.

    An ISO time without a zone (``2024-05-01T12:00``) is read in the machine's local zone;
    ``Z`` or ``+02:00`` say otherwise. Raises ``ConfigError`` naming ``option`` on anything else.
    """
    raw = text.strip()
    now = _time.time() if now is None else now
    if raw.lower() == "now":
        return now
    if raw and (raw[0].isdigit() or raw[0] == ".") and _looks_like_duration(raw):
        return now - parse_duration(raw, option=option)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"{option}: cannot read {text!r}; expected {_ACCEPTED} (meaning that long ago), "
            "'now', or an ISO 8601 time such as 2024-05-01T12:00:00Z"
        ) from None
    return moment.timestamp()


def _looks_like_duration(raw: str) -> bool:
    lowered = raw.lower().replace(" ", "")
    return bool(re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+|\d+(?:\.\d+)?", lowered))


def format_duration(seconds: float) -> str:
    """A short human rendering of ``seconds``: ``5m``, ``1h30m``, ``2d``, ``45s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    remaining = int(round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            count, remaining = divmod(remaining, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_time(seconds: float) -> str:
    """``seconds`` (Unix) as an ISO 8601 UTC time to the second, e.g. ``2024-05-01T12:00:00Z``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
