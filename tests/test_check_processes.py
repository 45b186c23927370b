"""executor="process": chunks of cases in worker processes and in the calling process, same rows as threads."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import pytest

import failpath as fp
from failpath.check import processes as runner
from failpath.check.processes import chunk_cases, process_count
from failpath.core import Case, ConfigError, Prediction
from failpath.store import open_store

pytestmark = pytest.mark.slow


def cases(n: int) -> list[Case]:
    return [Case(id=f"a{i:03d}", input=f"{100 + i} Main Street, Springfield IL", expected=f"{100 + i} MAIN STREET") for i in range(n)]


def parser(text: str) -> Prediction:
    """A deterministic system: the part before the first comma, upper-cased; less sure of long inputs."""
    head = str(text).split(",")[0].strip()
    return Prediction(head.upper(), 0.9 if len(head) < 30 else 0.3)


def mortal_parser(text: str) -> Prediction:
    """``parser``, except that a worker process (never the test's own) dies on its first call while the
    file named by ``FAILPATH_TEST_DIE_MARK`` exists."""
    mark = os.environ.get("FAILPATH_TEST_DIE_MARK")
    if mark and multiprocessing.parent_process() is not None and Path(mark).exists():
        os._exit(9)
    return parser(text)


# The rows of two runs can be equal only where nothing depends on the clock. The faults are chosen by
# (seed, case id, variant) alone, but a wall-clock limit is not: ``slow`` sleeps 50 ms and
# ``rate_limited`` waits 10 ms before its retry, and under a 1 s limit a machine loaded enough to stretch
# that past the limit turned those rows into timeouts in one run and answers in the other. The limit is
# therefore far above anything these faults wait; the ``timeout`` state still comes from the ``timeout``
# fault, which raises at once.
TIME_LIMIT = 60.0


def policy() -> fp.Policy:
    return fp.Policy(
        "proc-test",
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Abstain("empty")),
            fp.on(fp.InjectionSuspected()).do(fp.Abstain("injection")),
            fp.on(fp.Timeout(after=TIME_LIMIT)).do(fp.Abstain("timeout")),
            fp.on(fp.ProviderError(fp.ProviderFailure)).do(fp.Retry(1), fp.Abstain("provider down")),
            fp.on(fp.InvalidOutput()).do(fp.Abstain("invalid")),
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Escalate(queue="review")),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ],
        store=False,
    )


POLICY = policy()


def rows(store_path: Path, run_id: str) -> dict[str, dict]:
    with open_store(store_path) as store:
        return {
            r["key"]: {k: v for k, v in r["data"].items() if k not in ("trace_id", "latency_ms")}
            for r in store.results(run_id)
        }


def kwargs(tmp_path: Path, name: str, **extra) -> dict:
    base = dict(
        cases=cases(40), policy=POLICY, judge="text", suites=["hostile", "realistic", "fault"], seed=3,
        concurrency=4, store=tmp_path / f"{name}.db", worst_cases=0, quiet=True,
    )
    base.update(extra)
    return base


@pytest.fixture(params=["fork", "spawn"])
def method(request, monkeypatch):
    """Both ways workers start: forked (inheriting everything) and spawned (receiving it pickled)."""
    if request.param not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {request.param} on this platform")
    monkeypatch.setattr(runner, "START_METHOD", request.param)
    return request.param


def test_workers_fork_when_this_process_runs_one_thread_else_spawn(monkeypatch):
    import threading

    monkeypatch.setattr(runner, "START_METHOD", None)
    if not sys.platform.startswith("linux"):
        assert runner.start_method() == "spawn"
        return
    expected = "fork" if threading.active_count() == 1 else "spawn"
    assert runner.start_method() == expected
    stop = threading.Event()
    extra = threading.Thread(target=stop.wait)
    extra.start()
    try:
        assert runner.start_method() == "spawn"  # never fork a process that runs other threads
    finally:
        stop.set()
        extra.join()


def test_process_run_gives_the_same_rows_and_figures_as_threads(tmp_path, method):
    threads = fp.check(parser, **kwargs(tmp_path, "threads"))
    procs = fp.check(parser, executor="process", **kwargs(tmp_path, "procs"))
    assert rows(tmp_path / "threads.db", threads.run_id) == rows(tmp_path / "procs.db", procs.run_id)
    assert procs.n_rows == threads.n_rows > 40 * 10
    for part in ("verdict", "clean", "chaos", "groups", "states", "thresholds"):
        assert procs.to_dict()[part] == threads.to_dict()[part], part
    # the guard's traces and tickets of every process went to the scratch store beside the store
    with open_store(tmp_path / "procs-check-traces.db") as scratch:
        assert scratch.count_traces() >= procs.n_rows
        assert len(scratch.list_tickets(queue="review")) == sum(
            1 for r in rows(tmp_path / "procs.db", procs.run_id).values() if r["outcome"] == "escalated"
        ) > 0


def test_a_system_given_as_module_attr_runs_in_processes(tmp_path, method):
    procs = fp.check("test_check_processes:parser", executor="process", **kwargs(tmp_path, "spec", policy="test_check_processes:POLICY"))
    threads = fp.check(parser, **kwargs(tmp_path, "threads"))
    assert rows(tmp_path / "spec.db", procs.run_id) == rows(tmp_path / "threads.db", threads.run_id)


def test_a_closure_runs_in_forked_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "START_METHOD", "fork")
    shout = "!"

    def local(text):  # a closure and a lambda-made suite: nothing here could be pickled
        return Prediction(parser(text).value + shout * 0, 0.9)

    procs = fp.check(local, executor="process", **kwargs(tmp_path, "closure"))
    threads = fp.check(local, **kwargs(tmp_path, "closure-threads"))
    assert rows(tmp_path / "closure.db", procs.run_id) == rows(tmp_path / "closure-threads.db", threads.run_id)


def test_a_system_that_cannot_be_pickled_is_refused_before_any_call(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "START_METHOD", "spawn")
    calls = []

    def local(text):  # a closure: cannot travel to another process
        calls.append(text)
        return parser(text)

    with pytest.raises(ConfigError, match=r"sends the system to worker processes.*cannot be pickled.*module:attr"):
        fp.check(local, executor="process", **kwargs(tmp_path, "closure"))
    assert calls == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a process run needs two cores to start a worker")
def test_a_killed_worker_stops_the_run_and_resume_finishes_it_exactly(tmp_path, monkeypatch, method):
    mark = tmp_path / "die"
    mark.write_text("1")
    monkeypatch.setenv("FAILPATH_TEST_DIE_MARK", str(mark))  # seen by forked and spawned workers alike
    store = tmp_path / "killed.db"
    with pytest.raises(fp.check.processes.WorkerFailed, match=r"exited with code 9.*resume the run"):
        fp.check("test_check_processes:mortal_parser", executor="process",
                 **kwargs(tmp_path, "killed", cases=cases(80), suites=["hostile"], concurrency=2))
    with open_store(store) as opened:
        (run,) = opened.list_runs(kind="check")
        kept = len(opened.results(run["run_id"]))
    assert run["finished"] is None
    mark.unlink()
    resumed = fp.check("test_check_processes:mortal_parser", executor="process", resume=True,
                       **kwargs(tmp_path, "killed", cases=cases(80), suites=["hostile"], concurrency=2))
    whole = fp.check("test_check_processes:mortal_parser", **kwargs(tmp_path, "whole", cases=cases(80), suites=["hostile"]))
    assert resumed.resumed and resumed.run_id == run["run_id"] and 0 < resumed.reused == kept
    assert rows(store, resumed.run_id) == rows(tmp_path / "whole.db", whole.run_id)
    for part in ("verdict", "clean", "chaos", "groups", "thresholds"):
        assert resumed.to_dict()[part] == whole.to_dict()[part], part


def test_process_count_and_chunks():
    assert process_count(64, 1000) == min(64, os.cpu_count() or 1)
    assert process_count(1, 1000) == 1 and process_count(64, 1) == 1
    chunks = chunk_cases(list(range(1000)), 2)
    assert [x for chunk in chunks for x in chunk] == list(range(1000))
    sizes = [len(c) for c in chunks]
    assert sizes[0] == 32 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)  # shrinking towards the end
    assert chunk_cases(list(range(5)), 4) == [(0,), (1,), (2,), (3,), (4,)]


def test_a_waiting_system_is_timed_once_per_process_not_once_per_chunk(tmp_path):
    """Each chunk of a process run goes through the same runner: once its first calls show the system
    waits, every later chunk's calls go to threads at once (no chunk starts with 16 calls in a row)."""
    import threading
    import time as _time

    from failpath.check.judges import as_judge
    from failpath.check.processes import ChunkRunner, WorkerSetup
    from failpath.check.runner import Evaluator, guard_factory

    names: list[str] = []

    def waiting(text):
        names.append(threading.current_thread().name)
        _time.sleep(0.003)
        return parser(text)

    plain = fp.Policy("pace", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("u"))], store=False)  # no thread hop
    store = open_store(tmp_path / "pace.db")
    try:
        store.create_run("r", kind="check", config={})
        all_cases = cases(48)
        setup = WorkerSetup(
            system=waiting, policy=plain, judge=as_judge("text"), suites=(), split={c.id: "evaluation" for c in all_cases},
            done=frozenset(), seed=0, store=str(store.path), run_id="r", scratch="", concurrency=8, parent=os.getpid(),
        )
        runner_ = ChunkRunner(setup, Evaluator(waiting, guard_factory(plain), setup.judge, seed=0), store, lambda n: None)
        main = threading.current_thread().name
        first = runner_.run(all_cases[:24])
        assert names[:16] == [main] * 16 and runner_.pace.waiting
        names.clear()
        second = runner_.run(all_cases[24:])
        assert len(first) == len(second) == 24
        assert names and main not in names  # the second chunk went straight to the threads
        assert len(store.results("r")) == 48
    finally:
        store.close()


def test_rows_are_read_back_while_the_workers_run_and_the_summary_is_the_same(tmp_path, monkeypatch):
    from failpath.check import execute

    monkeypatch.setattr(runner, "START_METHOD", "fork")
    monkeypatch.setattr(execute, "READ_BATCH", 64)
    steps: list[tuple[int, bool]] = []
    real_step, real_run = execute.RowReader.step, runner.run_processes
    running = [False]

    def step(self):
        got = real_step(self)
        steps.append((got, running[0]))
        return got

    def run_processes(*args, **kw):
        running[0] = True
        try:
            return real_run(*args, **kw)
        finally:
            running[0] = False

    monkeypatch.setattr(execute.RowReader, "step", step)
    monkeypatch.setattr(execute, "run_processes", run_processes)
    procs = fp.check(parser, executor="process", **kwargs(tmp_path, "read-during"))
    during = sum(got for got, live in steps if live)
    assert during > 0 and sum(got for got, _ in steps) == procs.n_rows  # every row read once, some while running
    monkeypatch.undo()
    threads = fp.check(parser, **kwargs(tmp_path, "read-after"))
    for part in ("verdict", "clean", "chaos", "groups", "states", "thresholds", "confidence"):
        assert procs.to_dict()[part] == threads.to_dict()[part], part
