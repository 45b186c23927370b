"""Where a policy's traces and tickets go: a handle that opens the store on first use and closes it at the end."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failpath.core import PolicyError

if TYPE_CHECKING:
    from failpath.store.base import Store

__all__ = ["StoreHandle", "StoreSpec", "store_key"]

log = logging.getLogger("failpath.guard")

#: Where a policy writes traces: a path, a ``Store``, ``None`` for ``.failpath/failpath.db``, ``False`` for nowhere.
StoreSpec = "str | Path | Store | None | bool"


class StoreHandle:
    """Opens a policy's store on first use (thread-safe) and closes or flushes it at the end.

    A store the handle opened itself (from a path, or the default) is closed; a ``Store`` passed in by
    the caller is flushed and left open. A store that cannot be opened is logged once; calls go on
    without traces rather than fail.
    """

    def __init__(self, spec: Any):
        self.spec = spec
        #: What identifies a store this handle opens itself (its resolved path), else None.
        self.key = store_key(spec)
        self._store: Store | None = None
        self._owned = False
        self._failed = False
        self._lock = threading.Lock()
        if spec is False:
            self._failed = True  # nothing to open, on purpose
        elif spec is not None and spec is not True and not isinstance(spec, (str, Path)):
            if not (callable(getattr(spec, "write_trace", None)) and callable(getattr(spec, "create_ticket", None))):
                raise PolicyError(f"store={spec!r}: give a path, a failpath Store, None (the default .failpath/failpath.db) or False (no store)")
            self._store = spec

    @property
    def disabled(self) -> bool:
        """True when there is no store on purpose (``store=False``)."""
        return self.spec is False

    def get(self) -> Store | None:
        """The store, opened now if needed; None when there is none (``store=False``) or it cannot be opened."""
        store = self._store
        if store is not None or self._failed:
            return store
        with self._lock:
            if self._store is None and not self._failed:
                try:
                    from failpath.store import open_store

                    path = None if self.spec in (None, True) else self.spec
                    self._store = open_store(path)
                    self._owned = True
                except Exception as exc:
                    self._failed = True
                    log.error("failpath: cannot open the trace store %r (%s: %s); calls go on without traces", self.spec, type(exc).__name__, exc)
            return self._store

    def flush(self) -> None:
        """Wait until every trace written so far is on disk."""
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        """Close the store if this handle opened it, else flush it. Idempotent; never raises."""
        store = self._store
        if store is None:
            return
        try:
            if self._owned:
                with self._lock:
                    self._store = None
                store.close()
            else:
                store.flush()
        except Exception as exc:  # a store the caller closed already, say
            log.warning("failpath: flushing or closing the trace store failed (%s: %s)", type(exc).__name__, exc)


def store_key(spec: Any) -> str | None:
    """What identifies a store opened from ``spec`` (its resolved path, or ``<default>``); None for a ``Store`` object."""
    if spec is None or spec is True:
        return "<default>"
    if isinstance(spec, (str, Path)):
        return str(Path(spec).resolve())
    return None
