"""Persistence for failpath: traces, review tickets, check runs and their results.

All SQL lives in this package, behind the :class:`Store` interface; what does not depend on a backend
(the background trace writer, rows, migrations) is shared by every backend. The default backend is a
SQLite file in WAL mode at ``.failpath/failpath.db`` under the working directory; a team shares one
PostgreSQL database by giving its ``postgresql://`` URL instead of a path
(:mod:`failpath.store.postgres`, the ``failpath[postgres]`` extra). :func:`open_store` picks the backend.
"""

from __future__ import annotations

from failpath.store.base import DEFAULT_STORE_PATH, Store
from failpath.store.opening import open_store

__all__ = ["DEFAULT_STORE_PATH", "Store", "open_store"]
