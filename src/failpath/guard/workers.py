"""Worker threads for sync systems under a time limit: the guard stops waiting, the call runs on.

Python cannot stop a thread, so a sync system under a ``Timeout(after=...)`` rule or a policy
``deadline`` is called in a daemon worker thread; the caller waits for it at most the time left.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonPool", "Job"]


class Job:
    """One call handed to a worker thread. ``done`` is held until the call has returned or raised."""

    __slots__ = ("fn", "arg", "done", "value", "error", "abandoned")

    def __init__(self, fn: Callable[[Any], Any], arg: Any):
        self.fn = fn
        self.arg = arg
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False  # the caller stopped waiting; a job not started yet is skipped

    def wait(self, timeout: float) -> bool:
        """True when the call finished within ``timeout`` seconds; else the job is abandoned."""
        if self.done.acquire(timeout=timeout):
            return True
        self.abandoned = True
        return False


class DaemonPool:
    """Daemon worker threads for sync systems under a timeout.

    Daemon threads, so a call that never returns cannot keep the interpreter from exiting. Each
    submitted call gets a worker of its own (an idle one, or a new one), so a stuck call never delays
    another. A job is handed over through a queue and its result back through a lock, the lightest
    hand-off the standard library offers.
    """

    def __init__(self, name: str, max_idle: int = 8):
        self._max_idle = max_idle
        self._name = name
        self._count = 0
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        """Forget every worker (in a forked child, whose copies of them do not run)."""
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._closed = False

    def shutdown(self) -> None:
        """Let every idle worker exit now, and each busy one when its call returns (a stuck call runs on).

        The pool still takes calls afterwards, each on a worker that exits when it is done.
        """
        with self._lock:
            idle, self._idle = self._idle, 0
            self._closed = True
        for _ in range(idle):
            self._queue.put(None)  # wakes one idle worker, which exits

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Job:
        """Run ``fn(arg)`` in a worker thread; wait for it with ``job.wait(timeout)``."""
        job = Job(fn, arg)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                spawn = False
            else:
                self._count += 1
                spawn = True
        self._queue.put(job)
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{self._count}", daemon=True).start()
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:  # shutdown()
                return
            if not job.abandoned:
                try:
                    job.value = job.fn(job.arg)
                except BaseException as exc:  # handed to the caller, who re-raises KeyboardInterrupt and SystemExit
                    job.error = exc
            job.done.release()
            del job
            with self._lock:
                if self._closed or self._idle >= self._max_idle:
                    return
                self._idle += 1


#: Every pool of this process, so a forked child can forget the workers it did not inherit.
_POOLS: "weakref.WeakSet[DaemonPool]" = weakref.WeakSet()


def _reset_pools_after_fork() -> None:
    for pool in list(_POOLS):
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_after_fork)
