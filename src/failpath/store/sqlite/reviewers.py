"""The SQLite store's reviewers: who may sign in to the review page, kept as a name and a token's hash.

The token itself is never stored: ``failpath serve add-reviewer`` prints it once and hands the store
its SHA-256 digest (:mod:`failpath.serve.access`). A reviewer signs in by presenting the token; the
page looks its digest up here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from failpath.core import StoreError
from failpath.store.common import check_reviewer

__all__ = ["REVIEWER_TABLES", "ReviewerQueries"]

#: The statements of the migration that adds reviewers (listed in :mod:`.schema`).
REVIEWER_TABLES: tuple[str, ...] = (
    """CREATE TABLE reviewers (
    name       TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created    REAL NOT NULL
)""",
)


class ReviewerQueries:
    """The reviewer methods of :class:`~failpath.store.sqlite.SQLiteStore`, which supplies the names declared here."""

    read_connection: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def add_reviewer(self, name: str, token_hash: str) -> None:
        """Register reviewer ``name`` with the digest of their sign-in token; a name already taken is refused."""
        check_reviewer(name, token_hash)
        with self._transaction() as connection:
            added = connection.execute(
                "INSERT INTO reviewers (name, token_hash, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, token_hash, time.time()),
            ).rowcount
        if not added:
            raise StoreError(
                f"reviewer {name!r} exists already; choose another name, or remove it first "
                f"(failpath serve remove-reviewer {name})"
            )

    def reviewer_for_token(self, token_hash: str) -> str | None:
        """The name of the reviewer whose token has this digest, or None."""
        with self.read_connection(flush=False) as connection:
            row = connection.execute("SELECT name FROM reviewers WHERE token_hash = ?", (token_hash,)).fetchone()
        return None if row is None else row[0]

    def list_reviewers(self) -> list[dict[str, Any]]:
        """Every reviewer as ``{"name", "created"}``, by name."""
        with self.read_connection(flush=False) as connection:
            rows = connection.execute("SELECT name, created FROM reviewers ORDER BY name").fetchall()
        return [{"name": row[0], "created": row[1]} for row in rows]

    def remove_reviewer(self, name: str) -> bool:
        """Remove reviewer ``name`` (their token stops working at once); False when there was none."""
        with self._transaction() as connection:
            removed = connection.execute("DELETE FROM reviewers WHERE name = ?", (name,)).rowcount
        return bool(removed)
