"""Read commands open a store on read-only media (item 20 of the reliability issue).

The media is real: a read-only bind mount when the tests run as root (root writes through file modes),
a folder and file without write permission otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failpath.cli import app
from failpath.core import StoreError
from failpath.store.opening import open_store_to_read
from failpath.store.sqlite import SQLiteStore

sys.path.insert(0, str(Path(__file__).parent))
import report_sample  # noqa: E402
from watch_systems import lookup, make_policy  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def closed_store(tmp_path_factory):
    """A store holding a check run, traces and a ticket, closed cleanly (no -wal, no -shm left)."""
    path = tmp_path_factory.mktemp("ro-source") / "failpath.db"
    report_sample.run_check(path)
    with make_policy(path) as policy:
        guarded = policy.wrap(lookup)
        guarded("bstnn xx")
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    return path


class ReadOnlyMedia:
    """A folder whose files cannot be written; ``put`` copies files into it first."""

    def __init__(self, root: Path) -> None:
        self.source = root / "source"
        self.view = root / "view"
        self.source.mkdir()
        self.view.mkdir()
        self.mounted = False

    def seal(self) -> None:
        if os.geteuid() == 0:
            done = subprocess.run(["mount", "--bind", str(self.source), str(self.view)], capture_output=True)
            if done.returncode:
                pytest.skip(f"cannot make a read-only mount here: {done.stderr.decode().strip()}")
            self.mounted = True
            done = subprocess.run(["mount", "-o", "remount,bind,ro", str(self.view)], capture_output=True)
            assert done.returncode == 0, done.stderr
        else:
            self.view.rmdir()
            self.source.rename(self.view)
            for file in self.view.iterdir():
                file.chmod(0o444)
            self.view.chmod(0o555)
        with pytest.raises(OSError):
            (self.view / "probe").write_text("x")

    def release(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.view)], check=True)
        elif self.view.exists():
            self.view.chmod(0o755)


@pytest.fixture
def media(tmp_path):
    made = ReadOnlyMedia(tmp_path)
    try:
        yield made
    finally:
        made.release()


def test_read_commands_open_a_cleanly_closed_store_on_read_only_media(closed_store, media, tmp_path):
    shutil.copy(closed_store, media.source / "failpath.db")
    media.seal()
    store = str(media.view / "failpath.db")
    for command in (["runs"], ["report", "-o", str(tmp_path / "report.json")], ["traces", "list"],
                    ["traces", "stats"], ["review", "list"]):
        result = runner.invoke(app, [*command, "--store", store])
        assert result.exit_code == 0, (command, result.output, result.exception)
    assert (tmp_path / "report.json").is_file()
    assert sorted(p.name for p in media.view.iterdir()) == ["failpath.db"]  # nothing written beside it
    listed = runner.invoke(app, ["review", "list", "--store", store, "--json"])
    (ticket,) = json.loads(listed.output)
    refused = runner.invoke(app, ["review", "resolve", ticket["ticket_id"], "--answer", '"BOS"', "--store", store])
    assert refused.exit_code == 2 and "readonly" in refused.output.replace("-", "").replace(" ", "")


def test_a_store_left_with_commits_in_its_wal_file_is_refused_with_a_message(closed_store, media):
    path = media.source / "failpath.db"
    shutil.copy(closed_store, path)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute("UPDATE traces SET policy = 'changed'")
    # The process "dies" with the commit in the -wal file; SQLite's -shm goes with it (a copied folder).
    copy = media.source / "copy.db"
    shutil.copy(path, copy)
    shutil.copy(f"{path}-wal", f"{copy}-wal")
    connection.close()
    for extra in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        extra.unlink(missing_ok=True)
    media.seal()
    result = runner.invoke(app, ["traces", "list", "--store", str(media.view / "copy.db")])
    assert result.exit_code == 2
    assert "not closed cleanly" in result.output and "copy the folder to writable storage" in result.output


def test_a_read_only_store_reads_and_refuses_writes(closed_store, tmp_path):
    path = tmp_path / "failpath.db"
    shutil.copy(closed_store, path)
    with SQLiteStore(path, read_only=True) as store:
        assert store.count_traces() == closed_store_traces(closed_store)
        assert store.list_runs(kind="check")
        with pytest.raises(StoreError):
            store.create_run("new-run", kind="check", config={})
    with open_store_to_read(path) as store:  # writable: opened as usual
        assert not getattr(store, "read_only", False)


def closed_store_traces(path: Path) -> int:
    with SQLiteStore(path) as store:
        return store.count_traces()
