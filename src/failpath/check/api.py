"""``fp.check``: run the guarded system over a labeled dataset, hostile and realistic suites first, clean last.

A check is a pipeline of stages, each in its own module:

1. **plan** (:mod:`~failpath.check.plan`): read and validate everything (cases, judge, suites, policy)
   before any model call, and split the cases, seeded, into a calibration half and an evaluation half;
2. **execute** (:mod:`~failpath.check.execute`): run every request not stored yet (each suite's
   variants of each case, then the clean inputs) with bounded concurrency, streaming result rows to
   the store, and read them back from the store a batch at a time into a tally
   (:mod:`~failpath.check.tally`), so a resumed run and an uninterrupted one are summarised alike;
3. **summarise** (:mod:`~failpath.check.summarise`): the figures on the evaluation half, the
   thresholds on the calibration half, and the figures of each case tag (:mod:`~failpath.check.tags`);
4. **decide** (:mod:`~failpath.check.verdict`): the verdict and its reasons;
5. **explain** (:mod:`~failpath.check.explain`): the worst silent failures, shrunk to minimal reproductions;
6. **record**: the :class:`CheckResult`, stored with the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failpath.check import fitting
from failpath.check.datasets import MAX_INPUT_BYTES
from failpath.check.execute import Execution, Stored, execute
from failpath.check.explain import worst_cases as explain_worst
from failpath.check.gate import families_run_criterion, severe_criterion
from failpath.check.plan import DEFAULT_COSTS, DEFAULT_SUITES, Plan, judge_name, make_plan, name_of
from failpath.check.result import CheckResult, Criterion, SeverityReport, TagFigures, Verdict, WorstCase
from failpath.check.reuse import reuses_answers
from failpath.check.severe import severity_report
from failpath.check.summarise import Summary, summarise
from failpath.check.tags import tag_figures
from failpath.check.verdict import decide
from failpath.core import ConfigError

__all__ = ["check", "mark_reported", "CheckInterrupted", "DEFAULT_COSTS", "RUN_KIND"]

#: The ``kind`` of check runs in the store.
RUN_KIND = "check"


# long: 45 of its lines are the keyword arguments and their docstring; the body reads top to bottom
def check(
    system: Any,
    cases: Any,
    *,
    policy: Any = None,
    judge: Any = "exact",
    suites: Iterable[Any] = DEFAULT_SUITES,
    seed: int = 0,
    concurrency: int = 16,
    store: Any = None,
    run_id: str | None = None,
    resume: bool | str | None = None,
    silent_failure_budget: float | Mapping[str, float] = 0.02,
    severe_silent_failure_budget: float = 0.005,
    severity: Any = None,
    mix: Mapping[str, float] | None = None,
    false_alarm_budget: float = 0.10,
    coverage_floor: float = 0.5,
    delta: float = 0.05,
    accepted: Mapping[str, str] | None = None,
    waive: Mapping[str, str] | None = None,
    calibration_share: float = 0.5,
    worst_cases: int = 5,
    worst_case_seconds: float = 20.0,
    executor: str = "auto",
    costs: Mapping[str, Any] | None = None,
    name: str | None = None,
    quiet: bool = False,
    console: Any = None,
    reports: bool = False,
    max_input_bytes: int | None = MAX_INPUT_BYTES,
    shifted: Any = None,
    save_detector: str | Path | None = None,
) -> CheckResult:
    """Check a system under its policy before shipping it; returns the frozen :class:`CheckResult`.

    ``system`` is the callable (sync or async; or ``"module:attr"``), ``cases`` a dataset path or an
    iterable of ``Case`` (or of dicts), ``policy`` a ``failpath.Policy`` (or ``"module:attr"``), ``judge``
    a judge, a judge name or a function ``(output, expected) -> bool``, ``suites`` the chaos suites
    (names or ``Suite`` values; run hostile, realistic, fault, then the clean pass). Results stream into
    ``store`` (a ``Store`` or a path; default ``.failpath/failpath.db``) under ``run_id``; pass
    ``resume=True`` (the latest unfinished run) or ``resume=RUN_ID`` to continue a killed run.
    ``reports=True`` says the caller writes reports once the run is done and then calls
    :func:`mark_reported` (``failpath check`` does): with ``resume=True``, the latest such run that
    finished without being marked (killed while its reports were written) is found too, and its
    stored result returned, so its reports can be written.

    Budgets: ``silent_failure_budget`` (one number for every family, or a mapping such as
    ``{"clean": 0.02, "realistic": 0.02, "hostile": 0.01, "fault": 0.01}``; families left out take 0.02):
    each family present in the run (clean, realistic, hostile, fault) is judged alone, on the upper
    confidence bound of its silent-failure rate with the case as the unit; ``mix`` (the share of
    production traffic of each family, e.g. ``{"clean": 0.6, "realistic": 0.35, "hostile": 0.05}``)
    judges the families it names together on that weighted rate instead; ``false_alarm_budget`` (the
    upper bound of the share of realistic requests the raw system answers right that the policy
    refuses), ``coverage_floor`` (share of clean requests answered), ``delta`` (1 − confidence
    of the bounds and of the threshold guarantee).

    Severity: ``severity`` grades how bad a wrong answer is, a function ``severity(case, output)``
    returning a number in [0, 1] or ``"minor"``, ``"major"``, ``"severe"`` (or ``"module:attr"``), or
    weights per field or label for the ``fields`` and ``token_labels`` judges (``{"zip": "severe"}``);
    silent failures of severity at least 0.75 are held per family to ``severe_silent_failure_budget``
    (default 0.5%). Without ``severity`` every wrong answer counts as severe
    (:mod:`failpath.check.severity`).

    Waivers: ``waive`` maps a failure state left without a rule, or a required chaos family left out
    of the run (``realistic``, ``hostile``, ``fault``), to a written reason of at least 10 characters;
    READY TO SHIP needs each required family run or waived. ``accepted`` is the older spelling for
    states; the states the policy waives, ``Policy(waive=...)``, count as waived too. ``executor="process"`` deals the cases out to one worker
    process per core (at most ``concurrency``), for a CPU-bound local model or a fast system: the system,
    policy, judge and suites must be picklable or given as ``"module:attr"``, and ``store`` a SQLite path.

    A case whose input or expected answer is longer than ``max_input_bytes`` as JSON text (default 1 MiB,
    ``None``: no limit) is refused up front, naming the case.

    Detectors: an ``AnomalousInput(fit="check")`` of the policy is fitted on the calibration half (its clean
    inputs plus the realistic variants the raw system answered right) before any guarded call;
    ``save_detector`` (a path) saves it for production (``AnomalousInput.load``). ``shifted`` is a
    sample of inputs from another domain (a list, ``{source: inputs}``, or a ``.txt``/``.jsonl`` path):
    the result's ``detectors`` give each input detector's flag rate on it, beside its false alarms on
    the realistic variants the raw system answered right.

    Raises ``DatasetError`` or ``ConfigError`` (naming what is wrong) before any model call. Ctrl-C
    during the run raises :class:`CheckInterrupted` (a ``KeyboardInterrupt``) naming the run to resume;
    the rows made so far are kept.
    """
    started = time.time()
    plan = make_plan(
        system, cases, policy=policy, judge=judge, suites=suites, seed=seed, concurrency=concurrency,
        executor=executor, silent_failure_budget=silent_failure_budget, coverage_floor=coverage_floor, delta=delta,
        accepted=accepted, calibration_share=calibration_share, costs=costs, mix=mix,
        false_alarm_budget=false_alarm_budget, max_input_bytes=max_input_bytes, waive=waive,
        severe_silent_failure_budget=severe_silent_failure_budget, severity=severity,
    )
    shifted_inputs = fitting.shifted_sources(shifted)
    if save_detector is not None and not fitting.check_fitted(plan.policy):
        raise ConfigError(
            f"save_detector={str(save_detector)!r}: the policy has no detector the check fits; build it with "
            "fp.AnomalousInput(fit='check', ...) to have the check fit and save it"
        )
    store_obj, owned = _open(store)
    recorded: str | None = None  # the run's id once its record exists
    try:
        record = _open_run(
            store_obj, plan, run_id=run_id, resume=resume, name=name, concurrency=concurrency, executor=executor,
            reports=reports,
        )
        recorded = record.run_id
        if record.summary is not None:
            return CheckResult.from_dict(record.summary)
        answers: dict[str, Any] | None = {} if reuses_answers(plan.policy) else None
        reference = fitting.fit_detectors(plan, answers=answers)  # before any guarded call: the guard needs them fitted
        saved = fitting.save_fitted(plan.policy, save_detector) if save_detector is not None else []
        with _scratch(store_obj) as scratch:
            run = Execution(
                store=store_obj, run_id=record.run_id, done=record.done, scratch=scratch, executor=executor,
                concurrency=concurrency, quiet=quiet, console=console, answers=answers,
            )
            stored = execute(plan, run, worst=worst_cases)
            summary = summarise(
                stored.tally, suites=plan.suite_names, handled=_handled(plan), budgets=plan.budgets, costs=plan.costs,
                seed=plan.seed, policy_name=name_of(plan.policy), run_id=record.run_id,
            )
            severity_figures = severity_report(stored.tally, plan.budgets)
            verdict = _decide(summary, plan.budgets, severity_figures, _families_run(stored.tally, plan.budgets))
            inputs = _Inputs(
                detectors=fitting.measure_detectors(plan, stored.tally, reference=reference, shifted=shifted_inputs, saved=saved),
                counts=fitting.perturbation_counts(stored.tally, plan),
            )
            tags = tag_figures(stored.tally, {c.id: c.tags for c in plan.cases}, plan.budgets)
            worst = explain_worst(
                stored.tally.silent, k=worst_cases, seconds=worst_case_seconds, policy=plan.policy, system=plan.system,
                judge=plan.judge, cases={c.id: c for c in plan.cases}, seed=plan.seed, scratch=scratch,
                suites={s.name: s for s in plan.suites},
            )
        result = _result(plan, record, stored, summary, verdict, worst, inputs, name=name, started=started, tags=tags)
        result = dataclasses.replace(result, severity=severity_figures)
        store_obj.finish_run(record.run_id, result.to_dict())
        return result
    except KeyboardInterrupt as exc:
        if recorded is None or isinstance(exc, CheckInterrupted):
            raise
        raise CheckInterrupted(recorded, _stored_count(store_obj, recorded), str(store_obj.path)) from exc
    finally:
        if owned:
            store_obj.close()


class CheckInterrupted(KeyboardInterrupt):
    """A check stopped by Ctrl-C (``KeyboardInterrupt``) after its run record was made.

    The results stored so far are kept: ``check(..., resume=run_id)`` (``failpath check --resume``)
    continues the run. ``stored`` counts them (None if the store could not be read).
    """

    def __init__(self, run_id: str, stored: int | None, store: str) -> None:
        super().__init__(f"check run {run_id} interrupted with {stored} results stored in {store}")
        self.run_id, self.stored, self.store = run_id, stored, store


def _stored_count(store: Any, run_id: str) -> int | None:
    try:
        return len(store.result_keys(run_id))
    except Exception:  # interrupted while the store was busy or closing: the count is only a courtesy
        return None


@dataclass(frozen=True)
class _Record:
    """The run a check writes to: its id, whether it resumes a killed run (and the keys stored before),
    and the summary when the run had finished already."""

    run_id: str
    resumed: bool
    done: frozenset[str]
    summary: Mapping[str, Any] | None = None


def _open(store: Any) -> tuple[Any, bool]:
    from failpath.store import Store, open_store

    if isinstance(store, Store):
        return store, False
    return open_store(store), True


@contextlib.contextmanager
def _scratch(store: Any) -> Iterator[Any]:
    """The store of the traces and tickets of the check's own guarded calls: beside the store, never in it."""
    from failpath.store import open_store

    path = getattr(store, "path", None)
    with contextlib.ExitStack() as cleanup:
        if isinstance(path, Path) and str(path) not in ("", ":memory:"):
            path = path.with_name(path.stem + "-check-traces.db")
        else:
            # A store with no file (a server, or memory): a folder of this run's own, removed at the end,
            # so checks running at once never share one scratch file.
            import tempfile

            path = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="failpath-check-"))) / "traces.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = open_store(path, queue_tickets=True)  # nobody answers these tickets live
        try:
            yield scratch
        finally:
            scratch.close()


#: The checkpoint kind that records that a run's reports were written (see :func:`mark_reported`).
REPORTED = "reports"


def mark_reported(store: Any, run_id: str) -> None:
    """Record in ``store`` (a ``Store`` or a path) that the reports of check run ``run_id`` were written,
    so ``resume=True`` no longer finds it (see :func:`check`'s ``reports``)."""
    store_obj, owned = _open(store)
    try:
        store_obj.add_checkpoint(run_id, 0, REPORTED, {"at": time.time()})  # False when marked already
    finally:
        if owned:
            store_obj.close()


def _find_run(store: Any, resume: Any) -> dict[str, Any]:
    if resume is True or resume == "latest":
        runs = store.list_runs(kind=RUN_KIND)
        for run in runs:
            if run.get("finished") is None:
                return run
        newest = runs[0] if runs else None
        if newest is not None and (newest.get("config") or {}).get("reports") and newest.get("summary"):
            if not any(kind == REPORTED for _, kind, _ in store.checkpoints(newest["run_id"])):
                return newest  # finished, but killed before its reports were written
        raise ConfigError(f"--resume: no unfinished check run in {store.path}; start a new run")
    run = store.get_run(str(resume))
    if run is None or run.get("kind") != RUN_KIND:
        raise ConfigError(f"--resume {resume}: no check run with that id in {store.path} (see `failpath runs`)")
    return run


_FINGERPRINT_KEYS = ("system", "policy", "judge", "suites", "seed", "calibration_share", "n_cases", "cases_digest")


def _verify_same(run: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> None:
    stored = (run.get("config") or {}).get("fingerprint") or {}
    for key in _FINGERPRINT_KEYS:
        if key in stored and stored[key] != fingerprint[key]:
            raise ConfigError(
                f"cannot resume run {run['run_id']}: it was started with {key} = {stored[key]!r}, "
                f"this configuration has {key} = {fingerprint[key]!r}; resume with the same configuration "
                "or start a new run"
            )


def _open_run(
    store: Any, plan: Plan, *, run_id: str | None, resume: Any, name: str | None, concurrency: int, executor: str,
    reports: bool = False,
) -> _Record:
    """The unfinished run named by ``resume`` (checked against this plan), or a new run record."""
    if resume:
        run = _find_run(store, resume)
        _verify_same(run, plan.fingerprint)
        summary = run.get("summary") if run.get("finished") is not None and run.get("summary") else None
        done = frozenset() if summary is not None else frozenset(store.result_keys(run["run_id"]))
        return _Record(run_id=run["run_id"], resumed=True, done=done, summary=summary)
    run_id = run_id or f"chk-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    budgets = {
        k: plan.budgets[k]
        for k in (
            "silent_failure", "silent_failure_families", "mix", "false_alarm", "coverage_floor", "delta", "accepted",
            "waived_families", "severe_silent_failure", "severity",
        )
    }
    store.create_run(
        run_id,
        kind=RUN_KIND,
        config={
            "fingerprint": plan.fingerprint, "name": name, "budgets": budgets, "concurrency": concurrency,
            "executor": executor, "reports": bool(reports),
        },
    )
    return _Record(run_id=run_id, resumed=False, done=frozenset())


def _handled(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in plan.policy.handled_states().items()}


def _families_run(tally: Any, budgets: Mapping[str, Any]) -> Criterion:
    """The ``families_run`` criterion from the tallied rows and the run's family waivers."""
    from failpath.check.plan import REQUIRED_FAMILIES

    evaluated = {f: int(tally.case_counts(f)[0].sum()) for f in REQUIRED_FAMILIES}
    ran = {f: int(tally.case_counts(f, evaluation_only=False)[0].sum()) for f in REQUIRED_FAMILIES}
    return families_run_criterion(evaluated, ran, budgets.get("waived_families") or {})


def _decide(summary: Summary, budgets: Mapping[str, Any], severity: SeverityReport, families_run: Criterion) -> Verdict:
    return decide(
        states=summary.states,
        families=summary.families,
        over_refusal=summary.over_refusal,
        clean=summary.clean,
        escapes=summary.escapes,
        n_rows=summary.n_rows,
        flips=summary.flips,
        n_hostile_answered=summary.n_hostile_answered,
        coverage_floor=float(budgets["coverage_floor"]),
        delta=float(budgets["delta"]),
        families_run=families_run,
        severe=severe_criterion(severity),
    )


@dataclass(frozen=True)
class _Inputs:
    """What the check measured about inputs: the input detectors' figures and each perturbation's counts."""

    detectors: tuple[Any, ...]
    counts: tuple[Any, ...]


def _result(
    plan: Plan,
    record: _Record,
    stored: Stored,
    summary: Summary,
    verdict: Verdict,
    worst: list[WorstCase],
    inputs: _Inputs,
    *,
    name: str | None,
    started: float,
    tags: tuple[TagFigures, ...] = (),
) -> CheckResult:
    """The result document of a run from what each stage produced."""
    notes = []
    if not summary.thresholds.certified:
        notes.append(summary.thresholds.message)
    if summary.escapes:
        notes.append(
            f"{summary.escapes} guarded calls raised instead of ending in an outcome (see the rows with outcome 'escaped')"
        )
    finished = time.time()
    return CheckResult(
        run_id=record.run_id,
        verdict=verdict,
        name=name or plan.fingerprint["system"],
        system=str(plan.fingerprint["system"]),
        policy=str(plan.fingerprint["policy"]),
        judge=judge_name(plan.judge),
        seed=plan.seed,
        suites=plan.suite_names,
        n_cases=len(plan.cases),
        n_calibration=summary.n_calibration,
        n_evaluation=summary.n_evaluation,
        n_rows=summary.n_rows,
        clean=summary.clean,
        chaos=summary.chaos,
        groups=summary.groups,
        confidence=summary.confidence,
        states=summary.states,
        thresholds=summary.thresholds,
        worst_cases=tuple(worst),
        baseline=summary.baseline,
        curves=summary.curves,
        budgets=dict(plan.budgets),
        config=dict(plan.fingerprint),
        started=started,
        finished=finished,
        elapsed_seconds=round(finished - started, 3),
        resumed=record.resumed,
        reused=stored.reused,
        notes=tuple(notes),
        silent_failure_families=summary.families,
        over_refusal=summary.over_refusal,
        detectors=inputs.detectors,
        perturbation_counts=inputs.counts,
        tags=tags,
    )


