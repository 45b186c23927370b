"""Persistence for failpath: traces, review tickets, check runs and their results.

All SQL lives in this package, behind the :class:`Store` interface, so a team can point failpath at
another backend (a shared PostgreSQL, say) by implementing that one class; what does not depend on
SQLite (the background trace writer, rows, migrations) is shared by every backend. The default backend is a
SQLite file in WAL mode at ``.failpath/failpath.db`` under the working directory.
"""

from __future__ import annotations

from failpath.store.base import DEFAULT_STORE_PATH, Store
from failpath.store.opening import open_store

__all__ = ["DEFAULT_STORE_PATH", "Store", "open_store"]
