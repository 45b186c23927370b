"""The refunds desk under the policy a demo has: ``failpath check --example refunds_demo`` (see ``failpath.examples.refunds.checking``)."""

from __future__ import annotations

from typing import Any

__all__ = ["agent_check_kwargs"]


def agent_check_kwargs() -> dict[str, Any]:
    """The desk's agent check under the demo policy: the same tasks, trials, chaos and budgets as ``--example refunds``."""
    from failpath.examples.refunds.checking import agent_check_kwargs as desk

    return desk("demo")
