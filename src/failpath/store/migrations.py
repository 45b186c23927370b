"""Versioned schemas: the list of migrations a backend's schema is built from, and which ones a store still needs.

Backend-neutral. A backend lists its migrations in order, numbered from 1; a new store applies all of
them, an older one the ones it lacks, on first use; a store whose version is newer than the last one
listed was written by a newer failpath and is refused, never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from failpath.core import StoreError

__all__ = ["Migration", "schema_version", "migrations_to_apply"]


@dataclass(frozen=True)
class Migration:
    """One step of a schema: its ``version`` (1, 2, ...), what it changes, and the statements that do it."""

    version: int
    description: str
    statements: tuple[str, ...]


def schema_version(migrations: Sequence[Migration]) -> int:
    """The version a store reaches after ``migrations`` (the last one's); checks they are numbered 1, 2, ..."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migration {expected} is numbered {migration.version}: number them 1, 2, ... in order")
    return len(migrations)


def migrations_to_apply(found: int, migrations: Sequence[Migration], *, store: str) -> tuple[Migration, ...]:
    """The migrations a store at version ``found`` still needs (none when it is current; all when it is new).

    Raises ``StoreError`` naming both versions when ``found`` is newer than this failpath knows.
    """
    known = schema_version(migrations)
    if found > known:
        raise StoreError(
            f"the store {store} was written by a newer failpath (schema version {found}; this version "
            f"reads up to {known}): upgrade failpath, or pass another --store path"
        )
    if found < 0:
        raise StoreError(f"the store {store} has an unknown schema version {found}; pass another --store path")
    return tuple(migrations[found:])
