"""The step machine: decides one guarded call from what its calls return, without doing any I/O.

:func:`steps` is a generator. It yields what it needs done (a :class:`CallStep`: call a system; a
:class:`SleepStep`: wait before a retry) and receives the results; it returns the call's
:class:`Resolution`. The sync driver (:mod:`failpath.guard.sync_guard`) performs the steps directly,
the async driver (:mod:`failpath.guard.async_guard`) with ``await``, so both follow exactly the same
policy logic. The drivers make the input checks and the first call themselves (most calls end there)
and read its result with :func:`read_result` or :func:`read_value`; only a call that needs handling
enters the generator.
"""

from __future__ import annotations

import time
import types
from collections.abc import Generator
from typing import Any

from failpath.core import Feedback, OutputRejected, Prediction, ProviderFailure, is_transient_status, is_valid_confidence, real_number
from failpath.guard.actions import Fallback, Reask, Retry, takes_feedback
from failpath.guard.resolve import answered, last_resort, resolve
from failpath.guard.run import Run
from failpath.guard.states import LowConfidence, State, basic_output_problem
from failpath.guard.steps import NO_VOTE, SAMPLE, CallResult, Resolution, Route, SleepStep, Step
from failpath.guard.text import canonical_text, describe_error, jsonable, safe_repr

__all__ = ["check_input", "read_result", "read_value", "steps"]

_perf = time.perf_counter
_CoroutineType = types.CoroutineType


# --------------------------------------------------------------------------- before the first call


def check_input(run: Run) -> Route | None:
    """Run the input-side detectors (before any call): the route of the first that fires, or None."""
    for detector, index in run.table.input_checks:
        if isinstance(detector, State):
            why, error = detector.evaluate(run.value, None)
            if error is not None:
                run.note(f"state {detector.name}: predicate raised {error}")
        else:
            try:
                why = detector.check_input(run.value, run.text)
            except Exception as exc:
                why = None
                run.note(f"{detector.name}: detector raised {describe_error(exc)}")
        if why:
            return (detector.name, index, why, True)
    return None


# --------------------------------------------------------------------------- the policy logic


def steps(run: Run, route: Any) -> Generator[Step, Any, Resolution]:
    """Decide the rest of the call from ``route`` (what the input checks or the first call found, or
    ``SAMPLE``): yields the calls and sleeps it needs; returns how it ended."""
    table = run.table
    if route is SAMPLE:
        route = yield from _sampled(run)
    while True:
        if route is None:
            return answered(run)
        name, index, why, input_side = run.record(route)
        while True:
            action = run.next_action(index)
            if action is None:
                if index == table.unexpected_index:
                    return last_resort(run, name)
                why = f"the actions of the rule on {name} ran out without resolving the call"
                name, index, why, input_side = run.record(("unexpected", table.unexpected_index, why, input_side))
                continue
            if isinstance(action, (Retry, Fallback)):
                feedback = None
                if isinstance(action, Reask):
                    feedback = _feedback(run, action, name, why, index, input_side)
                    if feedback is None:
                        continue  # nothing to correct, or a system that cannot take feedback (noted)
                wait = _may_call_again(run, action, name, index, input_side)
                if wait is None:
                    continue  # this action is skipped (noted): the chain moves on
                if isinstance(wait, tuple):
                    name, index, why, input_side = run.record(wait)
                    continue
                if isinstance(action, Retry):
                    run.actions.append(action.name)
                    if wait > 0:
                        yield SleepStep(wait)
                else:
                    run.actions.append("fallback")
                    run.system = action.system
                    run.system_name = action.system_name
                    run.system_async = action.is_async
                    run.degraded = True
                if feedback is not None:
                    _record_feedback(run, feedback)
                run.asking = feedback
                result = yield run.call_step(feedback=feedback)
                route = yield from _judge(run, result, action.name)
                break
            resolution = resolve(run, action, name)
            if resolution is not None:
                return resolution


def _may_call_again(run: Run, action: Retry | Fallback, name: str, index: int, input_side: bool) -> float | Route | None:
    """Whether a ``Retry`` or ``Fallback`` may make its call: the seconds to wait first (0 for a
    fallback), a route to ``budget_exceeded`` when a budget forbids the call, or None (noted) when the
    action is skipped and the chain moves on."""
    retry = isinstance(action, Retry)
    if retry and input_side:
        run.skip_rest(index)
        run.note(f"retry skipped on {name}: the same input would be refused again")
        return None
    if name == "budget_exceeded":
        if retry:
            run.skip_rest(index)
        run.note(f"{action.name} skipped: the budget is spent")
        return None
    blocked = run.budget_block(1)
    if blocked is not None:
        return run.budget_route(blocked)
    if not retry:
        return 0.0
    error = run.last_error if isinstance(run.last_error, ProviderFailure) else None
    status = getattr(error, "status", None)
    if isinstance(status, int) and not is_transient_status(status):
        run.skip_rest(index)
        run.note(f"retry skipped: the provider answered {status}, which the same request cannot fix")
        return None
    wait = action.wait_before(run.retries_used(index))
    retry_after = real_number(getattr(error, "retry_after", None))  # an int too large for a float is infinite
    if retry_after is not None and retry_after > wait:
        if retry_after > action.max_wait:
            run.skip_rest(index)
            run.note(f"retry skipped: the provider asked to wait {retry_after:g}s, more than max_wait={action.max_wait:g}s")
            return None
        wait = float(retry_after)
    deadline = run.table.deadline
    if wait > 0 and deadline is not None and _perf() - run.start + wait >= deadline:
        return run.budget_route(f"waiting {wait:.3g}s to retry would pass the deadline of {deadline:g}s")
    return wait


def _feedback(run: Run, action: Reask, name: str, why: Any, index: int, input_side: bool) -> Feedback | None:
    """What a re-ask tells the system about its answer; None (noted, the rule's ``Reask`` used up) when there
    is no answer to correct (an input refused, a timeout, a provider error) or the system takes no feedback."""
    error = run.last_error
    if input_side or name in ("timeout", "budget_exceeded") or (
        error is not None and not isinstance(error, OutputRejected) and name != "invalid_output"
    ):
        run.skip_rest(index)
        run.note(f"reask skipped on {name}: no answer came back to correct; use Retry for this state")
        return None
    if not takes_feedback(run.system):
        run.skip_rest(index)
        run.note(f"reask skipped: {run.system_name} takes no feedback= keyword argument")
        return None
    if error is not None:
        answer = getattr(error, "raw", None)
        try:
            problem = str(error) or describe_error(error)
        except Exception:
            problem = describe_error(error)
    else:
        answer = None if run.last_raw is NO_VOTE else run.last_raw
        problem = why if isinstance(why, str) else safe_repr(why)
    earlier = run.feedback.turns() if run.feedback is not None else ()
    return Feedback(name, problem, answer, action.instruction(name, problem), earlier)


def _record_feedback(run: Run, feedback: Feedback) -> None:
    """Keep the re-ask's message in the trace's detail, with the number of the attempt it goes with."""
    run.feedback = feedback
    sent = run.detail.get("feedback") if run.detail is not None else None
    if sent is None:
        sent = []
        run.set_detail("feedback", sent)
    sent.append({"attempt": len(run.attempts) + 1, "state": feedback.state, "message": feedback.message})


def _judge(run: Run, result: CallResult, action: str) -> Generator[Step, Any, Route | None]:
    """Read one call's result (drawing samples when the policy has ``Inconsistent``): a route, or None."""
    route = read_result(run, result, action)
    if route is SAMPLE:
        route = yield from _sampled(run)
    return route


# --------------------------------------------------------------------------- reading a call's result


def read_result(run: Run, result: CallResult, action: str) -> Any:
    """Read one call's result: the route to a failure state, None with the answer kept, or ``SAMPLE``
    when the answer must first be compared with more samples."""
    run.calls += 1
    if result.timed_out:
        seconds = f"{result.limit:.3g}s"
        if result.limit_is_deadline:
            route: Route = run.budget_route(f"the deadline of {run.table.deadline:g}s cut the call after {seconds}")
        else:
            route = ("timeout", run.table.timeout_index, f"no answer after {seconds}", False)
        run.add_attempt(action, route[0], f"TimeoutError: no answer after {seconds}", None, None, result.latency_ms, None)
        return route
    if result.error is not None:
        exc = result.error
        run.last_error = exc
        name, index = run.table.classify(exc)
        error = describe_error(exc)
        usage = run.add_usage(getattr(exc, "usage", None))  # tokens a failed call still spent
        run.add_attempt(action, name, error, None, None, result.latency_ms, usage)
        return (name, index, error, False)
    return read_value(run, result.value, result.latency_ms, action)


def read_value(run: Run, raw: Any, latency_ms: float, action: str) -> Any:
    """Read the value one call returned (the call is counted already): as :func:`read_result`."""
    table = run.table
    run.last_error = None
    usage = None
    if isinstance(raw, Prediction):
        value, confidence = raw.value, raw.confidence
        meta = raw.meta
        if meta:
            usage = run.add_usage(meta.get("usage") if hasattr(meta, "get") else None)
    else:
        value, confidence, meta = raw, None, None
    run.last_raw = value
    run.last_output = output = jsonable(value)  # the one rendering of this value: attempt, ticket and trace share it
    if confidence is None or (type(confidence) is float and 0.0 <= confidence <= 1.0):
        valid_confidence = confidence
    elif is_valid_confidence(confidence):
        valid_confidence = real_number(confidence)  # np.float32, Decimal, Fraction: kept as a float
    else:
        valid_confidence = None
        run.note(f"attempt {len(run.attempts) + 1}: confidence {safe_repr(confidence)} is not a number in [0, 1]; kept as none")
    run.last_confidence = valid_confidence

    route = _check_value(run, value, output)
    run.add_attempt(action, None if route is None else route[0], None, output, valid_confidence, latency_ms, usage)
    if route is not None:
        return route
    if table.inconsistent is not None and action != "sample":
        run.meta = meta
        return SAMPLE
    if table.output_checks:
        return _output_checks(run, confidence, meta)
    return None


def _check_value(run: Run, value: Any, output: Any) -> Route | None:
    """Route invalid outputs; on success keep the (validated) value as the answer. ``output`` is the
    value's rendering, kept as the answer's when validation returned the value itself."""
    table = run.table
    if type(value) is _CoroutineType:
        value.close()
        why = "the system returned a coroutine: guard an async def system to get an async guarded system"
        return ("invalid_output", table.invalid_index, why, False)
    if table.invalid:
        checked = value
        for detector, index in table.invalid:
            try:
                why, checked = detector.check(checked)
            except Exception as exc:
                why = f"validation raised {describe_error(exc)}"
            if why:
                return ("invalid_output", index, why, False)
        if checked is not value:
            value, output = checked, None  # a schema's model: rendered once, when the trace needs it
    else:
        why = basic_output_problem(value)
        if why:
            return ("invalid_output", None, why, False)
    run.answer = value
    run.answer_output = output
    run.answer_confidence = run.last_confidence
    return None


def _output_checks(run: Run, confidence: Any, meta: Any) -> Route | None:
    """``LowConfidence`` and output-side ``State`` rules, in rule order, on the kept answer."""
    prediction = None
    for detector, index in run.table.output_checks:
        if isinstance(detector, LowConfidence):
            why = detector.check_confidence(confidence)
        else:
            if prediction is None:
                prediction = Prediction(run.answer, run.answer_confidence, meta or {})
            why, error = detector.evaluate(run.value, prediction)
            if error is not None:
                run.note(f"state {detector.name}: predicate raised {error}")
        if why:
            run.settle_attempt(detector.name)
            return (detector.name, index, why, False)
    return None


# --------------------------------------------------------------------------- samples (Inconsistent)


def _sampled(run: Run) -> Generator[Step, Any, Route | None]:
    """Draw the extra samples ``Inconsistent`` asks for, keep the majority answer, run the output checks."""
    detector, index = run.table.inconsistent  # type: ignore[misc]
    blocked = run.budget_block(detector.samples - 1)
    if blocked is not None:
        return run.budget_route(f"{blocked}; cannot draw {detector.samples - 1} more samples")
    run.actions.append("sample")
    samples = yield run.call_step(detector.samples - 1, run.asking)  # after a re-ask, samples of the corrected request
    votes = [(_vote(run, detector, run.answer), run.answer, run.answer_confidence, run.answer_output)]
    for sample in samples:
        votes.append(_sample(run, detector, sample))
    route = _tally(run, detector, index, votes)
    if route is not None:
        return route
    return _output_checks(run, run.answer_confidence, run.meta)


def _vote(run: Run, detector: Any, value: Any) -> Any:
    """The answer's vote: its key; an unhashable key (a list) by its JSON rendering; no vote when the key
    raised or is not equal to itself (NaN, which agrees with nothing)."""
    try:
        key = detector.vote_key(value)
        try:
            hash(key)
        except TypeError:
            key = canonical_text(key)
        if not key == key:
            run.note(f"inconsistent: key {safe_repr(key)} is not equal to itself; the answer does not vote")
            return NO_VOTE
        return key
    except Exception as exc:
        run.note(f"inconsistent: key raised {describe_error(exc)}")
        return NO_VOTE


def _sample(run: Run, detector: Any, result: CallResult) -> tuple[Any, Any, float | None, Any]:
    """One extra sample: its vote, value, confidence and rendering (failed or invalid samples do not vote)."""
    run.calls += 1
    if result.timed_out or result.error is not None:
        error = "TimeoutError: no answer in time" if result.timed_out else describe_error(result.error)  # type: ignore[arg-type]
        usage = None if result.timed_out else run.add_usage(getattr(result.error, "usage", None))
        run.add_attempt("sample", None, error, None, None, result.latency_ms, usage)
        return (NO_VOTE, None, None, None)
    raw = result.value
    usage = None
    if isinstance(raw, Prediction):
        value, confidence = raw.value, raw.confidence
        if raw.meta and hasattr(raw.meta, "get"):
            usage = run.add_usage(raw.meta.get("usage"))
    else:
        value, confidence = raw, None
    confidence = real_number(confidence) if is_valid_confidence(confidence) else None
    output = jsonable(value)
    saved = (run.answer, run.answer_confidence, run.answer_output, run.last_confidence)
    route = _check_value(run, value, output)
    validated, rendered = run.answer, run.answer_output
    run.answer, run.answer_confidence, run.answer_output, run.last_confidence = saved
    if route is not None:
        run.add_attempt("sample", None, f"invalid: {route[2]}", output, confidence, result.latency_ms, usage)
        return (NO_VOTE, None, None, None)
    run.add_attempt("sample", None, None, output, confidence, result.latency_ms, usage)
    return (_vote(run, detector, validated), validated, confidence, rendered)


def _tally(run: Run, detector: Any, index: int, votes: list[tuple[Any, Any, float | None, Any]]) -> Route | None:
    """Keep the majority answer (its mean confidence, else the agreement), or route to ``inconsistent``."""
    counts: dict[Any, int] = {}
    for key, _, _, _ in votes:
        if key is not NO_VOTE:
            counts[key] = counts.get(key, 0) + 1
    total = len(votes)
    if not counts:
        return ("inconsistent", index, f"none of {total} samples gave a usable answer", False)
    best = max(counts, key=lambda k: counts[k])
    agreement = counts[best] / total
    if agreement < detector.min_agreement:
        return ("inconsistent", index, f"{counts[best]} of {total} answers agree ({agreement:.0%} < {detector.min_agreement:.0%})", False)
    majority = [(value, confidence, rendered) for key, value, confidence, rendered in votes if key is not NO_VOTE and key == best]
    confidences = [c for _, c, _ in majority if c is not None]
    run.answer, _, run.answer_output = majority[0]
    run.answer_confidence = sum(confidences) / len(confidences) if confidences else agreement
    run.explain("agreement", f"{counts[best]} of {total}")
    return None
