"""The trace of one guarded call, built from its :class:`~failpath.guard.run.Run` when the call ends."""

from __future__ import annotations

import time
from typing import Any

from failpath.core import Abstained, Answered, Attempt, Clarify, Defaulted, Escalated, Trace
from failpath.guard.run import Run
from failpath.guard.steps import Resolution
from failpath.guard.text import describe_error, digest, jsonable, preview, private

__all__ = ["build_trace", "clean_trace", "KIND_OF"]

_perf = time.perf_counter

#: The trace's ``outcome`` field for each outcome class.
KIND_OF = {Answered: "answered", Clarify: "clarify", Escalated: "escalated", Abstained: "abstained", Defaulted: "defaulted"}


def build_trace(run: Run, resolution: Resolution) -> Trace:
    """The trace of a call that ended in ``resolution`` (written to the store and handed to the exporters)."""
    outcome = resolution.outcome
    table = run.table
    detail: dict[str, Any] = {}
    if run.detail is not None:
        detail.update(run.detail)
    if run.explanations is not None:
        detail["explanations"] = run.explanations
    if run.notes is not None:
        detail["notes"] = run.notes
    output = confidence = None
    degraded = False
    kind = type(outcome)
    if kind is Answered:
        output = _answer_output(run, outcome)  # type: ignore[arg-type]
        confidence = outcome.confidence  # type: ignore[union-attr]
        degraded = outcome.degraded  # type: ignore[union-attr]
    elif kind is Defaulted:
        output = jsonable(outcome.value)  # type: ignore[union-attr]
    usage: dict[str, float] = {}
    if run.tokens_in or run.tokens_out:
        usage = {"input_tokens": run.tokens_in, "output_tokens": run.tokens_out}
        if table.budget is not None and table.budget.prices:
            usage["cost"] = run.cost
    if resolution.exception is None:
        _add_resolving_attempt(run)
    else:
        detail["raised"] = describe_error(resolution.exception)
    text = run.text
    if table.store_raw_inputs:
        attempts = tuple(run.attempts)
    else:
        output, attempts, detail = _private(run, output, detail)
    return Trace(
        run.trace_id,
        run.time,
        table.name,
        digest(text),
        preview(text),
        "raised" if outcome is None else KIND_OF[kind],
        text if table.store_raw_inputs else None,
        output,
        confidence,
        tuple(run.states),
        tuple(run.actions),
        run.decided,
        attempts,
        degraded,
        (_perf() - run.start) * 1000.0,
        run.ticket_id,
        usage,
        detail,
    )


def clean_trace(run: Run, outcome: Answered) -> Trace:
    """What :func:`build_trace` builds for ``Answered`` when ``run.is_clean()``, without its general cases."""
    table = run.table
    text = run.text
    output = _answer_output(run, outcome)
    if table.store_raw_inputs:
        attempts = tuple(run.attempts)
    else:
        output, attempts, _ = _private(run, output, None)
    return Trace(
        run.trace_id,
        run.time,
        table.name,
        digest(text),
        preview(text),
        "answered",
        text if table.store_raw_inputs else None,
        output,
        outcome.confidence,
        (),
        (),
        run.decided,
        attempts,
        outcome.degraded,
        (_perf() - run.start) * 1000.0,
        run.ticket_id,
        {},
        {},
    )


def _private(run: Run, output: Any, detail: dict[str, Any] | None) -> tuple[Any, tuple[Attempt, ...], Any]:
    """The output, attempts and detail as a trace keeps them without raw inputs (see :func:`private`)."""
    text = run.text
    attempts_ = run.attempts
    if not detail and len(attempts_) == 1 and attempts_[0].output is output and attempts_[0].error is None:
        shown = private(output, text)  # the clean call: one rendering, shared by the answer and its attempt
        if shown is output:
            return output, (attempts_[0],), detail
    kept: dict[int, Any] = {}  # a rendering shared by the answer and its attempt is redacted once

    def keep(value: Any) -> Any:
        if value is None or type(value) in (int, float, bool):
            return value
        key = id(value)
        if key not in kept:
            kept[key] = private(value, text)
        return kept[key]

    attempts = []
    for a in run.attempts:
        error, shown = (None if a.error is None else private(a.error, text)), keep(a.output)
        if error is not a.error or shown is not a.output:  # rebuilt only when redaction changed something
            a = Attempt(a.number, a.action, a.system, a.state, error, shown, a.confidence, a.latency_ms, a.usage)
        attempts.append(a)
    return keep(output), tuple(attempts), private(detail, text) if detail else detail


def _answer_output(run: Run, outcome: Answered) -> Any:
    """The answer's JSON-safe rendering: the one made when its call was read, else made now (a schema's model)."""
    if run.answer_output is not None and outcome.value is run.answer:
        return run.answer_output
    return jsonable(outcome.value)


def _add_resolving_attempt(run: Run) -> None:
    """Record the action that ended the call (not a call itself) as the last attempt."""
    if run.actions and run.decided is not None:
        last = run.actions[-1]
        if last not in ("retry", "reask", "fallback", "sample"):
            run.attempts.append(Attempt(len(run.attempts) + 1, last, None, run.decided, None, None, None, 0.0, {}))
