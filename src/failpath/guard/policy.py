"""The policy: rules from failure states to chains of actions, budgets, where traces go.

``Policy(name, rules=[fp.on(state).do(action, ...), ...])`` is checked when it is built (a policy without
an ``Unexpected`` rule is a ``PolicyError``), compiles its detectors once, and guards systems with
``policy.wrap(system)`` or ``@policy.guard``.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from failpath.core import STATES, PolicyError, reason_problem
from failpath.guard.actions import Fallback
from failpath.guard.engine import AsyncGuardedSystem, GuardedSystem, make_guarded
from failpath.guard.lint import LintResult, lint_table
from failpath.guard.rules import Budget, On, Rule, on
from failpath.guard.states import Unexpected
from failpath.guard.stores import StoreHandle, StoreSpec, store_key
from failpath.guard.table import PolicyTable
from failpath.guard.workers import DaemonPool

__all__ = ["Policy", "Rule", "On", "on", "Budget", "StoreSpec"]


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
      parser is never ``inconsistent``), each reason a sentence of at least ``failpath.core.MIN_REASON_LENGTH``
      (10) characters; ``lint`` lists them as waived instead of unhandled, and ``fp.check`` counts them as waived.
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
        checked_rules = _checked_rules(name, rules)
        _check_budgets(name, max_attempts, deadline, budget)
        exporters = tuple(exporters)
        for exporter in exporters:
            if not callable(getattr(exporter, "export", None)):
                raise PolicyError(f"Policy({name!r}, exporters=[{exporter!r}]): an exporter needs an export(trace) method")
        #: The policy compiled for the guard: its settings and its detectors sorted by when they look.
        self.table = PolicyTable.compile(
            name,
            checked_rules,
            max_attempts=max_attempts,
            deadline=None if deadline is None else float(deadline),
            budget=budget,
            store_raw_inputs=bool(store_raw_inputs),
            exporters=exporters,
            waived=_checked_waivers(name, checked_rules, waive),
        )
        self._store = StoreHandle(store)
        self._handles: list[StoreHandle] = [self._store]
        self._handles_lock = threading.Lock()
        self._pool: DaemonPool | None = None
        self._pool_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release_owned, self._handles)

    # ------------------------------------------------------------------ settings (read-only)
    @property
    def name(self) -> str:
        """The policy's name, recorded in every trace."""
        return self.table.name

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in the order given."""
        return self.table.rules

    @property
    def max_attempts(self) -> int | None:
        """Most system calls for one guarded call, or None."""
        return self.table.max_attempts

    @property
    def deadline(self) -> float | None:
        """Seconds for one whole guarded call, or None."""
        return self.table.deadline

    @property
    def budget(self) -> Budget | None:
        """The token and cost budget of one guarded call, or None."""
        return self.table.budget

    @property
    def store_raw_inputs(self) -> bool:
        """True when traces and tickets keep the raw input."""
        return self.table.store_raw_inputs

    @property
    def exporters(self) -> tuple[Any, ...]:
        """The objects whose ``export(trace)`` is called after every call."""
        return self.table.exporters

    @property
    def waived(self) -> Mapping[str, str]:
        """``{state: reason}`` for the catalog states waived as impossible for this system."""
        return self.table.waived

    def classify(self, exc: BaseException) -> tuple[str, int | None]:
        """The failure state an exception raised by a system is, and the index of the rule that claims it.

        Timeouts, ``OutputRejected`` and ``ProviderFailure`` and the exception types named by
        ``ProviderError(...)`` rules are claimed first (in rule order); then a ``ProviderError()`` rule
        claims any other exception. Unclaimed: ``(natural state, None)``.
        """
        return self.table.classify(exc)

    # ------------------------------------------------------------------ guarding
    @overload
    def wrap(self, system: Callable[[Any], Any], *, name: str | None = None) -> GuardedSystem | AsyncGuardedSystem: ...

    def wrap(self, system: Callable[[Any], Any], *, name: str | None = None) -> Any:
        """Guard ``system``: a sync system gives a ``GuardedSystem``, an ``async def`` one an ``AsyncGuardedSystem``."""
        return make_guarded(self, system, name=name, store=self._store)

    def guard(self, system: Callable[[Any], Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator form of :meth:`wrap`: ``@policy.guard`` or ``@policy.guard(name="parser")``."""
        if system is None:
            return lambda fn: self.wrap(fn, name=name)
        return self.wrap(system, name=name)

    @property
    def trace_store(self) -> StoreHandle:
        """The handle on this policy's own store (opened on first use): where its traces and tickets go."""
        return self._store

    def store_handle(self, store: Any) -> StoreHandle:
        """A handle on another store (what ``with_store`` uses).

        A store opened from a path is closed with the policy; a ``Store`` passed in stays the caller's.
        """
        key = store_key(store)
        if key is not None:
            with self._handles_lock:
                for handle in self._handles:  # one store per file, however many copies write to it
                    if handle.key == key:
                        return handle
                handle = StoreHandle(store)
                self._handles.append(handle)
            return handle
        return StoreHandle(store)

    def _worker_pool(self) -> DaemonPool:
        """The worker threads of this policy's sync systems under a time limit (started on first use)."""
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = DaemonPool(f"failpath-{self.name}")
                pool = self._pool
        return pool

    # ------------------------------------------------------------------ inspection
    def handled_states(self) -> dict[str, tuple[str, ...]]:
        """Each failure state some rule handles, with the names of its actions (in the order they can run)."""
        return self.table.handled_states()

    def lint(self, waive: Mapping[str, str] | None = None) -> LintResult:
        """Find the catalog states no rule handles and the rules or actions that can never run.

        ``waive`` adds waivers declared outside the policy (``[waive]`` of a ``failpath.toml``, which
        ``failpath check`` honours too): ``{state: reason}``, checked as ``Policy(waive=...)`` is, except that
        a waiver of a state the policy handles is ignored (the rule wins). Names that are not failure states
        (the chaos families a check may waive) are not lint's and are skipped.
        """
        extra = {s: r for s, r in dict(waive or {}).items() if s in STATES and s not in self.handled_states()}
        return lint_table(self.table, store_disabled=self._store.disabled,
                          waived={**self.waived, **_checked_waivers(self.name, self.rules, extra)})

    @property
    def uses_timeout(self) -> bool:
        """True when sync systems are called in a worker thread (a ``Timeout(after=...)`` rule or a ``deadline``)."""
        return self.table.uses_timeout

    def fallbacks(self) -> list[Fallback]:
        """Every ``Fallback`` action in the policy."""
        return self.table.fallbacks()

    # ------------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        """Wait until every trace written so far is in its store."""
        for handle in list(self._handles):
            handle.flush()

    def close(self) -> int:
        """Flush and close the stores this policy opened (stores passed in are flushed). Idempotent.

        Returns how many traces were lost since the last ``flush()`` (a store that could not be opened or
        could not write them; each loss is logged too); ``flush()`` raises ``StoreError`` instead.
        A closed policy still works: the next call opens its store again. The idle worker threads of a
        ``Timeout`` rule or a ``deadline`` exit (a call still running ends on its own; a later call starts
        a new worker).
        """
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        return _close_handles(self._handles)

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


def _close_handles(handles: list[StoreHandle]) -> int:
    return sum(handle.close() for handle in list(handles))


def _release_owned(handles: list[StoreHandle]) -> int:
    """At garbage collection: close the stores the policy opened itself. A ``Store`` passed in is left
    alone: it is the caller's (it flushes itself when closed, dropped, or at exit), and flushing it
    here could wait for a lock the thread running the collection holds (a deadlock)."""
    return sum(handle.close() for handle in list(handles) if handle.owned)


def _checked_rules(name: str, rules: Any) -> tuple[Rule, ...]:
    """``rules`` as a tuple, after checking each is a finished rule and one is on ``Unexpected``."""
    if isinstance(rules, Rule) or not isinstance(rules, Sequence):
        raise PolicyError(f"Policy({name!r}, rules=...): rules must be a list of fp.on(state).do(action, ...)")
    for i, rule in enumerate(rules, start=1):
        if isinstance(rule, On):
            raise PolicyError(f"Policy({name!r}), rule {i} {rule.state!r}: the rule has no actions; finish it with .do(action, ...)")
        if not isinstance(rule, Rule):
            raise PolicyError(f"Policy({name!r}), rule {i}: {rule!r} is not a rule; write fp.on(state).do(action, ...)")
    if not any(isinstance(rule.state, Unexpected) for rule in rules):
        raise PolicyError(
            f"Policy({name!r}): no rule on fp.Unexpected(); add fp.on(fp.Unexpected()).do(fp.Escalate(queue='ops')) "
            "(or another action) so that whatever no other rule claims still has a defined behavior"
        )
    return tuple(rules)


def _check_budgets(name: str, max_attempts: Any, deadline: Any, budget: Any) -> None:
    if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1):
        raise PolicyError(f"Policy({name!r}, max_attempts={max_attempts!r}): max_attempts must be an integer of at least 1")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= 0
    ):
        raise PolicyError(f"Policy({name!r}, deadline={deadline!r}): deadline must be a positive number of seconds")
    if budget is not None and not isinstance(budget, Budget):
        raise PolicyError(f"Policy({name!r}, budget={budget!r}): budget must be fp.Budget(tokens=..., cost=..., prices=...)")


def _checked_waivers(name: str, rules: tuple[Rule, ...], waive: Mapping[str, str] | None) -> dict[str, str]:
    """``{state: reason}`` after checking each state is a catalog state with no rule, and the reason is a sentence."""
    waived: dict[str, str] = {}
    for state, reason in dict(waive or {}).items():
        if state not in STATES:
            raise PolicyError(f"Policy({name!r}, waive={{{state!r}: ...}}): {state!r} is not a catalog state; the catalog is {', '.join(STATES)}")
        if state == "unexpected":
            raise PolicyError(f"Policy({name!r}, waive={{'unexpected': ...}}): unexpected cannot be waived")
        if any(rule.state.name == state for rule in rules):
            raise PolicyError(f"Policy({name!r}, waive={{{state!r}: ...}}): {state} has a rule, so it is handled, not waived; drop one of the two")
        problem = reason_problem(reason)
        if problem:
            raise PolicyError(f"Policy({name!r}, waive={{{state!r}: {reason!r}}}): the waiver {problem}")
        waived[state] = reason.strip()
    return waived
