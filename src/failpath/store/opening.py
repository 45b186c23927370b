"""Opening a store by its path or URL: the one place that chooses a backend."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from failpath.core import StoreError
from failpath.store.base import DEFAULT_STORE_PATH, Store

__all__ = ["open_store", "open_store_to_read", "is_server_url", "store_location"]

# A URL that went through pathlib.Path lost one slash of "//" ("postgresql:/user@host/db"), and one
# resolved against a folder (a relative path in a config file) has that folder in front of it.
_SERVER_URL = re.compile(r"(?:^|.*/)(postgresql|postgres):/+(.*)$", re.IGNORECASE | re.DOTALL)


def is_server_url(location: str | Path | None) -> bool:
    """True when ``location`` names a PostgreSQL server (``postgresql://`` or ``postgres://``), not a file.

    A path with a ``postgresql:`` folder in it counts as a URL that was taken for a path: nobody
    means a SQLite file under a folder of that name.
    """
    return location is not None and bool(_SERVER_URL.match(str(location)))


def store_location(location: str | Path | None) -> str | Path:
    """Where a store is: a file ``Path`` (the default when None), or a PostgreSQL URL as a string.

    A URL given where a path was expected (a ``--store`` option, a ``failpath.toml`` field read as a
    path and resolved against the file's folder) comes back as it was written, with the ``//`` that
    ``Path`` folded into one slash; give the host in such a URL (``postgresql://user@localhost/db``),
    since ``postgresql:///db`` cannot be told apart from it.
    """
    if location is None:
        return DEFAULT_STORE_PATH
    match = _SERVER_URL.match(str(location))
    if match:
        return f"{match.group(1).lower()}://{match.group(2)}"
    return Path(location)


def open_store(path: str | Path | None = None, **options: Any) -> Store:
    """Open (creating if needed) the store at ``path``: a file (default ``.failpath/failpath.db``), or a
    PostgreSQL database given by its URL, ``postgresql://user:password@host:port/database``.

    ``options`` go to the backend (for SQLite: ``batch_size``, ``flush_interval``, ``busy_timeout``,
    ``max_pending``, ``queue_tickets``, see :class:`~failpath.store.sqlite.SQLiteStore`; for PostgreSQL:
    ``batch_size``, ``flush_interval``, ``max_pending``, ``queue_tickets``, ``pool_size``,
    ``connect_timeout``, ``wait_timeout``, see :class:`~failpath.store.postgres.PostgresStore`).
    """
    location = store_location(path)
    if isinstance(location, str):
        try:  # imported on use: psycopg is an optional extra
            from failpath.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"a PostgreSQL store needs psycopg 3 and psycopg_pool ({exc}): pip install \"failpath[postgres]\""
            ) from None
        return PostgresStore(location, **options)
    from failpath.store.sqlite import SQLiteStore  # imported on use: sqlite3 and threads stay out of import time

    return SQLiteStore(location, **options)


def open_store_to_read(path: str | Path | None = None) -> Store:
    """Open an existing store for a command that only reads it (``report``, ``runs``, ``traces``, ``review list``).

    It is opened as :func:`open_store` does; when that fails because the file or its folder cannot be
    written (a read-only mount, a snapshot), it is opened read-only instead (SQLite's read-only or
    immutable open; see :class:`~failpath.store.sqlite.SQLiteStore`), so a store copied to read-only
    media can still be read. ``StoreError`` with the reason when neither works.
    """
    location = store_location(path)
    try:
        return open_store(location)
    except StoreError:
        if isinstance(location, str) or not location.is_file() or _writable(location):
            raise
    from failpath.store.sqlite import SQLiteStore

    return SQLiteStore(location, read_only=True)


def _writable(path: Path) -> bool:
    """Whether ``path`` and its folder can be written (a read-only mount says no, also to root)."""
    import os

    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
