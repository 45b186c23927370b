"""Watch a guarded system in production: trace queries, drift alarms, OpenTelemetry, the review queue.

Names load on first use, so importing this package imports neither scipy nor OpenTelemetry.

- :func:`drift` compares production traces with the check run a policy was calibrated on.
- :class:`OTelExporter` turns each guarded call into an OpenTelemetry span.
- :mod:`failpath.watch.review` (also ``fp.review``) reads and resolves review tickets.
- :func:`trace_stats` summarises traces per time window.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "drift": "failpath.watch.driftcheck",
    "DriftReport": "failpath.watch.driftcheck",
    "DriftFigure": "failpath.watch.driftcheck",
    "DriftThresholds": "failpath.watch.driftcheck",
    "BaselineMissing": "failpath.watch.driftcheck",
    "NoTraces": "failpath.watch.driftcheck",
    "OTelExporter": "failpath.watch.otel",
    "OTelUnavailable": "failpath.watch.otel",
    "ReviewTicket": "failpath.watch.review",
    "trace_stats": "failpath.watch.stats",
    "TraceStats": "failpath.watch.stats",
    "WindowStats": "failpath.watch.stats",
    "parse_duration": "failpath.watch.timespec",
    "parse_time": "failpath.watch.timespec",
}

_SUBMODULES = ("review", "driftcheck", "otel", "stats", "timespec")

__all__ = [*_LAZY, "review"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"failpath.watch.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'failpath.watch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
