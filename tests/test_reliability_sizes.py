"""A check refuses an oversized case up front, naming it (item 18 of the reliability issue): a 20 MB
input used to fail minutes into the run with SQLite's "string or blob too big", naming no case."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.check.datasets import MAX_INPUT_BYTES, check_case_sizes
from failpath.cli import app
from failpath.core import Case, ConfigError, DatasetError

sys.path.insert(0, str(Path(__file__).parent))
from test_check_cli import project  # noqa: E402,F401 - a toy system, its cases and failpath.toml

BIG = "x" * (20 << 20)  # 20 MB


def cases(big_at: int = 3) -> list[Case]:
    return [Case(id=f"c{i}", input=BIG if i == big_at else f"item {i}", expected=f"ITEM {i}") for i in range(8)]


def test_a_20_mb_input_is_refused_before_any_call_naming_the_case(tmp_path):
    calls = []

    def system(text):
        calls.append(text)
        return text.upper()

    started = time.monotonic()
    with pytest.raises(DatasetError, match=r"case 'c3': its input is 20\.0 MB as JSON, over the limit of 1\.0 MB"):
        fp.check(system, cases(), store=tmp_path / "s.db", suites=["hostile"], quiet=True)
    assert calls == [] and time.monotonic() - started < 30


def test_the_limit_is_configurable_and_can_be_turned_off(tmp_path):
    small = [Case(id="a", input="y" * 5000, expected="Y"), Case(id="b", input="z", expected="Z" * 3000)]
    with pytest.raises(DatasetError, match=r"case 'a': its input is 4\.9 KB"):
        check_case_sizes(small, 4096)
    with pytest.raises(DatasetError, match="case 'b': its expected answer"):
        check_case_sizes(small[1:], 2048)
    check_case_sizes(small, None)
    check_case_sizes(small, MAX_INPUT_BYTES)
    # Characters JSON escapes count as what they take: 30,000 control characters are 180,000 bytes.
    with pytest.raises(DatasetError, match="case 'c'"):
        check_case_sizes([Case(id="c", input="\x01" * 30_000, expected="")], 100_000)
    with pytest.raises(ConfigError, match="max_input_bytes must be a positive integer"):
        fp.check(lambda x: x, small, store=tmp_path / "s.db", suites=[], quiet=True, max_input_bytes=0)
    result = fp.check(lambda x: x.upper(), small * 1, store=tmp_path / "s.db", suites=[], quiet=True,
                      max_input_bytes=None, worst_cases=0)
    assert result.n_cases == 2


def test_the_cli_names_the_case_and_failpath_toml_sets_the_limit(project):  # noqa: F811
    lines = (project / "cases.jsonl").read_text().splitlines()
    row = json.loads(lines[5])
    row["text"] = "w" * 300_000
    lines[5] = json.dumps(row)
    (project / "cases.jsonl").write_text("\n".join(lines) + "\n")
    config = project / "failpath.toml"
    config.write_text(config.read_text().replace('expected = "label"', 'expected = "label"\nmax_input_bytes = 200000'))
    result = CliRunner().invoke(app, ["check", "--quiet", "--no-html"])
    assert result.exit_code == 2
    assert f"case {row['id']!r}: its input is 293.0 KB as JSON, over the limit of 195.3 KB" in result.output
    config.write_text(config.read_text().replace("max_input_bytes = 200000", "max_input_bytes = 400000"))
    result = CliRunner().invoke(app, ["check", "--quiet", "--no-html"])
    assert result.exit_code in (0, 1), result.output
