"""Actions: what a rule does in its failure state. A rule's actions form a chain.

``Retry``, ``Reask`` and ``Fallback`` call a system again; if that call fails, the failure is handled by the rule of
its own state (a rule that has already used an action never uses it twice). The other actions end the
call: ``Clarify`` (the outcome class ``fp.Clarify`` used as an action), ``Escalate``, ``Abstain``,
``Default`` and ``Raise``. An action that cannot resolve the call (an ``Escalate`` with no store to put
the ticket in, a ``Clarify`` whose question function raised) hands on to the next one in the chain.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Callable
from typing import Any, ClassVar

from failpath.core import Clarify, PolicyError
from failpath.guard.schemas import output_json_schema

__all__ = ["Action", "Retry", "Reask", "Fallback", "ClarifyAction", "Escalate", "Abstain", "Default", "Raise", "as_action"]


class Action:
    """Base of every action. ``name`` is the action's name in traces; ``terminal`` actions end the call."""

    name: ClassVar[str] = ""
    terminal: ClassVar[bool] = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _error(action: str, message: str) -> PolicyError:
    return PolicyError(f"{action}: {message}")


class Retry(Action):
    """Call the same system again, up to ``times`` more times, waiting between calls.

    ``backoff`` is either the first wait in seconds (doubling after each retry, capped at ``max_wait``,
    plus up to ``jitter`` seconds of random jitter), or any tenacity wait strategy, such as
    ``tenacity.wait_random_exponential(multiplier=0.2, max=5)``. When the provider said how long to wait
    (``ProviderFailure.retry_after``), the guard waits at least that long; when that is more than
    ``max_wait``, the retry is skipped and the chain moves on. A provider error whose status a retry
    cannot fix (``ProviderFailure.status`` for which ``core.is_transient_status`` is False: 400, 401, 404, ...) is
    not retried either. A wait that would run past the policy's deadline ends in ``budget_exceeded``
    instead. ``Retry`` sends the same input again; ``Reask`` also tells the system what was wrong.
    """

    name = "retry"
    terminal = False

    def __init__(self, times: int = 1, backoff: float | Any = 0.0, *, jitter: float = 0.0, max_wait: float = 30.0):
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise _error(f"Retry({times!r})", f"times must be an integer of at least 1, got {times!r}")
        for field, value in (("jitter", jitter), ("max_wait", max_wait)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise _error(f"Retry({times}, {field}={value!r})", f"{field} must be a number of seconds of at least 0, got {value!r}")
        self.times = times
        self.backoff = backoff
        self.jitter = float(jitter)
        self.max_wait = float(max_wait)
        self._wait = None
        if callable(backoff):
            self._wait = backoff  # a tenacity wait strategy
        elif isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not math.isfinite(backoff) or backoff < 0:
            raise _error(
                f"Retry({times}, backoff={backoff!r})",
                f"backoff must be seconds of at least 0 or a tenacity wait strategy, got {backoff!r}",
            )
        elif backoff > 0 or jitter > 0:
            import tenacity

            wait = tenacity.wait_exponential(multiplier=backoff, max=self.max_wait) if backoff > 0 else tenacity.wait_none()
            self._wait = wait + tenacity.wait_random(0, jitter) if jitter > 0 else wait

    def wait_before(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        if self._wait is None:
            return 0.0
        import tenacity

        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = retry_number
        try:
            seconds = float(self._wait(state))
        except Exception:
            return 0.0
        return min(max(seconds, 0.0), self.max_wait) if math.isfinite(seconds) else self.max_wait

    def __repr__(self) -> str:
        extra = "" if not self.backoff else f", backoff={getattr(self.backoff, '__name__', self.backoff)!r}" if callable(self.backoff) else f", backoff={self.backoff:g}"
        return f"Retry({self.times}{extra})"


_REASK_MESSAGES = {
    "invalid_output": "Your previous answer could not be used: {problem}\nAnswer the same request again, correcting this.",
    "low_confidence": "Your previous answer was not certain enough ({problem}).\nReconsider the request and answer it again.",
    "inconsistent": "Your answers to this request disagreed ({problem}).\nReconsider it carefully and give one answer.",
}
_REASK_OTHER = "Your previous answer was flagged as {state}: {problem}\nAnswer the same request again, correcting this."


class Reask(Retry):
    """Call the same system again, up to ``times`` more times, telling it what was wrong with its answer.

    The system receives an ``fp.Feedback`` as a keyword argument: ``system(input, feedback=...)``, with
    the failure state, the problem (the validation error, the refusal, the truncation, the low
    confidence), its previous answer and ``message``, the instruction for the model. The LLM adapters
    (``fp.llm.openai``, ``fp.llm.anthropic``, ``fp.llm.litellm``) send the previous answer back as the
    assistant's turn and the message as the user's, as Instructor and pydantic-ai re-ask. A plain
    system takes part by accepting a ``feedback`` keyword (``def parse(text, feedback=None)``);
    ``policy.wrap`` refuses a system that cannot take it.

    ``message`` replaces the default instruction: a format string with ``{state}`` and ``{problem}``.
    ``backoff``, ``jitter`` and ``max_wait`` are ``Retry``'s. A re-ask needs an answer to correct: on a
    timeout or a provider error (no answer came back) it is skipped with a note and the chain moves on
    (``policy.lint()`` warns); use ``Retry`` there. Traces record each re-ask as an attempt with the
    action ``reask``, and the messages sent in ``detail["feedback"]`` (redacted like every other text
    unless ``store_raw_inputs=True``).
    """

    name = "reask"

    def __init__(
        self, times: int = 1, backoff: float | Any = 0.0, *, message: str | None = None, jitter: float = 0.0, max_wait: float = 30.0
    ):
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise _error(f"Reask({times!r})", f"times must be an integer of at least 1, got {times!r}")
        super().__init__(times, backoff, jitter=jitter, max_wait=max_wait)
        if message is not None:
            if not isinstance(message, str) or not message.strip():
                raise _error(f"Reask({times}, message={message!r})", "message must be non-empty text, a format string with {state} and {problem}")
            try:
                message.format(state="invalid_output", problem="the answer is not valid JSON")
            except (KeyError, IndexError, ValueError) as exc:
                raise _error(
                    f"Reask({times}, message={message!r})",
                    f"message is a format string whose only fields are {{state}} and {{problem}} ({type(exc).__name__}: {exc}); "
                    "double a literal brace: {{ }}",
                ) from None
        self.message = message

    def instruction(self, state: str, problem: str) -> str:
        """The message for the model when the answer was found in ``state`` because of ``problem``."""
        template = self.message or _REASK_MESSAGES.get(state, _REASK_OTHER)
        return template.format(state=state, problem=problem)

    def __repr__(self) -> str:
        return "Re" + super().__repr__().replace("Retry(", "ask(", 1)


def takes_feedback(system: Any) -> bool:
    """True when ``system`` accepts a ``feedback`` keyword argument (``fp.Reask`` calls it with one)."""
    try:
        parameters = inspect.signature(system).parameters.values()
    except (TypeError, ValueError):
        return False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return True
        if parameter.name == "feedback" and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY:
            return True
    return False


class Fallback(Action):
    """Call another system (a simpler model, a rule-based parser, a cache) on the same input.

    Its answer is marked ``degraded``; it goes through the same output checks as the primary's. A sync
    guarded system can only fall back to a sync system; an async one accepts either.
    """

    name = "fallback"
    terminal = False

    def __init__(self, system: Callable[[Any], Any], *, name: str | None = None):
        if not callable(system):
            raise _error(f"Fallback({system!r})", "system must be a callable input -> output")
        self.system = system
        self.system_name = name or getattr(system, "__qualname__", None) or getattr(system, "__name__", None) or type(system).__name__
        self.is_async = _is_async(system)

    def __repr__(self) -> str:
        return f"Fallback({self.system_name})"


def _is_async(system: Any) -> bool:
    if inspect.iscoroutinefunction(system):
        return True
    call = getattr(system, "__call__", None)
    if call is not None and inspect.iscoroutinefunction(call):
        return True
    func = getattr(system, "func", None)  # functools.partial
    return func is not None and _is_async(func)


class ClarifyAction(Action):
    """Ask the user: the outcome is ``Clarify(question)``. ``question`` is text or a callable ``input -> text``.

    Write it in a policy as ``fp.Clarify("...")``: the outcome class used as an action means this one.
    """

    name = "clarify"

    def __init__(self, question: str | Callable[[Any], str]):
        if isinstance(question, str):
            if not question.strip():
                raise _error("Clarify('')", "the question must not be empty")
        elif not callable(question):
            raise _error(f"Clarify({question!r})", "question must be text or a callable input -> text")
        self.question = question

    def ask(self, value: Any) -> str:
        """The question for this input."""
        if isinstance(self.question, str):
            return self.question
        asked = self.question(value)
        if not isinstance(asked, str) or not asked.strip():
            raise ValueError(f"question function returned {asked!r}, not text")
        return asked

    def __repr__(self) -> str:
        return f"Clarify({self.question!r})" if isinstance(self.question, str) else f"Clarify({getattr(self.question, '__name__', 'callable')})"


class Escalate(Action):
    """A human decides: open a ticket in the review queue ``queue``; the outcome is ``Escalated(ticket_id, queue)``.

    ``deadline`` (seconds) is how long the ticket may wait; past it the ticket expires to ``default``
    (a JSON-safe value). ``schema`` is what a reviewer's answer must match: a pydantic model, a
    dataclass, a ``TypedDict``, any type pydantic can describe, or a JSON Schema dict; without it the
    ticket takes the policy's declared output type (``InvalidOutput(schema=Model)``), if any. The
    ticket keeps it as JSON Schema (``output_schema``). Needs a store for the ticket: with
    ``Policy(store=False)`` the escalation cannot happen and the next action in the chain runs
    (``policy.lint()`` reports it).
    """

    name = "escalate"

    def __init__(self, queue: str = "review", *, deadline: float | None = None, default: Any = None, schema: Any = None):
        if not isinstance(queue, str) or not queue.strip():
            raise _error(f"Escalate(queue={queue!r})", "queue must be a non-empty name, such as 'review'")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= 0
        ):
            raise _error(f"Escalate({queue!r}, deadline={deadline!r})", f"deadline must be a positive number of seconds, got {deadline!r}")
        try:
            json.dumps(default, allow_nan=False)
        except (TypeError, ValueError):
            raise _error(f"Escalate({queue!r}, default={default!r})", "default must be JSON-safe (str, number, bool, None, list, dict)") from None
        self.queue = queue
        self.deadline = None if deadline is None else float(deadline)
        self.default = default
        #: The JSON Schema answers to this queue's tickets must match (None: the policy's, if it declares one).
        self.output_schema = None if schema is None else output_json_schema(schema, f"Escalate({queue!r}, schema=...)")

    def __repr__(self) -> str:
        return f"Escalate(queue={self.queue!r})"


class Abstain(Action):
    """No answer, on purpose: the outcome is ``Abstained(reason)``."""

    name = "abstain"

    def __init__(self, reason: str = "abstained"):
        if not isinstance(reason, str) or not reason.strip():
            raise _error(f"Abstain({reason!r})", "reason must be non-empty text")
        self.reason = reason

    def __repr__(self) -> str:
        return f"Abstain({self.reason!r})"


class Default(Action):
    """Return a safe value instead of the system's answer: the outcome is ``Defaulted(value, reason)``."""

    name = "default"

    def __init__(self, value: Any, reason: str = "default value"):
        if not isinstance(reason, str) or not reason.strip():
            raise _error(f"Default({value!r}, reason={reason!r})", "reason must be non-empty text")
        self.value = value
        self.reason = reason

    def __repr__(self) -> str:
        return f"Default({self.value!r}, reason={self.reason!r})"


class Raise(Action):
    """Raise ``exception`` (an exception instance or class) out of the guard: the only way one leaves it on purpose.

    The raised exception carries a note with the trace id; its ``__cause__`` is the system's exception, if any.
    """

    name = "raise"

    def __init__(self, exception: BaseException | type[BaseException]):
        ok = isinstance(exception, Exception) or (isinstance(exception, type) and issubclass(exception, Exception))
        if not ok:
            raise _error(f"Raise({exception!r})", "exception must be an Exception subclass or instance, such as Raise(LookupError('no address'))")
        self.exception = exception

    def make(self, message: str) -> BaseException:
        """A fresh exception to raise (instances are copied, so each call raises its own)."""
        if isinstance(self.exception, type):
            return self.exception(message)
        return copy.copy(self.exception)

    def __repr__(self) -> str:
        shown = self.exception.__name__ if isinstance(self.exception, type) else repr(self.exception)
        return f"Raise({shown})"


def as_action(value: Any, where: str) -> Action:
    """``value`` as an action: an ``Action``, or the outcome ``fp.Clarify(question)`` meaning ``ClarifyAction``."""
    if isinstance(value, Action):
        return value
    if isinstance(value, Clarify):
        return ClarifyAction(value.question)
    if isinstance(value, type) and (issubclass(value, Action) or value is Clarify):
        raise _error(where, f"{value.__name__} is a class; build it, e.g. fp.{value.__name__ if value is not ClarifyAction else 'Clarify'}(...)")
    raise _error(where, f"{value!r} is not an action; use fp.Retry, fp.Reask, fp.Fallback, fp.Clarify, fp.Escalate, fp.Abstain, fp.Default or fp.Raise")
