"""Where a policy's traces and tickets go: a handle that opens the store on first use and closes it at the end."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failpath.core import PolicyError, StoreError

if TYPE_CHECKING:
    from failpath.store.base import Store

__all__ = ["StoreHandle", "StoreSpec", "store_key"]

log = logging.getLogger("failpath.guard")

#: Seconds to wait before trying again to open a store that failed to open: doubled after each
#: failure, from the first to the last.
OPEN_RETRY_DELAYS = (0.5, 30.0)

#: Where a policy writes traces: a path, a ``Store``, ``None`` for ``.failpath/failpath.db``, ``False`` for nowhere.
StoreSpec = "str | Path | Store | None | bool"


class StoreHandle:
    """Opens a policy's store on first use (thread-safe) and closes or flushes it at the end.

    A store the handle opened itself (from a path, or the default) is closed; a ``Store`` passed in by
    the caller is flushed and left open. A store that cannot be opened is logged and tried again
    with backoff (0.5 s, doubled after each failure up to 30 s); calls go on meanwhile, and the traces
    they could not write are counted: the next ``flush()`` raises ``StoreError`` saying how many, and
    ``close()`` returns the count.
    """

    def __init__(self, spec: Any):
        self.spec = spec
        #: What identifies a store this handle opens itself (its resolved path), else None.
        self.key = store_key(spec)
        self._store: Store | None = None
        self._owned = False
        self._failed = False
        self._failures = 0  # failed opens in a row
        self._retry_at = 0.0  # time.monotonic() before which no new open is tried
        self._open_error: BaseException | None = None
        self.lost = 0  # traces not handed to a store since the last flush or close
        self._lock = threading.Lock()
        if spec is False:
            self._failed = True  # nothing to open, on purpose
        elif spec is not None and spec is not True and not isinstance(spec, (str, Path)):
            if not (callable(getattr(spec, "write_trace", None)) and callable(getattr(spec, "create_ticket", None))):
                raise PolicyError(f"store={spec!r}: give a path, a failpath Store, None (the default .failpath/failpath.db) or False (no store)")
            self._store = spec

    @property
    def owned(self) -> bool:
        """True when this handle opened its store itself (from a path, or the default), so closes it."""
        return self._owned

    @property
    def disabled(self) -> bool:
        """True when there is no store on purpose (``store=False``)."""
        return self.spec is False

    def get(self) -> Store | None:
        """The store, opened now if needed; None when there is none (``store=False``) or it cannot be opened."""
        store = self._store
        if store is not None or self._failed:
            return store
        if time.monotonic() < self._retry_at:
            return None
        with self._lock:
            if self._store is None and not self._failed and time.monotonic() >= self._retry_at:
                try:
                    from failpath.store import open_store

                    path = None if self.spec in (None, True) else self.spec
                    self._store = open_store(path)
                    self._owned = True
                    if self._failures:
                        log.warning("failpath: opened the trace store %r after %d failed tries", self.spec, self._failures)
                    self._failures, self._open_error = 0, None
                except Exception as exc:
                    self._failures += 1
                    self._open_error = exc
                    first, last = OPEN_RETRY_DELAYS
                    delay = min(last, first * 2 ** (self._failures - 1))
                    self._retry_at = time.monotonic() + delay
                    log.error(
                        "failpath: cannot open the trace store %r (%s: %s); calls go on without traces, "
                        "trying again in %.3g s (failure %d)", self.spec, type(exc).__name__, exc, delay, self._failures,
                    )
            return self._store

    def not_written(self, count: int = 1) -> None:
        """Count traces that could not be handed to the store (it could not be opened, or refused them)."""
        with self._lock:
            self.lost += count

    def _take_lost(self) -> tuple[int, BaseException | None]:
        with self._lock:
            lost, self.lost = self.lost, 0
        return lost, self._open_error

    def flush(self) -> None:
        """Wait until every trace written so far is on disk.

        Raises ``StoreError`` saying how many traces were lost since the last flush: not written because
        the store could not be opened, or (from the store itself) because it could not write them.
        """
        lost, error = self._take_lost()
        if lost:
            raise StoreError(
                f"{lost} traces were not written: the trace store {self.spec!r} could not be opened "
                f"({type(error).__name__}: {error}); it is tried again with backoff"
            )
        if self._store is not None:
            self._store.flush()

    def close(self) -> int:
        """Close the store if this handle opened it, else flush it. Idempotent; never raises.

        Returns how many traces were lost since the last flush (never handed to a store, or given up
        by its writer); a loss is also logged.
        """
        lost, _ = self._take_lost()
        store = self._store
        if store is not None:
            try:
                store.flush()  # raises, saying how many, when its writer gave traces up
            except StoreError as exc:
                lost += _count_in(exc)
                log.error("failpath: %s", exc)
            except Exception as exc:  # a store the caller closed already, say
                log.warning("failpath: flushing the trace store failed (%s: %s)", type(exc).__name__, exc)
            try:
                if self._owned:
                    with self._lock:
                        self._store = None
                    store.close()
            except Exception as exc:
                log.warning("failpath: closing the trace store failed (%s: %s)", type(exc).__name__, exc)
        if lost:
            log.error("failpath: %d traces were lost since the last flush (store %r)", lost, self.spec)
        return lost


def _count_in(error: StoreError) -> int:
    """The count a store's flush error starts with ("40 traces could not be written ..."), else 0."""
    head = str(error).split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def store_key(spec: Any) -> str | None:
    """What identifies a store opened from ``spec`` (its resolved path, or ``<default>``); None for a ``Store`` object."""
    if spec is None or spec is True:
        return "<default>"
    if isinstance(spec, (str, Path)):
        return str(Path(spec).resolve())
    return None
