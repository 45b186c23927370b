"""Processes: a check spread over every core (``executor="process"``).

:func:`run_processes` deals chunks of cases out to worker processes (one per core beside this one, which
runs chunks too); each process plans its chunks' variants (:class:`ChunkRunner`), runs them with
:func:`failpath.check.runner.run_items` and writes their rows into the store itself, so every part of
the per-request work (variants, guard, traces, judging, rows) uses all the cores. A chunk's planned
requests come back as an array of key digests (:func:`failpath.check.plan.key_digests`), 8 bytes each.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import queue as queue_module
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from failpath.check.fitting import install_fitted
from failpath.check.plan import WorkItem, bare_policy, key_digests, plan_items
from failpath.check.reuse import replays_time
from failpath.check.runner import Evaluator, Pace, RowSink, _error_text, guard_factory, run_items
from failpath.core import FailpathError

__all__ = [
    "WorkerSetup", "ChunkRunner", "run_processes", "process_count", "chunk_cases", "WorkerFailed", "start_method",
    "START_METHOD",
]


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process of a process run needs besides its cases (sent once, when it starts).

    ``system`` and ``policy`` are objects (sent by pickling) or ``"module:attr"`` names (imported by the
    worker). Rows go to the store at ``store`` under ``run_id``; the guard's traces and tickets to
    ``scratch``. ``done`` holds the keys already stored (a resumed run skips them). ``fitted`` holds the
    policy's detectors the check fitted (``AnomalousInput(fit="check")``), for a policy imported again
    by a worker. ``answers`` holds the raw answers the check's fit got, by request key, to reuse
    (:mod:`failpath.check.reuse`), or None.
    """

    system: Any
    policy: Any
    judge: Any
    suites: tuple[Any, ...]
    split: Mapping[str, str]
    done: frozenset[str]
    seed: int
    store: str
    run_id: str
    scratch: str
    concurrency: int
    parent: int
    fitted: tuple[Any, ...] = ()
    answers: Mapping[str, Any] | None = None


def process_count(concurrency: int, n_cases: int) -> int:
    """How many processes a process run uses, this one included: one per core, at most ``concurrency`` and one per case."""
    return max(1, min(concurrency, os.cpu_count() or 1, n_cases))


def chunk_cases(cases: Sequence[Any], processes: int, *, most: int = 32) -> list[tuple[Any, ...]]:
    """The cases in consecutive chunks that shrink towards the end (a quarter of each process's share
    of what is left, at most ``most``), so the processes finish together."""
    chunks: list[tuple[Any, ...]] = []
    start = 0
    while start < len(cases):
        size = max(1, min(most, -(-(len(cases) - start) // (4 * processes))))
        chunks.append(tuple(cases[start : start + size]))
        start += size
    return chunks


class ChunkRunner:
    """Runs chunks of cases in one process: plans each chunk's requests, runs them, writes their rows.

    Every request of a chunk (its cases' variants in suite order, then their clean inputs) is planned
    here, so generating variants is spread over the processes as well.
    """

    def __init__(self, setup: WorkerSetup, evaluator: Evaluator, store: Any, on_rows: Callable[[int], None]):
        self.setup = setup
        self.evaluator = evaluator
        self.store = store
        self.on_rows = on_rows
        self.pace = Pace()  # one sync system's pace, learned once for all the chunks

    def plan(self, cases: Sequence[Any], planned: list[str]) -> Iterator[WorkItem]:
        """The requests of a chunk not stored yet, lazily; every planned key is appended to ``planned``."""
        setup = self.setup
        for item in plan_items(cases, setup.suites, setup.seed, setup.split):
            planned.append(item.key)
            if item.key not in setup.done:
                yield item

    def run(self, cases: Sequence[Any]) -> list[str]:
        """Run one chunk; every row is committed when this returns. Returns the chunk's planned keys (in order)."""
        planned: list[str] = []
        self.run_items(self.plan(cases, planned))
        return planned

    def run_items(self, items: Iterable[WorkItem]) -> None:
        """Run requests planned elsewhere; every row is committed when this returns."""
        sink = RowSink(self.store, self.setup.run_id, on_rows=self.on_rows)
        try:
            run_items(items, self.evaluator, sink, concurrency=self.setup.concurrency, pace=self.pace)
        finally:
            sink.close()


class _Reporter:
    """A worker's row counts for the parent's progress bar, at most ten messages a second."""

    def __init__(self, messages: Any, index: int, parent: int):
        self.messages = messages
        self.index = index
        self.parent = parent
        self.count = 0
        self.last = time.monotonic()

    def rows(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= 0.1:
            if os.getppid() != self.parent:  # the check was killed: stop (a resumed run redoes the rest)
                os._exit(3)
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.count:
            self.messages.put(("rows", self.index, self.count))
            self.count = 0
        self.last = time.monotonic() if now is None else now


def _resolve(value: Any, what: str) -> Any:
    if isinstance(value, str):
        from failpath.check.judges import _import_attr

        return _import_attr(value, what)
    return value


#: How often (seconds) an idle worker looks whether its parent is still alive where the system cannot tell it.
PARENT_POLL = 1.0


def die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` (the process that started it) dies, even by SIGKILL.

    On Linux the kernel is asked to send SIGKILL when the parent goes (``prctl(PR_SET_PDEATHSIG)``, through
    ctypes); a parent that died before the request took effect is caught by the check that follows. Elsewhere
    (and as a second line on Linux), :func:`_next_task` looks at the parent every :data:`PARENT_POLL` seconds.
    """
    import sys

    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no libc to speak to: the watch in _next_task remains
            pass
    if os.getppid() != parent:
        os._exit(3)


def _next_task(tasks: Any, parent: int) -> Any:
    """The next task from ``tasks``; ends this process (exit code 3) when the parent is gone meanwhile."""
    while True:
        try:
            return tasks.get(timeout=PARENT_POLL)
        except queue_module.Empty:
            if os.getppid() != parent:  # the check was killed: stop (a resumed run redoes the rest)
                os._exit(3)


def _worker_main(index: int, setup: WorkerSetup, tasks: Any, messages: Any) -> None:
    """A worker process: take chunks of cases from ``tasks`` until None, run each, say when it is done.
    It ends when the parent dies (see :func:`die_with_parent`), also while idle."""
    die_with_parent(setup.parent)
    opened: list[Any] = []
    try:
        from failpath.store import open_store

        system = _resolve(setup.system, "system")
        policy = _resolve(setup.policy, "policy") if setup.policy is not None else bare_policy()
        if setup.fitted:
            install_fitted(policy, setup.fitted)
        store = open_store(setup.store)
        opened.append(store)
        scratch = open_store(setup.scratch, queue_tickets=True)
        opened.append(scratch)
        reporter = _Reporter(messages, index, setup.parent)
        evaluator = Evaluator(
            system, guard_factory(policy, scratch), setup.judge, seed=setup.seed,
            answers=dict(setup.answers) if setup.answers else None, replay_time=replays_time(policy),
        )
        runner = ChunkRunner(setup, evaluator, store, reporter.rows)
        while True:
            task = _next_task(tasks, setup.parent)
            if task is None:
                break
            number, kind, payload = pickle.loads(task)
            if kind == "cases":
                planned: Any = key_digests(runner.run(payload))
            else:  # requests planned by the parent (suites that cannot travel)
                runner.run_items(payload)
                planned = None
            reporter.flush()
            messages.put(("chunk", index, (number, planned)))
        with contextlib.suppress(Exception):
            policy.flush()
        for extra in reversed(opened):
            extra.close()
        opened.clear()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            pickle.dumps(exc)
            error: Any = exc
        except Exception:
            error = RuntimeError(_error_text(exc))
        messages.put(("error", index, (error, traceback.format_exc())))
    finally:
        for extra in reversed(opened):
            with contextlib.suppress(Exception):
                extra.close()


class WorkerFailed(FailpathError):
    """A worker process of a process run stopped without finishing its chunks (the rows written are kept)."""


#: Chunks handed to a worker ahead of time, so it never waits for the next one.
_AHEAD = 2

#: How worker processes start: None chooses (see :func:`start_method`), or "fork" / "spawn".
START_METHOD: str | None = None


def start_method() -> str:
    """``fork`` on Linux while this process runs a single thread, else ``spawn``.

    A forked worker starts in milliseconds and inherits the system, policy and suites as they are (a
    closure or a lambda works); forking a process that runs other threads could copy a lock one of them
    holds, so then (and on other systems) workers are spawned: they import what they need and receive
    the rest pickled.
    """
    if START_METHOD is not None:
        return START_METHOD
    import multiprocessing
    import sys

    if sys.platform.startswith("linux") and threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def run_processes(
    chunks: Sequence[Sequence[Any]],
    setup: WorkerSetup,
    local: ChunkRunner,
    *,
    workers: int,
    on_rows: Callable[[int], None],
    method: str = "spawn",
    progress: Any = None,
    idle: Callable[[], bool] | None = None,
) -> Any:
    """Run the chunks of cases in this process (``local``) and in ``workers`` worker processes; return the
    digests of the planned keys (a numpy ``uint64`` array, in chunk order).

    Workers start with ``method`` (``fork`` or ``spawn``, see :func:`start_method`) and take chunks as
    they finish the ones they hold; this process runs a chunk itself whenever every worker is busy, from
    the first moment (while spawned workers start up). ``idle()``, when given, is offered each turn
    before this process takes a chunk: it does a piece of other work (reading back rows) and returns
    True, or returns False when there is none. ``progress`` (a context manager, such as the
    progress bar) is entered once the workers have started.
    Progress arrives as row counts (``on_rows``). An error in a worker stops the run and is raised
    here (with the worker's traceback as a note); a worker that dies without a word (killed, out of
    memory) raises :class:`WorkerFailed`. Rows already written stay in the store, so the run can be resumed.
    """
    import numpy as np

    pool = _Pool(chunks, setup, local, workers=workers, on_rows=on_rows, method=method, idle=idle)
    pool.run(progress if progress is not None else contextlib.nullcontext())
    parts = [pool.planned[number] for number in sorted(pool.planned)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


class _Pool:
    """The state of one process run: the chunks waiting, those each worker holds, those done."""

    def __init__(
        self,
        chunks: Sequence[Sequence[Any]],
        setup: WorkerSetup,
        local: ChunkRunner,
        *,
        workers: int,
        on_rows: Callable[[int], None],
        method: str,
        idle: Callable[[], bool] | None,
    ) -> None:
        self.chunks, self.setup, self.local, self.workers = chunks, setup, local, workers
        self.on_rows, self.method, self.idle = on_rows, method, idle
        self.waiting = collections.deque(enumerate(chunks))
        self.planned: dict[int, Any] = {}
        # Suites that cannot be pickled (a perturbation made of a lambda) stay here: this process plans
        # each chunk's requests and sends them instead of the cases.
        self.plan_here = not setup.suites and bool(local.setup.suites)
        self.held: list[set[int]] = [set() for _ in range(workers)]
        self.done_chunks: set[int] = set()
        self.exited_at: dict[int, float] = {}
        self.processes: list[Any] = []

    def run_local(self, number: int, cases: Sequence[Any]) -> None:
        self.planned[number] = key_digests(self.local.run(cases))
        self.done_chunks.add(number)

    def run(self, progress: Any) -> None:
        if self.workers < 1:
            with progress:
                while self.waiting:
                    self.run_local(*self.waiting.popleft())
            return
        import multiprocessing

        context = multiprocessing.get_context(self.method)
        self.messages = context.Queue()
        self.tasks = [context.Queue() for _ in range(self.workers)]
        self.processes = [
            context.Process(target=_worker_main, args=(i, self.setup, self.tasks[i], self.messages), name=f"failpath-check-{i}")
            for i in range(self.workers)
        ]
        finished = False
        stack = contextlib.ExitStack()
        try:
            self.start()
            stack.enter_context(progress)
            self.loop()
            finished = True
        finally:
            stack.close()
            self.close(finished)

    def start(self) -> None:
        if self.method == "fork":
            # Forked workers share this process's memory until they write to it; the collector's passes
            # would write to every object they inherited. Frozen objects are never passed over.
            import gc

            gc.freeze()
            try:
                for process in self.processes:
                    process.start()
            finally:
                gc.unfreeze()
        else:
            for process in self.processes:
                process.start()

    def loop(self) -> None:
        """Deal chunks, run one here when every worker is busy, listen to the workers, until every chunk is done."""
        while len(self.done_chunks) < len(self.chunks):
            while True:  # everything the workers said so far
                try:
                    self.handle(*self.messages.get_nowait())
                except queue_module.Empty:
                    break
            if len(self.done_chunks) == len(self.chunks):
                break
            self.deal()
            if self.idle is not None and self.idle():
                continue
            if self.waiting:
                self.run_local(*self.waiting.popleft())
                continue
            try:
                self.handle(*self.messages.get(timeout=0.2))
            except queue_module.Empty:
                self.check_exited()

    def handle(self, kind: str, index: int, payload: Any) -> None:
        if kind == "rows":
            self.on_rows(payload)
        elif kind == "chunk":
            number, digests = payload
            if digests is not None:
                self.planned[number] = digests
            self.done_chunks.add(number)
            self.held[index].discard(number)
        else:
            error, text = payload
            if isinstance(error, BaseException):
                with contextlib.suppress(Exception):
                    error.add_note(f"in check worker {index}:\n{text}")
                raise error
            raise WorkerFailed(f"check worker {index} failed:\n{text}")

    def deal(self) -> None:
        """Hand each live worker chunks until it holds ``_AHEAD``."""
        for i in range(self.workers):
            while self.waiting and len(self.held[i]) < _AHEAD and self.processes[i].exitcode is None:
                number, cases = self.waiting.popleft()
                if self.plan_here:
                    keys: list[str] = []
                    task = (number, "items", list(self.local.plan(cases, keys)))
                    self.planned[number] = key_digests(keys)
                else:
                    task = (number, "cases", cases)
                try:
                    data = pickle.dumps(task)
                except Exception as exc:
                    raise WorkerFailed(
                        f"the requests of cases {cases[0].id!r}..{cases[-1].id!r} cannot be sent to a worker process "
                        f"({type(exc).__name__}: {exc}); use executor='thread'"
                    ) from None
                self.tasks[i].put(data)
                self.held[i].add(number)

    def check_exited(self) -> None:
        """Raise :class:`WorkerFailed` for a worker that exited holding chunks (after its last words had time to arrive)."""
        now = time.monotonic()
        for i, process in enumerate(self.processes):
            if not self.held[i] or process.exitcode is None:
                continue
            # Exited: its last message may still be on its way through the pipe.
            if now - self.exited_at.setdefault(i, now) > 2.0:
                hint = (
                    "; a script that runs the check must do so under `if __name__ == \"__main__\":`"
                    if process.exitcode == 1 else " (killed, or out of memory?)"
                )
                raise WorkerFailed(
                    f"check worker {i} exited with code {process.exitcode} before finishing its cases{hint}; "
                    "the rows written so far are kept: resume the run"
                )

    def close(self, finished: bool) -> None:
        """Stop the workers (politely when the run finished, else at once), then raise an error one sent while closing."""
        for i, process in enumerate(self.processes):
            if process.pid is None:
                continue
            if finished:
                with contextlib.suppress(Exception):
                    self.tasks[i].put(None)
            elif process.is_alive():
                process.terminate()
        for process in self.processes:
            if process.pid is not None:
                process.join(timeout=30 if finished else 5)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
        late: list[Any] = []
        if finished:
            while True:  # a worker's error while closing its stores
                try:  # the workers have exited: what they said is in the pipe already
                    message = self.messages.get_nowait()
                except (queue_module.Empty, OSError, ValueError):
                    break
                if message[0] == "error":
                    late.append(message)
        for q in (self.messages, *self.tasks):
            q.close()
            q.join_thread()
        if late:
            self.handle(*late[0])
