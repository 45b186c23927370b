"""How the agent check makes its trials: worker threads started before the first run, results in plan order,
progress reported on the event loop, and a failing progress callback failing the check."""

from __future__ import annotations

import threading

import pytest

import failpath as fp
from agent_check_helpers import Ledger, make_agent, pay_tasks

QUIET = dict(tool_faults=(), model_faults=(), suites=(), chaos_trials=0)


def test_trials_run_in_at_most_concurrency_worker_threads_that_are_gone_afterwards_and_come_back_in_order():
    seen_threads: set[str] = set()
    progress_threads: set[str] = set()
    reported: list[tuple[int, int]] = []
    lock = threading.Lock()

    def environment(trial):
        with lock:
            seen_threads.add(threading.current_thread().name)
        return Ledger(trial)

    def progress(done: int, total: int) -> None:
        progress_threads.add(threading.current_thread().name)
        reported.append((done, total))

    before = {t.name for t in threading.enumerate()}
    result = fp.check_agent(make_agent(), environment, pay_tasks(5), trials=4, concurrency=3, progress=progress, **QUIET)
    workers = {name for name in seen_threads if name.startswith("failpath-trial-")}
    assert 1 <= len(workers) <= 3 and workers <= {f"failpath-trial-{i}" for i in range(3)}
    assert seen_threads - workers == {threading.current_thread().name}  # the probe, before the trials
    assert not [t for t in threading.enumerate() if t.name.startswith("failpath-trial-") and t.name not in before]
    assert reported == [(n, 20) for n in range(1, 21)]
    assert progress_threads == {threading.current_thread().name}  # the event loop's thread, never a worker
    assert [(t.task_id, t.index) for t in result.trials] == [(task.id, i) for task in pay_tasks(5) for i in range(4)]


def test_a_progress_callback_that_raises_fails_the_check_with_its_error():
    def progress(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("the progress bar broke")

    with pytest.raises(RuntimeError, match="the progress bar broke"):
        fp.check_agent(make_agent(), Ledger, pay_tasks(4), trials=2, concurrency=2, progress=progress, **QUIET)
    assert not [t for t in threading.enumerate() if t.name.startswith("failpath-trial-")]
