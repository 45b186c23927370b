"""The runner: sends every variant through the guarded system with bounded concurrency.

Three ways to run:

- an async system runs on one event loop with a fixed set of worker coroutines (at most
  ``concurrency`` calls in flight, like a semaphore, without one task per call);
- a sync system runs inline while its calls keep the CPU busy, and in ``concurrency`` threads once
  they are seen to wait (see :func:`_run_threads`);
- ``executor="process"`` (:func:`run_processes`) hands chunks of cases to worker processes (one per
  core beside this one, which runs chunks too); each process plans its chunks' variants, runs them as
  above and writes their rows into the store itself, so every part of the per-request work (variants,
  guard, traces, judging, rows) uses all the cores.

Each finished variant becomes a result row, streamed to a :class:`RowSink` that writes the rows into
the store in small batches (so a killed run loses at most one batch, which a resumed run redoes).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pickle
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from failpath.core import Answered, Defaulted, FailpathError, Prediction

__all__ = [
    "WorkItem", "Evaluator", "RowSink", "run_items", "plan_items", "WorkerSetup", "ChunkRunner", "run_processes",
    "process_count", "chunk_cases", "WorkerFailed", "bare_policy", "guard_factory", "is_async_system", "preview",
]

PREVIEW_CHARS = 300


@dataclass(slots=True)
class WorkItem:
    """One request of a check: a variant (or the clean input) of one case in one suite.

    ``key`` is stable across runs: ``suite/perturbation/case id/variant index``. ``fault`` is the chaos
    fault the system is wrapped with for this request (fault suites), or None.
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


def is_async_system(system: Any) -> bool:
    """True when calling ``system`` returns an awaitable (an ``async def`` function or ``__call__``)."""
    if inspect.iscoroutinefunction(system):
        return True
    call = getattr(system, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> Any:
    """``value`` for a result row: text longer than ``limit`` is cut (with its full length noted)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… [{len(value)} chars]"
    if isinstance(value, (bytes, bytearray)) and len(value) > limit:
        return bytes(value[:limit]).decode("utf-8", "backslashreplace") + f"… [{len(value)} bytes]"
    return value


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _unwrap(output: Any) -> tuple[Any, float | None]:
    if isinstance(output, Prediction):
        return output.value, output.confidence
    return output, None


def _first_call(trace: Any) -> Any | None:
    """The trace's first attempt when it called the system, else None."""
    attempts = getattr(trace, "attempts", None) or ()
    if not attempts:
        return None
    first = attempts[0]
    return first if first.action == "call" else None


class Evaluator:
    """Calls the guarded system on a work item and turns what happened into a result row.

    ``guard_factory(system)`` wraps a system with the policy (``policy.wrap``). A fault item is sent
    to the system wrapped by its fault first (``fault.wrap(system, seed)``); wrapped systems are cached.
    """

    def __init__(self, system: Any, guard_factory: Callable[[Any], Any], judge: Any, *, seed: int):
        self.system = system
        self.guard_factory = guard_factory
        self.judge = judge
        self.seed = seed
        self.is_async = is_async_system(system)
        self._systems: dict[int | None, tuple[Any, Any, Any]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ systems
    def systems(self, fault: Any) -> tuple[Any, Any]:
        """``(guarded, raw)`` for requests under ``fault`` (None: the plain system)."""
        key = None if fault is None else id(fault)
        found = self._systems.get(key)
        if found is None:
            with self._lock:
                found = self._systems.get(key)
                if found is None:
                    raw = self.system if fault is None else fault.wrap(self.system, self.seed)
                    # The fault is kept in the entry so its id cannot be reused while cached.
                    found = (self.guard_factory(raw), raw, fault)
                    self._systems[key] = found
        return found[0], found[1]

    # ------------------------------------------------------------------ judging
    def _judge(self, output: Any, expected: Any) -> tuple[bool, float | None, str | None]:
        try:
            ok = bool(self.judge(output, expected))
        except Exception as exc:  # a judge that cannot read an output calls it wrong
            return False, 0.0, _error_text(exc)
        try:
            score = float(self.judge.score(output, expected)) if hasattr(self.judge, "score") else float(ok)
        except Exception:
            score = float(ok)
        return ok, score, None

    def _row(
        self,
        item: WorkItem,
        outcome: Any,
        trace: Any,
        escape: str | None,
        raw: tuple[Any, float | None, str | None, str],
        latency_ms: float,
    ) -> dict[str, Any]:
        raw_output, raw_confidence, raw_error, raw_source = raw
        if raw_error is None:
            raw_correct, raw_score, raw_judge_error = self._judge(raw_output, item.expected)
        else:
            raw_correct, raw_score, raw_judge_error = False, 0.0, None
        row: dict[str, Any] = {
            "suite": item.suite,
            "family": item.family,
            "perturbation": item.perturbation,
            "case_id": item.case_id,
            "variant": item.variant,
            "split": item.split,
            "contract": item.contract,
            "input": preview(item.input),
            "expected": item.expected,
            "edits": list(item.edits),
            "raw_output": raw_output,
            "raw_confidence": raw_confidence,
            "raw_error": raw_error,
            "raw_correct": raw_correct,
            "raw_score": raw_score,
            "raw_source": raw_source,
            "latency_ms": round(latency_ms, 3),
        }
        if raw_judge_error:
            row["judge_error"] = raw_judge_error
        if outcome is None:
            row.update(
                outcome="escaped", escape=escape, state=None, states=[], actions=[], value=None,
                confidence=None, degraded=False, correct=None, score=None, trace_id=None,
            )
            return row
        value = outcome.value if isinstance(outcome, (Answered, Defaulted)) else None
        correct = score = None
        if isinstance(outcome, Answered):
            if raw_error is None and type(value) is type(raw_output) and value == raw_output:
                # The guard answered what the system first said (the usual case): judged once already.
                correct, score, judge_error = raw_correct, raw_score, raw_judge_error
            else:
                correct, score, judge_error = self._judge(value, item.expected)
            if judge_error:
                row["judge_error"] = judge_error
        row.update(
            outcome=outcome.kind,
            escape=None,
            state=outcome.state,
            states=list(getattr(trace, "states", ()) or ()),
            actions=list(getattr(trace, "actions", ()) or ()),
            value=value,
            confidence=getattr(outcome, "confidence", None),
            degraded=bool(getattr(outcome, "degraded", False)),
            correct=correct,
            score=score,
            trace_id=getattr(trace, "trace_id", None),
        )
        return row

    # ------------------------------------------------------------------ sync
    def evaluate(self, item: WorkItem) -> tuple[str, dict[str, Any]]:
        """Run one item through the guarded system (sync); never raises."""
        guarded, raw_system = self.systems(item.fault)
        start = time.perf_counter()
        outcome = trace = escape = None
        try:
            outcome, trace = guarded.call_traced(item.input)
        except BaseException as exc:  # noqa: BLE001 - anything leaving the guard is recorded as an escape
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            escape = _error_text(exc)
        latency = (time.perf_counter() - start) * 1000.0
        first = _first_call(trace)
        if first is not None:
            raw = (first.output, first.confidence, first.error, "trace")
        else:
            try:
                value, confidence = _unwrap(raw_system(item.input))
                raw = (value, confidence, None, "call")
            except Exception as exc:
                raw = (None, None, _error_text(exc), "call")
        return item.key, self._row(item, outcome, trace, escape, raw, latency)

    def evaluate_many(self, items: Sequence[WorkItem]) -> list[tuple[str, dict[str, Any]]]:
        """Run a chunk of items one after the other (sync)."""
        return [self.evaluate(item) for item in items]

    # ------------------------------------------------------------------ async
    async def aevaluate(self, item: WorkItem) -> tuple[str, dict[str, Any]]:
        """Run one item through the guarded async system; never raises."""
        guarded, raw_system = self.systems(item.fault)
        start = time.perf_counter()
        outcome = trace = escape = None
        try:
            outcome, trace = await guarded.call_traced(item.input)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            escape = _error_text(exc)
        latency = (time.perf_counter() - start) * 1000.0
        first = _first_call(trace)
        if first is not None:
            raw = (first.output, first.confidence, first.error, "trace")
        else:
            try:
                result = raw_system(item.input)
                if inspect.isawaitable(result):
                    result = await result
                value, confidence = _unwrap(result)
                raw = (value, confidence, None, "call")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raw = (None, None, _error_text(exc), "call")
        return item.key, self._row(item, outcome, trace, escape, raw, latency)


class RowSink:
    """Collects result rows and writes them to the store in small batches, as they arrive.

    A batch is written when ``batch_size`` rows are waiting or ``interval`` seconds have passed since
    the last write; ``close`` writes the rest. ``on_rows(n)`` is told how many rows arrived (progress).
    """

    def __init__(
        self,
        store: Any,
        run_id: str,
        *,
        batch_size: int = 256,
        interval: float = 0.5,
        on_rows: Callable[[int], None] | None = None,
    ):
        self.store = store
        self.run_id = run_id
        self.batch_size = batch_size
        self.interval = interval
        self.on_rows = on_rows
        self.written = 0
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Take rows; write a batch if one is due."""
        rows = list(rows)
        with self._lock:
            self._pending.extend(rows)
            due = len(self._pending) >= self.batch_size or time.monotonic() - self._last >= self.interval
            batch = self._take() if due else None
        if batch:
            self.written += self.store.add_results(self.run_id, batch)
        if self.on_rows is not None and rows:
            self.on_rows(len(rows))

    def _take(self) -> list[tuple[str, dict[str, Any]]]:
        batch, self._pending = self._pending, []
        self._last = time.monotonic()
        return batch

    def close(self) -> None:
        """Write every row still waiting."""
        with self._lock:
            batch = self._take()
        if batch:
            self.written += self.store.add_results(self.run_id, batch)


# --------------------------------------------------------------------------- the three ways to run


#: A sync system whose calls spend less than this share of their time waiting runs in the runner's own
#: thread: Python threads cannot run Python code in parallel, so for a busy system they only add overhead.
WAITING_SHARE = 0.5
_PROBE = 16
_RECHECK_EVERY = 1024


class Pace:
    """What :func:`_run_threads` has learned about a sync system: whether its calls wait, and when to look
    again. Kept across the chunks of a process run, so each chunk does not time its first calls anew."""

    __slots__ = ("waiting", "inline_left", "probe")

    def __init__(self) -> None:
        self.waiting = False
        self.inline_left = 0  # calls to run inline before timing the next probe
        self.probe: list[float] = []


def _run_threads(
    items: Iterable[WorkItem], evaluator: Evaluator, concurrency: int, sink: RowSink, pace: Pace | None = None
) -> None:
    """Sync systems: inline while the calls keep the CPU busy, in a pool of threads while they wait.

    Fault-suite requests always go to the pool: their faults (slow answers, timeouts) and the policy's
    answers to them (retries with backoff) wait by design, and must not hold up the busy calls. For the
    rest the runner times 16 calls (wall clock and this thread's CPU time); when the median call spent
    more than ``WAITING_SHARE`` of its time waiting (network, disk, sleep, a C library releasing the
    GIL), everything after goes to ``concurrency`` threads. While inline, 16 calls are timed again
    every 1,024.
    """
    iterator = iter(items)
    if concurrency <= 1:
        for item in iterator:
            sink.add([evaluator.evaluate(item)])
        return
    pool: ThreadPoolExecutor | None = None
    pending: set[Future] = set()

    def collect(block: bool) -> None:
        nonlocal pending
        if pending:
            done, pending = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in done:
                sink.add(future.result())

    def offload(item: WorkItem) -> None:
        nonlocal pool
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="failpath-check")
        while len(pending) >= concurrency * 2:
            collect(block=True)
        pending.add(pool.submit(evaluator.evaluate_many, [item]))

    pace = pace if pace is not None else Pace()
    try:
        for item in iterator:
            if pace.waiting or item.fault is not None:
                offload(item)
            elif pace.inline_left > 0:
                sink.add([evaluator.evaluate(item)])
                pace.inline_left -= 1
            else:
                wall, cpu = time.perf_counter(), time.thread_time()
                sink.add([evaluator.evaluate(item)])
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                pace.probe.append((wall - cpu) / wall if wall > 0 else 0.0)
                if len(pace.probe) == _PROBE:
                    # The median call, not the total: a busy machine that sets this process aside now
                    # and then does not make a busy system look like a waiting one.
                    if statistics.median(pace.probe) > WAITING_SHARE:
                        pace.waiting = True
                    else:
                        pace.inline_left = _RECHECK_EVERY
                    pace.probe = []
            collect(block=False)
        while pending:
            collect(block=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


async def _run_async(items: Iterable[WorkItem], evaluator: Evaluator, concurrency: int, sink: RowSink) -> None:
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # the workers share one iterator: each item is taken once
            sink.add([await evaluator.aevaluate(item)])

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))


def _run_on_loop(coroutine_factory: Callable[[], Any]) -> None:
    """Run a coroutine to the end, on a fresh loop in this thread, or in a helper thread if one is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine_factory())
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine_factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="failpath-check-loop")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def bare_policy() -> Any:
    """The policy a check uses when given none: only ``unexpected`` is handled (abstain), so the raw
    system is measured as it is and the verdict lists every state left unhandled."""
    from failpath.guard import Abstain, Policy, Unexpected, on

    return Policy("no-policy", rules=[on(Unexpected()).do(Abstain("no policy: the call failed"))], store=False)


def guard_factory(policy: Any, scratch: Any = None) -> Callable[[Any], Any]:
    """``system -> policy.wrap(system)``, writing traces and tickets to ``scratch`` (a ``Store`` or a path) when given."""
    if policy is None:
        policy = bare_policy()

    def guard(system: Any) -> Any:
        guarded = policy.wrap(system)
        return guarded.with_store(scratch) if scratch is not None else guarded

    return guard


def run_items(
    items: Iterable[WorkItem], evaluator: Evaluator, sink: RowSink, *, concurrency: int, pace: Pace | None = None
) -> None:
    """Run every item in this process (a lazy iterable is consumed as it goes), streaming rows into ``sink``.

    Async systems run on an event loop, sync ones inline or in threads (see :func:`_run_threads`).
    :func:`run_processes` spreads a whole check over processes instead.
    """
    if evaluator.is_async:
        _run_on_loop(lambda: _run_async(items, evaluator, concurrency, sink))
    else:
        _run_threads(items, evaluator, concurrency, sink, pace)


# --------------------------------------------------------------------------- the plan

CLEAN = "clean"


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
                    key=f"{suite.name}/{variant.perturbation}/{case.id}/{variant.index}",
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
                )
    for case in cases:
        yield WorkItem(
            key=f"{CLEAN}/none/{case.id}/0",
            suite=CLEAN,
            family=CLEAN,
            perturbation="none",
            case_id=case.id,
            variant=0,
            split=split[case.id],
            input=case.input,
            expected=case.expected,
        )


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process of a process run needs besides its cases (sent once, when it starts).

    ``system`` and ``policy`` are objects (sent by pickling) or ``"module:attr"`` names (imported by the
    worker). Rows go to the store at ``store`` under ``run_id``; the guard's traces and tickets to
    ``scratch``. ``done`` holds the keys already stored (a resumed run skips them).
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
        """Run one chunk; every row is committed when this returns. Returns the chunk's planned keys."""
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


def _worker_main(index: int, setup: WorkerSetup, tasks: Any, messages: Any) -> None:
    """A worker process: take chunks of cases from ``tasks`` until None, run each, say when it is done."""
    opened: list[Any] = []
    try:
        from failpath.store import open_store

        system = _resolve(setup.system, "system")
        policy = _resolve(setup.policy, "policy") if setup.policy is not None else bare_policy()
        store = open_store(setup.store)
        opened.append(store)
        scratch = open_store(setup.scratch, queue_tickets=True)
        opened.append(scratch)
        reporter = _Reporter(messages, index, setup.parent)
        runner = ChunkRunner(setup, Evaluator(system, guard_factory(policy, scratch), setup.judge, seed=setup.seed), store, reporter.rows)
        while True:
            task = tasks.get()
            if task is None:
                break
            number, kind, payload = pickle.loads(task)
            if kind == "cases":
                planned: list[str] | None = runner.run(payload)
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
) -> list[str]:
    """Run the chunks of cases in this process (``local``) and in ``workers`` worker processes; return the planned keys.

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
    import collections
    import multiprocessing
    import queue as queue_module

    waiting = collections.deque(enumerate(chunks))
    planned: dict[int, list[str]] = {}
    progress = progress if progress is not None else contextlib.nullcontext()
    # Suites that cannot be pickled (a perturbation made of a lambda) stay here: this process plans
    # each chunk's requests and sends them instead of the cases.
    plan_here = not setup.suites and bool(local.setup.suites)
    if workers < 1:
        with progress:
            for number, cases in waiting:
                planned[number] = local.run(cases)
        return [key for number in sorted(planned) for key in planned[number]]
    context = multiprocessing.get_context(method)
    messages = context.Queue()
    tasks = [context.Queue() for _ in range(workers)]
    processes = [
        context.Process(target=_worker_main, args=(i, setup, tasks[i], messages), name=f"failpath-check-{i}")
        for i in range(workers)
    ]
    held: list[set[int]] = [set() for _ in range(workers)]
    done_chunks: set[int] = set()
    exited_at: dict[int, float] = {}
    finished = False
    stack = contextlib.ExitStack()
    try:
        if method == "fork":
            # Forked workers share this process's memory until they write to it; the collector's passes
            # would write to every object they inherited. Frozen objects are never passed over.
            import gc

            gc.freeze()
            try:
                for process in processes:
                    process.start()
            finally:
                gc.unfreeze()
        else:
            for process in processes:
                process.start()
        stack.enter_context(progress)

        def handle(kind: str, index: int, payload: Any) -> None:
            if kind == "rows":
                on_rows(payload)
            elif kind == "chunk":
                number, keys = payload
                if keys is not None:
                    planned[number] = keys
                done_chunks.add(number)
                held[index].discard(number)
            else:
                error, text = payload
                if isinstance(error, BaseException):
                    with contextlib.suppress(Exception):
                        error.add_note(f"in check worker {index}:\n{text}")
                    raise error
                raise WorkerFailed(f"check worker {index} failed:\n{text}")

        while len(done_chunks) < len(chunks):
            while True:  # everything the workers said so far
                try:
                    handle(*messages.get_nowait())
                except queue_module.Empty:
                    break
            if len(done_chunks) == len(chunks):
                break
            for i in range(workers):
                while waiting and len(held[i]) < _AHEAD and processes[i].exitcode is None:
                    number, cases = waiting.popleft()
                    if plan_here:
                        keys: list[str] = []
                        task = (number, "items", list(local.plan(cases, keys)))
                        planned[number] = keys
                    else:
                        task = (number, "cases", cases)
                    try:
                        data = pickle.dumps(task)
                    except Exception as exc:
                        raise WorkerFailed(
                            f"the requests of cases {cases[0].id!r}..{cases[-1].id!r} cannot be sent to a worker process "
                            f"({type(exc).__name__}: {exc}); use executor='thread'"
                        ) from None
                    tasks[i].put(data)
                    held[i].add(number)
            if idle is not None and idle():
                continue
            if waiting:
                number, cases = waiting.popleft()
                planned[number] = local.run(cases)
                done_chunks.add(number)
                continue
            try:
                handle(*messages.get(timeout=0.2))
            except queue_module.Empty:
                now = time.monotonic()
                for i, process in enumerate(processes):
                    if not held[i] or process.exitcode is None:
                        continue
                    # Exited: its last message may still be on its way through the pipe.
                    if now - exited_at.setdefault(i, now) > 2.0:
                        hint = (
                            "; a script that runs the check must do so under `if __name__ == \"__main__\":`"
                            if process.exitcode == 1 else " (killed, or out of memory?)"
                        )
                        raise WorkerFailed(
                            f"check worker {i} exited with code {process.exitcode} before finishing its cases{hint}; "
                            "the rows written so far are kept: resume the run"
                        )
        finished = True
    finally:
        stack.close()
        for i, process in enumerate(processes):
            if process.pid is None:
                continue
            if finished:
                with contextlib.suppress(Exception):
                    tasks[i].put(None)
            elif process.is_alive():
                process.terminate()
        for process in processes:
            if process.pid is not None:
                process.join(timeout=30 if finished else 5)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
        late: list[Any] = []
        if finished:
            while True:  # a worker's error while closing its stores
                try:  # the workers have exited: what they said is in the pipe already
                    message = messages.get_nowait()
                except (queue_module.Empty, OSError, ValueError):
                    break
                if message[0] == "error":
                    late.append(message)
        for q in (messages, *tasks):
            q.close()
            q.join_thread()
        if late:
            handle(*late[0])
    return [key for number in sorted(planned) for key in planned[number]]
