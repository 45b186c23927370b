"""What sync and async guarded systems share: the policy, the system, the store, the end of a call."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from failpath.core import Answered, Outcome, Trace
from failpath.guard.run import Run
from failpath.guard.steps import Resolution
from failpath.guard.stores import StoreHandle
from failpath.guard.table import PolicyTable
from failpath.guard.tracing import build_trace, clean_trace
from failpath.guard.workers import DaemonPool

if TYPE_CHECKING:
    from failpath.store.base import Store

__all__ = ["GuardPolicy", "GuardedBase", "system_name"]

log = logging.getLogger("failpath.guard")


class GuardPolicy(Protocol):
    """What a guarded system needs of its policy; ``failpath.guard.Policy`` provides it."""

    name: str
    table: PolicyTable
    _store: StoreHandle  # where traces go unless a guarded system is given another store

    def store_handle(self, store: Any) -> StoreHandle:
        """A handle on another store (what ``with_store`` uses)."""
        ...

    def _worker_pool(self) -> DaemonPool:
        """The worker threads for sync calls under a time limit."""
        ...


def system_name(system: Any, name: str | None) -> str:
    """The name traces give ``system``: ``name`` when given, else its qualified name, else its type's name."""
    if name:
        return name
    for attribute in ("__qualname__", "__name__"):
        value = getattr(system, attribute, None)
        if isinstance(value, str):
            return value
    return type(system).__name__


class GuardedBase:
    """What sync and async guarded systems share: the policy, the system, the store, the trace's end."""

    def __init__(self, policy: GuardPolicy, system: Callable[[Any], Any], *, name: str | None, store: StoreHandle | None):
        self.policy = policy
        self.system = system
        self.name = system_name(system, name)
        self._table = policy.table
        self._store = store if store is not None else policy._store
        self._input_checks = bool(self._table.input_checks)
        self.__wrapped__ = system
        self.__name__ = getattr(system, "__name__", self.name)
        self.__qualname__ = getattr(system, "__qualname__", self.name)
        self.__doc__ = getattr(system, "__doc__", None)

    def with_store(self, store: Any) -> Any:
        """A copy of this guarded system that writes its traces and tickets to ``store`` (a ``Store`` or a path)."""
        return type(self)(self.policy, self.system, name=self.name, store=self.policy.store_handle(store))

    @property
    def store(self) -> Store | None:
        """The store traces go to (opened now if needed), or None."""
        return self._store.get()

    def _new_run(self, input: Any, is_async: bool) -> Run:
        return Run(self._table, self.system, self.name, is_async, input, self._store)

    def _finish(self, run: Run, resolution: Resolution) -> tuple[Outcome, Trace]:
        """Build and deliver the trace; return the outcome with it, or raise what a ``Raise`` action raises."""
        if run.stored_trace is not None:  # written with the escalation's ticket: only the exporters are left
            self._export(run.stored_trace)
            return resolution.outcome, run.stored_trace  # type: ignore[return-value]
        try:
            trace = build_trace(run, resolution)
        except Exception as exc:  # never lose the outcome over its record
            log.exception("failpath: could not build the trace of a call")
            trace = Trace(
                trace_id=run.trace_id, time=run.time, policy=run.table.name, input_digest="", input_preview="",
                outcome=resolution.outcome.kind if resolution.outcome is not None else "raised",
                detail={"notes": [f"trace incomplete: {type(exc).__name__}: {exc}"]},
            )
        self._deliver(run, trace)
        if resolution.exception is not None:
            exc = resolution.exception
            try:
                exc.add_note(f"failpath trace {trace.trace_id}")
            except Exception:
                pass
            raise exc from resolution.cause
        return resolution.outcome, trace  # type: ignore[return-value]

    def _finish_answered(self, run: Run, outcome: Answered) -> tuple[Outcome, Trace]:
        """:meth:`_finish` for a call that answered, with the trace built directly when the call was clean."""
        if not run.is_clean():
            return self._finish(run, Resolution(outcome))
        try:
            trace = clean_trace(run, outcome)
        except Exception:
            return self._finish(run, Resolution(outcome))  # the general path builds and logs what it can
        self._deliver(run, trace)
        return outcome, trace

    def _deliver(self, run: Run, trace: Trace) -> None:
        """Hand the trace to the store and the exporters; their errors are logged, never raised."""
        handle = self._store
        store = handle.get()
        if store is not None:
            try:
                store.write_trace(trace)
            except Exception as exc:
                handle.not_written()
                log.error("failpath: could not write trace %s (%s: %s)", trace.trace_id, type(exc).__name__, exc)
        elif not handle.disabled:
            handle.not_written()  # the store could not be opened (it is tried again with backoff)
        if self._table.exporters:
            self._export(trace)

    def _export(self, trace: Trace) -> None:
        """Hand the trace to the policy's exporters; their errors are logged, never raised."""
        for exporter in self._table.exporters:
            try:
                exporter.export(trace)
            except Exception as exc:
                log.warning("failpath: exporter %r failed on trace %s (%s: %s)", exporter, trace.trace_id, type(exc).__name__, exc)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} under {self.policy!r}>"
