"""Values the store's queries return to the layers above it (defined here so the store needs nothing from them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

__all__ = ["ProductionSample"]


@dataclasses.dataclass(frozen=True)
class ProductionSample:
    """What :func:`failpath.watch.drift` reads from the traces of one policy in one window."""

    n: int
    answered: int
    outcome_counts: Mapping[str, int]
    state_counts: Mapping[str, int]  # calls on which each failure state was detected
    confidences: Sequence[float]  # the system's raw confidence on its first call, where it reported one
