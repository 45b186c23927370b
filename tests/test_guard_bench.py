"""The guard-overhead benchmark runs: alone, and against a git revision in the same run (few calls)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "guard_overhead.py"
VARIANTS = {"minimal/nostore", "minimal", "readme", "readme+schema", "readme+timeout", "async"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300, check=False)


def test_one_run_gives_every_variant_as_json():
    done = _run("--json", "--calls", "40")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # every call left its trace in the store
    figures = json.loads(done.stdout)
    assert set(figures) == VARIANTS
    for row in figures.values():
        assert row["bare"] > 0 and row["guarded"] > row["bare"]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a checkout")
def test_against_a_revision_prints_both_versions_and_their_ratio():
    done = _run("--against", "HEAD", "--rounds", "2", "--calls", "40")
    assert done.returncode == 0, done.stderr
    assert "this code against HEAD, 2 rounds" in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.split() and line.split()[0] in VARIANTS]
    assert {row[0] for row in rows} == VARIANTS
    for name, before, after, ratio, _range in rows:
        assert float(before) > 0 and float(after) > 0 and ratio.endswith("x")
    assert done.stderr.count("round") == 2 and "after then before" in done.stderr  # the order alternates


def test_an_unknown_revision_is_named():
    done = _run("--against", "no-such-revision-xyz", "--rounds", "1", "--calls", "10")
    assert done.returncode != 0 and "--against no-such-revision-xyz: git archive failed" in done.stderr
