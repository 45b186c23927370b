"""The guard: runs one call through a policy and always ends in one outcome and one trace.

A guarded system runs the input checks and the first call itself (most calls end there). When a failure
state needs handling, the decisions live in :meth:`_Run.steps`, a generator that yields what it needs
done (call a system, sleep) and receives the results: :class:`GuardedSystem` performs those steps
synchronously and :class:`AsyncGuardedSystem` with ``await``, so both follow exactly the same policy logic.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import logging
import os
import queue
import threading
import time
import types
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from failpath.core import (
    Abstained,
    Answered,
    Attempt,
    Clarify,
    Defaulted,
    Escalated,
    Outcome,
    PolicyError,
    Prediction,
    ProviderFailure,
    Ticket,
    Trace,
    is_transient_status,
    is_valid_confidence,
)
from failpath.guard.actions import Abstain, ClarifyAction, Default, Escalate, Fallback, Raise, Retry, _is_async
from failpath.guard.states import LowConfidence, State, basic_output_problem
from failpath.guard.text import canonical_text, digest, jsonable, preview

if TYPE_CHECKING:
    from failpath.guard.policy import Policy, StoreHandle
    from failpath.store.base import Store

__all__ = ["GuardedSystem", "AsyncGuardedSystem", "make_guarded", "DaemonPool"]

log = logging.getLogger("failpath.guard")

_perf = time.perf_counter
_CoroutineType = types.CoroutineType


# --------------------------------------------------------------------------- fast construction of records


def _frozen_builder(cls: type, names: tuple[str, ...]) -> Callable[..., Any]:
    """A positional constructor for the frozen, slotted dataclass ``cls`` taking the fields ``names``.

    A frozen dataclass's ``__init__`` calls ``object.__setattr__`` once per field, which makes the three
    records of every guarded call (``Attempt``, ``Answered``, ``Trace``) a large share of the guard's cost.
    Two faster ways build the same objects, tried in this order:

    - ``"twin"``: a plain class with the same slots, in the same order, on the same base, is filled with
      ordinary attribute stores and then given ``cls`` as its class (Python allows that between classes
      of the same layout). About three times as fast as the ordinary constructor. Used when a test
      record comes out of it equal to one the ordinary constructor builds (not, for instance, for a
      class whose slots are split over a base class).
    - ``"slots"``: the slots are filled through their descriptors, one generated statement per field.
      About twice as fast as the ordinary constructor.

    ``names`` must be exactly the class's fields, in order; if they are not (``core`` gained a field),
    the builder falls back to the ordinary constructor (``"init"``), which is correct but slower (a test
    checks that a fast way is in use). The way in use is the builder's ``method``; ``fast`` says it is not
    ``"init"``.
    """
    fields = tuple(f.name for f in dataclasses.fields(cls))
    if fields != names or getattr(cls, "__post_init__", None) is not None or not hasattr(cls, "__slots__"):

        def build_slowly(*values: Any) -> Any:
            return cls(**dict(zip(names, values)))

        build_slowly.fast = False  # type: ignore[attr-defined]
        build_slowly.method = "init"  # type: ignore[attr-defined]
        return build_slowly

    arguments = ", ".join(f"value_{i}" for i in range(len(names)))
    twin = _twin_builder(cls, names, arguments)
    if twin is not None:
        return twin
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        namespace[f"set_{i}"] = getattr(cls, name).__set__  # the slot's member descriptor
    statements = "".join(f"    set_{i}(record, value_{i})\n" for i in range(len(names)))
    exec(f"def build({arguments}):\n    record = new(cls)\n{statements}    return record\n", namespace)
    build = namespace["build"]
    build.fast = True
    build.method = "slots"
    return build


def _twin_builder(cls: type, names: tuple[str, ...], arguments: str) -> Callable[..., Any] | None:
    """The ``"twin"`` builder of :func:`_frozen_builder`, or None when ``cls`` does not allow it."""
    if cls.__bases__ != (object,) or tuple(cls.__slots__) != names:
        return None
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": names})
    namespace: dict[str, Any] = {"new": object.__new__, "twin": twin, "cls": cls}
    statements = "".join(f"    record.{name} = value_{i}\n" for i, name in enumerate(names))
    exec(f"def build({arguments}):\n    record = new(twin)\n{statements}    record.__class__ = cls\n    return record\n", namespace)
    build = namespace["build"]
    try:
        sample = [object() for _ in names]
        record = build(*sample)
        ordinary = cls(**dict(zip(names, sample)))
        if type(record) is not cls or record != ordinary or any(getattr(record, n) is not v for n, v in zip(names, sample)):
            return None
    except Exception:  # TypeError: the layouts differ after all
        return None
    build.fast = True
    build.method = "twin"
    return build


_new_attempt = _frozen_builder(
    Attempt, ("number", "action", "system", "state", "error", "output", "confidence", "latency_ms", "usage")
)
_new_answered = _frozen_builder(Answered, ("state", "trace_id", "value", "confidence", "degraded"))
_new_trace = _frozen_builder(
    Trace,
    (
        "trace_id", "time", "policy", "input_digest", "input_preview", "outcome", "input_raw", "output", "confidence",
        "states", "actions", "state", "attempts", "degraded", "latency_ms", "ticket_id", "usage", "detail",
    ),
)


# --------------------------------------------------------------------------- trace ids


class _TraceIds:
    """Trace ids: 32 hex digits, unique across threads and processes, made without a system call per id.

    Each process draws a random odd multiplier and a random offset once (and again in a forked child);
    id number ``n`` is ``(n * multiplier + offset) mod 2**128``. That map is one-to-one, so a process
    never repeats an id, ids of two processes collide only by a 2**-128 chance, and the leading digits
    change from one id to the next, so a short prefix still finds one trace. ``os.urandom`` per call
    would cost a system call that also releases the GIL, handing it to the store's writer thread.
    """

    __slots__ = ("_numbers", "_multiplier", "_offset")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        """Draw a new multiplier and offset (a forked child must not repeat its parent's ids)."""
        self._numbers = itertools.count()
        self._multiplier = int.from_bytes(os.urandom(16), "big") | 1
        self._offset = int.from_bytes(os.urandom(16), "big")

    def next(self) -> str:
        """A new trace id (``next`` on ``itertools.count`` is atomic, so threads never share a number)."""
        return ((next(self._numbers) * self._multiplier + self._offset) & _ID_MASK).to_bytes(16, "big").hex()


_ID_MASK = (1 << 128) - 1
_trace_ids = _TraceIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_trace_ids.reseed)
_next_trace_id = _trace_ids.next


# --------------------------------------------------------------------------- steps


class _CallStep:
    """Call ``system`` on the input, each call for at most ``limit`` seconds.

    ``count`` None: one call, its ``_Result`` is sent back; an integer: that many calls, a list is sent back.
    """

    __slots__ = ("system", "is_async", "limit", "limit_is_deadline", "count")

    def __init__(self, system: Any, is_async: bool, limit: float | None, limit_is_deadline: bool, count: int | None = None):
        self.system = system
        self.is_async = is_async
        self.limit = limit
        self.limit_is_deadline = limit_is_deadline
        self.count = count


class _SleepStep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float):
        self.seconds = seconds


class _Result:
    """What one system call did: its value, or its exception, or that it ran out of time."""

    __slots__ = ("value", "error", "latency_ms", "timed_out", "limit", "limit_is_deadline")

    def __init__(self, value: Any, error: Exception | None, latency_ms: float, timed_out: bool = False, step: _CallStep | None = None):
        self.value = value
        self.error = error
        self.latency_ms = latency_ms
        self.timed_out = timed_out
        self.limit = step.limit if step is not None else None
        self.limit_is_deadline = step.limit_is_deadline if step is not None else False


class _Resolution:
    __slots__ = ("outcome", "exception", "cause")

    def __init__(self, outcome: Outcome | None, exception: BaseException | None = None, cause: BaseException | None = None):
        self.outcome = outcome
        self.exception = exception
        self.cause = cause


_Step = _CallStep | _SleepStep
_Route = tuple[str, "int | None", Any, bool]  # (state, rule index, explanation, came from the input side)


# --------------------------------------------------------------------------- one guarded call


class _Run:
    """Everything one guarded call decides and records.

    Fields that most calls never change are class-level defaults, so a clean call sets few attributes.
    """

    degraded = False
    meta: Any = None
    explanations: dict[str, Any] | None = None
    notes: list[str] | None = None
    detail: dict[str, Any] | None = None
    calls = 0
    tokens_in = 0.0
    tokens_out = 0.0
    cost = 0.0
    cursors: dict[int, list[int]] | None = None
    last_error: BaseException | None = None
    last_output: Any = None
    last_confidence: float | None = None
    answer: Any = None
    answer_confidence: float | None = None
    decided: str | None = None
    ticket_id: str | None = None

    def __init__(self, policy: Policy, system: Any, system_name: str, system_async: bool, value: Any, store: StoreHandle):
        self.policy = policy
        self.value = value
        self.trace_id = _next_trace_id()
        self.store = store
        self.time = time.time()
        self.start = _perf()
        self.text = canonical_text(value)
        self.system = system
        self.system_name = system_name
        self.system_async = system_async
        self.attempts: list[Attempt] = []
        self.states: list[str] = []
        self.actions: list[str] = []
        self.last_raw: Any = _NO_VOTE

    # ------------------------------------------------------------------ the policy logic
    def check_input(self) -> _Route | None:
        """Run the input-side detectors (before any call): the route of the first that fires, or None."""
        for detector, index in self.policy._input_checks:
            if isinstance(detector, State):
                why, error = detector.evaluate(self.value, None)
                if error is not None:
                    self._note(f"state {detector.name}: predicate raised {error}")
            else:
                try:
                    why = detector.check_input(self.value, self.text)
                except Exception as exc:
                    why = None
                    self._note(f"{detector.name}: detector raised {type(exc).__name__}: {exc}")
            if why:
                return (detector.name, index, why, True)
        return None

    def steps(self, route: Any) -> Generator[_Step, Any, _Resolution]:
        """Decide the rest of the call from ``route`` (what the input checks or the first call found, or
        ``_SAMPLE``): yields the calls and sleeps it needs; returns how it ended."""
        policy = self.policy
        if route is _SAMPLE:
            route = yield from self._sampled()
        while True:
            if route is None:
                return self.answered()
            name, index, why, input_side = self._record(route)
            while True:
                action = self._next_action(index)
                if action is None:
                    if index == policy._unexpected_index:
                        return self._last_resort(name)
                    name, index, why, input_side = self._record(
                        ("unexpected", policy._unexpected_index, f"the actions of the rule on {name} ran out without resolving the call", input_side)
                    )
                    continue
                if isinstance(action, (Retry, Fallback)):
                    if isinstance(action, Retry) and input_side:
                        self._skip_rest(index)
                        self._note(f"retry skipped on {name}: the same input would be refused again")
                        continue
                    if name == "budget_exceeded":
                        if isinstance(action, Retry):
                            self._skip_rest(index)
                        self._note(f"{action.name} skipped: the budget is spent")
                        continue
                    blocked = self._budget_block(1)
                    if blocked is not None:
                        name, index, why, input_side = self._record(self._budget_route(blocked))
                        continue
                    if isinstance(action, Retry):
                        status = getattr(self.last_error, "status", None) if isinstance(self.last_error, ProviderFailure) else None
                        if isinstance(status, int) and not is_transient_status(status):
                            self._skip_rest(index)
                            self._note(f"retry skipped: the provider answered {status}, which the same request cannot fix")
                            continue
                        wait = action.wait_before(self.cursors[index][1])  # type: ignore[index]
                        retry_after = getattr(self.last_error, "retry_after", None) if isinstance(self.last_error, ProviderFailure) else None
                        if isinstance(retry_after, (int, float)) and retry_after > wait:
                            if retry_after > action.max_wait:
                                self._skip_rest(index)
                                self._note(f"retry skipped: the provider asked to wait {retry_after:g}s, more than max_wait={action.max_wait:g}s")
                                continue
                            wait = float(retry_after)
                        if wait > 0:
                            deadline = policy.deadline
                            if deadline is not None and _perf() - self.start + wait >= deadline:
                                name, index, why, input_side = self._record(
                                    self._budget_route(f"waiting {wait:.3g}s to retry would pass the deadline of {deadline:g}s")
                                )
                                continue
                            self.actions.append("retry")
                            yield _SleepStep(wait)
                        else:
                            self.actions.append("retry")
                        result = yield self._call_step()
                        route = yield from self._judge(result, "retry")
                    else:
                        self.actions.append("fallback")
                        self.system = action.system
                        self.system_name = action.system_name
                        self.system_async = action.is_async
                        self.degraded = True
                        result = yield self._call_step()
                        route = yield from self._judge(result, "fallback")
                    break
                resolution = self._resolve(action, name)
                if resolution is not None:
                    return resolution

    def _call_step(self, count: int | None = None) -> _CallStep:
        policy = self.policy
        limit = policy._timeout_after
        is_deadline = False
        if policy.deadline is not None:
            remaining = max(policy.deadline - (_perf() - self.start), 1e-3)
            if limit is None or remaining < limit:
                limit, is_deadline = remaining, True
        return _CallStep(self.system, self.system_async, limit, is_deadline, count)

    def _judge(self, result: _Result, action: str) -> Generator[_Step, Any, _Route | None]:
        """Read one call's result (drawing samples when the policy has ``Inconsistent``): a route, or None."""
        route = self._read(result, action)
        if route is _SAMPLE:
            route = yield from self._sampled()
        return route

    def _read(self, result: _Result, action: str) -> Any:
        """Read one call's result: the route to a failure state, None with the answer kept, or ``_SAMPLE``
        when the answer must first be compared with more samples."""
        policy = self.policy
        self.calls += 1
        number = len(self.attempts) + 1
        if result.timed_out:
            seconds = f"{result.limit:.3g}s"
            if result.limit_is_deadline:
                route: _Route = self._budget_route(f"the deadline of {policy.deadline:g}s cut the call after {seconds}")
            else:
                route = ("timeout", policy._timeout_index, f"no answer after {seconds}", False)
            self._attempt(number, action, route[0], f"TimeoutError: no answer after {seconds}", None, None, result.latency_ms, None)
            return route
        if result.error is not None:
            exc = result.error
            self.last_error = exc
            name, index = policy.classify(exc)
            error = _describe_error(exc)
            usage = self._add_usage(getattr(exc, "usage", None))  # tokens a failed call still spent
            self._attempt(number, action, name, error, None, None, result.latency_ms, usage)
            return (name, index, error, False)
        return self._read_value(result.value, result.latency_ms, action)

    def _read_value(self, raw: Any, latency_ms: float, action: str) -> Any:
        """Read the value one call returned (the call is counted already): as :meth:`_read`."""
        policy = self.policy
        number = len(self.attempts) + 1
        self.last_error = None
        usage = None
        if isinstance(raw, Prediction):
            value, confidence = raw.value, raw.confidence
            meta = raw.meta
            if meta:
                usage = self._add_usage(meta.get("usage") if hasattr(meta, "get") else None)
        else:
            value, confidence, meta = raw, None, None
        self.last_raw = value
        self.last_output = output = jsonable(value)
        if confidence is None or (type(confidence) is float and 0.0 <= confidence <= 1.0) or is_valid_confidence(confidence):
            valid_confidence = confidence
        else:
            valid_confidence = None
            self._note(f"attempt {number}: confidence {confidence!r} is not a number in [0, 1]; kept as none")
        self.last_confidence = valid_confidence

        route = self._check_value(value)
        self.attempts.append(
            _new_attempt(
                number, action, self.system_name, None if route is None else route[0], None, output, valid_confidence, latency_ms, usage or {}
            )
        )
        if route is not None:
            return route
        if policy._inconsistent is not None and action != "sample":
            self.meta = meta
            return _SAMPLE
        if policy._output_checks:
            return self._output_checks(confidence, meta)
        return None

    def _sampled(self) -> Generator[_Step, Any, _Route | None]:
        """Draw the extra samples ``Inconsistent`` asks for, keep the majority answer, run the output checks."""
        detector, index = self.policy._inconsistent  # type: ignore[misc]
        blocked = self._budget_block(detector.samples - 1)
        if blocked is not None:
            return self._budget_route(f"{blocked}; cannot draw {detector.samples - 1} more samples")
        self.actions.append("sample")
        samples = yield self._call_step(detector.samples - 1)
        votes: list[tuple[Any, Any, float | None]] = [(self._vote(detector, self.answer), self.answer, self.answer_confidence)]
        for sample in samples:
            votes.append(self._sample(detector, sample))
        route = self._tally(detector, index, votes)
        if route is not None:
            return route
        return self._output_checks(self.answer_confidence, self.meta)

    def _output_checks(self, confidence: Any, meta: Any) -> _Route | None:
        """``LowConfidence`` and output-side ``State`` rules, in rule order, on the kept answer."""
        prediction = None
        for detector, index in self.policy._output_checks:
            if isinstance(detector, LowConfidence):
                why = detector.check_confidence(confidence)
            else:
                if prediction is None:
                    prediction = Prediction(self.answer, self.answer_confidence, meta or {})
                why, error = detector.evaluate(self.value, prediction)
                if error is not None:
                    self._note(f"state {detector.name}: predicate raised {error}")
            if why:
                self._settle_attempt(detector.name)
                return (detector.name, index, why, False)
        return None

    def answered(self) -> _Resolution:
        """The call answered: ``Answered`` with the kept answer."""
        return _Resolution(
            _new_answered(self.decided, self.trace_id, self.answer, self.answer_confidence, self.degraded)
        )

    def _check_value(self, value: Any) -> _Route | None:
        """Route invalid outputs; on success keep the (validated) value as the answer."""
        policy = self.policy
        if type(value) is _CoroutineType:
            value.close()
            why = "the system returned a coroutine: guard an async def system to get an async guarded system"
            return ("invalid_output", policy._invalid_index, why, False)
        if policy._invalid:
            for detector, index in policy._invalid:
                try:
                    why, value = detector.check(value)
                except Exception as exc:
                    why = f"validation raised {type(exc).__name__}: {exc}"
                if why:
                    return ("invalid_output", index, why, False)
        else:
            why = basic_output_problem(value)
            if why:
                return ("invalid_output", None, why, False)
        self.answer = value
        self.answer_confidence = self.last_confidence
        return None

    def _vote(self, detector: Any, value: Any) -> Any:
        try:
            return detector.vote_key(value)
        except Exception as exc:
            self._note(f"inconsistent: key raised {type(exc).__name__}: {exc}")
            return _NO_VOTE

    def _sample(self, detector: Any, result: _Result) -> tuple[Any, Any, float | None]:
        """One extra sample: its vote, value and confidence (failed or invalid samples do not vote)."""
        self.calls += 1
        number = len(self.attempts) + 1
        if result.timed_out or result.error is not None:
            error = "TimeoutError: no answer in time" if result.timed_out else _describe_error(result.error)  # type: ignore[arg-type]
            usage = None if result.timed_out else self._add_usage(getattr(result.error, "usage", None))
            self._attempt(number, "sample", None, error, None, None, result.latency_ms, usage)
            return (_NO_VOTE, None, None)
        raw = result.value
        usage = None
        if isinstance(raw, Prediction):
            value, confidence = raw.value, raw.confidence
            if raw.meta and hasattr(raw.meta, "get"):
                usage = self._add_usage(raw.meta.get("usage"))
        else:
            value, confidence = raw, None
        confidence = confidence if is_valid_confidence(confidence) else None
        output = jsonable(value)
        saved = (self.answer, self.answer_confidence, self.last_confidence)
        route = self._check_value(value)
        validated = self.answer
        self.answer, self.answer_confidence, self.last_confidence = saved
        if route is not None:
            self._attempt(number, "sample", None, f"invalid: {route[2]}", output, confidence, result.latency_ms, usage)
            return (_NO_VOTE, None, None)
        self._attempt(number, "sample", None, None, output, confidence, result.latency_ms, usage)
        return (self._vote(detector, validated), validated, confidence)

    def _tally(self, detector: Any, index: int, votes: list[tuple[Any, Any, float | None]]) -> _Route | None:
        counts: dict[Any, int] = {}
        for key, _, _ in votes:
            if key is not _NO_VOTE:
                counts[key] = counts.get(key, 0) + 1
        total = len(votes)
        if not counts:
            return ("inconsistent", index, f"none of {total} samples gave a usable answer", False)
        best = max(counts, key=lambda k: counts[k])
        agreement = counts[best] / total
        if agreement < detector.min_agreement:
            return ("inconsistent", index, f"{counts[best]} of {total} answers agree ({agreement:.0%} < {detector.min_agreement:.0%})", False)
        majority = [(value, confidence) for key, value, confidence in votes if key is not _NO_VOTE and key == best]
        confidences = [c for _, c in majority if c is not None]
        self.answer = majority[0][0]
        self.answer_confidence = sum(confidences) / len(confidences) if confidences else agreement
        self._explain("agreement", f"{counts[best]} of {total}")
        return None

    def _attempt(
        self, number: int, action: str, state: str | None, error: str | None, output: Any,
        confidence: float | None, latency_ms: float, usage: dict[str, float] | None,
    ) -> None:
        attempt = _new_attempt(number, action, self.system_name, state, error, output, confidence, latency_ms, usage or {})
        self.attempts.append(attempt)

    def _settle_attempt(self, state: str | None) -> None:
        """Set the state found by the output checks on the latest call's attempt."""
        for i in range(len(self.attempts) - 1, -1, -1):
            attempt = self.attempts[i]
            if attempt.action != "sample":
                self.attempts[i] = dataclasses.replace(attempt, state=state)
                return

    # ------------------------------------------------------------------ routing and actions
    def _record(self, route: _Route) -> _Route:
        """Note a detected state and map it to its rule (to ``unexpected`` when no rule claims it)."""
        name, index, why, input_side = route
        self.states.append(name)
        self._explain(name, why)
        if index is None:
            if name != "unexpected":
                why = f"{name} has no rule: {why}" if isinstance(why, str) else f"{name} has no rule"
                self.states.append("unexpected")
                self._explain("unexpected", why)
            name, index = "unexpected", self.policy._unexpected_index
        self.decided = name
        return (name, index, why, input_side)

    def _budget_route(self, why: str) -> _Route:
        return ("budget_exceeded", self.policy._budget_index, why, False)

    def _budget_block(self, calls: int) -> str | None:
        """Why ``calls`` more system calls would break a budget, or None."""
        policy = self.policy
        if policy.max_attempts is not None and self.calls + calls > policy.max_attempts:
            return f"{self.calls} of max_attempts={policy.max_attempts} calls used"
        if policy.deadline is not None and _perf() - self.start >= policy.deadline:
            return f"the deadline of {policy.deadline:g}s has passed"
        budget = policy.budget
        if budget is not None:
            if budget.tokens is not None and self.tokens_in + self.tokens_out >= budget.tokens:
                return f"{self.tokens_in + self.tokens_out:g} of {budget.tokens} tokens used"
            if budget.cost is not None and self.cost >= budget.cost:
                return f"cost {self.cost:.6g} of {budget.cost:g} spent"
        return None

    def _add_usage(self, usage: Any) -> dict[str, float] | None:
        if not usage or not hasattr(usage, "get"):
            return None
        try:
            tokens_in = float(usage.get("input_tokens") or 0)
            tokens_out = float(usage.get("output_tokens") or 0)
        except (TypeError, ValueError):
            self._note(f"usage {usage!r} is not numeric; ignored")
            return None
        recorded: dict[str, float] = {"input_tokens": tokens_in, "output_tokens": tokens_out}
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        budget = self.policy.budget
        if budget is not None and budget.prices:
            model = usage.get("model")
            price = budget.price_of(model if isinstance(model, str) else None)
            if price is None:
                self._note(f"no price for model {model!r}; its cost is not counted")
            else:
                cost = tokens_in * price[0] + tokens_out * price[1]
                recorded["cost"] = cost
                self.cost += cost
        return recorded

    def _next_action(self, index: int) -> Any:
        """The next action of rule ``index`` (a ``Retry`` is returned once per retry it allows), or None."""
        if self.cursors is None:
            self.cursors = {}
        cursor = self.cursors.get(index)
        if cursor is None:
            cursor = self.cursors[index] = [0, 0]
        actions = self.policy.rules[index].actions
        while cursor[0] < len(actions):
            action = actions[cursor[0]]
            if isinstance(action, Retry):
                if cursor[1] < action.times:
                    cursor[1] += 1
                    return action
                cursor[0] += 1
                cursor[1] = 0
                continue
            cursor[0] += 1
            return action
        return None

    def _skip_rest(self, index: int) -> None:
        cursor = self.cursors[index]  # type: ignore[index]
        cursor[0] += 1
        cursor[1] = 0

    def _resolve(self, action: Any, state: str) -> _Resolution | None:
        """End the call with a terminal action; None when the action could not resolve it."""
        trace_id = self.trace_id
        if isinstance(action, Default):
            self.actions.append("default")
            self._set_detail("reason", action.reason)
            return _Resolution(Defaulted(value=action.value, reason=action.reason, state=state, trace_id=trace_id))
        if isinstance(action, Abstain):
            self.actions.append("abstain")
            self._set_detail("reason", action.reason)
            return _Resolution(Abstained(reason=action.reason, state=state, trace_id=trace_id))
        if isinstance(action, ClarifyAction):
            self.actions.append("clarify")
            try:
                question = action.ask(self.value)
            except Exception as exc:
                self._note(f"clarify: the question function raised {type(exc).__name__}: {exc}")
                return None
            self._set_detail("question", question)
            return _Resolution(Clarify(question=question, state=state, trace_id=trace_id))
        if isinstance(action, Escalate):
            self.actions.append("escalate")
            ticket_id = self._open_ticket(action, state)
            if ticket_id is None:
                return None
            self.ticket_id = ticket_id
            self._set_detail("queue", action.queue)
            return _Resolution(Escalated(ticket_id=ticket_id, queue=action.queue, state=state, trace_id=trace_id))
        if isinstance(action, Raise):
            self.actions.append("raise")
            message = f"{self.policy.name}: {state}"
            why = (self.explanations or {}).get(state)
            if isinstance(why, str):
                message += f": {why}"
            return _Resolution(None, exception=action.make(message), cause=self.last_error)
        raise AssertionError(f"unknown action {action!r}")

    def _open_ticket(self, action: Escalate, state: str) -> str | None:
        store = self.store.get()
        if store is None:
            self._note(f"escalate to {action.queue!r}: no store to keep the ticket in (Policy(store=False)?)")
            return None
        created = time.time()
        ticket = Ticket(
            ticket_id=_next_trace_id(),  # 32 hex digits, never repeated, without a system call
            queue=action.queue,
            created=created,
            policy=self.policy.name,
            trace_id=self.trace_id,
            input_preview=preview(self.text),
            input_raw=self.text if self.policy.store_raw_inputs else None,
            output=self.last_output,
            confidence=self.last_confidence,
            state=state,
            deadline=None if action.deadline is None else created + action.deadline,
            default=action.default,
        )
        try:
            return store.create_ticket(ticket)
        except Exception as exc:
            self._note(f"escalate to {action.queue!r}: the store refused the ticket ({type(exc).__name__}: {exc})")
            return None

    def _last_resort(self, state: str) -> _Resolution:
        reason = "no action of the policy resolved the call"
        self.actions.append("abstain")
        self._note("the rule on unexpected ran out of actions; abstained")
        self._set_detail("reason", reason)
        return _Resolution(Abstained(reason=reason, state=state, trace_id=self.trace_id))

    def internal_error(self, exc: Exception) -> _Resolution:
        """The safety net: failpath itself failed on this call; abstain and say why in the trace."""
        reason = "failpath could not finish this call"
        self.states.append("unexpected")
        self.decided = "unexpected"
        self._explain("unexpected", f"internal error: {_describe_error(exc)}")
        self._set_detail("reason", reason)
        self.actions.append("abstain")
        log.exception("failpath: internal error while guarding a call of %s", self.system_name)
        return _Resolution(Abstained(reason=reason, state="unexpected", trace_id=self.trace_id))

    # ------------------------------------------------------------------ detail
    def _note(self, text: str) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append(text)

    def _explain(self, state: str, why: Any) -> None:
        if self.explanations is None:
            self.explanations = {}
        self.explanations.setdefault(state, why)

    def _set_detail(self, key: str, value: Any) -> None:
        if self.detail is None:
            self.detail = {}
        self.detail[key] = value

    # ------------------------------------------------------------------ the trace
    def trace(self, resolution: _Resolution) -> Trace:
        """The trace of this call (written to the store and handed to the exporters)."""
        outcome = resolution.outcome
        policy = self.policy
        detail: dict[str, Any] = {}
        if self.detail is not None:
            detail.update(self.detail)
        if self.explanations is not None:
            detail["explanations"] = self.explanations
        if self.notes is not None:
            detail["notes"] = self.notes
        output = confidence = None
        degraded = False
        kind = type(outcome)
        if kind is Answered:
            value = outcome.value  # type: ignore[union-attr]
            output = self.last_output if value is self.last_raw else jsonable(value)
            confidence = outcome.confidence  # type: ignore[union-attr]
            degraded = outcome.degraded  # type: ignore[union-attr]
        elif kind is Defaulted:
            output = jsonable(outcome.value)  # type: ignore[union-attr]
        usage: dict[str, float] = {}
        if self.tokens_in or self.tokens_out:
            usage = {"input_tokens": self.tokens_in, "output_tokens": self.tokens_out}
            if policy.budget is not None and policy.budget.prices:
                usage["cost"] = self.cost
        if resolution.exception is None:
            if self.actions:
                self._attempt_resolution()
        else:
            detail["raised"] = _describe_error(resolution.exception)
        text = self.text
        return _new_trace(
            self.trace_id,
            self.time,
            policy.name,
            digest(text),
            preview(text),
            "raised" if outcome is None else _KIND_OF[kind],
            text if policy.store_raw_inputs else None,
            output,
            confidence,
            tuple(self.states),
            tuple(self.actions),
            self.decided,
            tuple(self.attempts),
            degraded,
            (_perf() - self.start) * 1000.0,
            self.ticket_id,
            usage,
            detail,
        )

    def is_clean(self) -> bool:
        """True when the call answered with nothing to record beyond its attempts (what :meth:`clean_trace` covers)."""
        return (
            self.detail is None and self.explanations is None and self.notes is None and not self.actions
            and not self.states and not self.tokens_in and not self.tokens_out
        )

    def clean_trace(self, outcome: Answered) -> Trace:
        """The trace :meth:`trace` builds for ``Answered`` when :meth:`is_clean`, built without its general cases."""
        policy = self.policy
        value = outcome.value
        text = self.text
        return _new_trace(
            self.trace_id,
            self.time,
            policy.name,
            digest(text),
            preview(text),
            "answered",
            text if policy.store_raw_inputs else None,
            self.last_output if value is self.last_raw else jsonable(value),
            outcome.confidence,
            (),
            (),
            self.decided,
            tuple(self.attempts),
            outcome.degraded,
            (_perf() - self.start) * 1000.0,
            self.ticket_id,
            {},
            {},
        )

    def _attempt_resolution(self) -> None:
        if self.actions and self.decided is not None:
            last = self.actions[-1]
            if last not in ("retry", "fallback", "sample"):
                self.attempts.append(_new_attempt(len(self.attempts) + 1, last, None, self.decided, None, None, None, 0.0, {}))


_KIND_OF = {Answered: "answered", Clarify: "clarify", Escalated: "escalated", Abstained: "abstained", Defaulted: "defaulted"}
_NO_VOTE = object()
_SAMPLE = object()  # "compare the answer with more samples first"


def _describe_error(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= 500 else text[:499] + "…"


# --------------------------------------------------------------------------- worker threads for sync timeouts


class _Job:
    """One call handed to a worker thread. ``done`` is held until the call has returned or raised."""

    __slots__ = ("fn", "arg", "done", "value", "error", "abandoned")

    def __init__(self, fn: Callable[[Any], Any], arg: Any):
        self.fn = fn
        self.arg = arg
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False  # the caller stopped waiting; a job not started yet is skipped

    def wait(self, timeout: float) -> bool:
        """True when the call finished within ``timeout`` seconds; else the job is abandoned."""
        if self.done.acquire(timeout=timeout):
            return True
        self.abandoned = True
        return False


class DaemonPool:
    """Daemon worker threads for sync systems under a timeout.

    Daemon threads, so a call that never returns cannot keep the interpreter from exiting. Each
    submitted call gets a worker of its own (an idle one, or a new one), so a stuck call never delays
    another. A job is handed over through a queue and its result back through a lock, the lightest
    hand-off the standard library offers.
    """

    def __init__(self, name: str, max_idle: int = 8):
        self._max_idle = max_idle
        self._name = name
        self._count = 0
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        """Forget every worker (in a forked child, whose copies of them do not run)."""
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> _Job:
        """Run ``fn(arg)`` in a worker thread; wait for it with ``job.wait(timeout)``."""
        job = _Job(fn, arg)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                spawn = False
            else:
                self._count += 1
                spawn = True
        self._queue.put(job)
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{self._count}", daemon=True).start()
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if not job.abandoned:
                try:
                    job.value = job.fn(job.arg)
                except BaseException as exc:  # handed to the caller, who re-raises KeyboardInterrupt and SystemExit
                    job.error = exc
            job.done.release()
            del job
            with self._lock:
                if self._idle >= self._max_idle:
                    return
                self._idle += 1


#: Every pool of this process, so a forked child can forget the workers it did not inherit.
_POOLS: "weakref.WeakSet[DaemonPool]" = weakref.WeakSet()


def _reset_pools_after_fork() -> None:
    for pool in list(_POOLS):
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_after_fork)


# --------------------------------------------------------------------------- guarded systems


def _system_name(system: Any, name: str | None) -> str:
    if name:
        return name
    for attribute in ("__qualname__", "__name__"):
        value = getattr(system, attribute, None)
        if isinstance(value, str):
            return value
    return type(system).__name__


class _GuardedBase:
    """What sync and async guarded systems share: the policy, the system, the store, the trace's end."""

    def __init__(self, policy: Policy, system: Callable[[Any], Any], *, name: str | None, store: StoreHandle):
        self.policy = policy
        self.system = system
        self.name = _system_name(system, name)
        self._store = store
        self.__wrapped__ = system
        self.__name__ = getattr(system, "__name__", self.name)
        self.__qualname__ = getattr(system, "__qualname__", self.name)
        self.__doc__ = getattr(system, "__doc__", None)

    def with_store(self, store: Any) -> Any:
        """A copy of this guarded system that writes its traces and tickets to ``store`` (a ``Store`` or a path)."""
        return type(self)(self.policy, self.system, name=self.name, store=self.policy.store_handle(store))

    @property
    def store(self) -> Store | None:
        """The store traces go to (opened now if needed), or None."""
        return self._store.get()

    def _finish(self, run: _Run, resolution: _Resolution) -> tuple[Outcome, Trace]:
        try:
            trace = run.trace(resolution)
        except Exception as exc:  # never lose the outcome over its record
            log.exception("failpath: could not build the trace of a call")
            trace = Trace(
                trace_id=run.trace_id, time=run.time, policy=run.policy.name, input_digest="", input_preview="",
                outcome=resolution.outcome.kind if resolution.outcome is not None else "raised",
                detail={"notes": [f"trace incomplete: {type(exc).__name__}: {exc}"]},
            )
        self._deliver(run, trace)
        if resolution.exception is not None:
            exc = resolution.exception
            try:
                exc.add_note(f"failpath trace {trace.trace_id}")
            except Exception:
                pass
            raise exc from resolution.cause
        return resolution.outcome, trace  # type: ignore[return-value]

    def _finish_answered(self, run: _Run, outcome: Answered) -> tuple[Outcome, Trace]:
        """:meth:`_finish` for a call that answered, with the trace built directly when the call was clean."""
        if not run.is_clean():
            return self._finish(run, _Resolution(outcome))
        try:
            trace = run.clean_trace(outcome)
        except Exception:
            return self._finish(run, _Resolution(outcome))  # the general path builds and logs what it can
        self._deliver(run, trace)
        return outcome, trace

    def _deliver(self, run: _Run, trace: Trace) -> None:
        """Hand the trace to the store and the exporters; their errors are logged, never raised."""
        store = self._store.get()
        if store is not None:
            try:
                store.write_trace(trace)
            except Exception as exc:
                log.error("failpath: could not write trace %s (%s: %s)", trace.trace_id, type(exc).__name__, exc)
        for exporter in run.policy.exporters:
            try:
                exporter.export(trace)
            except Exception as exc:
                log.warning("failpath: exporter %r failed on trace %s (%s: %s)", exporter, trace.trace_id, type(exc).__name__, exc)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} under {self.policy!r}>"


class GuardedSystem(_GuardedBase):
    """A sync system under a policy: calling it always returns one outcome (or raises through ``Raise``)."""

    def __init__(self, policy: Policy, system: Callable[[Any], Any], *, name: str | None = None, store: StoreHandle | None = None):
        super().__init__(policy, system, name=name, store=store if store is not None else policy._store)
        self._input_checks = bool(policy._input_checks)
        self._threaded = policy.uses_timeout
        self._pool = policy._worker_pool() if self._threaded else None

    def __call__(self, input: Any) -> Outcome:
        """Guard one call: ``Answered``, ``Clarify``, ``Escalated``, ``Abstained`` or ``Defaulted``."""
        return self.call_traced(input)[0]

    def call_traced(self, input: Any) -> tuple[Outcome, Trace]:
        """Guard one call and return its outcome together with its trace."""
        run = _Run(self.policy, self.system, self.name, False, input, self._store)
        answered = False
        try:
            route = run.check_input() if self._input_checks else None
            if route is None:
                # The first call, made here rather than through the step machinery: most calls end with it.
                if self._threaded:
                    route = run._read(self._call(run._call_step(), input), "call")
                else:
                    started = _perf()
                    try:
                        raw = self.system(input)
                    except Exception as exc:
                        route = run._read(_Result(None, exc, (_perf() - started) * 1000.0), "call")
                    else:
                        run.calls = 1
                        route = run._read_value(raw, (_perf() - started) * 1000.0, "call")
                if route is None:
                    answered = True
                    outcome = _new_answered(run.decided, run.trace_id, run.answer, run.answer_confidence, run.degraded)
            if not answered:
                resolution = self._drive(run.steps(route), input)
        except Exception as exc:
            answered = False
            resolution = run.internal_error(exc)
        if answered:
            return self._finish_answered(run, outcome)
        return self._finish(run, resolution)

    def _drive(self, steps: Generator[_Step, Any, _Resolution], input: Any) -> _Resolution:
        """Perform the steps the policy asks for until it decides."""
        try:
            step = steps.send(None)
            while True:
                if type(step) is _CallStep:
                    if step.count is None:
                        answer: Any = self._call(step, input)
                    else:
                        answer = [self._call(step, input) for _ in range(step.count)]
                else:
                    time.sleep(step.seconds)
                    answer = None
                step = steps.send(answer)
        except StopIteration as stop:
            return stop.value

    def _call(self, step: _CallStep, input: Any) -> _Result:
        if step.limit is None or self._pool is None:
            return _call_direct(step.system, input)
        started = _perf()
        job = self._pool.submit(step.system, input)
        if not job.wait(step.limit):
            return _Result(None, None, (_perf() - started) * 1000.0, timed_out=True, step=step)
        error = job.error
        if error is None:
            return _Result(job.value, None, (_perf() - started) * 1000.0)
        if not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit: they propagate
        return _Result(None, error, (_perf() - started) * 1000.0)


def _call_direct(system: Any, input: Any) -> _Result:
    started = _perf()
    try:
        value = system(input)
    except Exception as exc:
        return _Result(None, exc, (_perf() - started) * 1000.0)
    return _Result(value, None, (_perf() - started) * 1000.0)


class AsyncGuardedSystem(_GuardedBase):
    """An ``async def`` system under a policy: ``await guarded(input)`` always returns one outcome."""

    def __init__(self, policy: Policy, system: Callable[[Any], Any], *, name: str | None = None, store: StoreHandle | None = None):
        super().__init__(policy, system, name=name, store=store if store is not None else policy._store)
        self._input_checks = bool(policy._input_checks)
        self._timed = policy.uses_timeout

    async def __call__(self, input: Any) -> Outcome:
        """Guard one call: ``Answered``, ``Clarify``, ``Escalated``, ``Abstained`` or ``Defaulted``."""
        return (await self.call_traced(input))[0]

    async def call_traced(self, input: Any) -> tuple[Outcome, Trace]:
        """Guard one call and return its outcome together with its trace."""
        run = _Run(self.policy, self.system, self.name, True, input, self._store)
        answered = False
        try:
            route = run.check_input() if self._input_checks else None
            if route is None:
                if self._timed:
                    route = run._read(await _call_async(run._call_step(), input), "call")
                else:  # what _call_async does for an async system with no time limit, inline
                    started = _perf()
                    try:
                        raw = await self.system(input)
                    except Exception as exc:
                        route = run._read(_Result(None, exc, (_perf() - started) * 1000.0), "call")
                    else:
                        run.calls = 1
                        route = run._read_value(raw, (_perf() - started) * 1000.0, "call")
                if route is None:
                    answered = True
                    outcome = _new_answered(run.decided, run.trace_id, run.answer, run.answer_confidence, run.degraded)
            if not answered:
                resolution = await self._drive(run.steps(route), input)
        except Exception as exc:
            answered = False
            resolution = run.internal_error(exc)
        if answered:
            return self._finish_answered(run, outcome)
        return self._finish(run, resolution)

    async def _drive(self, steps: Generator[_Step, Any, _Resolution], input: Any) -> _Resolution:
        """Perform the steps the policy asks for until it decides."""
        try:
            step = steps.send(None)
            while True:
                if type(step) is _CallStep:
                    if step.count is None:
                        answer: Any = await _call_async(step, input)
                    else:
                        import asyncio

                        answer = list(await asyncio.gather(*(_call_async(step, input) for _ in range(step.count))))
                else:
                    import asyncio

                    await asyncio.sleep(step.seconds)
                    answer = None
                step = steps.send(answer)
        except StopIteration as stop:
            return stop.value


async def _call_async(step: _CallStep, input: Any) -> _Result:
    started = _perf()
    system = step.system
    if not step.is_async:  # a sync fallback under an async guard: called inline
        try:
            value = system(input)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return _Result(None, exc, (_perf() - started) * 1000.0)
        return _Result(value, None, (_perf() - started) * 1000.0)
    if step.limit is None:
        try:
            value = await system(input)
        except Exception as exc:
            return _Result(None, exc, (_perf() - started) * 1000.0)
        return _Result(value, None, (_perf() - started) * 1000.0)
    import asyncio

    timer = asyncio.timeout(step.limit)
    try:
        async with timer:
            value = await system(input)
    except Exception as exc:
        if timer.expired():
            return _Result(None, None, (_perf() - started) * 1000.0, timed_out=True, step=step)
        return _Result(None, exc, (_perf() - started) * 1000.0)
    return _Result(value, None, (_perf() - started) * 1000.0)


def make_guarded(policy: Policy, system: Callable[[Any], Any], *, name: str | None, store: StoreHandle) -> Any:
    """The guarded twin of ``system``: async for an ``async def`` system, sync otherwise."""
    if isinstance(system, _GuardedBase):
        raise PolicyError(f"{system!r} is guarded already; wrap the original system (guarded.system)")
    if not callable(system):
        raise PolicyError(f"policy {policy.name!r}: cannot guard {system!r}; give a callable input -> output")
    if _is_async(system):
        return AsyncGuardedSystem(policy, system, name=name, store=store)
    for fallback in policy.fallbacks():
        if fallback.is_async:
            raise PolicyError(
                f"policy {policy.name!r}: {fallback!r} is async, but {_system_name(system, name)} is sync; "
                "a sync guarded system can only fall back to a sync system"
            )
    return GuardedSystem(policy, system, name=name, store=store)
