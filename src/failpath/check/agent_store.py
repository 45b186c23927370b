"""An agent check's run in the store: its trials written as they finish, read back to rebuild or resume.

An agent check is kept as a run of kind ``agent_check``: its configuration when it starts, one result
row per classified trial (key: the task, the variant and the trial's index) as trials finish, and
its result (verdict, figures, worst runs) when it ends. The rows use the store's ordinary result rows,
so every backend (SQLite, PostgreSQL) keeps them, and ``failpath report RUN`` rebuilds every report,
the per-trial rows included, without running anything; ``check_agent(..., resume=RUN)`` continues a run
that was stopped, without redoing the trials it had kept.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Mapping
from typing import Any

from failpath.check.agent_trials import TrialResult
from failpath.core import ConfigError

__all__ = [
    "RUN_KIND", "trial_key", "TrialWriter", "stored_trials", "agent_document", "find_unfinished", "verify_same_config",
]

#: The kind of an agent check's run in the store.
RUN_KIND = "agent_check"

#: The configuration keys a resumed run must share with the run it continues (``concurrency`` may change).
_RESUME_KEYS = (
    "trials", "seed", "fault_rate", "chaos_trials", "tool_faults", "model_faults", "attacks", "templates", "suites",
    "budgets", "confidence", "tasks",
)

#: The key of a stored trial's place in the check's plan.
_POSITION = "plan_position"

#: How many result rows are read from the store at a time.
_READ_BATCH = 2000


def trial_key(task_id: str, variant: str, index: int) -> str:
    """The key of a trial's result row: the task, the variant and the trial's index, as JSON text."""
    return json.dumps([task_id, variant, index], ensure_ascii=False)


class TrialWriter:
    """Writes an agent check's finished trials to its run's result rows, a batch at a time, in a thread of its own.

    ``order``: each trial's place in the check's plan (by task, variant and index), kept with it.
    ``add`` keeps a trial and hands the kept ones to the writing thread when ``batch`` of them wait or
    ``seconds`` have passed since the last hand-off, so the event loop that runs the trials never waits on
    the disk; ``flush`` hands over what waits and returns once every batch is written (on disk), raising
    the first write that failed. Trials a stopped process had not written are run again on resume: nothing
    is lost, at most the batches not yet written are redone.
    """

    def __init__(self, store: Any, run_id: str, order: Mapping[tuple[str, str, int], int], *, batch: int = 64, seconds: float = 1.0) -> None:
        self.store, self.run_id, self.order, self.batch, self.seconds = store, run_id, order, batch, seconds
        self._waiting: list[tuple[str, dict[str, Any]]] = []
        self._sent: list[concurrent.futures.Future[int]] = []
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._last = time.monotonic()
        self.written = 0

    def add(self, trial: TrialResult) -> None:
        """Keep ``trial``; hand the waiting trials to the writing thread when the batch is full or old enough."""
        identity = (trial.task_id, trial.variant, trial.index)
        # the trial's place in the check's plan, so the trials read back come in the order the check lists them
        self._waiting.append((trial_key(*identity), {**trial.to_dict(), _POSITION: self.order.get(identity)}))
        if len(self._waiting) >= self.batch or time.monotonic() - self._last >= self.seconds:
            self._send()

    def flush(self) -> None:
        """Write every waiting trial: on disk when this returns. Raises the first write that failed."""
        self._send()
        pool, sent, self._pool, self._sent = self._pool, self._sent, None, []
        try:
            for future in sent:
                self.written += future.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _send(self) -> None:
        if self._waiting:
            rows, self._waiting = self._waiting, []
            if self._pool is None:  # one thread: the batches are written in the order they were handed over
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="failpath-trial-writer")
            self._sent.append(self._pool.submit(self.store.add_results, self.run_id, rows))
        self._last = time.monotonic()
        while self._sent and self._sent[0].done():  # count what is written; a failed write stops the check now
            self.written += self._sent.pop(0).result()


def stored_trials(store: Any, run_id: str) -> list[TrialResult]:
    """The trials kept for agent check ``run_id`` in the check's order (clean first, as its plan lists them),
    read from the store a batch at a time."""
    rows: list[tuple[int, int, TrialResult]] = []
    position = 0
    while True:
        batch, position = store.results_after(run_id, position, limit=_READ_BATCH)
        if not batch:
            break
        for _, data in batch:
            place = data.get(_POSITION)
            rows.append((place if isinstance(place, int) else len(rows), len(rows), TrialResult.from_dict(data)))
    rows.sort(key=lambda row: row[:2])
    return [trial for _, _, trial in rows]


def agent_document(store: Any, run: Mapping[str, Any]) -> dict[str, Any]:
    """The full result document of a finished agent check (what ``failpath check --json`` wrote): the
    stored result with its per-trial rows (``"trials"``; absent for a run kept before they were stored)."""
    document = dict(run["summary"])
    trials = stored_trials(store, run["run_id"])
    if trials:
        document["trials"] = [t.to_dict() for t in trials]
    return document


def find_unfinished(store: Any, resume: bool | str) -> dict[str, Any]:
    """The agent check ``resume`` names (``True`` or ``"latest"``: the latest unfinished one); a
    ``ConfigError`` saying what to do when there is none, or it is finished, or it is not an agent check."""
    if resume is True or resume == "latest":
        for run in store.list_runs(kind=RUN_KIND):
            if run.get("finished") is None:
                return run
        raise ConfigError(f"resume: no unfinished agent check in {store.path}; start a new check (without --resume)")
    run = store.get_run(str(resume))
    if run is None:
        raise ConfigError(f"resume {resume}: no run with that id in {store.path}; `failpath runs` lists the runs")
    if run.get("kind") != RUN_KIND:
        raise ConfigError(
            f"resume {resume}: run {run['run_id']} is a {run.get('kind')!r} run, not an agent check; "
            "resume it with the command that started it (`failpath check --resume` for a check of single calls)"
        )
    if run.get("finished") is not None:
        raise ConfigError(f"resume {resume}: the agent check {run['run_id']} has finished; `failpath report {run['run_id']}` shows it")
    return run


def verify_same_config(run: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Refuse to resume ``run`` with a configuration that would make other trials (all but ``concurrency``)."""
    stored = run.get("config") or {}
    for key in _RESUME_KEYS:
        if key in stored and _plain(stored[key]) != _plain(config.get(key)):
            raise ConfigError(
                f"cannot resume agent check {run['run_id']}: it was started with {key} = {stored[key]!r}, this "
                f"configuration has {key} = {config.get(key)!r}; resume with the same configuration or start a new check"
            )


def _plain(value: Any) -> Any:
    """``value`` as the store gives it back (tuples as lists), so a stored and a fresh configuration compare alike."""
    return json.loads(json.dumps(value, default=str))
