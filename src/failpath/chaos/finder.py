"""Search for a silent failure: compose perturbations until the system answers wrong, confidently, then
shrink the composition to the smallest one that still fails.

Hypothesis is the engine: a strategy draws a list of ``(perturbation, seed)`` steps, ``find`` looks for a
list whose variant the system gets wrong with confidence at least ``min_confidence`` (steered by
``target`` towards wrong answers given with high confidence), and Hypothesis's shrinking reduces the list.
A final pass first drops edits that cancel (steps after which the input and expected answer are back to
what they were earlier in the chain: ``WILLIE -> WIPLIE -> WILLIE`` is two typos that did nothing), then
removes single steps while the failure persists. ``SearchResult.minimal`` is True only once the result
was replayed without each single step and every such replay was seen to make the failure go away.
:func:`shrink` runs that pass on steps you already have.

The search is quiet (no Hypothesis database, nothing written to disk), deterministic for a given ``seed``
and a deterministic system, and bounded by ``max_examples`` and ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from failpath.chaos.base import Edit, LabelContract, NotApplicable, Perturbation, Variant, derive_rng, weakest
from failpath.chaos.suites import REALISTIC
from failpath.core import Case, ConfigError, Prediction

__all__ = ["search", "shrink", "replay", "SearchResult", "DEFAULT_SEARCH_PERTURBATIONS"]

Step = tuple[str, int]


def _default_perturbations() -> tuple[Perturbation, ...]:
    return tuple(
        p
        for p in REALISTIC.perturbations
        if p.contract is not LabelContract.NOT_PRESERVED and "+" not in p.name and p.name != "crm_mix"
    )


#: What :func:`search` composes by default: the realistic perturbations that keep the expected answer.
DEFAULT_SEARCH_PERTURBATIONS: tuple[Perturbation, ...] = _default_perturbations()


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found.

    ``found`` is False when no silent failure turned up within the budget (then the other fields describe
    nothing). Otherwise ``input`` and ``expected`` are the failing variant, ``edits`` what changed from the
    case, ``steps`` the ``(perturbation, seed)`` list that reproduces it, ``output`` and ``confidence`` what
    the system said. ``n_tried`` counts the system calls made. ``minimal`` is True only when the steps
    hold no edits that cancel and replaying them without each single step was checked to make the
    system right again (False when time ran out before every such replay was made).
    """

    found: bool
    input: Any = None
    expected: Any = None
    edits: tuple[Edit, ...] = ()
    output: Any = None
    confidence: float | None = None
    n_tried: int = 0
    steps: tuple[Step, ...] = ()
    contract: LabelContract | None = None
    minimal: bool = False
    case_id: str = ""
    elapsed_s: float = 0.0
    timed_out: bool = False

    @property
    def perturbation(self) -> str:
        """The perturbations of the steps, joined with ``+`` (``"clean"`` when the clean case fails)."""
        return "+".join(name for name, _ in self.steps) or "clean"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly rendering."""
        return {
            "found": self.found,
            "case_id": self.case_id,
            "input": self.input,
            "expected": self.expected,
            "edits": [e.to_dict() for e in self.edits],
            "output": self.output,
            "confidence": self.confidence,
            "n_tried": self.n_tried,
            "steps": [list(s) for s in self.steps],
            "perturbation": self.perturbation if self.found else None,
            "contract": self.contract.value if self.contract else None,
            "minimal": self.minimal,
            "timed_out": self.timed_out,
        }


@dataclass
class _Outcome:
    failed: bool  # wrong with enough confidence: the condition the search looks for
    score: float  # steers Hypothesis: higher is closer to a confident wrong answer
    case: Case
    edits: tuple[Edit, ...]
    contract: LabelContract
    output: Any
    confidence: float | None
    applied: tuple[Step, ...]


@dataclass
class _Search:
    system: Callable[[Any], Any]
    case: Case
    judge: Callable[[Any, Any], bool]
    perturbations: dict[str, Perturbation]
    min_confidence: float
    deadline: float
    cache: dict[tuple[Step, ...], _Outcome] = field(default_factory=dict)
    calls: int = 0
    timed_out: bool = False
    best: tuple[Step, ...] | None = None  # the shortest failing steps seen, should time run out

    def variant(self, steps: Sequence[Step]) -> tuple[Case, tuple[Edit, ...], LabelContract, tuple[Step, ...]]:
        return _apply_steps(self.case, steps, self.perturbations)

    def evaluate(self, steps: Sequence[Step]) -> _Outcome | None:
        """The outcome of ``steps`` (cached); ``None`` once the time budget is spent and it is not cached."""
        key = tuple(steps)
        if key in self.cache:
            return self.cache[key]
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return None
        current, edits, contract, applied = self.variant(steps)
        outcome = self.cache.get(applied) if applied != key else None
        if outcome is None:
            outcome = self._call(current, edits, contract, applied)
            self.cache[applied] = outcome
        self.cache[key] = outcome
        if outcome.failed and (self.best is None or len(outcome.applied) < len(self.best)):
            self.best = outcome.applied
        return outcome

    def _call(self, current: Case, edits: tuple[Edit, ...], contract: LabelContract, applied: tuple[Step, ...]) -> _Outcome:
        self.calls += 1
        try:
            raw = self.system(current.input)
            if inspect.isawaitable(raw):
                raw = _run_awaitable(raw)
        except Exception as exc:  # noqa: BLE001 - a system that raises has not failed silently
            return _Outcome(False, -2.0, current, edits, contract, f"{type(exc).__name__}: {exc}", None, applied)
        value, confidence = (raw.value, raw.confidence) if isinstance(raw, Prediction) else (raw, None)
        right = bool(self.judge(value, current.expected))
        conf_ok = self.min_confidence <= 0 or (
            confidence is not None and not math.isnan(confidence) and confidence >= self.min_confidence
        )
        c = confidence if confidence is not None and not math.isnan(confidence) else 0.5
        score = c if not right else -c
        return _Outcome(not right and conf_ok, score, current, edits, contract, value, confidence, applied)

    def fails(self, steps: Sequence[Step]) -> bool:
        outcome = self.evaluate(steps)
        return outcome is not None and outcome.failed


def _apply_steps(
    case: Case, steps: Sequence[Step], perturbations: dict[str, Perturbation]
) -> tuple[Case, tuple[Edit, ...], LabelContract, tuple[Step, ...]]:
    current = case
    edits: list[Edit] = []
    contracts = [LabelContract.UNCHANGED]
    applied: list[Step] = []
    for name, seed in steps:
        if name not in perturbations:
            raise ConfigError(f"unknown perturbation {name!r} in the steps; known here: {', '.join(perturbations)}")
        result = _step(perturbations[name], current, name, seed)
        if result is None:
            continue
        edits.extend(result.edits)
        contracts.append(result.contract)
        applied.append((name, seed))
        current = Case(id=case.id, input=result.input, expected=result.expected, tags=case.tags)
    return current, tuple(edits), weakest(*contracts), tuple(applied)


def _step(perturbation: Perturbation, case: Case, name: str, seed: int) -> Variant | None:
    """One step's variant; ``None`` when it does not apply, or when it may change the answer itself
    (a ``NOT_PRESERVED`` variant has no expected answer to be wrong against)."""
    result = perturbation.apply(case, derive_rng("search", name, seed))
    if isinstance(result, NotApplicable) or result.contract is LabelContract.NOT_PRESERVED:
        return None
    return result


def _without_cycles(case: Case, steps: Sequence[Step], perturbations: dict[str, Perturbation]) -> tuple[Step, ...]:
    """``steps`` without the runs of steps that bring the case back to a state it was in before.

    A step's effect depends only on the case it is applied to and its seed, so cutting a run that
    returns to an earlier state (``WILLIE -> WIPLIE -> WILLIE``) leaves every later step, and the final
    variant, exactly as they were. Steps that do not apply are left out too.
    """
    current = case
    states = [(repr(case.input), repr(case.expected))]
    kept: list[Step] = []
    for name, seed in steps:
        if name not in perturbations:
            raise ConfigError(f"unknown perturbation {name!r} in the steps; known here: {', '.join(perturbations)}")
        result = _step(perturbations[name], current, name, seed)
        if result is None:
            continue
        current = Case(id=case.id, input=result.input, expected=result.expected, tags=case.tags)
        state = (repr(current.input), repr(current.expected))
        if state in states:  # back where the chain was after len(earlier) steps: those since then cancel
            earlier = states.index(state)
            del kept[earlier:]
            del states[earlier + 1 :]
            continue
        kept.append((name, seed))
        states.append(state)
    return tuple(kept)


def replay(case: Case, steps: Sequence[Step], perturbations: Sequence[Perturbation] | None = None) -> Variant:
    """The variant that ``steps`` (as in :attr:`SearchResult.steps`) make of ``case``: reproduce a search result.

    ``perturbations`` must hold every perturbation the steps name (default: the built-in ones). Steps
    that do not apply, or whose variant is ``NOT_PRESERVED``, are skipped as :func:`search` skips them.
    With no steps the variant is the case itself (``perturbation == "clean"``).
    """
    from failpath.chaos.suites import PERTURBATIONS

    table = dict(PERTURBATIONS) if perturbations is None else {p.name: p for p in perturbations}
    current, edits, contract, applied = _apply_steps(case, steps, table)
    families = {table[name].family for name, _ in applied} or {"realistic"}
    return Variant(
        input=current.input,
        expected=current.expected,
        perturbation="+".join(name for name, _ in applied) or "clean",
        family=families.pop() if len(families) == 1 else "realistic",
        contract=contract,
        edits=edits,
        case_id=case.id,
    )


class _OutOfTime(Exception):
    """Raised inside the search once its time budget is spent."""


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _run_awaitable(awaitable: Any) -> Any:
    """Run an async system's result to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop is running here: use a fresh one in a thread
        return pool.submit(asyncio.run, _await(awaitable)).result()


def search(
    system: Callable[[Any], Any],
    case: Case,
    judge: Callable[[Any, Any], bool],
    *,
    perturbations: Sequence[Perturbation] | None = None,
    max_examples: int = 200,
    seed: int = 0,
    min_confidence: float = 0.0,
    max_steps: int = 6,
    timeout: float = 60.0,
) -> SearchResult:
    """Look for a variant of ``case`` that ``system`` answers wrong with confidence >= ``min_confidence``.

    ``system`` takes the input and returns a value or a :class:`~failpath.core.Prediction` (an async
    system is run to completion). ``judge(output, expected)`` is True when the output is right. The
    search composes up to ``max_steps`` of ``perturbations`` (default
    :data:`DEFAULT_SEARCH_PERTURBATIONS`), tries at most ``max_examples`` compositions plus shrinking,
    and stops trying new ones after ``timeout`` seconds. If the clean case already fails, that is the
    result (with no steps). A step whose variant is ``NOT_PRESERVED`` (the edit may change the right
    answer, such as the comma of ``Smith, John``) is skipped like one that does not apply: there is no
    expected answer to be wrong against.
    """
    perts = _checked_perturbations(system, case, judge, perturbations, max_examples, max_steps)
    start = time.monotonic()
    state = _Search(system, case, judge, {p.name: p for p in perts}, min_confidence, start + timeout)

    clean = state.evaluate(())
    assert clean is not None
    if clean.failed:
        return _result(state, clean, (), True, start)

    # Only what can change this case is worth drawing.
    usable = [p.name for p in perts if any(_step(p, case, p.name, s) is not None for s in range(4))]
    if not usable:
        return SearchResult(found=False, n_tried=state.calls, case_id=case.id, elapsed_s=time.monotonic() - start)

    found = _find(state, usable, max_examples=max_examples, max_steps=max_steps, seed=seed)
    if found is None:
        return SearchResult(
            found=False, n_tried=state.calls, case_id=case.id, elapsed_s=time.monotonic() - start, timed_out=state.timed_out
        )

    steps, minimal = _minimize(state, [tuple(s) for s in found])
    outcome = state.cache[steps]  # evaluated by _minimize (cached, even once time is out)
    return _result(state, outcome, steps, minimal, start)


def _checked_perturbations(
    system: Any, case: Any, judge: Any, perturbations: Sequence[Perturbation] | None, max_examples: int, max_steps: int
) -> tuple[Perturbation, ...]:
    """The perturbations :func:`search` composes, once its arguments are checked (a ``ConfigError`` names the wrong one)."""
    if not isinstance(case, Case):
        raise ConfigError(f"search needs a failpath Case, got {type(case).__name__}")
    if not callable(system) or not callable(judge):
        raise ConfigError("search needs a callable system and a callable judge(output, expected) -> bool")
    if max_examples < 1 or max_steps < 1:
        raise ConfigError(f"search: max_examples and max_steps must be positive, got {max_examples} and {max_steps}")
    perts = tuple(perturbations) if perturbations is not None else DEFAULT_SEARCH_PERTURBATIONS
    names = [p.name for p in perts]
    if len(set(names)) != len(names):
        raise ConfigError(f"search: perturbation names must be unique, got {names}")
    return perts


def _find(state: _Search, usable: list[str], *, max_examples: int, max_steps: int, seed: int) -> Sequence[Step] | None:
    """Hypothesis's search over compositions of the ``usable`` perturbations: a failing one, or None.

    Out of time, the best failure seen so far (``state.best``, perhaps None).
    """
    from hypothesis import HealthCheck, Phase, Verbosity, find, settings, target
    from hypothesis import strategies as st
    from hypothesis.errors import Flaky, NoSuchExample

    steps_strategy = st.lists(
        st.tuples(st.sampled_from(usable), st.integers(min_value=0, max_value=2**16 - 1)),
        min_size=1,
        max_size=max_steps,
    )

    def condition(steps: list[Step]) -> bool:
        outcome = state.evaluate(steps)
        if outcome is None:
            raise _OutOfTime  # stops Hypothesis; the best failure seen so far is kept in state.best
        target(outcome.score, label="confident wrong answer")
        return outcome.failed

    config = settings(
        max_examples=max_examples,
        database=None,
        derandomize=False,  # the seed below decides; a profile's derandomize would ignore it
        deadline=None,
        verbosity=Verbosity.quiet,
        phases=(Phase.generate, Phase.target, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    try:
        with _storage_outside_working_directory():
            return find(steps_strategy, condition, settings=config, random=random.Random(seed))
    except NoSuchExample:
        return None
    except (_OutOfTime, Flaky):
        return state.best


def shrink(
    system: Callable[[Any], Any],
    case: Case,
    judge: Callable[[Any, Any], bool],
    steps: Sequence[Step],
    *,
    perturbations: Sequence[Perturbation] | None = None,
    min_confidence: float = 0.0,
    timeout: float = 60.0,
) -> SearchResult:
    """Shrink failing ``steps`` (as in :attr:`SearchResult.steps`) the way :func:`search` shrinks what it finds.

    Edits that cancel are dropped, then single steps while the failure persists; the result is
    ``minimal`` only when replaying it without each single step made the system right. ``found`` is
    False when ``steps`` do not make ``system`` fail on ``case``. ``perturbations`` must hold every
    perturbation the steps name (default: the built-in ones).
    """
    from failpath.chaos.suites import PERTURBATIONS

    if not isinstance(case, Case):
        raise ConfigError(f"shrink needs a failpath Case, got {type(case).__name__}")
    table = dict(PERTURBATIONS) if perturbations is None else {p.name: p for p in perturbations}
    start = time.monotonic()
    state = _Search(system, case, judge, table, min_confidence, start + timeout)
    steps = tuple(tuple(s) for s in steps)
    first = state.evaluate(steps)
    if first is None or not first.failed:
        return SearchResult(found=False, n_tried=state.calls, case_id=case.id, elapsed_s=time.monotonic() - start, timed_out=state.timed_out)
    shrunk, minimal = _minimize(state, first.applied)
    outcome = state.cache[shrunk]
    return _result(state, outcome, shrunk, minimal, start)


@contextlib.contextmanager
def _storage_outside_working_directory() -> Iterator[None]:
    """Keep Hypothesis's caches out of the user's working directory while a search runs.

    Even with ``database=None`` Hypothesis caches the constants it reads from loaded modules under its
    home directory, ``./.hypothesis`` by default. Unless the user chose a place
    (``HYPOTHESIS_STORAGE_DIRECTORY``), point it at a folder in the temporary directory and restore
    the previous setting afterwards.
    """
    import hypothesis.configuration as hypothesis_configuration

    if os.getenv("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    attribute = "__hypothesis_home_directory"
    previous = getattr(hypothesis_configuration, attribute, None)
    hypothesis_configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "failpath-hypothesis")
    try:
        yield
    finally:
        hypothesis_configuration.set_hypothesis_home_dir(previous)


def _minimize(state: _Search, steps: Sequence[Step]) -> tuple[tuple[Step, ...], bool]:
    """Drop edits that cancel, then single steps while the failure persists.

    Returns the steps and whether they were checked minimal: the failure goes away when any one step
    is left out. ``False`` when time ran out before every such replay was made.
    """
    first = state.evaluate(steps)
    assert first is not None and first.failed  # evaluated before, so cached
    current = _without_cycles(state.case, steps, state.perturbations)
    if current not in state.cache:  # the same input as ``steps``: no need to call the system again
        case, edits, contract, applied = state.variant(current)
        state.cache[current] = _Outcome(True, first.score, case, edits, contract, first.output, first.confidence, applied)
    while True:
        for j in range(len(current)):
            shorter = _without_cycles(state.case, current[:j] + current[j + 1 :], state.perturbations)
            outcome = state.evaluate(shorter)
            if outcome is None:  # out of time: cannot vouch for minimality
                return current, False
            if outcome.failed:
                current = shorter
                break
        else:  # every replay without one step was made, and none failed
            return current, True


def _result(state: _Search, outcome: _Outcome, steps: tuple[Step, ...], minimal: bool, start: float) -> SearchResult:
    return SearchResult(
        found=True,
        input=outcome.case.input,
        expected=outcome.case.expected,
        edits=outcome.edits,
        output=outcome.output,
        confidence=outcome.confidence,
        n_tried=state.calls,
        steps=steps,
        contract=outcome.contract,
        minimal=minimal,
        case_id=state.case.id,
        elapsed_s=time.monotonic() - start,
        timed_out=state.timed_out,
    )
