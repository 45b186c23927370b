"""Opening a store by its path: the one place that chooses a backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failpath.store.base import DEFAULT_STORE_PATH, Store

__all__ = ["open_store"]


def open_store(path: str | Path | None = None, **options: Any) -> Store:
    """Open (creating if needed) the store at ``path`` (default ``.failpath/failpath.db``).

    ``options`` go to the backend (for SQLite: ``batch_size``, ``flush_interval``, ``busy_timeout``,
    ``max_pending``, ``queue_tickets``; see :class:`~failpath.store.sqlite.SQLiteStore`).
    """
    from failpath.store.sqlite import SQLiteStore  # imported on use: sqlite3 and threads stay out of import time

    return SQLiteStore(Path(path) if path is not None else DEFAULT_STORE_PATH, **options)
