"""The plan stage of a check: validate everything before any model call, split the cases, name every request.

:func:`make_plan` reads and checks the arguments of :func:`failpath.check` (cases, judge, suites, policy,
budgets, costs) and returns a frozen :class:`Plan`; :func:`plan_items` lists the requests of any share of
the cases, lazily (each suite's variants, then the clean inputs), as :class:`WorkItem` values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from failpath.check.datasets import MAX_INPUT_BYTES, as_cases, check_case_sizes
from failpath.check.judges import _import_attr, as_judge
from failpath.check.metrics import derive_int_seed
from failpath.core import STATES, Case, ConfigError, reason_problem

__all__ = [
    "CLEAN", "DEFAULT_COSTS", "DEFAULT_SUITES", "Plan", "WorkItem", "make_plan", "plan_items", "split_cases", "request_key",
    "key_digest",
    "key_digests", "judge_name", "name_of", "bare_policy", "BUDGET_FAMILIES", "DEFAULT_SILENT_FAILURE",
    "DEFAULT_FALSE_ALARM", "silent_failure_budgets", "traffic_mix", "REQUIRED_FAMILIES", "DEFAULT_SEVERE_SILENT_FAILURE",
    "waivers",
]

#: The suite name of the clean pass (always run, last).
CLEAN = "clean"

#: Suites run when none are named: hostile first, then realistic mess, then model-side faults.
DEFAULT_SUITES: tuple[str, ...] = ("hostile", "realistic", "fault")

#: The families whose silent-failure budgets are judged separately: the clean pass and the chaos families.
BUDGET_FAMILIES: tuple[str, ...] = (CLEAN, "realistic", "hostile", "fault")

#: The silent-failure budget of a family when none is given: the upper bound of its rate, per request.
DEFAULT_SILENT_FAILURE = 0.02

#: The over-refusal budget when none is given: the upper bound of the share of realistic requests the
#: raw system answers right that the policy refuses.
DEFAULT_FALSE_ALARM = 0.10

#: The chaos families READY TO SHIP requires: a run without one of them is judged on less than production
#: brings, so each must run (on the evaluation half) or be waived with a written reason.
REQUIRED_FAMILIES: tuple[str, ...] = ("realistic", "hostile", "fault")

#: The severe silent-failure budget of every family when none is given: the upper bound of the rate of
#: answered-and-wrong requests whose severity is at least the severe cut (see :mod:`failpath.check.severity`).
#: A quarter of the silent-failure budget: the failures that do real harm must be rarer than the rest.
DEFAULT_SEVERE_SILENT_FAILURE = 0.005

#: Costs of the answer / clarify / escalate policy: (cost if the model's answer is right, if it is wrong).
DEFAULT_COSTS: dict[str, tuple[float, float]] = {
    "answer": (0.0, 10.0),
    "clarify": (1.0, 4.0),
    "escalate": (3.0, 3.0),
}


@dataclass(slots=True)
class WorkItem:
    """One request of a check: a variant (or the clean input) of one case in one suite.

    ``key`` is stable across runs: ``suite/perturbation/case id/variant index``. ``fault`` is the chaos
    fault the system is wrapped with for this request (fault suites), or None; ``tags`` are the case's
    tags, stored with the request's row so every report can group by them.
    """

    key: str
    suite: str
    family: str
    perturbation: str
    case_id: str
    variant: int
    split: str
    input: Any
    expected: Any
    contract: str = "unchanged"
    edits: tuple[Any, ...] = ()
    fault: Any = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything a check has read and validated before its first model call.

    ``system`` and ``policy`` are the objects; ``system_spec`` and ``policy_spec`` the ``"module:attr"``
    names they were given as (None when given as objects), which worker processes import.
    ``budgets`` is the document stored with the result (``silent_failure`` as given,
    ``silent_failure_families`` (each family's budget), ``mix`` (the declared traffic mix or None),
    ``false_alarm``, ``coverage_floor``, ``delta``, ``accepted``, ``costs``); ``split`` maps each case
    id to ``calibration`` or ``evaluation``.
    """

    system: Any
    policy: Any
    judge: Any
    cases: tuple[Case, ...]
    suites: tuple[Any, ...]
    seed: int
    split: Mapping[str, str]
    fingerprint: Mapping[str, Any]
    budgets: Mapping[str, Any]
    costs: Mapping[str, tuple[float, float]]
    system_spec: str | None
    policy_spec: str | None

    @property
    def suite_names(self) -> tuple[str, ...]:
        """The chaos suites' names, in the order they run."""
        return tuple(s.name for s in self.suites)


def name_of(obj: Any) -> str:
    """A readable name for a system or a policy: its ``name``, or ``module:qualname``."""
    if isinstance(obj, str):
        return obj
    for attr in ("name", "__qualname__", "__name__"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            module = getattr(obj, "__module__", None)
            return f"{module}:{value}" if attr != "name" and module else value
    return type(obj).__name__


def judge_name(judge: Any) -> str:
    """The name a report shows for a judge."""
    name = getattr(judge, "name", None)
    return name if isinstance(name, str) else type(judge).__name__


def _judge_fingerprint(judge: Any) -> str:
    """What identifies a judge across processes (a function's module and name, never its address)."""
    from failpath.check.judges import FunctionJudge
    from failpath.check.severity import GradedJudge, describe_function

    if isinstance(judge, GradedJudge):
        return f"{_judge_fingerprint(judge.judge)} graded by {describe_function(judge.function)}"
    if isinstance(judge, FunctionJudge):
        fn = judge.fn
        return f"function:{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}:{judge.pass_score}"
    if dataclasses.is_dataclass(judge):
        return repr(judge)
    return f"{type(judge).__module__}.{type(judge).__qualname__}"


def _cost_table(costs: Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    """The answer / clarify / escalate costs as ``(if right, if wrong)`` pairs; ``ConfigError`` when malformed."""
    if costs is None:
        return dict(DEFAULT_COSTS)
    if not isinstance(costs, Mapping):
        raise ConfigError(f"costs must map answer, clarify, escalate to (cost if right, cost if wrong), got {costs!r}")
    table: dict[str, tuple[float, float]] = {}
    for action, value in costs.items():
        if action not in DEFAULT_COSTS:
            raise ConfigError(f"costs: unknown action {action!r}; use answer, clarify, escalate")
        pair = (value.if_correct, value.if_wrong) if hasattr(value, "if_correct") else value
        try:
            right, wrong = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ConfigError(f"costs[{action!r}] = {value!r}: give (cost if right, cost if wrong)") from None
        if not (math.isfinite(right) and math.isfinite(wrong)):
            raise ConfigError(f"costs[{action!r}] = {value!r}: costs must be finite numbers")
        table[action] = (right, wrong)
    missing = [a for a in ("answer", "escalate") if a not in table]
    if missing:
        raise ConfigError(f"costs lack {', '.join(missing)}: give (cost if right, cost if wrong) for each")
    return table


def _cases_digest(cases: Sequence[Case]) -> str:
    from failpath.store.jsonsafe import dumps

    h = hashlib.sha256()
    for c in cases:
        h.update(dumps([c.id, c.input, c.expected]).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def split_cases(cases: Sequence[Case], seed: int, share: float) -> dict[str, str]:
    """Case id -> "calibration" or "evaluation": a seeded split that does not depend on the file's order."""
    ranked = sorted(cases, key=lambda c: (derive_int_seed(seed, "split", c.id), c.id))
    n_cal = int(round(share * len(ranked)))
    if len(ranked) >= 2:
        n_cal = min(max(n_cal, 1), len(ranked) - 1)
    return {c.id: ("calibration" if i < n_cal else "evaluation") for i, c in enumerate(ranked)}


def _preflight_judge(judge: Any, cases: Sequence[Case]) -> None:
    """Every expected value must be judged right against itself: catches a judge that cannot read the labels."""
    for case in cases:
        try:
            ok = judge(case.expected, case.expected)
        except Exception as exc:
            raise ConfigError(
                f"judge {judge_name(judge)!r} cannot read the expected value of case {case.id!r} "
                f"({type(exc).__name__}: {exc}); choose a judge that fits the labels"
            ) from exc
        if not ok:
            raise ConfigError(
                f"judge {judge_name(judge)!r} says the expected value of case {case.id!r} is wrong against itself "
                f"({case.expected!r:.200}); choose a judge that fits the labels"
            )


def _check_numbers(
    concurrency: Any, silent_failure_budget: Any, coverage_floor: Any, delta: Any, calibration_share: Any, executor: Any
) -> None:
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
    silent_failure_budgets(silent_failure_budget)
    for label, value, low, high in (
        ("delta", delta, 0.0, 1.0),
        ("calibration_share", calibration_share, 0.0, 1.0),
    ):
        if not isinstance(value, (int, float)) or not low < value < high:
            raise ConfigError(f"{label} must be a number strictly between {low:g} and {high:g}, got {value!r}")
    if not isinstance(coverage_floor, (int, float)) or not 0.0 <= coverage_floor <= 1.0:
        raise ConfigError(f"coverage_floor must be a number in [0, 1], got {coverage_floor!r}")
    if executor not in ("auto", "thread", "process"):
        raise ConfigError(f"executor must be 'auto', 'thread' or 'process', got {executor!r}")


def silent_failure_budgets(budget: Any) -> dict[str, float]:
    """Each family's silent-failure budget from one number (every family) or a mapping family -> number.

    Families a mapping leaves out take :data:`DEFAULT_SILENT_FAILURE`. ``ConfigError`` names an unknown
    family or a budget outside (0, 1).
    """
    if isinstance(budget, Mapping):
        unknown = sorted(set(budget) - set(BUDGET_FAMILIES))
        if unknown:
            raise ConfigError(
                f"silent_failure budget names unknown families {', '.join(map(repr, unknown))}; "
                f"use {', '.join(BUDGET_FAMILIES)}"
            )
        given = dict(budget)
    else:
        given = {family: budget for family in BUDGET_FAMILIES}
    budgets = {}
    for family in BUDGET_FAMILIES:
        value = given.get(family, DEFAULT_SILENT_FAILURE)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            label = "silent_failure_budget" if not isinstance(budget, Mapping) else f"silent_failure budget of {family}"
            raise ConfigError(f"{label} must be a number strictly between 0 and 1, got {value!r}")
        budgets[family] = float(value)
    return budgets


def traffic_mix(mix: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The declared traffic mix (family -> share of production traffic), checked; None when not declared.

    Shares are numbers in [0, 1] over known families summing to 1 (within 1e-6); families with a share of
    0 are dropped. ``ConfigError`` names what is wrong.
    """
    if mix is None:
        return None
    if not isinstance(mix, Mapping) or not mix:
        raise ConfigError(f"mix must map families to their share of traffic, e.g. {{'clean': 0.6, 'realistic': 0.4}}; got {mix!r}")
    unknown = sorted(set(mix) - set(BUDGET_FAMILIES))
    if unknown:
        raise ConfigError(f"mix names unknown families {', '.join(map(repr, unknown))}; use {', '.join(BUDGET_FAMILIES)}")
    for family, share in mix.items():
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigError(f"mix share of {family} must be a number in [0, 1], got {share!r}")
    total = float(sum(mix.values()))
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"mix shares must sum to 1 (they are the shares of production traffic), they sum to {total:g}")
    return {family: float(mix[family]) for family in BUDGET_FAMILIES if mix.get(family, 0.0) > 0.0}


def waivers(waive: Mapping[str, str] | None, accepted: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``(states, families)``: the waivers of a check, each ``{name: reason}``, checked.

    ``waive`` maps a catalog failure state (left without a rule) or a required chaos family (left out of
    the run: ``realistic``, ``hostile``, ``fault``) to a written reason of at least
    :data:`failpath.core.MIN_REASON_LENGTH` characters. ``accepted`` is the older spelling for states
    (``[budgets.accepted]``); both are honoured, ``waive`` winning on a state named in both.
    """
    states: dict[str, str] = {}
    families: dict[str, str] = {}
    for label, given in (("accepted", accepted), ("waive", waive)):
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ConfigError(f"{label} must map failure states or families to a written reason, got {given!r}")
        for name, reason in given.items():
            if name in REQUIRED_FAMILIES and label == "waive":
                target = families
            elif name in STATES:
                target = states
            else:
                families_hint = f" nor a chaos family ({', '.join(REQUIRED_FAMILIES)})" if label == "waive" else ""
                raise ConfigError(
                    f"{'accepted state' if label == 'accepted' else 'waive'} {name!r} is not in the catalog of failure "
                    f"states ({', '.join(STATES)}){families_hint}"
                )
            problem = reason_problem(reason)
            if problem:
                raise ConfigError(f"{'accepted state' if label == 'accepted' else 'waive'} {name!r} {problem}")
            target[name] = reason.strip()
    return states, families


def _system_and_policy(system: Any, policy: Any) -> tuple[Any, Any]:
    """The system and policy objects (imported when given as ``"module:attr"``), checked."""
    if isinstance(system, str):
        system = _import_attr(system, "system")
    if isinstance(policy, str):
        policy = _import_attr(policy, "policy")
    if not callable(system):
        raise ConfigError(f"system must be a callable input -> output, got {system!r}")
    if policy is None:
        policy = bare_policy()
    for attr in ("wrap", "handled_states"):
        if not callable(getattr(policy, attr, None)):
            raise ConfigError(f"policy must be a failpath.Policy, got {policy!r}")
    return system, policy


def bare_policy() -> Any:
    """The policy a check uses when given none: only ``unexpected`` is handled (abstain), so the raw
    system is measured as it is and the verdict lists every state left unhandled."""
    from failpath.guard import Abstain, Policy, Unexpected, on

    return Policy("no-policy", rules=[on(Unexpected()).do(Abstain("no policy: the call failed"))], store=False)


# long: the keyword arguments of fp.check, each read and checked in turn, then the budgets document
def make_plan(
    system: Any,
    cases: Any,
    *,
    policy: Any,
    judge: Any,
    suites: Iterable[Any],
    seed: int,
    concurrency: Any,
    executor: Any,
    silent_failure_budget: Any,
    coverage_floor: Any,
    delta: Any,
    accepted: Mapping[str, str] | None,
    calibration_share: Any,
    costs: Mapping[str, Any] | None,
    mix: Mapping[str, Any] | None = None,
    false_alarm_budget: Any = DEFAULT_FALSE_ALARM,
    max_input_bytes: int | None = MAX_INPUT_BYTES,
    waive: Mapping[str, str] | None = None,
    severe_silent_failure_budget: Any = DEFAULT_SEVERE_SILENT_FAILURE,
    severity: Any = None,
) -> Plan:
    """Read and validate every argument of a check; ``ConfigError`` or ``DatasetError`` naming what is wrong."""
    _check_numbers(concurrency, silent_failure_budget, coverage_floor, delta, calibration_share, executor)
    for label, value in (("false_alarm_budget", false_alarm_budget), ("severe_silent_failure_budget", severe_silent_failure_budget)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise ConfigError(f"{label} must be a number in (0, 1], got {value!r}")
    families = silent_failure_budgets(silent_failure_budget)
    declared_mix = traffic_mix(mix)
    accepted, waived_families = waivers(waive, accepted)
    system_spec = system if isinstance(system, str) else None
    policy_spec = policy if isinstance(policy, str) else None
    system, policy = _system_and_policy(system, policy)
    # States the policy itself waives (with its written reason) count as accepted; the config's word wins.
    accepted = {**dict(getattr(policy, "waived", None) or {}), **accepted}
    case_list = tuple(as_cases(cases))
    if max_input_bytes is not None and (isinstance(max_input_bytes, bool) or not isinstance(max_input_bytes, int)
                                        or max_input_bytes < 1):
        raise ConfigError(f"max_input_bytes must be a positive integer (or None for no limit), got {max_input_bytes!r}")
    check_case_sizes(case_list, max_input_bytes)
    from failpath.check.severity import graded, judge_severity

    if isinstance(severity, str):
        severity = _import_attr(severity, "severity")
    judge = graded(as_judge(judge), severity)
    _preflight_judge(judge, case_list)
    suites = tuple(suites)
    if suites:  # the chaos package (its perturbation tables) is loaded only when a suite runs
        from failpath.chaos import ordered

        suite_list = tuple(ordered(suites))
    else:
        suite_list = ()
    if any(s.name == CLEAN for s in suite_list):
        raise ConfigError("'clean' is not a chaos suite: the clean pass always runs, last")
    cost_table = _cost_table(costs)
    fingerprint = {
        "system": system_spec or name_of(system),
        "policy": policy_spec or name_of(policy),
        "judge": _judge_fingerprint(judge),
        "suites": [s.name for s in suite_list],
        "seed": seed,
        "calibration_share": calibration_share,
        "n_cases": len(case_list),
        "cases_digest": _cases_digest(case_list),
    }
    budgets = {
        "silent_failure": (
            dict(silent_failure_budget) if isinstance(silent_failure_budget, Mapping) else silent_failure_budget
        ),
        "silent_failure_families": families,
        "mix": declared_mix,
        "false_alarm": float(false_alarm_budget),
        "coverage_floor": coverage_floor,
        "delta": delta,
        "accepted": accepted,
        "waived_families": waived_families,
        "severe_silent_failure": float(severe_silent_failure_budget),
        "severity": judge_severity(judge),
        "costs": {k: list(v) for k, v in cost_table.items()},
    }
    return Plan(
        system=system, policy=policy, judge=judge, cases=case_list, suites=suite_list, seed=seed,
        split=split_cases(case_list, seed, calibration_share), fingerprint=fingerprint, budgets=budgets,
        costs=cost_table, system_spec=system_spec, policy_spec=policy_spec,
    )


def plan_items(cases: Sequence[Any], suites: Sequence[Any], seed: int, split: Mapping[str, str]) -> Iterator[WorkItem]:
    """Every request of a check, lazily, in the order they are sent: each suite's variants, then the clean inputs.

    Variants are generated as the runner takes them, so generating them overlaps with waiting on the
    system. A variant depends only on its case, suite and the seed, so any share of the cases plans
    exactly its own requests.
    """
    for suite in suites:
        for case in cases:
            for variant in suite.variants(case, seed):
                contract = getattr(variant.contract, "value", variant.contract)
                yield WorkItem(
                    key=request_key(suite.name, variant.perturbation, case.id, variant.index),
                    suite=suite.name,
                    family=variant.family,
                    perturbation=variant.perturbation,
                    case_id=case.id,
                    variant=variant.index,
                    split=split[case.id],
                    input=variant.input,
                    expected=variant.expected,
                    contract=str(contract),
                    edits=tuple(e.to_dict() for e in variant.edits),
                    fault=variant.fault,
                    tags=tuple(case.tags),
                )
    for case in cases:
        yield WorkItem(
            key=request_key(CLEAN, "none", case.id, 0),
            suite=CLEAN,
            family=CLEAN,
            perturbation="none",
            case_id=case.id,
            variant=0,
            split=split[case.id],
            input=case.input,
            expected=case.expected,
            tags=tuple(case.tags),
        )


def request_key(suite: str, perturbation: str, case_id: str, variant: int) -> str:
    """The key of a request, stable across runs: ``suite/perturbation/case id/variant index``."""
    return f"{suite}/{perturbation}/{case_id}/{variant}"


def key_digest(key: str) -> int:
    """A request key as a 64-bit number, the same in every process: plans are kept as arrays of these."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def key_digests(keys: Iterable[str]) -> Any:
    """The digests of ``keys`` as a numpy ``uint64`` array (8 bytes a request instead of a string)."""
    import numpy as np

    return np.fromiter((key_digest(k) for k in keys), dtype=np.uint64)
