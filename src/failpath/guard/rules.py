"""The lines of a policy: ``fp.on(state).do(action, ...)`` rules, and the ``Budget`` of one guarded call."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from failpath.core import PolicyError
from failpath.guard.actions import Action, as_action
from failpath.guard.states import FailureState

__all__ = ["Rule", "On", "on", "Budget"]


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of a policy: when ``state`` is detected, run ``actions`` in order until one resolves the call."""

    state: FailureState
    actions: tuple[Action, ...]

    def __repr__(self) -> str:
        return f"on({self.state!r}).do({', '.join(map(repr, self.actions))})"


@dataclass(frozen=True, slots=True)
class On:
    """The first half of a rule, ``fp.on(state)``; finish it with ``.do(action, ...)``."""

    state: FailureState

    def do(self, *actions: Any) -> Rule:
        """The rule that runs ``actions`` (a chain: each runs when the one before did not resolve the call)."""
        where = f"on({self.state!r}).do(...)"
        if not actions:
            raise PolicyError(f"{where}: give at least one action, such as fp.Abstain('reason')")
        return Rule(self.state, tuple(as_action(action, where) for action in actions))


def on(state: FailureState) -> On:
    """Start a rule on a failure state: ``fp.on(fp.Timeout(after=2.0)).do(fp.Retry(1), fp.Default(None))``."""
    if isinstance(state, type) and issubclass(state, FailureState):
        raise PolicyError(f"on({state.__name__}): build the failure state, e.g. fp.on(fp.{state.__name__}(...))")
    if not isinstance(state, FailureState):
        raise PolicyError(f"on({state!r}): not a failure state; use fp.Timeout(...), fp.ProviderError(), fp.State('name', predicate), ...")
    return On(state)


# --------------------------------------------------------------------------- budget


@dataclass(frozen=True, slots=True)
class Budget:
    """A cost budget across the retries, fallbacks and samples of one guarded call.

    ``tokens`` caps input plus output tokens; ``cost`` caps money, priced per model by
    ``prices={model: (input_per_token, output_per_token)}``. Usage comes from a system's
    ``Prediction.meta["usage"] = {"input_tokens": n, "output_tokens": m, "model": "..."}``, or from a ``usage``
    mapping on the exception of a failed call (tokens spent on a rejected answer count); a usage with no
    model is priced by the only price given, or by the price under ``"*"``. The guard stops calling when a
    limit is reached (the state ``budget_exceeded``); it never throws away an answer already paid for.
    """

    tokens: int | None = None
    cost: float | None = None
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tokens is not None and (isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens <= 0):
            raise PolicyError(f"Budget(tokens={self.tokens!r}): tokens must be a positive integer")
        if self.cost is not None and (
            isinstance(self.cost, bool) or not isinstance(self.cost, (int, float)) or not math.isfinite(self.cost) or self.cost <= 0
        ):
            raise PolicyError(f"Budget(cost={self.cost!r}): cost must be a positive number")
        if not isinstance(self.prices, Mapping):
            raise PolicyError(f"Budget(prices={self.prices!r}): prices must be a dict {{model: (input_per_token, output_per_token)}}")
        clean: dict[str, tuple[float, float]] = {}
        for model, price in self.prices.items():
            ok = isinstance(model, str) and isinstance(price, (tuple, list)) and len(price) == 2
            ok = ok and all(not isinstance(p, bool) and isinstance(p, (int, float)) and math.isfinite(p) and p >= 0 for p in price)
            if not ok:
                raise PolicyError(
                    f"Budget(prices={{{model!r}: {price!r}}}): each price must be (input_per_token, output_per_token), two numbers of at least 0"
                )
            clean[model] = (float(price[0]), float(price[1]))
        object.__setattr__(self, "prices", clean)
        if self.cost is not None and not clean:
            raise PolicyError(f"Budget(cost={self.cost!r}): a cost budget needs prices={{model: (input_per_token, output_per_token)}}")
        if self.tokens is None and self.cost is None:
            raise PolicyError("Budget(): give tokens=..., cost=... or both")

    def price_of(self, model: str | None) -> tuple[float, float] | None:
        """The per-token prices for ``model`` (see the class docstring for usages with no model), or None."""
        if model is not None and model in self.prices:
            return self.prices[model]
        if "*" in self.prices:
            return self.prices["*"]
        if model is None and len(self.prices) == 1:
            return next(iter(self.prices.values()))
        return None
