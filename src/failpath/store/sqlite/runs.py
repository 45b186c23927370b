"""The SQLite store's check runs and their result rows (written synchronously: on disk when the call returns).

:meth:`RunQueries.finish_run` goes through the store's group commit, like checkpoints: an agent run ends with both.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from failpath.core import StoreError
from failpath.store.common import ambiguous, result_rows
from failpath.store.jsonsafe import dumps
from failpath.store.records import DECODE_ERRORS, damaged, row_to_run
from failpath.store.sqlite.connections import by_prefix

__all__ = ["RunQueries"]


class RunQueries:
    """The run methods of :class:`~failpath.store.sqlite.SQLiteStore`, which supplies the names declared here."""

    path: Path
    read_connection: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _grouped: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    def create_run(self, run_id: str, *, kind: str, config: Mapping[str, Any]) -> None:
        """Register a run (``kind`` is e.g. ``"check"``) with its configuration (rendered JSON-safe).

        Raises ``StoreError`` if the run id exists already (resume it with ``get_run`` instead).
        """
        if not run_id:
            raise StoreError("a run id cannot be empty")
        with self._transaction() as connection:
            inserted = connection.execute(
                "INSERT OR IGNORE INTO runs (run_id, kind, config, created) VALUES (?, ?, ?, ?)",
                (run_id, kind, dumps(config), time.time()),
            ).rowcount
        if not inserted:
            raise StoreError(f"a run {run_id!r} exists already in {self.path}: resume it, or choose another run id")

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's record: ``run_id, kind, config, created, finished, summary`` (a unique prefix works).

        ``finished`` and ``summary`` are None until :meth:`finish_run`. Raises ``StoreError`` when the
        prefix matches several runs.
        """
        with self.read_connection(flush=False) as connection:
            row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                rows = by_prefix(connection, "runs", "run_id", run_id)
                if not rows:
                    return None
                if len(rows) > 1:
                    raise StoreError(ambiguous("run", run_id, [r["run_id"] for r in rows]))
                row = rows[0]
            return row_to_run(row)

    def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first (same records as :meth:`get_run`)."""
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY created DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self.read_connection(flush=False) as connection:
            return [row_to_run(row) for row in connection.execute(sql, params)]

    def add_results(self, run_id: str, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Store result rows ``(key, data)``; a key already stored for the run is ignored. Returns rows added.

        The rows are committed (in one transaction) before this returns. Raises ``StoreError`` if the
        run was not created.
        """
        prepared = result_rows(run_id, rows)
        with self._transaction() as connection:
            if connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no run {run_id!r} in {self.path}: call create_run first")
            if not prepared:
                return 0
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO results (run_id, key, data, written) VALUES (?, ?, ?, ?)", prepared
            )
            return connection.total_changes - before

    def result_keys(self, run_id: str) -> set[str]:
        """Keys of the results stored for the run (what a resumed run skips)."""
        with self.read_connection(flush=False) as connection:
            return {row[0] for row in connection.execute("SELECT key FROM results WHERE run_id = ?", (run_id,))}

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """The run's result rows, ``{"key", "data", "written"}`` each, in the order they were written."""
        with self.read_connection(flush=False) as connection:
            fetched = connection.execute(
                "SELECT key, data, written FROM results WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        try:
            return [{"key": row[0], "data": json.loads(row[1]), "written": row[2]} for row in fetched]
        except DECODE_ERRORS as exc:
            raise damaged(f"the results of run {run_id!r}", exc) from None

    def results_after(self, run_id: str, after: int = 0, limit: int | None = None) -> tuple[list[tuple[str, Any]], int]:
        """The run's result rows stored after position ``after`` as ``(key, data)``, in the order written,
        and the position to pass next time (0 reads from the start): for reading a run while it is written.

        Positions are the rows' ids, which only grow, so rows committed by other processes meanwhile
        are read by a later call, never skipped. The rows are read along the ids (``+run_id`` keeps
        SQLite from going through the (run_id, key) index and sorting), from the run's first row on.
        With ``limit``, at most that many rows are read.
        """
        with self.read_connection(flush=False) as connection:
            if after <= 0:
                first = connection.execute("SELECT min(id) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
                if first is None:
                    return [], after
                after = first - 1
            fetched = connection.execute(
                "SELECT id, key, data FROM results WHERE id > ? AND +run_id = ? ORDER BY id LIMIT ?",
                (after, run_id, -1 if limit is None else int(limit)),  # LIMIT -1: no limit
            ).fetchall()
        if not fetched:
            return [], after
        loads = json.loads
        try:
            return [(row[1], loads(row[2])) for row in fetched], fetched[-1][0]
        except DECODE_ERRORS as exc:
            raise damaged(f"the results of run {run_id!r}", exc) from None

    def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Mark the run finished and keep its summary (rendered JSON-safe). ``StoreError`` if no such run."""
        row = (time.time(), dumps(summary), run_id)
        changed = self._grouped(lambda connection: connection.execute("UPDATE runs SET finished = ?, summary = ? WHERE run_id = ?", row).rowcount)
        if not changed:
            raise StoreError(f"no run {run_id!r} in {self.path}: call create_run first")
