"""``fp.check``: run the guarded system over a labeled dataset, hostile and realistic suites first, clean last.

The steps of a check:

1. read and validate everything (cases, judge, suites, policy) before any model call;
2. split the cases, seeded, into a calibration half and an evaluation half;
3. build every request (each suite's variants of each case, then the clean inputs), skip those a resumed
   run has already stored, and run the rest with bounded concurrency, streaming result rows to the store;
4. read every row back from the store (so a resumed run and an uninterrupted one are summarized alike) and
   compute the figures on the evaluation half, the thresholds on the calibration half;
5. shrink the worst silent failures to minimal reproductions, decide the verdict, store the summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from failpath.check.config import DEFAULT_SUITES
from failpath.check.datasets import as_cases
from failpath.check.judges import _import_attr, as_judge
from failpath.check.metrics import confidence_quality, derive_int_seed, group_figures
from failpath.check.result import (
    CheckResult,
    GroupFigures,
    Reproduction,
    ThresholdReport,
    WorstCase,
)
from failpath.check.runner import (
    CLEAN,
    Evaluator,
    RowSink,
    ChunkRunner,
    WorkerSetup,
    WorkItem,
    bare_policy,
    guard_factory,
    is_async_system,
    plan_items,
    run_items,
    chunk_cases,
    process_count,
    run_processes,
    start_method,
)
from failpath.check.verdict import decide, hostile_flips, state_coverage
from failpath.core import OUTCOME_KINDS, STATES, Case, ConfigError, is_valid_confidence

__all__ = ["check", "CheckInterrupted", "DEFAULT_COSTS", "RUN_KIND"]

#: The ``kind`` of check runs in the store.
RUN_KIND = "check"

#: Costs of the answer / clarify / escalate policy: (cost if the model's answer is right, if it is wrong).
DEFAULT_COSTS: dict[str, tuple[float, float]] = {
    "answer": (0.0, 10.0),
    "clarify": (1.0, 4.0),
    "escalate": (3.0, 3.0),
}

_CLEAN = CLEAN


def _name_of(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    for attr in ("name", "__qualname__", "__name__"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            module = getattr(obj, "__module__", None)
            return f"{module}:{value}" if attr != "name" and module else value
    return type(obj).__name__


def _judge_fingerprint(judge: Any) -> str:
    """What identifies a judge across processes (a function's module and name, never its address)."""
    from failpath.check.judges import FunctionJudge

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


def _judge_name(judge: Any) -> str:
    name = getattr(judge, "name", None)
    return name if isinstance(name, str) else type(judge).__name__


def _cases_digest(cases: Sequence[Case]) -> str:
    from failpath.store.jsonsafe import dumps

    h = hashlib.sha256()
    for c in cases:
        h.update(dumps([c.id, c.input, c.expected]).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _split(cases: Sequence[Case], seed: int, share: float) -> dict[str, str]:
    """Case id -> "calibration" or "evaluation": a seeded split that does not depend on the file's order."""
    ranked = sorted(cases, key=lambda c: (derive_int_seed(seed, "split", c.id), c.id))
    n_cal = int(round(share * len(ranked)))
    if len(ranked) >= 2:
        n_cal = min(max(n_cal, 1), len(ranked) - 1)
    return {c.id: ("calibration" if i < n_cal else "evaluation") for i, c in enumerate(ranked)}


def _open(store: Any) -> tuple[Any, bool]:
    from failpath.store import Store, open_store

    if isinstance(store, Store):
        return store, False
    return open_store(store), True


def _scratch_path(store: Any) -> Path:
    """Where the traces and tickets of the check's own guarded calls go: beside the store, never in it."""
    path = getattr(store, "path", None)
    if isinstance(path, Path) and str(path) not in ("", ":memory:"):
        return path.with_name(path.stem + "-check-traces.db")
    import tempfile

    return Path(tempfile.gettempdir()) / "failpath-check-traces.db"


def _find_run(store: Any, resume: Any) -> dict[str, Any]:
    if resume is True or resume == "latest":
        for run in store.list_runs(kind=RUN_KIND):
            if run.get("finished") is None:
                return run
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


def _progress(total: int | None, done: int, quiet: bool, console: Any) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    console = console or Console(stderr=True)
    disabled = quiet or not console.is_terminal
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]check[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        disable=disabled,
        transient=False,
    )
    task = progress.add_task("check", total=total, completed=done, rate="")
    return progress, task


# --------------------------------------------------------------------------- the entry point


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
    silent_failure_budget: float = 0.02,
    coverage_floor: float = 0.5,
    delta: float = 0.05,
    accepted: Mapping[str, str] | None = None,
    calibration_share: float = 0.5,
    worst_cases: int = 5,
    worst_case_seconds: float = 20.0,
    executor: str = "auto",
    costs: Mapping[str, Any] | None = None,
    name: str | None = None,
    quiet: bool = False,
    console: Any = None,
) -> CheckResult:
    """Check a system under its policy before shipping it; returns the frozen :class:`CheckResult`.

    ``system`` is the callable (sync or async; or ``"module:attr"``), ``cases`` a dataset path or an
    iterable of ``Case`` (or of dicts), ``policy`` a ``failpath.Policy`` (or ``"module:attr"``), ``judge``
    a judge, a judge name or a function ``(output, expected) -> bool``, ``suites`` the chaos suites
    (names or ``Suite`` values; run hostile, realistic, fault, then the clean pass). Results stream into
    ``store`` (a ``Store`` or a path; default ``.failpath/failpath.db``) under ``run_id``; pass
    ``resume=True`` (the latest unfinished run) or ``resume=RUN_ID`` to continue a killed run.

    Budgets: ``silent_failure_budget`` (the upper confidence bound of the silent-failure rate under chaos
    must be within it), ``coverage_floor`` (share of clean requests answered), ``delta`` (1 − confidence
    of the bounds and of the threshold guarantee), ``accepted`` (failure states left without a rule, each
    with a written reason; the states the policy waives, ``Policy(waive=...)``, count as accepted too). ``executor="process"`` deals the cases out to one worker
    process per core (at most ``concurrency``), for a CPU-bound local model or a fast system: the system,
    policy, judge and suites must be picklable or given as ``"module:attr"``, and ``store`` a SQLite path.

    Raises ``DatasetError`` or ``ConfigError`` (naming what is wrong) before any model call. Ctrl-C
    during the run raises :class:`CheckInterrupted` (a ``KeyboardInterrupt``) naming the run to resume;
    the rows made so far are kept.
    """
    started = time.time()
    # ------------------------------------------------------------------ validate everything first
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
    for label, value, low, high in (
        ("silent_failure_budget", silent_failure_budget, 0.0, 1.0),
        ("delta", delta, 0.0, 1.0),
        ("calibration_share", calibration_share, 0.0, 1.0),
    ):
        if not isinstance(value, (int, float)) or not low < value < high:
            raise ConfigError(f"{label} must be a number strictly between {low:g} and {high:g}, got {value!r}")
    if not isinstance(coverage_floor, (int, float)) or not 0.0 <= coverage_floor <= 1.0:
        raise ConfigError(f"coverage_floor must be a number in [0, 1], got {coverage_floor!r}")
    if executor not in ("auto", "thread", "process"):
        raise ConfigError(f"executor must be 'auto', 'thread' or 'process', got {executor!r}")
    accepted = dict(accepted or {})
    for state, reason in accepted.items():
        if state not in STATES:
            raise ConfigError(f"accepted state {state!r} is not in the catalog ({', '.join(STATES)})")
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            raise ConfigError(f"accepted state {state!r} needs a written reason (a sentence), got {reason!r}")

    system_spec = system if isinstance(system, str) else None
    policy_spec = policy if isinstance(policy, str) else None
    if system_spec is not None:
        system = _import_attr(system_spec, "system")
    if policy_spec is not None:
        policy = _import_attr(policy_spec, "policy")
    if not callable(system):
        raise ConfigError(f"system must be a callable input -> output, got {system!r}")
    if policy is None:
        policy = bare_policy()
    for attr in ("wrap", "handled_states"):
        if not callable(getattr(policy, attr, None)):
            raise ConfigError(f"policy must be a failpath.Policy, got {policy!r}")
    # States the policy itself waives (with its written reason) count as accepted; the config's word wins.
    accepted = {**dict(getattr(policy, "waived", None) or {}), **accepted}

    case_list = as_cases(cases)
    judge = as_judge(judge)
    _preflight_judge(judge, case_list)
    from failpath.chaos import ordered

    suite_list = ordered(suites)
    if any(s.name == _CLEAN for s in suite_list):
        raise ConfigError("'clean' is not a chaos suite: the clean pass always runs, last")
    cost_table = _cost_table(costs)

    fingerprint = {
        "system": system_spec or _name_of(system),
        "policy": policy_spec or _name_of(policy),
        "judge": _judge_fingerprint(judge),
        "suites": [s.name for s in suite_list],
        "seed": seed,
        "calibration_share": calibration_share,
        "n_cases": len(case_list),
        "cases_digest": _cases_digest(case_list),
    }

    # ------------------------------------------------------------------ the run record
    store_obj, owned = _open(store)
    opened: list[Any] = []  # the scratch store of the guard's traces and tickets, closed at the end
    frozen = False
    recorded: str | None = None  # the run's id once its record exists
    try:
        resumed = False
        if resume:
            run = _find_run(store_obj, resume)
            _verify_same(run, fingerprint)
            run_id = run["run_id"]
            resumed = True
            if run.get("finished") is not None and run.get("summary"):
                return CheckResult.from_dict(run["summary"])
        else:
            run_id = run_id or f"chk-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
            store_obj.create_run(
                run_id,
                kind=RUN_KIND,
                config={
                    "fingerprint": fingerprint,
                    "name": name,
                    "budgets": {
                        "silent_failure": silent_failure_budget,
                        "coverage_floor": coverage_floor,
                        "delta": delta,
                        "accepted": accepted,
                    },
                    "concurrency": concurrency,
                    "executor": executor,
                },
            )
        recorded = run_id

        # ------------------------------------------------------------------ run what is not stored yet
        split = _split(case_list, seed, calibration_share)
        done = store_obj.result_keys(run_id) if resumed else set()
        scratch_path = _scratch_path(store_obj)
        scratch_path.parent.mkdir(parents=True, exist_ok=True)
        from failpath.store import open_store

        scratch = open_store(scratch_path, queue_tickets=True)  # nobody answers these tickets live
        opened.append(scratch)
        run = _Run(
            cases=case_list, suites=suite_list, split=split, done=done, system=system, policy=policy, judge=judge,
            seed=seed, store=store_obj, run_id=run_id, scratch=scratch, concurrency=concurrency, quiet=quiet,
            console=console,
        )
        if executor == "process":
            _execute_in_processes(run, system_spec or system, policy_spec or policy)
        else:
            _execute(run)

        # ------------------------------------------------------------------ summarize from the store
        planned_keys = set(run.planned)
        reader = run.rows or _RowReader(store_obj, run_id)
        reader.step()  # what is not read yet (everything, unless rows were read while the run went on)
        with _collector_paused():  # tens of thousands of fresh dicts: no cycles to find, only time to lose
            rows = []
            for key, data in reader.rows:
                if key in planned_keys:
                    data["key"] = key
                    rows.append(data)
            rows.sort(key=_row_key)
            # The rows live until the end: keep the collector's full passes from walking them again and again.
            gc.freeze()
            frozen = True
        missing = len(planned_keys) - len(rows)
        if missing:
            raise ConfigError(f"run {run_id}: {missing} planned requests have no stored result; resume the run")
        result = _summarize(
            rows,
            run_id=run_id,
            name=name or fingerprint["system"],
            fingerprint=fingerprint,
            suites=[s.name for s in suite_list],
            suite_objects={s.name: s for s in suite_list},
            policy=policy,
            judge=judge,
            cases={c.id: c for c in case_list},
            system=system,
            seed=seed,
            budgets={
                "silent_failure": silent_failure_budget,
                "coverage_floor": coverage_floor,
                "delta": delta,
                "accepted": accepted,
                "costs": {k: list(v) for k, v in cost_table.items()},
            },
            costs=cost_table,
            worst_cases=worst_cases,
            worst_case_seconds=worst_case_seconds,
            scratch=scratch,
            started=started,
            resumed=resumed,
            reused=len(done & planned_keys),
        )
        store_obj.finish_run(run_id, result.to_dict())
        return result
    except KeyboardInterrupt as exc:
        if recorded is None or isinstance(exc, CheckInterrupted):
            raise
        raise CheckInterrupted(recorded, _stored_count(store_obj, recorded), str(store_obj.path)) from exc
    finally:
        if frozen:
            gc.unfreeze()
        for extra in opened:
            extra.close()
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


def _row_key(row: Mapping[str, Any]) -> str:
    return row["key"]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while bulk data is built (it would walk every new dict again and again)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _preflight_judge(judge: Any, cases: Sequence[Case]) -> None:
    """Every expected value must be judged right against itself: catches a judge that cannot read the labels."""
    for case in cases:
        try:
            ok = judge(case.expected, case.expected)
        except Exception as exc:
            raise ConfigError(
                f"judge {_judge_name(judge)!r} cannot read the expected value of case {case.id!r} "
                f"({type(exc).__name__}: {exc}); choose a judge that fits the labels"
            ) from exc
        if not ok:
            raise ConfigError(
                f"judge {_judge_name(judge)!r} says the expected value of case {case.id!r} is wrong against itself "
                f"({case.expected!r:.200}); choose a judge that fits the labels"
            )


@dataclasses.dataclass
class _Run:
    """The requests of one check run: the cases and suites they come from, what runs them, where their rows go.

    ``done`` holds the keys already stored (a resumed run skips them); every planned key is appended to
    ``planned`` as the run goes.
    """

    cases: Sequence[Case]
    suites: Sequence[Any]
    split: Mapping[str, str]
    done: set[str]
    system: Any
    policy: Any
    judge: Any
    seed: int
    store: Any
    run_id: str
    scratch: Any
    concurrency: int
    quiet: bool
    console: Any
    planned: list[str] = dataclasses.field(default_factory=list)
    rows: _RowReader | None = None


def _execute(run: _Run) -> None:
    """Run the requests not stored yet in this process (an event loop, inline calls or threads)."""
    progress, task = _progress(None, len(run.done), run.quiet, run.console)
    on_rows, finish = _counter(progress, task, len(run.done))

    def todo() -> Iterator[WorkItem]:
        for item in plan_items(run.cases, run.suites, run.seed, run.split):
            run.planned.append(item.key)
            if item.key not in run.done:
                yield item
        progress.update(task, total=len(run.planned))

    evaluator = Evaluator(run.system, guard_factory(run.policy, run.scratch), run.judge, seed=run.seed)
    sink = RowSink(run.store, run.run_id, on_rows=on_rows)
    try:
        with progress:
            run_items(todo(), evaluator, sink, concurrency=run.concurrency)
            finish()
    finally:
        sink.close()
        try:
            run.policy.flush()
        except Exception:
            pass


#: Rows read back at a time while a process run goes on.
_READ_BATCH = 1024


class _RowReader:
    """Reads a run's stored rows back for its summary, a piece at a time (``step``), in the order written."""

    def __init__(self, store: Any, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.rows: list[tuple[str, Any]] = []
        self._after = 0

    def step(self) -> int:
        """Read every row stored since the last step; return how many."""
        with _collector_paused():
            rows, self._after = self.store.results_after(self.run_id, self._after)
        self.rows.extend(rows)
        return len(rows)


def _counter(progress: Any, task: Any, done: int) -> tuple[Any, Any]:
    """``(on_rows(n), finish())``: count finished rows into the progress bar, with the rate."""
    t0 = time.perf_counter()
    count = [0]
    last = [0.0]

    def on_rows(n: int) -> None:
        count[0] += n
        if progress.disable:
            return
        now = time.perf_counter()
        if now - last[0] >= 0.1:  # the bar refreshes ten times a second; more updates are wasted work
            last[0] = now
            elapsed = now - t0
            progress.update(task, completed=done + count[0], rate=f"{count[0] / elapsed:,.0f}/s" if elapsed > 0 else "")

    def finish() -> None:
        progress.update(task, completed=done + count[0])

    return on_rows, finish


def _execute_in_processes(run: _Run, system: Any, policy: Any) -> None:
    """Run the requests not stored yet over all the cores: chunks of cases in worker processes and in this one.

    ``system`` and ``policy`` are what the workers get: the ``"module:attr"`` names when the run was given
    them, else the objects.
    """
    import pickle

    from failpath.store.sqlite import SQLiteStore

    cases, suites, judge, store, scratch = run.cases, run.suites, run.judge, run.store, run.scratch
    if not isinstance(store, SQLiteStore):
        raise ConfigError("executor='process' needs a SQLite store given by its path, which each worker opens itself")
    n = process_count(run.concurrency, len(cases))
    chunks = chunk_cases(cases, n)
    method = start_method() if n > 1 else "fork"
    travelling = tuple(suites)
    if method == "spawn":  # workers receive everything pickled
        try:
            pickle.dumps(list(suites))
        except Exception:  # a perturbation made of a lambda: this process plans the requests and sends them
            travelling = ()
        for label, value in (("system", system), ("policy", policy), ("judge", judge), ("cases", chunks[:1])):
            try:
                pickle.dumps(value)
            except Exception as exc:
                raise ConfigError(
                    f"executor='process' sends the {label} to worker processes, but it cannot be pickled "
                    f"({type(exc).__name__}: {exc}); define it at the top level of a module, give it as 'module:attr', "
                    "or use executor='thread'"
                ) from None
    setup = WorkerSetup(
        system=system, policy=policy, judge=judge, suites=travelling, split=dict(run.split), done=frozenset(run.done),
        seed=run.seed, store=str(store.path), run_id=run.run_id, scratch=str(scratch.path),
        concurrency=max(1, run.concurrency // n), parent=os.getpid(),
    )
    progress, task = _progress(None, len(run.done), run.quiet, run.console)
    on_rows, finish = _counter(progress, task, len(run.done))
    evaluator = Evaluator(run.system, guard_factory(run.policy, scratch), judge, seed=run.seed)
    # The summary reads every row back. Read them while the run goes on, before this process takes its
    # next chunk: the workers take more of the chunks, and little is left to read once they finish.
    reader = run.rows = _RowReader(store, run.run_id)
    produced = [0]

    def counted(n_rows: int) -> None:
        produced[0] += n_rows
        on_rows(n_rows)

    def idle() -> bool:
        return produced[0] - len(reader.rows) >= _READ_BATCH and reader.step() > 0

    local = ChunkRunner(dataclasses.replace(setup, suites=tuple(suites)), evaluator, store, counted)
    try:
        run.planned.extend(
            run_processes(chunks, setup, local, workers=n - 1, on_rows=counted, method=method, progress=progress, idle=idle)
        )
        progress.update(task, total=len(run.planned))
        finish()
    finally:
        try:
            run.policy.flush()
        except Exception:
            pass


# --------------------------------------------------------------------------- the summary


def _summarize(
    rows: list[dict[str, Any]],
    *,
    run_id: str,
    name: str,
    fingerprint: Mapping[str, Any],
    suites: Sequence[str],
    suite_objects: Mapping[str, Any],
    policy: Any,
    judge: Any,
    cases: Mapping[str, Case],
    system: Any,
    seed: int,
    budgets: Mapping[str, Any],
    costs: Mapping[str, Any],
    worst_cases: int,
    worst_case_seconds: float,
    scratch: Any,
    started: float,
    resumed: bool,
    reused: int,
) -> CheckResult:
    delta = float(budgets["delta"])
    evaluation = [r for r in rows if r["split"] == "evaluation"]
    calibration = [r for r in rows if r["split"] == "calibration"]
    clean_eval = [r for r in evaluation if r["suite"] == _CLEAN]
    chaos_eval = [r for r in evaluation if r["suite"] != _CLEAN]
    clean_raw = {r["case_id"]: bool(r.get("raw_correct")) for r in clean_eval}

    def figures(group: list[dict[str, Any]], suite: str, family: str, perturbation: str | None) -> GroupFigures:
        return group_figures(
            group, suite=suite, family=family, perturbation=perturbation, clean_raw=clean_raw, delta=delta,
            seed=derive_int_seed(seed, "gap", suite, perturbation or ""),
        )

    clean = figures(clean_eval, _CLEAN, _CLEAN, None)
    chaos = figures(chaos_eval, "chaos", "chaos", None)
    groups: list[GroupFigures] = []
    for suite in suites:
        suite_rows = [r for r in chaos_eval if r["suite"] == suite]
        if not suite_rows:
            continue
        family = suite_rows[0]["family"]
        groups.append(figures(suite_rows, suite, family, None))
        by_perturbation: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in suite_rows:
            by_perturbation[r["perturbation"]].append(r)
        for perturbation, group in by_perturbation.items():
            groups.append(figures(group, suite, family, perturbation))

    handled = {k: tuple(v) for k, v in policy.handled_states().items()}
    states = state_coverage(rows, handled, budgets["accepted"])
    clean_all = {r["case_id"]: r for r in rows if r["suite"] == _CLEAN}
    hostile_eval = [r for r in evaluation if r.get("family") == "hostile"]
    flips = hostile_flips(hostile_eval, clean_all, judge)
    escapes = sum(1 for r in rows if r["outcome"] == "escaped")
    verdict = decide(
        states=states,
        chaos=chaos,
        clean=clean,
        escapes=escapes,
        n_rows=len(rows),
        flips=len(flips),
        n_hostile_answered=sum(1 for r in hostile_eval if r["outcome"] == "answered"),
        silent_failure_budget=float(budgets["silent_failure"]),
        coverage_floor=float(budgets["coverage_floor"]),
        delta=delta,
    )
    thresholds = _thresholds(calibration, evaluation, budgets, costs)
    worst = _worst_cases(
        evaluation, k=worst_cases, seconds=worst_case_seconds, policy=policy, system=system, judge=judge,
        cases=cases, seed=seed, scratch=scratch, suites=suite_objects,
    )
    notes = []
    if not thresholds.certified:
        notes.append(thresholds.message)
    if escapes:
        notes.append(f"{escapes} guarded calls raised instead of ending in an outcome (see the rows with outcome 'escaped')")
    finished = time.time()
    return CheckResult(
        run_id=run_id,
        verdict=verdict,
        name=name,
        system=str(fingerprint["system"]),
        policy=str(fingerprint["policy"]),
        judge=_judge_name(judge),
        seed=seed,
        suites=tuple(suites),
        n_cases=len(cases),
        n_calibration=len({r["case_id"] for r in calibration}),
        n_evaluation=len({r["case_id"] for r in evaluation}),
        n_rows=len(rows),
        clean=clean,
        chaos=chaos,
        groups=tuple(groups),
        confidence=confidence_quality(evaluation),
        states=states,
        thresholds=thresholds,
        worst_cases=tuple(worst),
        baseline=_baseline(clean_eval, _name_of(policy), run_id),
        curves=_curves(chaos_eval),
        budgets=dict(budgets),
        config=dict(fingerprint),
        started=started,
        finished=finished,
        elapsed_seconds=round(finished - started, 3),
        resumed=resumed,
        reused=reused,
        notes=tuple(notes),
    )


#: Deciding states of the calls a confidence threshold governs: the answered ones and those the
#: confidence rule itself turned away. Calls another rule handled (injection, anomaly, faults, ...) are
#: not the threshold's to answer, whatever their confidence.
_THRESHOLD_GOVERNED = (None, "low_confidence")


def _scored(rows: Iterable[Mapping[str, Any]], *, governed_only: bool = False) -> tuple[list[float], list[bool]]:
    """Raw confidences and correctness of the rows that have both (optionally: only threshold-governed rows)."""
    confidence, correct = [], []
    for r in rows:
        c = r.get("raw_confidence")
        if governed_only and r.get("state") not in _THRESHOLD_GOVERNED:
            continue
        if r.get("raw_error") is None and is_valid_confidence(c):
            confidence.append(float(c))
            correct.append(bool(r.get("raw_correct")))
    return confidence, correct


def _thresholds(
    calibration: Sequence[Mapping[str, Any]],
    evaluation: Sequence[Mapping[str, Any]],
    budgets: Mapping[str, Any],
    costs: Mapping[str, Any],
) -> ThresholdReport:
    """Certify a confidence threshold on the calibration half; measure it on the evaluation half.

    The risk is the one the verdict's budget counts: silent failures per request (joint risk). The
    threshold governs the calls no other rule handled (their deciding state is none, or
    ``low_confidence``); the calls an injection, anomaly or fault rule handled are never answered at
    any threshold, so they count as requests with no silent failure. The guarantee reads "answering the
    governed calls from the threshold up, silent failures stay at most ``silent_failure`` per request,
    with probability at least 1 - ``delta``", for traffic drawn like the check's.
    """
    from failpath import stats

    risk_budget = float(budgets["silent_failure"])
    delta = float(budgets["delta"])
    confidence, correct = _scored(calibration, governed_only=True)
    method = "Learn-then-Test, exact binomial p-values, Holm"
    if not confidence:
        return ThresholdReport(
            certified=False, threshold=None, risk_budget=risk_budget, delta=delta, method=method,
            n_calibration=0, calibration_coverage=None, calibration_risk=None, evaluation_coverage=None,
            evaluation_risk=None, evaluation_silent_failure_rate=None,
            message="NOTHING CERTIFIED: the raw system gave no confidence on the calibration half, so no "
            "threshold can be chosen; the only guaranteed policy is never to answer.",
        )
    # Requests the threshold never answers sit below every grid point.
    never = len(calibration) - len(confidence)
    chosen = stats.select_threshold(
        confidence + [-1.0] * never, correct + [True] * never,
        max_risk=risk_budget, delta=delta, method="holm", risk="joint",
    )
    eval_conf, eval_correct = _scored(evaluation, governed_only=True)
    ev_cov = ev_risk = ev_sfr = None
    if chosen.certified and evaluation:
        answered = [ok for c, ok in zip(eval_conf, eval_correct) if c >= chosen.threshold]
        errors = sum(1 for ok in answered if not ok)
        ev_cov = len(answered) / len(evaluation)
        ev_risk = errors / len(answered) if answered else None
        ev_sfr = errors / len(evaluation)
    cost_policy = None
    try:
        policy = stats.cost_optimal_policy(confidence, correct, costs, max_risk=risk_budget, delta=delta, risk="joint")
        cost_policy = {
            "tau_answer": _finite(policy.tau_answer),
            "tau_clarify": _finite(policy.tau_clarify),
            "mean_cost": policy.mean_cost,
            "n_answer": policy.n_answer,
            "n_clarify": policy.n_clarify,
            "n_escalate": policy.n_escalate,
            "n_answer_errors": policy.n_answer_errors,
            "n": policy.n,
            "costs": {k: list(v) for k, v in costs.items()},
            "bayes": {
                "escalate_to_clarify": _finite(policy.bayes.escalate_to_clarify),
                "clarify_to_answer": _finite(policy.bayes.clarify_to_answer),
            },
        }
    except stats.StatsInputError as exc:
        cost_policy = {"error": str(exc)}
    message = chosen.summary()
    return ThresholdReport(
        certified=chosen.certified,
        threshold=chosen.threshold if chosen.certified else None,
        risk_budget=risk_budget,
        delta=delta,
        method=method,
        n_calibration=len(calibration),
        calibration_coverage=chosen.coverage,
        calibration_risk=(chosen.n_errors / chosen.n_answered) if chosen.n_answered else None,
        evaluation_coverage=ev_cov,
        evaluation_risk=ev_risk,
        evaluation_silent_failure_rate=ev_sfr,
        message=message,
        cost_policy=cost_policy,
    )


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _baseline(clean_eval: Sequence[Mapping[str, Any]], policy: str, run_id: str) -> dict[str, Any]:
    """The drift monitor's reference: the clean evaluation pass with the policy."""
    n = len(clean_eval)
    kinds = Counter(r["outcome"] for r in clean_eval)
    states: Counter[str] = Counter()
    for r in clean_eval:
        states.update(set(r.get("states") or ()))
    confidences = [float(r["raw_confidence"]) for r in clean_eval if is_valid_confidence(r.get("raw_confidence"))]
    if len(confidences) > 5000:
        step = len(confidences) / 5000
        confidences = [confidences[int(i * step)] for i in range(5000)]
    return {
        "policy": policy,
        "run_id": run_id,
        "n": n,
        "coverage": kinds.get("answered", 0) / n if n else 0.0,
        "confidence_sample": confidences,
        "state_rates": {s: (states.get(s, 0) / n if n else 0.0) for s in sorted(set(STATES) | set(states))},
        "outcome_rates": {k: (kinds.get(k, 0) / n if n else 0.0) for k in OUTCOME_KINDS},
    }


def _curves(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Risk–coverage points (with the oracle's) and reliability bins of the pooled raw chaos answers."""
    confidence, correct = _scored(rows)
    if not confidence:
        return {"risk_coverage": None, "reliability": None}
    from failpath import stats

    curve = stats.risk_coverage(confidence, correct)
    n = len(correct)
    ordered_right = sorted(correct, reverse=True)
    oracle_cov, oracle_risk, errors = [], [], 0
    for k, ok in enumerate(ordered_right, start=1):
        errors += not ok
        oracle_cov.append(round(k / n, 6))
        oracle_risk.append(round(errors / k, 6))
    bins = []
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        members = [(c, ok) for c, ok in zip(confidence, correct) if (lo < c <= hi) or (b == 0 and c == 0.0)]
        bins.append({
            "lo": round(lo, 6),
            "hi": round(hi, 6),
            "count": len(members),
            "confidence": sum(c for c, _ in members) / len(members) if members else None,
            "accuracy": sum(ok for _, ok in members) / len(members) if members else None,
        })
    return {
        "risk_coverage": {
            "n": n,
            "thresholds": [round(float(t), 6) for t in curve.thresholds],
            "coverage": [round(float(c), 6) for c in curve.coverage],
            "selective_risk": [round(float(r), 6) for r in curve.selective_risk],
            "oracle": {"coverage": oracle_cov, "selective_risk": oracle_risk},
        },
        "reliability": {"n": n, "bins": bins},
    }


# --------------------------------------------------------------------------- worst cases


def _worst_cases(
    evaluation: Sequence[Mapping[str, Any]],
    *,
    k: int,
    seconds: float,
    policy: Any,
    system: Any,
    judge: Any,
    cases: Mapping[str, Case],
    seed: int,
    scratch: Any,
    suites: Mapping[str, Any],
) -> list[WorstCase]:
    """The silent failures of the evaluation half ranked by confidence, the top ``k`` shrunk by ``chaos.search``."""
    silent = [r for r in evaluation if r["outcome"] == "answered" and not r.get("correct")]
    silent.sort(key=lambda r: (-(r.get("confidence") if is_valid_confidence(r.get("confidence")) else -1.0), r["key"]))
    # The top k by confidence, one per (suite, perturbation) first, so one broken path does not fill the list.
    chosen: list[Mapping[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for r in silent:
        if len(chosen) >= k:
            break
        if (r["suite"], r["perturbation"]) not in seen:
            seen.add((r["suite"], r["perturbation"]))
            chosen.append(r)
    for r in silent:
        if len(chosen) >= k:
            break
        if r not in chosen:
            chosen.append(r)
    chosen.sort(key=lambda r: silent.index(r))
    result = []
    budget_each = seconds / max(1, len(chosen))
    for r in chosen:
        case = cases.get(r["case_id"])
        reproduction = None
        if case is not None and seconds > 0:
            reproduction = _reproduce(case, r, policy=policy, system=system, judge=judge, seed=seed,
                                      seconds=budget_each, scratch=scratch, suites=suites)
        result.append(
            WorstCase(
                key=r["key"],
                suite=r["suite"],
                perturbation=r["perturbation"],
                case_id=r["case_id"],
                input=r.get("input"),
                expected=r.get("expected"),
                output=r.get("value"),
                confidence=r.get("confidence"),
                edits=tuple(r.get("edits") or ()),
                reproduction=reproduction,
            )
        )
    return result


def _reproduce(
    case: Case,
    row: Mapping[str, Any],
    *,
    policy: Any,
    system: Any,
    judge: Any,
    seed: int,
    seconds: float,
    scratch: Any,
    suites: Mapping[str, Any],
) -> Reproduction:
    """Search from the clean case for the smallest input the guarded system answers wrongly.

    The search first composes the worst case's own perturbation alone (the shortest way back to this
    failure), then together with the realistic perturbations that keep the expected answer; a fault
    case searches the system wrapped in its fault. The time budget covers both searches.
    """
    from failpath import chaos
    from failpath.chaos.finder import DEFAULT_SEARCH_PERTURBATIONS

    raw_system = system
    suite = suites.get(row["suite"])
    own = next((p for p in suite.perturbations if p.name == row["perturbation"]), None) if suite else None
    # First the case's own perturbation alone (the shortest path back to this failure), then the
    # realistic perturbations that keep the answer, together with it.
    attempts: list[list[Any]] = [list(DEFAULT_SEARCH_PERTURBATIONS)]
    if own is not None and isinstance(own, chaos.Fault):
        raw_system = own.wrap(system, seed)
    elif own is not None:
        attempts = [[own], [own, *(p for p in DEFAULT_SEARCH_PERTURBATIONS if p.name != own.name)]]
    guarded = policy.wrap(raw_system).with_store(scratch)
    silent: Any = _SilentFailureAsync(guarded) if is_async_system(raw_system) else _SilentFailure(guarded)
    start = time.perf_counter()
    found = None
    n_tried = 0
    for perturbations in attempts:
        remaining = seconds - (time.perf_counter() - start)
        if remaining <= 0:
            break
        try:
            found = chaos.search(
                silent, case, _AnsweredWrong(judge), perturbations=perturbations, seed=seed, timeout=remaining,
                max_examples=100,
            )
        except Exception as exc:  # a search that breaks must not lose the run
            return Reproduction(found=False, note=f"search failed: {type(exc).__name__}: {exc}",
                                seconds=round(time.perf_counter() - start, 3))
        n_tried += found.n_tried
        if found.found:
            break
    elapsed = round(time.perf_counter() - start, 3)
    if found is None or not found.found:
        return Reproduction(found=False, n_tried=n_tried, seconds=elapsed,
                            note="no failing input found from the clean case within the time budget")
    return Reproduction(
        found=True,
        input=found.input,
        expected=found.expected,
        edits=tuple(e.to_dict() for e in found.edits),
        output=found.output,
        confidence=found.confidence,
        n_tried=n_tried,
        seconds=elapsed,
        perturbation="+".join(([own.name] if own is not None and raw_system is not system else []) + [n for n, _ in found.steps]) or "clean",
        minimal=found.minimal,
    )


class _SilentFailure:
    """A guarded system seen as a plain system for the search: answers pass through, handled outcomes become a marker."""

    def __init__(self, guarded: Any):
        self.guarded = guarded

    def __call__(self, value: Any) -> Any:
        from failpath.core import Answered, Prediction

        outcome = self.guarded(value)
        if isinstance(outcome, Answered):
            return Prediction(outcome.value, outcome.confidence)
        return _HANDLED


class _SilentFailureAsync(_SilentFailure):
    """The async twin of :class:`_SilentFailure`."""

    async def __call__(self, value: Any) -> Any:  # type: ignore[override]
        from failpath.core import Answered, Prediction

        outcome = await self.guarded(value)
        if isinstance(outcome, Answered):
            return Prediction(outcome.value, outcome.confidence)
        return _HANDLED


class _Handled:
    def __repr__(self) -> str:
        return "<handled>"


_HANDLED = _Handled()


class _AnsweredWrong:
    """The search's judge: a handled outcome is fine; an answer must be right."""

    def __init__(self, judge: Any):
        self.judge = judge

    def __call__(self, output: Any, expected: Any) -> bool:
        if output is _HANDLED:
            return True
        return bool(self.judge(output, expected))
