"""``failpath check --example addresses.shipping``: the example with the policy written after its first report."""

from __future__ import annotations

from typing import Any

from failpath.examples.addresses.example import check_kwargs as _check_kwargs

__all__ = ["check_kwargs"]


def check_kwargs(n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``failpath.examples.addresses.check_kwargs(n, seed, policy="shipping")``."""
    return _check_kwargs(n, seed, policy="shipping")
