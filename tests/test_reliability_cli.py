"""Bad input to the CLI: each case exits 2 with a message naming the problem, never a traceback.

Item 16 of the reliability issue: an unwritable export folder, answers and records nested deep or holding
a 5,000-digit integer or NaN, and store cells whose JSON was damaged outside failpath.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest

import failpath as fp
from typer.testing import CliRunner

from failpath.cli import app

sys.path.insert(0, str(Path(__file__).parent))
import report_sample  # noqa: E402
from watch_systems import lookup, make_policy  # noqa: E402

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def error_of(result) -> str:
    """The message of a command that must have failed with exit code 2 and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    """A store holding a check run, traces and two open tickets."""
    path = tmp_path_factory.mktemp("cli-errors") / "base.db"
    report_sample.run_check(path)
    with make_policy(path) as policy:
        guarded = policy.wrap(lookup)
        tickets = [guarded(text).ticket_id for text in ("bstnn xx", "chcgo zz")]
    return path, tickets


@pytest.fixture
def store(base_store, tmp_path):
    path = tmp_path / "failpath.db"
    shutil.copy(base_store[0], path)
    return path, base_store[1]


@pytest.mark.parametrize("answer, said", [
    ("[" * 20000 + "]" * 20000, "nested more than 64 levels"),
    ("[" * 70 + "]" * 70, "nested more than 64 levels"),
    ("9" * 5000, "integer of 5000 digits"),
    ('{"n": -' + "1" * 5000 + "}", "integer of 5000 digits"),
    ("NaN", "NaN is not a JSON number"),
    ('{"x": Infinity}', "Infinity is not a JSON number"),
    ("-Infinity", "Infinity is not a JSON number"),
], ids=["deep-20000", "deep-70", "int-5000", "negative-int-5000", "nan", "infinity", "minus-infinity"])
def test_review_resolve_refuses_answers_no_store_can_keep(store, answer, said):
    path, (ticket, _) = store
    message = error_of(cli("review", "resolve", ticket, "--answer", answer, "--store", str(path)))
    assert "--answer" in message and said in message
    assert "internal error" not in message
    assert fp.review.get(ticket, store=path).status == fp.TicketStatus.OPEN
    done = cli("review", "resolve", ticket, "--answer", '{"n": ' + "9" * 4300 + "}", "--store", str(path))
    assert done.exit_code == 0, done.output  # the longest integer Python prints is still an answer


@pytest.mark.parametrize("record, said", [
    ("[" * 20000 + "]" * 20000, "nested more than 64 levels"),
    ('{"a": ' + "[" * 70 + "]" * 70 + "}", "nested more than 64 levels"),
    ('{"a": ' + "9" * 5000 + "}", "integer of 5000 digits"),
    ('{"a": NaN}', "NaN is not a JSON number"),
], ids=["deep-20000", "deep-70", "int-5000", "nan"])
def test_perturb_record_refuses_deep_nesting_huge_integers_and_nan(record, said):
    message = error_of(cli("perturb", "--record", record))
    assert "--record" in message and said in message


def test_review_export_into_an_unwritable_folder_names_the_file(store, tmp_path, monkeypatch):
    path, (ticket, _) = store
    assert cli("review", "resolve", ticket, "--answer", '"BOS"', "--store", str(path)).exit_code == 0
    target = tmp_path / "locked" / "cases.jsonl"
    target.parent.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse the file the way a read-only one does
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        target.parent.chmod(0o555)
    try:
        message = error_of(cli("review", "export", "-o", str(target), "--store", str(path)))
    finally:
        target.parent.chmod(0o755)
    assert f"cannot write {target}" in message and "Permission denied" in message
    assert not target.exists() and not list(target.parent.iterdir())


DAMAGED_CELLS = [
    ("runs", "summary", ["runs"], "the runs row"),
    ("runs", "config", ["report"], "the runs row"),
    ("results", "data", ["report", "-o", "{out}/rows.csv"], "the results of run"),
    ("traces", "output", ["traces", "list"], "the traces row"),
    ("traces", "attempts", ["traces", "list"], "the traces row"),
    ("tickets", "output", ["review", "list"], "the tickets row"),
    ("tickets", "status", ["review", "list", "--status", "all"], "the tickets row"),
]


@pytest.mark.parametrize("table, column, command, said", DAMAGED_CELLS)
def test_a_damaged_json_cell_in_the_store_is_an_error_naming_the_row(store, tmp_path, table, column, command, said):
    path, _ = store
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE {table} SET {column} = '{{not json'")
    connection.close()
    args = [part.format(out=tmp_path) for part in command]
    message = error_of(cli(*args, "--store", str(path)))
    assert "damaged value" in message and said in message and "restore it from a backup" in message
