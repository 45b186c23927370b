"""Output that goes to a pipe (CI logs, ``| cat``) is never cut: ``COLUMNS`` when set, else a wide
layout, and table cells fold onto the next line instead of ending in an ellipsis."""

from __future__ import annotations

import json

import pytest
from ci_project import failpath, write_project

from failpath.chaos import get_suite
from failpath.cli._console import PIPE_WIDTH, output_width


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipes")
    write_project(folder, policy="partial")
    done = failpath(folder, "check", "--quiet", "--no-html", "--json", "result.json")
    assert done.returncode == 1, done.stderr
    return folder, done, json.loads((folder / "result.json").read_text(encoding="utf-8"))


def test_output_width_is_columns_or_the_pipe_width_off_a_terminal(monkeypatch, tmp_path):
    with open(tmp_path / "out.txt", "w") as handle:
        monkeypatch.delenv("COLUMNS", raising=False)
        assert output_width(handle) == PIPE_WIDTH
        monkeypatch.setenv("COLUMNS", "64")
        assert output_width(handle) == 64
        monkeypatch.setenv("COLUMNS", "wide")
        assert output_width(handle) == PIPE_WIDTH


def test_perturb_list_piped_shows_every_name_and_family_whole(tmp_path):
    done = failpath(tmp_path, "perturb", "--list")
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    cells = {cell.strip() for line in done.stdout.splitlines() for cell in line.split("│")}
    for suite in map(get_suite, ("hostile", "realistic", "fault")):  # the built-in suites the child process lists
        assert suite.family in cells, suite.family
        for perturbation in suite.perturbations:
            assert perturbation.name in cells, perturbation.name


def test_perturb_list_at_narrow_columns_folds_and_loses_nothing(tmp_path):
    done = failpath(tmp_path, "perturb", "--list", COLUMNS="70")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 70 and "…" not in done.stdout
    rows = [line for line in lines if line.startswith("│")]
    assert all(line.endswith("│") for line in rows)  # no row is cropped at the right edge
    last_column = "".join(line.split("│")[-2].strip() for line in rows)
    assert "instruction-overridestring" in last_column  # the description is all there, folded


def test_check_piped_prints_every_criterion_name_whole(demo):
    _, done, document = demo
    names = [reason["name"] for reason in document["verdict"]["reasons"]]
    assert any(len(name) > 20 for name in names)  # long enough to have been cut at 80 columns
    for name in names:
        assert name in done.stdout
    assert "…" not in done.stdout.split("The gap")[0]
    assert max(len(line) for line in done.stdout.splitlines()) <= 120


def test_report_piped_honours_columns_and_cuts_no_name(demo):
    folder, _, document = demo
    wide = failpath(folder, "report", "--store", "store.db")
    assert wide.returncode == 0, wide.stderr
    for reason in document["verdict"]["reasons"]:
        assert reason["name"] in wide.stdout
    narrow = failpath(folder, "report", "--store", "store.db", COLUMNS="60")
    assert narrow.returncode == 0, narrow.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60
    banner = narrow.stdout.split("The gap")[0]
    assert "…" not in banner  # names fold onto the next line; nothing is cut
    # The first word after the mark on each line of the panel: the criterion name's column, where a
    # folded name goes on at the start of the next line. Joined, each whole name must be found in it.
    rows = [line.split("│")[1][4:] for line in banner.splitlines() if line.count("│") == 2]
    name_column = "".join(row.split()[0] for row in rows if row.strip())
    for reason in document["verdict"]["reasons"]:
        assert reason["name"] in name_column
