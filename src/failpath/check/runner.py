"""The runner: sends every variant through the guarded system with bounded concurrency.

Two ways to run in one process (:func:`run_items`):

- an async system runs on one event loop with a fixed set of worker coroutines (at most
  ``concurrency`` calls in flight, like a semaphore, without one task per call);
- a sync system runs inline while its calls keep the CPU busy, and in ``concurrency`` threads once
  they are seen to wait (see :func:`_run_threads`).

``executor="process"`` spreads chunks of cases over worker processes that each run this way
(:mod:`failpath.check.processes`).

Each finished variant becomes a result row, streamed to a :class:`RowSink` that writes the rows into
the store in small batches (so a killed run loses at most one batch, which a resumed run redoes).
"""

from __future__ import annotations

import asyncio
import inspect
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from failpath.check.plan import WorkItem, bare_policy
from failpath.check.reuse import RecordedAnswer, answered_once
from failpath.check.severity import grade
from failpath.core import Answered, Case, Defaulted, Prediction

__all__ = ["Evaluator", "RowSink", "Pace", "run_items", "guard_factory", "is_async_system", "preview"]

PREVIEW_CHARS = 300


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

    ``guard_factory(system)`` wraps a system with the policy (``policy.wrap``). A fault item is sent to
    the system wrapped by its fault for that variant alone (``fault.wrap_variant(system, seed, case id,
    variant)``), so which of its calls misbehave depends on the item, never on the order the items run in.

    ``answers`` maps request keys to what the raw system answered that request's input while the check
    fitted its detectors (:mod:`failpath.check.reuse`): the request's first call gets that answer instead
    of asking the system again (each answer serves its one request, and is dropped once taken).
    ``replay_time``: it comes back after as long as the call took (a policy with a time limit); else at
    once, and the row's latency counts the call's recorded time.
    """

    def __init__(
        self, system: Any, guard_factory: Callable[[Any], Any], judge: Any, *, seed: int,
        answers: dict[str, RecordedAnswer] | None = None, replay_time: bool = False,
    ):
        self.system = system
        self.guard_factory = guard_factory
        self.judge = judge
        self.seed = seed
        self.answers = answers
        self.replay_time = replay_time
        self.is_async = is_async_system(system)
        self._plain: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ systems
    def systems(self, item: WorkItem, recorded: RecordedAnswer | None = None) -> tuple[Any, Any]:
        """``(guarded, raw)`` for ``item``: the plain system (built once), one wrapped by the item's fault, or
        one whose first call returns ``recorded`` (an answer the check's fit got for this very request)."""
        fault = item.fault
        if recorded is not None and fault is None:
            raw = answered_once(self.system, recorded, in_time=self.replay_time)
            return self.guard_factory(raw), raw
        if fault is not None:
            wrap_variant = getattr(fault, "wrap_variant", None)
            if wrap_variant is None:  # a fault of another kind: only the seed picks its calls
                raw = fault.wrap(self.system, self.seed)
            else:
                raw = wrap_variant(self.system, self.seed, item.case_id, item.variant)
            return self.guard_factory(raw), raw
        found = self._plain
        if found is None:
            with self._lock:
                if self._plain is None:
                    self._plain = (self.guard_factory(self.system), self.system)
                found = self._plain
        return found

    def _recorded(self, item: WorkItem) -> RecordedAnswer | None:
        """The fit's answer to ``item``'s input, taken (None when there is none)."""
        if not self.answers or item.fault is not None:
            return None
        return self.answers.pop(item.key, None)

    def _latency(self, started: float, trace: Any, recorded: RecordedAnswer | None) -> float:
        """Milliseconds of the guarded call; a first call answered at once from the fit counts the time the call took then."""
        latency = (time.perf_counter() - started) * 1000.0
        if recorded is not None and not self.replay_time and _first_call(trace) is not None:
            latency += recorded.seconds * 1000.0
        return latency

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

    def _grade(self, row: dict[str, Any], item: WorkItem, output: Any, key: str) -> float | None:
        """Grade a wrong answer's severity into ``row[key]`` (nothing when the judge grades nothing)."""
        value, error = grade(self.judge, Case(item.case_id, item.input, item.expected), output)
        if value is not None:
            row[key] = value
        if error:
            row["severity_error"] = error
        return value

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
        if raw_error is None and not raw_correct:
            self._grade(row, item, raw_output, "raw_severity")
        if item.tags:
            row["tags"] = list(item.tags)
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
            if not correct:
                if "raw_severity" in row and raw_error is None and type(value) is type(raw_output) and value == raw_output:
                    row["severity"] = row["raw_severity"]
                else:
                    self._grade(row, item, value, "severity")
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
        recorded = self._recorded(item)
        guarded, raw_system = self.systems(item, recorded)
        start = time.perf_counter()
        outcome = trace = escape = None
        try:
            outcome, trace = guarded.call_traced(item.input)
        except BaseException as exc:  # noqa: BLE001 - anything leaving the guard is recorded as an escape
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            escape = _error_text(exc)
        latency = self._latency(start, trace, recorded)
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
        recorded = self._recorded(item)
        guarded, raw_system = self.systems(item, recorded)
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
        latency = self._latency(start, trace, recorded)
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
    :func:`failpath.check.processes.run_processes` spreads a whole check over processes instead.
    """
    if evaluator.is_async:
        _run_on_loop(lambda: _run_async(items, evaluator, concurrency, sink))
    else:
        _run_threads(items, evaluator, concurrency, sink, pace)
