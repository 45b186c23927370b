"""The PostgreSQL store's reviewers: who may sign in to the review page, kept as a name and a token's hash.

The same contract as the SQLite store's (:mod:`failpath.store.sqlite.reviewers`): the token itself is
never stored, only its SHA-256 digest.
"""

from __future__ import annotations

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
    name       TEXT COLLATE "C" PRIMARY KEY,
    token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created    DOUBLE PRECISION NOT NULL
)""",
)


class ReviewerQueries:
    """The reviewer methods of :class:`~failpath.store.postgres.PostgresStore`, which supplies the names declared here."""

    read_connection: Callable[..., AbstractContextManager[Any]]
    _transaction: Callable[[], AbstractContextManager[Any]]

    def add_reviewer(self, name: str, token_hash: str) -> None:
        """Register reviewer ``name`` with the digest of their sign-in token; a name already taken is refused."""
        check_reviewer(name, token_hash)
        with self._transaction() as connection:
            added = connection.execute(
                "INSERT INTO reviewers (name, token_hash, created) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
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
            row = connection.execute("SELECT name FROM reviewers WHERE token_hash = %s", (token_hash,)).fetchone()
        return None if row is None else row["name"]

    def list_reviewers(self) -> list[dict[str, Any]]:
        """Every reviewer as ``{"name", "created"}``, by name."""
        with self.read_connection(flush=False) as connection:
            rows = connection.execute("SELECT name, created FROM reviewers ORDER BY name").fetchall()
        return [{"name": row["name"], "created": row["created"]} for row in rows]

    def remove_reviewer(self, name: str) -> bool:
        """Remove reviewer ``name`` (their token stops working at once); False when there was none."""
        with self._transaction() as connection:
            removed = connection.execute("DELETE FROM reviewers WHERE name = %s", (name,)).rowcount
        return bool(removed)
