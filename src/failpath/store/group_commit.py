"""Group commit: synchronous writes from many threads committed together, each caller waiting for its own.

Backend-neutral. A caller hands :meth:`GroupCommit.write` a small piece of work (``work(connection)``:
a few statements, no commit) and blocks until the transaction holding it is committed, so what it
wrote is on disk when the call returns, exactly as with a transaction of its own. What changes is who
commits: the first caller to arrive while no commit is under way leads. It begins a transaction,
takes everything waiting (its own write and those of the callers that arrived meanwhile, or while it
waited for the store's write lock), runs them in order in ONE transaction, commits, wakes each of
their callers with its result, and hands the lead to the first caller that arrived during its commit.
With one thread writing, every batch holds one write and costs what a direct write costs; with many
threads, a batch holds the writes that queued up during the previous commit, and the commit's fixed
cost (the lock, ``BEGIN``, ``COMMIT``, the log write) is paid once for all of them.

A write whose work raises is left out of its batch (the batch is rolled back and run again without
it) and its caller gets the error; a failure to begin or commit the transaction goes to every caller
of the batch, as it would have to each of them writing alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from failpath.core import StoreError

__all__ = ["GroupCommit"]

_WAITING, _DONE, _LEAD = 0, 1, 2


class _Write:
    """One caller's write: its work, and what became of it."""

    __slots__ = ("work", "result", "error", "state", "wake")

    def __init__(self, work: Callable[[Any], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.state = _WAITING
        self.wake = threading.Lock()  # held until the caller may go on (done, or leading)
        self.wake.acquire()


class GroupCommit:
    """Commits the synchronous writes of a store's threads in shared transactions (see the module docstring).

    One per store and process. ``commits`` counts the transactions it committed (what the tests read).
    It keeps no reference to the store, so a store nobody holds is still garbage collected at once.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._leading = False
        self.commits = 0

    def write(self, transaction: Callable[[], AbstractContextManager[Any]], work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` in a write transaction; return its result once that transaction is committed.

        ``transaction()`` is the store's write transaction: a context manager that begins a transaction,
        yields the connection, commits on a clean exit and rolls back on an error; the caller that leads
        a batch calls the one it was given. A caller interrupted while it waits (``KeyboardInterrupt``)
        raises at once, and its write is dropped unless a leader took it already.
        """
        mine = _Write(work)
        with self._mutex:
            self._queue.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                mine.wake.acquire()  # until a leader committed this write, or handed the lead to it
            except BaseException:  # interrupted (KeyboardInterrupt): never leave the lead with nobody
                self._abandon(mine)
                raise
        if mine.state == _LEAD or lead:
            self._lead(mine, transaction)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _abandon(self, mine: _Write) -> None:
        """A caller stopped waiting: drop its write if no leader took it yet, and pass the lead on if it had it."""
        successor = None
        with self._mutex:
            if mine in self._queue:
                self._queue.remove(mine)
                if mine.state == _LEAD:
                    if self._queue:
                        successor = self._queue[0]
                        successor.state = _LEAD
                    else:
                        self._leading = False
        if successor is not None:
            successor.wake.release()

    def _lead(self, mine: _Write, transaction: Callable[[], AbstractContextManager[Any]]) -> None:
        """Commit everything queued, wake its callers, and hand the lead on (or give it up when nothing waits)."""
        with self._mutex:
            batch, self._queue = self._queue, []
        try:
            self._commit(batch, mine, transaction)
        finally:
            for write in batch:
                if write.state != _DONE:  # interrupted before its fate was known
                    write.error = StoreError("the transaction holding this write was interrupted; it may or may not be committed")
                    write.state = _DONE
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._leading = False
                else:
                    successor.state = _LEAD
            for write in batch:
                write.wake.release()
            if successor is not None:
                successor.wake.release()

    def _commit(self, batch: list[_Write], mine: _Write, transaction: Callable[[], AbstractContextManager[Any]]) -> None:
        """Run the batch in one transaction, with the writes that queued while it waited for the lock (added to
        ``batch``); a write whose work raises is taken out, and the rest run again in a new transaction."""
        todo = list(batch)
        while todo:
            failed: _Write | None = None
            results: list[Any] = []
            try:
                with transaction() as connection:
                    with self._mutex:
                        arrived, self._queue = self._queue, []
                    batch += arrived
                    todo += arrived
                    for write in todo:
                        failed = write
                        results.append(write.work(connection))
                    failed = None
            except BaseException as exc:
                if failed is None or len(todo) == 1:  # the transaction itself failed: every write in it did
                    for write in todo:
                        write.error = exc if write is mine else _copy(exc)
                        write.state = _DONE
                    if not isinstance(exc, Exception):
                        raise
                    return
                failed.error = exc if failed is mine else _copy(exc)
                failed.state = _DONE
                todo = [write for write in todo if write is not failed]
                continue
            self.commits += 1
            for write, result in zip(todo, results):
                write.result = result
                write.state = _DONE
            return


def _copy(error: BaseException) -> BaseException:
    """The error one write of a batch met, for another caller of that batch (each raises its own object)."""
    copied = StoreError(str(error) or type(error).__name__)
    copied.__cause__ = error
    return copied
