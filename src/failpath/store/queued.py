"""What every backend shares around the background trace writer: queueing, flushing, closing, forking.

:class:`QueuedStore` is the base a backend subclasses. It implements :meth:`Store.write_trace`,
:meth:`Store.flush` and :meth:`Store.close` on top of a :class:`~failpath.store.writer.TraceWriter`;
the backend builds the writer (``_start``) and implements the queries.
"""

from __future__ import annotations

import abc
import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

from failpath.core import StoreError, Trace
from failpath.store.base import Store
from failpath.store.writer import TraceWriter

__all__ = ["QueuedStore"]

# Stores open in this process, so a forked child can drop what it inherited (weak: never keeps one alive).
_OPEN_STORES: "weakref.WeakSet[QueuedStore]" = weakref.WeakSet()

# Objects a forked child inherited from its parent and must never touch (see _forget_after_fork).
_INHERITED: list[Any] = []


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _finalize(writer: TraceWriter, release: Callable[[], None]) -> None:
    """Flush and stop the writer, then release the connections (on close, garbage collection, or exit)."""
    try:
        writer.stop()
    finally:
        release()


class QueuedStore(Store):
    """A store whose traces (and, if asked, tickets) go through a background :class:`TraceWriter`.

    A subclass calls :meth:`_open_queue` at the end of its ``__init__`` and implements :meth:`_start`,
    which makes this process's writer and connections (again in a forked child), and
    :meth:`_inherited`, the objects a forked child must keep alive but never use.
    """

    ticket_carries_trace = True  # both backends write a ticket's trace in the ticket's transaction

    _writer: TraceWriter
    _closed: bool = False

    def _open_queue(self) -> None:
        """Start the queue (the thread itself starts with the first queued trace) and register for fork."""
        self._closed = False
        self._start()
        _OPEN_STORES.add(self)

    @abc.abstractmethod
    def _start(self) -> None:
        """Make ``self._writer`` and this process's connections, and call :meth:`_finalize_with`."""

    @abc.abstractmethod
    def _inherited(self) -> tuple[Any, ...]:
        """What a forked child holds from its parent (writer, connections): kept alive, never used."""

    def _finalize_with(self, release: Callable[[], None]) -> None:
        """On close, garbage collection or exit: stop the writer, then ``release()`` (neither may refer to self)."""
        self._finalizer = weakref.finalize(self, _finalize, self._writer, release)

    # ------------------------------------------------------------------ traces

    def write_trace(self, trace: Trace) -> None:
        """Queue a trace for writing; returns at once. ``flush`` or ``close`` waits for the disk."""
        if type(trace) is not Trace and not isinstance(trace, Trace):
            raise TypeError(f"write_trace takes a failpath.Trace, got {type(trace).__name__}")
        self._enqueue(trace)

    def _enqueue(self, item: Any) -> None:
        """Hand a trace (or a queued ticket) to the writer thread: started on first use, waited for when full."""
        writer = self._writer
        if writer.stopped:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        if len(writer.pending) > writer.max_pending:
            writer.wait_for_room()
        writer.pending.append(item)
        if writer._thread is None and not writer._starting.locked():  # another caller starting it: it will see this item
            writer.start()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every trace queued so far is on disk.

        Raises ``StoreError`` if ``timeout`` seconds pass first, or if traces could not be written
        (the message says how many and why; the error is reported once).
        """
        writer = self._writer
        if not writer.flush(timeout):
            raise StoreError(
                f"flushing traces to {self.path} took longer than {timeout} s; "
                f"{len(writer.pending)} traces are still queued"
            )
        if writer.error is not None:
            error, lost = writer.error, writer.lost
            writer.error, writer.lost = None, 0
            raise StoreError(f"{lost} traces could not be written to {self.path}: {error}")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flush pending traces, stop the writer thread and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _OPEN_STORES.discard(self)
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's queue, thread and connections; start afresh."""
        with contextlib.suppress(Exception):
            self._finalizer.detach()
        # Connections inherited across fork must not be used or closed here: keep them unreferenced
        # by this store but alive, so closing them cannot disturb the parent's locks.
        _INHERITED.append(self._inherited())
        if not self._closed:
            self._start()
