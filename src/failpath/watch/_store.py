"""How the watch functions take a store: an open :class:`~failpath.store.Store`, a path, or ``None``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from failpath.store.base import Store

#: What the watch functions accept as ``store``: an open store, a path, or None for .failpath/failpath.db.
StoreLike = Store | str | Path | None


@contextlib.contextmanager
def using_store(store: StoreLike) -> Iterator[Store]:
    """The store itself, or one opened from a path (or the default path) and closed after use."""
    if isinstance(store, Store):
        yield store
        return
    from failpath.store.opening import open_store

    opened = open_store(store)
    try:
        yield opened
    finally:
        opened.close()
