"""The policy: rules from failure states to chains of actions, budgets, where traces go.

``Policy(name, rules=[fp.on(state).do(action, ...), ...])`` is checked when it is built (a policy without
an ``Unexpected`` rule is a ``PolicyError``), compiles its detectors once, and guards systems with
``policy.wrap(system)`` or ``@policy.guard``.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from failpath.core import STATES, PolicyError
from failpath.guard.actions import Action, Fallback, Retry, as_action
from failpath.guard.states import (
    BudgetExceeded,
    FailureState,
    Inconsistent,
    InvalidOutput,
    LowConfidence,
    ProviderError,
    State,
    Timeout,
    Unexpected,
)

if TYPE_CHECKING:
    from failpath.guard.engine import AsyncGuardedSystem, GuardedSystem
    from failpath.guard.lint import LintResult
    from failpath.store.base import Store

__all__ = ["Policy", "Rule", "On", "on", "Budget", "StoreSpec"]

log = logging.getLogger("failpath.guard")

#: Where a policy writes traces: a path, a ``Store``, ``None`` for ``.failpath/failpath.db``, ``False`` for nowhere.
StoreSpec = "str | Path | Store | None | bool"


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


# --------------------------------------------------------------------------- store handle


class StoreHandle:
    """Opens a policy's store on first use (thread-safe) and closes or flushes it at the end.

    A store the handle opened itself (from a path, or the default) is closed; a ``Store`` passed in by
    the caller is flushed and left open. A store that cannot be opened is logged once; calls go on
    without traces rather than fail.
    """

    def __init__(self, spec: Any):
        self.spec = spec
        #: What identifies a store this handle opens itself (its resolved path), else None.
        self.key = _store_key(spec)
        self._store: Store | None = None
        self._owned = False
        self._failed = False
        self._lock = threading.Lock()
        if spec is False:
            self._failed = True  # nothing to open, on purpose
        elif spec is not None and spec is not True and not isinstance(spec, (str, Path)):
            if not (callable(getattr(spec, "write_trace", None)) and callable(getattr(spec, "create_ticket", None))):
                raise PolicyError(f"store={spec!r}: give a path, a failpath Store, None (the default .failpath/failpath.db) or False (no store)")
            self._store = spec

    @property
    def disabled(self) -> bool:
        """True when there is no store on purpose (``store=False``)."""
        return self.spec is False

    def get(self) -> Store | None:
        """The store, opened now if needed; None when there is none (``store=False``) or it cannot be opened."""
        store = self._store
        if store is not None or self._failed:
            return store
        with self._lock:
            if self._store is None and not self._failed:
                try:
                    from failpath.store import open_store

                    path = None if self.spec in (None, True) else self.spec
                    self._store = open_store(path)
                    self._owned = True
                except Exception as exc:
                    self._failed = True
                    log.error("failpath: cannot open the trace store %r (%s: %s); calls go on without traces", self.spec, type(exc).__name__, exc)
            return self._store

    def flush(self) -> None:
        """Wait until every trace written so far is on disk."""
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        """Close the store if this handle opened it, else flush it. Idempotent; never raises."""
        store = self._store
        if store is None:
            return
        try:
            if self._owned:
                with self._lock:
                    self._store = None
                store.close()
            else:
                store.flush()
        except Exception as exc:  # a store the caller closed already, say
            log.warning("failpath: flushing or closing the trace store failed (%s: %s)", type(exc).__name__, exc)


def _store_key(spec: Any) -> str | None:
    if spec is None or spec is True:
        return "<default>"
    if isinstance(spec, (str, Path)):
        return str(Path(spec).resolve())
    return None


# --------------------------------------------------------------------------- policy


class Policy:
    """The table from failure states to actions, with budgets and where traces go.

    - ``name``: recorded in every trace.
    - ``rules``: ``fp.on(state).do(action, ...)`` lines; for one call, the first rule that claims the
      detected state runs. One rule must be on ``fp.Unexpected()``.
    - ``max_attempts``: most system calls (first call, retries, fallbacks, samples) for one guarded call.
    - ``deadline``: seconds for the whole guarded call; a call it cuts ends in ``budget_exceeded``.
    - ``budget``: a ``fp.Budget`` of tokens and cost.
    - ``store``: a path, a ``Store``, ``None`` (``.failpath/failpath.db``, opened on the first call) or
      ``False`` (no store; exporters still receive traces).
    - ``store_raw_inputs``: keep the raw input in traces and tickets (off: only a digest and a redacted preview).
    - ``exporters``: objects with ``export(trace)``, called after every call; their errors are logged, never raised.
    - ``waive``: ``{state: reason}`` for catalog states that cannot happen to this system (a deterministic
      parser is never ``inconsistent``); ``lint`` lists them as waived instead of unhandled.
    """

    def __init__(
        self,
        name: str,
        rules: Sequence[Rule],
        *,
        max_attempts: int | None = None,
        deadline: float | None = None,
        budget: Budget | None = None,
        store: Any = None,
        store_raw_inputs: bool = False,
        exporters: Iterable[Any] = (),
        waive: Mapping[str, str] | None = None,
    ):
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(f"Policy(name={name!r}): name must be non-empty text, such as 'address-parser'")
        self.name = name
        if isinstance(rules, Rule) or not isinstance(rules, Sequence):
            raise PolicyError(f"Policy({name!r}, rules=...): rules must be a list of fp.on(state).do(action, ...)")
        for i, rule in enumerate(rules, start=1):
            if isinstance(rule, On):
                raise PolicyError(f"Policy({name!r}), rule {i} {rule.state!r}: the rule has no actions; finish it with .do(action, ...)")
            if not isinstance(rule, Rule):
                raise PolicyError(f"Policy({name!r}), rule {i}: {rule!r} is not a rule; write fp.on(state).do(action, ...)")
        self.rules: tuple[Rule, ...] = tuple(rules)
        if not any(isinstance(rule.state, Unexpected) for rule in self.rules):
            raise PolicyError(
                f"Policy({name!r}): no rule on fp.Unexpected(); add fp.on(fp.Unexpected()).do(fp.Escalate(queue='ops')) "
                "(or another action) so that whatever no other rule claims still has a defined behavior"
            )
        if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1):
            raise PolicyError(f"Policy({name!r}, max_attempts={max_attempts!r}): max_attempts must be an integer of at least 1")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= 0
        ):
            raise PolicyError(f"Policy({name!r}, deadline={deadline!r}): deadline must be a positive number of seconds")
        if budget is not None and not isinstance(budget, Budget):
            raise PolicyError(f"Policy({name!r}, budget={budget!r}): budget must be fp.Budget(tokens=..., cost=..., prices=...)")
        self.max_attempts = max_attempts
        self.deadline = None if deadline is None else float(deadline)
        self.budget = budget
        self.store_raw_inputs = bool(store_raw_inputs)
        self.exporters: tuple[Any, ...] = tuple(exporters)
        for exporter in self.exporters:
            if not callable(getattr(exporter, "export", None)):
                raise PolicyError(f"Policy({name!r}, exporters=[{exporter!r}]): an exporter needs an export(trace) method")
        self.waived: dict[str, str] = {}
        for state, reason in dict(waive or {}).items():
            if not isinstance(reason, str) or not reason.strip():
                raise PolicyError(f"Policy({name!r}, waive={{{state!r}: {reason!r}}}): say why the state cannot happen, as text")
            if state not in STATES:
                raise PolicyError(f"Policy({name!r}, waive={{{state!r}: ...}}): {state!r} is not a catalog state; the catalog is {', '.join(STATES)}")
            if state == "unexpected":
                raise PolicyError(f"Policy({name!r}, waive={{'unexpected': ...}}): unexpected cannot be waived")
            if any(rule.state.name == state for rule in self.rules):
                raise PolicyError(f"Policy({name!r}, waive={{{state!r}: ...}}): {state} has a rule, so it is handled, not waived; drop one of the two")
            self.waived[state] = reason
        self._compile()
        self._store = StoreHandle(store)
        self._handles: list[StoreHandle] = [self._store]
        self._handles_lock = threading.Lock()
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._classify_cache: dict[type, tuple[str, int | None]] = {}
        self._finalizer = weakref.finalize(self, _close_handles, self._handles)

    # ------------------------------------------------------------------ compiled tables
    def _compile(self) -> None:
        """Sort the detectors by when they look, once, so a call only walks short lists."""
        first: dict[type, int] = {}
        self._input_checks: list[tuple[Any, int]] = []
        self._error_claims: list[tuple[Any, int]] = []  # specific claims, in rule order
        self._catch_all: int | None = None
        self._invalid: list[tuple[InvalidOutput, int]] = []
        self._inconsistent: tuple[Inconsistent, int] | None = None
        self._output_checks: list[tuple[Any, int]] = []
        for index, rule in enumerate(self.rules):
            state = rule.state
            first.setdefault(type(state), index)
            if state.stage == "input":
                self._input_checks.append((state, index))
            elif isinstance(state, Timeout):
                self._error_claims.append((state, index))
            elif isinstance(state, ProviderError):
                if state.catch_all:
                    if self._catch_all is None:
                        self._catch_all = index
                    self._error_claims.append((state, index))  # it also claims ProviderFailure, in rule order
                else:
                    self._error_claims.append((state, index))
            elif isinstance(state, InvalidOutput):
                self._invalid.append((state, index))
                self._error_claims.append((state, index))
            elif isinstance(state, Inconsistent):
                if self._inconsistent is None:
                    self._inconsistent = (state, index)
            elif isinstance(state, (LowConfidence, State)):
                self._output_checks.append((state, index))
        # Input checks run in a fixed order, most specific first, whatever the order of the rules.
        priority = {"empty_input": 0, "injection_suspected": 1, "anomalous_input": 3}
        self._input_checks.sort(key=lambda pair: priority.get(pair[0].name, 2))
        self._timeout_index = first.get(Timeout)
        timeout = self.rules[self._timeout_index].state if self._timeout_index is not None else None
        self._timeout_after: float | None = timeout.after if isinstance(timeout, Timeout) else None
        self._budget_index = first.get(BudgetExceeded)
        self._unexpected_index = first[Unexpected]
        self._invalid_index = first.get(InvalidOutput)

    def classify(self, exc: BaseException) -> tuple[str, int | None]:
        """The failure state an exception raised by a system is, and the index of the rule that claims it.

        Timeouts, ``OutputRejected`` and ``ProviderFailure`` and the exception types named by
        ``ProviderError(...)`` rules are claimed first (in rule order); then a ``ProviderError()`` rule
        claims any other exception. Unclaimed: ``(natural state, None)``.
        """
        kind = type(exc)
        cached = self._classify_cache.get(kind)
        if cached is not None:
            return cached
        result: tuple[str, int | None] | None = None
        for state, index in self._error_claims:
            if state.claims(exc):  # type: ignore[attr-defined]
                result = (state.name, index)
                break
        if result is None and self._catch_all is not None:
            result = ("provider_error", self._catch_all)
        if result is None:
            from failpath.core import OutputRejected, ProviderFailure

            if isinstance(exc, TimeoutError):
                result = ("timeout", None)
            elif isinstance(exc, OutputRejected):
                result = ("invalid_output", None)
            elif isinstance(exc, ProviderFailure):
                result = ("provider_error", None)
            else:
                result = ("unexpected", None)
        if len(self._classify_cache) < 256:
            self._classify_cache[kind] = result
        return result

    # ------------------------------------------------------------------ guarding
    @overload
    def wrap(self, system: Callable[[Any], Any], *, name: str | None = None) -> GuardedSystem | AsyncGuardedSystem: ...

    def wrap(self, system: Callable[[Any], Any], *, name: str | None = None) -> Any:
        """Guard ``system``: a sync system gives a ``GuardedSystem``, an ``async def`` one an ``AsyncGuardedSystem``."""
        from failpath.guard.engine import make_guarded

        return make_guarded(self, system, name=name, store=self._store)

    def guard(self, system: Callable[[Any], Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator form of :meth:`wrap`: ``@policy.guard`` or ``@policy.guard(name="parser")``."""
        if system is None:
            return lambda fn: self.wrap(fn, name=name)
        return self.wrap(system, name=name)

    def store_handle(self, store: Any) -> StoreHandle:
        """A handle on another store (what ``with_store`` uses).

        A store opened from a path is closed with the policy; a ``Store`` passed in stays the caller's.
        """
        key = _store_key(store)
        if key is not None:
            with self._handles_lock:
                for handle in self._handles:  # one store per file, however many copies write to it
                    if handle.key == key:
                        return handle
                handle = StoreHandle(store)
                self._handles.append(handle)
            return handle
        return StoreHandle(store)

    def _worker_pool(self) -> Any:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    from failpath.guard.engine import DaemonPool

                    self._pool = DaemonPool(f"failpath-{self.name}")
                pool = self._pool
        return pool

    # ------------------------------------------------------------------ inspection
    def handled_states(self) -> dict[str, tuple[str, ...]]:
        """Each failure state some rule handles, with the names of its actions (in the order they can run)."""
        handled: dict[str, list[str]] = {}
        for rule in self.rules:
            names = handled.setdefault(rule.state.name, [])
            for action in rule.actions:
                if action.name not in names:
                    names.append(action.name)
        return {state: tuple(names) for state, names in handled.items()}

    def lint(self) -> LintResult:
        """Find the catalog states no rule handles and the rules or actions that can never run."""
        from failpath.guard.lint import lint_policy

        return lint_policy(self)

    @property
    def uses_timeout(self) -> bool:
        """True when sync systems are called in a worker thread (a ``Timeout(after=...)`` rule or a ``deadline``)."""
        return self._timeout_after is not None or self.deadline is not None

    def fallbacks(self) -> list[Fallback]:
        """Every ``Fallback`` action in the policy."""
        return [action for rule in self.rules for action in rule.actions if isinstance(action, Fallback)]

    # ------------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        """Wait until every trace written so far is in its store."""
        for handle in list(self._handles):
            handle.flush()

    def close(self) -> None:
        """Flush and close the stores this policy opened (stores passed in are flushed). Idempotent.

        A closed policy still works: the next call opens its store again.
        """
        _close_handles(self._handles)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its constructor's arguments (a check's worker processes rebuild it the same way).

        A store given as an object travels as its path; rules, budget and exporters must pickle themselves.
        """
        spec = self._store.spec
        if not (spec is None or isinstance(spec, (bool, str, Path))):
            path = getattr(spec, "path", None)
            if not isinstance(path, Path):
                raise TypeError(f"Policy({self.name!r}) with store={spec!r} cannot be pickled; give the store as a path")
            spec = path
        return (
            _rebuild_policy,
            (
                type(self),
                self.name,
                {
                    "rules": list(self.rules),
                    "max_attempts": self.max_attempts,
                    "deadline": self.deadline,
                    "budget": self.budget,
                    "store": spec,
                    "store_raw_inputs": self.store_raw_inputs,
                    "exporters": list(self.exporters),
                    "waive": dict(self.waived),
                },
            ),
        )

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, {len(self.rules)} rules)"


def _rebuild_policy(cls: type, name: str, kwargs: dict[str, Any]) -> Policy:
    return cls(name, **kwargs)


def _close_handles(handles: list[StoreHandle]) -> None:
    for handle in list(handles):
        handle.close()
