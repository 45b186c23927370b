"""An agent run's model step: the checks on the user's request, calling the model, and the rules on its answer.

Functions of the :class:`~failpath.agent.runner.Agent` they act for (passed as ``agent``). A model step
ends in a ``model`` checkpoint (the turn, with the tool calls it asks for, or the feedback on an answer
the output-side rules refused), or ends the run by raising :class:`~failpath.agent.segment.Ended`.
"""

from __future__ import annotations

import time
from typing import Any

from failpath.agent.actions import FeedBack
from failpath.agent.budget import budget_block, budget_exceeded, count_usage
from failpath.agent.chains import end_unexpected, end_with, last_resort
from failpath.agent.record import RunRecord
from failpath.agent.segment import Ended, Segment, awaited, commit, perf
from failpath.agent.tools import ModelTurn, as_turn
from failpath.agent.tracing import step_entry
from failpath.core import Answered, Prediction, ProviderFailure, is_transient_status
from failpath.guard.actions import Fallback, Retry
from failpath.guard.states import InvalidOutput, State
from failpath.guard.text import canonical_text

__all__ = ["check_input", "model_step", "model_chain", "check_answer"]


def check_input(agent: Any, record: RunRecord, store: Any) -> None:
    """The policy's input-side states on the user's request, before the first model step (as the guard does)."""
    seg = record.current
    text = canonical_text(record.value)
    for detector, index in agent.policy.table.input_checks:
        if isinstance(detector, State):
            why, error = detector.evaluate(record.value, None)
            if error is not None:
                seg.notes.append(f"state {detector.name}: predicate raised {error}")
        else:
            try:
                why = detector.check_input(record.value, text)
            except Exception as exc:
                why = None
                seg.notes.append(f"{detector.name}: detector raised {type(exc).__name__}: {exc}")
        if not why:
            continue
        seg.states.append(detector.name)
        seg.explanations.setdefault(detector.name, why)
        for action in agent.policy.rules[index].actions:
            end_with(agent, record, store, seg, action, detector.name, why)
        seg.states.append("unexpected")
        end_unexpected(agent, record, store, seg, why)
        last_resort(record, seg, detector.name)


def model_step(agent: Any, record: RunRecord, store: Any) -> None:
    seg = record.current
    system = agent.model
    system_name = "model"
    retries: dict[int, int] = {}
    used_fallbacks: set[int] = set()
    while True:
        why = budget_block(agent, record, seg, "model")
        if why is not None:
            budget_exceeded(agent, record, store, seg, why)
        start = perf()
        seg.model_calls += 1
        try:
            turn = as_turn(awaited(record, system(list(record.messages))))
            error = None
        except TypeError as exc:
            turn, error = None, exc
            if not str(exc).startswith("the model step returned"):
                state, index = agent.policy.table.classify(exc)
            else:
                state, index = "invalid_output", agent.policy.table.invalid_index
        except Exception as exc:
            turn, error = None, exc
            state, index = agent.policy.table.classify(exc)
        latency = (perf() - start) * 1000.0
        if turn is not None:
            usage = count_usage(agent, record, seg, turn.usage)
            seg.steps.append(step_entry("model", system_name, latency_ms=latency, usage=usage, text=turn.text, calls=turn.tool_calls))
            if turn.tool_calls:
                commit(record, store, seg, "model", {"turn": turn.to_dict()}, hold=True)
                return
            feedback = check_answer(agent, record, store, seg, turn)
            if feedback is None:
                raise Ended(Answered(turn.text, None, system is not agent.model, state=None, trace_id=record.trace_id))
            commit(record, store, seg, "model", {"turn": turn.to_dict(), "feedback": feedback}, hold=True)
            return
        usage = count_usage(agent, record, seg, getattr(error, "usage", None))
        described = f"{type(error).__name__}: {error}"
        seg.steps.append(step_entry("model", system_name, latency_ms=latency, usage=usage, state=state, error=described))
        if index is None:
            seg.states.append(state)
            seg.explanations.setdefault(state, described)
            if state != "unexpected":
                seg.states.append("unexpected")
                seg.explanations.setdefault("unexpected", f"{state} has no rule: {described}")
            state, index = "unexpected", agent.policy.table.unexpected_index
        else:
            seg.states.append(state)
            seg.explanations.setdefault(state, described)
        again = model_chain(agent, record, store, seg, state, index, described, error, retries, used_fallbacks)
        if isinstance(again, Fallback):
            system, system_name = again.system, again.system_name
        seg.steps[-1]["action"] = seg.actions[-1] if seg.actions else None


def model_chain(agent: Any, record: RunRecord, store: Any, seg: Segment, state: str, index: int, why: str, error: BaseException, retries: dict[int, int], used: set[int]) -> Any:
    """Run the rule's chain for a failed model step: the next system to call (the same one on Retry), or end the run."""
    for position, action in enumerate(agent.policy.rules[index].actions):
        if isinstance(action, Retry):
            done = retries.get(position, 0)
            status = getattr(error, "status", None)
            if done >= action.times or (isinstance(error, ProviderFailure) and status is not None and not is_transient_status(status)):
                continue
            retries[position] = done + 1
            seg.actions.append("retry")
            wait = action.wait_before(done + 1)
            retry_after = getattr(error, "retry_after", None)
            if isinstance(retry_after, (int, float)) and retry_after > 0:
                if retry_after > action.max_wait:
                    continue
                wait = max(wait, float(retry_after))
            if wait > 0:
                time.sleep(wait)
            return True
        if isinstance(action, Fallback):
            if position in used:
                continue
            used.add(position)
            seg.actions.append("fallback")
            return action
        if isinstance(action, FeedBack):
            continue  # a failed model step has no tool result to carry the feedback
        end_with(agent, record, store, seg, action, state, why)
    if state != "unexpected":
        seg.states.append("unexpected")
        return model_chain(agent, record, store, seg, "unexpected", agent.policy.table.unexpected_index, why, error, retries, used)
    last_resort(record, seg, state)


def check_answer(agent: Any, record: RunRecord, store: Any, seg: Segment, turn: ModelTurn) -> str | None:
    """Run the output-side rules on the final answer: None when it stands, else the feedback for the model."""
    text = turn.text
    prediction = Prediction(text, None, {"steps": list(record.steps) + seg.steps, "tool_failures": record.tool_failures})
    for rule_index, rule in enumerate(agent.policy.rules):
        detector = rule.state
        why: Any = None
        if isinstance(detector, InvalidOutput):
            why, _ = detector.check(text)
        elif isinstance(detector, State) and detector.stage == "output":
            why, error = detector.evaluate(record.value, prediction)
            if error:
                seg.notes.append(f"{detector.name}: the predicate raised {error}; did not fire")
        if why is None:
            continue
        state = detector.name
        seg.states.append(state)
        seg.explanations.setdefault(state, why)
        seg.steps[-1]["state"] = state
        for action in rule.actions:
            if isinstance(action, FeedBack):
                if seg.actions.count("feed_back") >= 3:  # at most three corrections of one answer in a row
                    continue
                seg.actions.append("feed_back")
                seg.steps[-1]["action"] = "feed_back"
                return action.message or f"Your answer was not accepted: {why}. Check the tool results and answer again."
            if isinstance(action, (Retry, Fallback)):
                continue
            end_with(agent, record, store, seg, action, state, why)
        seg.states.append("unexpected")
        end_unexpected(agent, record, store, seg, why)
        last_resort(record, seg, "unexpected")
    return None
