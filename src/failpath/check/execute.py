"""The execute stage of a check: run the requests not stored yet, and read every stored row back into a tally.

:func:`execute` runs the plan in this process (an event loop, inline calls or threads) or over every
core (``executor="process"``), streaming result rows to the store; while the run goes on, a
:class:`RowReader` reads the rows back from the store a batch at a time and folds them into a
:class:`~failpath.check.tally.RowTally`, so neither the requests nor the rows are ever all in memory.
Reading back from the store (rather than keeping what this process made) summarises a resumed run and
an uninterrupted one alike.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from failpath.check.fitting import check_fitted
from failpath.check.plan import Plan, WorkItem, key_digest, key_digests, plan_items
from failpath.check.processes import ChunkRunner, WorkerSetup, chunk_cases, process_count, run_processes, start_method
from failpath.check.reuse import RecordedAnswer, replays_time
from failpath.check.runner import Evaluator, RowSink, guard_factory, run_items
from failpath.check.tally import RowTally, Tallied
from failpath.core import ConfigError

__all__ = ["Execution", "Stored", "RowReader", "execute", "READ_BATCH"]

#: Rows read back at a time while a run goes on.
READ_BATCH = 1024


@dataclass(frozen=True)
class Execution:
    """Where a run's requests go: the store and run, what is stored already, how to run them.

    ``done`` holds the keys a resumed run has stored already (skipped); ``scratch`` is the store of the
    guard's own traces and tickets; ``answers`` the raw answers the check's fit got, by request key, which
    those requests' first calls reuse (:mod:`failpath.check.reuse`; taken from the mapping as used), or None.
    """

    store: Any
    run_id: str
    done: frozenset[str]
    scratch: Any
    executor: str
    concurrency: int
    quiet: bool = False
    console: Any = None
    answers: dict[str, RecordedAnswer] | None = None


@dataclass(frozen=True)
class Stored:
    """What execution stored: the tallied rows of every planned request, how many were planned, and how
    many of them a resumed run found stored already."""

    tally: Tallied
    n_planned: int
    reused: int


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


class RowReader:
    """Reads a run's stored rows back a batch at a time (``step``), in the order written, into ``tally``."""

    def __init__(self, store: Any, run_id: str, tally: RowTally) -> None:
        self.store, self.run_id, self.tally = store, run_id, tally
        self.read = 0
        self._after = 0

    def step(self) -> int:
        """Read and tally every row stored since the last step; return how many were read."""
        with _collector_paused():
            rows, self._after = self.store.results_after(self.run_id, self._after)
            self.tally.add(rows)
        self.read += len(rows)
        return len(rows)


class _NoProgress:
    """The progress bar of a quiet run: shows nothing (and does not import rich)."""

    disable = True

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, task: Any, **fields: Any) -> None:
        return None


def _progress(total: int | None, done: int, quiet: bool, console: Any) -> tuple[Any, Any]:
    if quiet:
        return _NoProgress(), None
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


def _counter(progress: Any, task: Any, done: int) -> tuple[Callable[[int], None], Callable[[], None]]:
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


def _tally(plan: Plan, worst: int, keep: Any = None) -> RowTally:
    return RowTally(plan.policy.handled_states(), plan.judge, worst=worst, keep=keep)


def execute(plan: Plan, run: Execution, *, worst: int) -> Stored:
    """Run what is not stored yet and tally every planned row (``worst``: worst-case candidates to keep).

    Raises ``ConfigError`` when planned requests have no stored row after the run.
    """
    reader = RowReader(run.store, run.run_id, _tally(plan, worst))
    if run.done:
        reader.step()  # a resumed run's rows stored before
    if run.executor == "process":
        planned = _in_processes(plan, run, reader)
    else:
        planned = _in_this_process(plan, run, reader)
    reader.step()  # what is not read yet
    return _stored(plan, run, reader, planned, worst)


def _stored(plan: Plan, run: Execution, reader: RowReader, planned: np.ndarray, worst: int) -> Stored:
    """The tally of the planned rows; rows stored under other keys (a resumed run of an older plan) are left out."""
    tallied = reader.tally.finish()
    planned = np.unique(planned)
    if not np.isin(tallied.columns["digest"], planned).all():
        wanted = set(planned.tolist())
        again = RowReader(run.store, run.run_id, _tally(plan, worst, keep=wanted.__contains__))
        again.step()
        tallied = again.tally.finish()
    missing = int(planned.size) - tallied.n
    if missing:
        raise ConfigError(f"run {run.run_id}: {missing} planned requests have no stored result; resume the run")
    reused = int(np.count_nonzero(np.isin(key_digests(run.done), planned))) if run.done else 0
    return Stored(tally=tallied, n_planned=int(planned.size), reused=reused)


def _in_this_process(plan: Plan, run: Execution, reader: RowReader) -> np.ndarray:
    """Run the requests not stored yet in this process (an event loop, inline calls or threads)."""
    progress, task = _progress(None, len(run.done), run.quiet, run.console)
    on_rows, finish = _counter(progress, task, len(run.done))
    planned = array.array("Q")
    produced = [0]

    def todo() -> Iterator[WorkItem]:
        for item in plan_items(plan.cases, plan.suites, plan.seed, plan.split):
            planned.append(key_digest(item.key))
            if item.key not in run.done:
                yield item
        progress.update(task, total=len(planned))

    def counted(n: int) -> None:
        produced[0] += n
        on_rows(n)
        if produced[0] + len(run.done) - reader.read >= READ_BATCH:
            reader.step()

    evaluator = _evaluator(plan, run)
    sink = RowSink(run.store, run.run_id, on_rows=counted)
    try:
        with progress:
            run_items(todo(), evaluator, sink, concurrency=run.concurrency)
            finish()
    finally:
        sink.close()
        with contextlib.suppress(Exception):
            plan.policy.flush()
    return np.frombuffer(planned, dtype=np.uint64) if len(planned) else np.zeros(0, dtype=np.uint64)


def _evaluator(plan: Plan, run: Execution) -> Evaluator:
    """The evaluator of this process, reusing the fit's answers when the run has them."""
    return Evaluator(
        plan.system, guard_factory(plan.policy, run.scratch), plan.judge, seed=plan.seed,
        answers=run.answers, replay_time=replays_time(plan.policy),
    )


def _setup(plan: Plan, run: Execution, n: int, method: str) -> WorkerSetup:
    """What the worker processes receive; ``ConfigError`` when something they need cannot be pickled."""
    import pickle

    system = plan.system_spec or plan.system
    policy = plan.policy_spec or plan.policy
    travelling = tuple(plan.suites)
    answers = run.answers or None
    if method == "spawn":  # workers receive everything pickled
        try:
            pickle.dumps(list(plan.suites))
        except Exception:  # a perturbation made of a lambda: this process plans the requests and sends them
            travelling = ()
        try:
            pickle.dumps(answers)
        except Exception:  # an answer that cannot travel: the workers ask the system again
            answers = None
        for label, value in (("system", system), ("policy", policy), ("judge", plan.judge), ("cases", plan.cases[:1])):
            try:
                pickle.dumps(value)
            except Exception as exc:
                raise ConfigError(
                    f"executor='process' sends the {label} to worker processes, but it cannot be pickled "
                    f"({type(exc).__name__}: {exc}); define it at the top level of a module, give it as 'module:attr', "
                    "or use executor='thread'"
                ) from None
    return WorkerSetup(
        system=system, policy=policy, judge=plan.judge, suites=travelling, split=dict(plan.split), done=run.done,
        seed=plan.seed, store=str(run.store.path), run_id=run.run_id, scratch=str(run.scratch.path),
        concurrency=max(1, run.concurrency // n), parent=os.getpid(), fitted=tuple(check_fitted(plan.policy)),
        answers=answers,
    )


def _in_processes(plan: Plan, run: Execution, reader: RowReader) -> np.ndarray:
    """Run the requests not stored yet over all the cores: chunks of cases in worker processes and in this one.

    The rows are read back while the run goes on, before this process takes its next chunk: the
    workers take more of the chunks, and little is left to read once they finish.
    """
    from failpath.store.sqlite import SQLiteStore

    if not isinstance(run.store, SQLiteStore):
        raise ConfigError("executor='process' needs a SQLite store given by its path, which each worker opens itself")
    n = process_count(run.concurrency, len(plan.cases))
    method = start_method() if n > 1 else "fork"
    setup = _setup(plan, run, n, method)
    progress, task = _progress(None, len(run.done), run.quiet, run.console)
    on_rows, finish = _counter(progress, task, len(run.done))
    evaluator = _evaluator(plan, run)
    produced = [0]

    def counted(n_rows: int) -> None:
        produced[0] += n_rows
        on_rows(n_rows)

    def idle() -> bool:
        return produced[0] + len(run.done) - reader.read >= READ_BATCH and reader.step() > 0

    local = ChunkRunner(dataclasses.replace(setup, suites=tuple(plan.suites)), evaluator, run.store, counted)
    try:
        planned = run_processes(
            chunk_cases(plan.cases, n), setup, local, workers=n - 1, on_rows=counted, method=method, progress=progress,
            idle=idle,
        )
        progress.update(task, total=int(planned.size))
        finish()
    finally:
        with contextlib.suppress(Exception):
            plan.policy.flush()
    return planned
