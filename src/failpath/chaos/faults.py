"""Model-side faults: the provider times out, rate-limits, fails, or the model answers with garbage.

A fault does not change the input; it wraps the system. ``fault.wrap(system, seed)`` returns a system of
the same kind (a sync callable stays sync, an async one stays async) that misbehaves on a share ``rate``
of its calls (every call by default). Which calls misbehave is decided by ``(seed, call index)`` alone.

A check wraps the system once per fault variant instead (:meth:`Fault.wrap_variant`): whether call ``i``
of the variant misbehaves, and every random choice the fault makes for it (:meth:`Fault.strike`), depend
only on ``(seed, case id, variant, i)``, never on the order in which a thread, process or async run
happens to send the calls, so the same seed gives the same faults however the check runs and after a
resume. :func:`inject` wraps a system with a mix of faults at a chosen share::

    flaky = faults.inject(system, rate=0.2, kinds=("timeout", "rate_limited", "truncated_json"), seed=7)

As a perturbation (in the ``fault`` suite) a fault yields a variant with the input unchanged and
``variant.fault`` set; the check runner wraps the system with it for that variant.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from failpath.chaos.base import (
    Edit,
    LabelContract,
    NotApplicable,
    Perturbation,
    Variant,
    derive_rng,
    derive_seed,
    import_spec,
    unit_interval,
)
from failpath.core import Case, ConfigError, Prediction, ProviderFailure, SystemTimeout

__all__ = [
    "Fault",
    "Timeout",
    "ProviderError",
    "ConnectionReset",
    "NoneOutput",
    "EmptyOutput",
    "TruncatedJson",
    "WrongType",
    "NanConfidence",
    "Slow",
    "Crash",
    "InjectedCrash",
    "FAULTS",
    "FAULT_KINDS",
    "get_fault",
    "inject",
]


@dataclass(frozen=True, slots=True)
class _Return:
    value: Any


@dataclass(frozen=True, kw_only=True)
class Fault(Perturbation):
    """Base of model-side faults. ``rate`` is the share of calls that misbehave when wrapped (1.0: all).

    Subclasses override :meth:`before_call` (raise, or return a value instead of calling the system) or
    :meth:`after_call` (spoil what the system returned); ``delay`` seconds are slept before the call.
    """

    name: str
    family: str = "fault"
    contract: LabelContract = LabelContract.NOT_PRESERVED
    rate: float = 1.0
    delay: float = 0.0

    def before_call(self) -> _Return | None:
        """Raise the fault, return ``_Return(value)`` to answer without calling the system, or ``None``."""
        return None

    def after_call(self, output: Any) -> Any:
        """What the caller gets instead of the system's ``output``."""
        return output

    def strike(self, rng: random.Random) -> "Fault":
        """The fault as it strikes one call, with its random choices made from ``rng`` (default: itself).

        Override it for a fault that varies (a random ``retry_after``, a share of the output kept):
        ``return dataclasses.replace(self, retry_after=rng.uniform(0.01, 0.1))``. ``rng`` is seeded by
        the call's identity alone (see :meth:`wrap_variant`), never by the order of the calls.
        """
        return self

    def apply(self, case: Case, rng: random.Random) -> Variant | NotApplicable:
        """A variant with the input unchanged and ``fault`` set to this fault."""
        return Variant(
            input=case.input,
            expected=case.expected,
            perturbation=self.name,
            family=self.family,
            contract=self.contract,
            edits=(Edit(kind="fault", after=self.name),),
            case_id=case.id,
            fault=self,
        )

    def contract_for(self, case: Case) -> LabelContract:
        """Always ``NOT_PRESERVED``: under a fault the system can only be right by luck, or handle it."""
        return LabelContract.NOT_PRESERVED

    def wrap(self, system: Callable[..., Any], seed: int = 0) -> Callable[..., Any]:
        """``system`` misbehaving on a share :attr:`rate` of its calls, chosen by ``(seed, call index)``."""
        rate = _check_rate(self.rate)

        def choose(index: int) -> Fault | None:
            if rate < 1.0 and unit_interval(seed, index, "fault-rate") >= rate:
                return None
            return _struck(self, seed, index, "fault-choice")

        return _wrap(system, choose, self.name)

    def wrap_variant(self, system: Callable[..., Any], seed: int, case_id: str, variant: int = 0) -> Callable[..., Any]:
        """``system`` as this fault makes it misbehave for one variant of one case (what a check sends it to).

        Call ``i`` of the returned system (0 first, retries after it) misbehaves when
        ``unit_interval(seed, case_id, variant, name, i) < rate``, and :meth:`strike` makes its random
        choices with an rng seeded by the same parts: the faults depend on ``(seed, case id, variant)``
        alone, the same in thread, process and async runs and after a resume. Wrap afresh for each variant.
        """
        rate = _check_rate(self.rate)
        parts = (seed, case_id, variant, self.name)

        def choose(index: int) -> Fault | None:
            if rate < 1.0 and unit_interval(*parts, index, "fault-rate") >= rate:
                return None
            return _struck(self, *parts, index, "fault-choice")

        return _wrap(system, choose, self.name)


# --------------------------------------------------------------------------- the faults


@dataclass(frozen=True, kw_only=True)
class Timeout(Fault):
    """The provider times out: raises ``SystemTimeout``."""

    name: str = "timeout"

    def before_call(self) -> _Return | None:
        raise SystemTimeout("the model provider timed out (injected fault)")


@dataclass(frozen=True, kw_only=True)
class ProviderError(Fault):
    """The provider answers with an HTTP error: raises ``ProviderFailure`` with ``status`` (and ``retry_after``)."""

    name: str = "server_error"
    status: int = 500
    retry_after: float | None = None

    def before_call(self) -> _Return | None:
        reason = {429: "Too Many Requests: rate limit reached", 500: "Internal Server Error", 502: "Bad Gateway",
                  503: "Service Unavailable: the model is overloaded"}.get(self.status, "provider error")  # fmt: skip
        raise ProviderFailure(f"{self.status} {reason} (injected fault)", status=self.status, retry_after=self.retry_after)


@dataclass(frozen=True, kw_only=True)
class ConnectionReset(Fault):
    """The connection drops mid-request: raises ``ProviderFailure`` caused by ``ConnectionResetError``."""

    name: str = "connection_reset"

    def before_call(self) -> _Return | None:
        cause = ConnectionResetError(104, "Connection reset by peer")
        raise ProviderFailure("connection reset by peer (injected fault)") from cause


@dataclass(frozen=True, kw_only=True)
class NoneOutput(Fault):
    """The model returns ``None``."""

    name: str = "none_output"

    def before_call(self) -> _Return | None:
        return _Return(None)


@dataclass(frozen=True, kw_only=True)
class EmptyOutput(Fault):
    """The model returns an empty string."""

    name: str = "empty_output"

    def before_call(self) -> _Return | None:
        return _Return("")


def _split(output: Any) -> tuple[Any, Prediction | None]:
    return (output.value, output) if isinstance(output, Prediction) else (output, None)


def _rejoin(value: Any, original: Prediction | None) -> Any:
    if original is None:
        return value
    return Prediction(value, original.confidence, original.meta)


@dataclass(frozen=True, kw_only=True)
class TruncatedJson(Fault):
    """The model's JSON is cut off: the output rendered as JSON, keeping ``keep`` of its characters (never valid)."""

    name: str = "truncated_json"
    keep: float = 0.5

    def after_call(self, output: Any) -> Any:
        value, original = _split(output)
        shaped = value if isinstance(value, (dict, list, tuple)) else {"output": value}
        text = json.dumps(shaped, default=str, ensure_ascii=False)
        # A strict prefix of a JSON object or array never parses.
        cut = min(len(text) - 1, max(1, int(len(text) * self.keep)))
        return _rejoin(text[:cut], original)


def _wrong_type(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    if isinstance(value, bool) or value is None:
        return {"output": value}
    if isinstance(value, (int, float)):
        return str(value)
    return repr(value)


@dataclass(frozen=True, kw_only=True)
class WrongType(Fault):
    """The model's output has the wrong type: a string becomes a list, a list or dict a string, a number a string."""

    name: str = "wrong_type"

    def after_call(self, output: Any) -> Any:
        value, original = _split(output)
        return _rejoin(_wrong_type(value), original)


@dataclass(frozen=True, kw_only=True)
class NanConfidence(Fault):
    """The model's answer comes with a NaN confidence: ``Prediction(value, nan)``."""

    name: str = "nan_confidence"

    def after_call(self, output: Any) -> Any:
        value, original = _split(output)
        return Prediction(value, math.nan, original.meta if original else {})


@dataclass(frozen=True, kw_only=True)
class Slow(Fault):
    """The model answers, slowly: sleeps ``delay`` seconds first (keep it small in tests)."""

    name: str = "slow"
    delay: float = 0.05


class InjectedCrash(RuntimeError):
    """What the ``crash`` fault raises: a bug in the code around the model, which no failure state names."""


@dataclass(frozen=True, kw_only=True)
class Crash(Fault):
    """A bug in the code around the model: raises :class:`InjectedCrash`, an exception no failure state claims.

    Only an ``Unexpected`` rule handles it (or a catch-all ``ProviderError()``, which then leaves
    ``Unexpected`` unreachable), so the fault suite exercises every state an ordinary policy handles.
    """

    name: str = "crash"

    def before_call(self) -> _Return | None:
        raise InjectedCrash("a bug in the code around the model (injected fault)")


#: Every built-in fault, in the order reports list them.
FAULTS: tuple[Fault, ...] = (
    Timeout(),
    ProviderError(name="rate_limited", status=429, retry_after=0.01),
    ProviderError(name="server_error", status=500),
    ProviderError(name="service_unavailable", status=503),
    ConnectionReset(),
    NoneOutput(),
    EmptyOutput(),
    TruncatedJson(),
    WrongType(),
    NanConfidence(),
    Slow(),
    Crash(),
)

#: The names of the built-in faults.
FAULT_KINDS: tuple[str, ...] = tuple(f.name for f in FAULTS)


def get_fault(name: str) -> Fault:
    """The built-in fault called ``name``, or the :class:`Fault` value ``"module:attr"`` names; ``ConfigError``
    listing the valid names otherwise."""
    for fault in FAULTS:
        if fault.name == name:
            return fault
    if isinstance(name, str) and ":" in name:
        found = import_spec(name, "fault")
        if not isinstance(found, Fault):
            hint = " (a class: name an instance of it)" if isinstance(found, type) and issubclass(found, Fault) else ""
            raise ConfigError(f"fault {name!r} is a {type(found).__name__}{hint}, not a failpath.chaos.faults.Fault")
        return found
    raise ConfigError(f"unknown fault kind {name!r}; valid kinds: {', '.join(FAULT_KINDS)}")


def inject(
    system: Callable[..., Any],
    rate: float = 0.2,
    kinds: Sequence[str | Fault] = FAULT_KINDS,
    seed: int = 0,
) -> Callable[..., Any]:
    """``system`` misbehaving on a share ``rate`` of its calls, each time with one of ``kinds``.

    Both the calls hit and the fault chosen depend only on ``(seed, call index)``. A sync system stays
    sync and an async one async. ``kinds`` are fault names (see :data:`FAULT_KINDS`) or :class:`Fault` values.
    """
    rate = _check_rate(rate)
    chosen = tuple(k if isinstance(k, Fault) else get_fault(k) for k in kinds)
    if not chosen:
        raise ConfigError("inject: kinds is empty; name at least one fault kind, e.g. kinds=('timeout',)")

    def choose(index: int) -> Fault | None:
        if unit_interval(seed, index, "inject-rate") >= rate:
            return None
        fault = chosen[derive_seed(seed, index, "inject-kind") % len(chosen)]
        return _struck(fault, seed, index, "inject-choice")

    return _wrap(system, choose, "+".join(f.name for f in chosen))


def _struck(fault: Fault, *parts: Any) -> Fault:
    """``fault.strike`` with an rng seeded by ``parts``; a fault that does not override ``strike`` seeds none
    (seeding an rng costs more than most of the calls it would be for)."""
    if type(fault).strike is Fault.strike:
        return fault
    return fault.strike(derive_rng(*parts))


def _check_rate(rate: float) -> float:
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or math.isnan(rate) or not 0.0 <= rate <= 1.0:
        raise ConfigError(f"fault rate must be a number between 0 and 1, got {rate!r}")
    return float(rate)


def _is_async(system: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(system) or inspect.iscoroutinefunction(getattr(system, "__call__", None))


def _wrap(system: Callable[..., Any], choose: Callable[[int], Fault | None], label: str) -> Callable[..., Any]:
    if not callable(system):
        raise ConfigError(f"a fault wraps a system (a callable), got {type(system).__name__}")
    counter = itertools.count()

    if _is_async(system):

        async def faulty_async(*args: Any, **kwargs: Any) -> Any:
            fault = choose(next(counter))
            if fault is None:
                return await system(*args, **kwargs)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            early = fault.before_call()
            if early is not None:
                return early.value
            return fault.after_call(await system(*args, **kwargs))

        wrapped: Callable[..., Any] = faulty_async
    else:

        def faulty(*args: Any, **kwargs: Any) -> Any:
            fault = choose(next(counter))
            if fault is None:
                return system(*args, **kwargs)
            if fault.delay:
                time.sleep(fault.delay)
            early = fault.before_call()
            if early is not None:
                return early.value
            return fault.after_call(system(*args, **kwargs))

        wrapped = faulty

    try:
        functools.update_wrapper(wrapped, system)
    except (AttributeError, TypeError):  # pragma: no cover - exotic callables
        pass
    wrapped.__name__ = f"{getattr(system, '__name__', type(system).__name__)}[faults:{label}]"
    wrapped.__qualname__ = wrapped.__name__
    # Which fault hits call i, for reports and tests: ``wrapped.schedule(10)``.
    wrapped.schedule = lambda n: [f.name if (f := choose(i)) else None for i in range(n)]  # type: ignore[attr-defined]
    return wrapped
