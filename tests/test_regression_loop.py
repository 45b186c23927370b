"""The regression loop closes: resolved escalations are exported under the column names of the check's
dataset, and the exported file is listed in ``[dataset] paths`` beside the cases as it is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.check.config import check_kwargs, load_config
from failpath.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from watch_systems import lookup, make_policy  # noqa: E402

CONFIG = """\
system = "watch_systems:lookup"

[dataset]
{dataset}
id = "key"
input = "text"
expected = "code"
tags = "labels"

[judge]
name = "exact"
"""


def _escalate_and_resolve(store: Path) -> list[str]:
    with make_policy(store, raw_inputs=True) as policy:
        guarded = policy.wrap(lookup)
        outcomes = [guarded(text) for text in ("bstnn xx", "chcgo zz")]
    assert all(isinstance(o, fp.Escalated) for o in outcomes)
    fp.review.resolve(outcomes[0].ticket_id, "BOS", store=store)
    fp.review.resolve(outcomes[1].ticket_id, "ORD", store=store)
    return [o.ticket_id for o in outcomes]


def test_exported_cases_use_the_dataset_columns_and_join_the_next_check(tmp_path, monkeypatch):
    store = tmp_path / "failpath.db"
    tickets = _escalate_and_resolve(store)
    cases = [{"key": "k1", "text": "boston", "code": "BOS"}, {"key": "k2", "text": "denver", "code": "DEN"}]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    config = tmp_path / "failpath.toml"
    config.write_text(CONFIG.format(dataset='path = "cases.jsonl"'), encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    exported = CliRunner().invoke(app, ["review", "export", "--output", "regressions.jsonl", "--store", str(store)])
    assert exported.exit_code == 0, exported.output
    assert "column names of failpath.toml [dataset]" in exported.stderr and "input as 'text'" in exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "regressions.jsonl").read_text().splitlines()]
    assert [set(row) for row in rows] == [{"key", "text", "code", "labels"}] * 2
    assert [(row["key"], row["text"], row["code"]) for row in rows] == [
        (f"review-{tickets[0]}", "bstnn xx", "BOS"), (f"review-{tickets[1]}", "chcgo zz", "ORD"),
    ]

    config.write_text(CONFIG.format(dataset='paths = ["cases.jsonl", "regressions.jsonl"]'), encoding="utf-8")
    kwargs = check_kwargs(load_config(config))
    assert [(c.id, c.input, c.expected) for c in kwargs["cases"]] == [
        ("k1", "boston", "BOS"), ("k2", "denver", "DEN"),
        (f"review-{tickets[0]}", "bstnn xx", "BOS"), (f"review-{tickets[1]}", "chcgo zz", "ORD"),
    ]
    assert "queue:review" in kwargs["cases"][2].tags

    again = CliRunner().invoke(app, ["review", "export", "--output", "more.jsonl", "--store", str(store)])
    assert again.exit_code == 0
    config.write_text(CONFIG.format(dataset='paths = ["cases.jsonl", "regressions.jsonl", "more.jsonl"]'), encoding="utf-8")
    with pytest.raises(fp.DatasetError, match=r"more\.jsonl:1: duplicate id 'review-.*regressions\.jsonl:1 has it too"):
        check_kwargs(load_config(config))


def test_export_with_an_explicit_config_and_without_one(tmp_path, monkeypatch):
    store = tmp_path / "failpath.db"
    _escalate_and_resolve(store)
    monkeypatch.chdir(tmp_path)  # no failpath.toml here: the default names
    plain = CliRunner().invoke(app, ["review", "export", "--store", str(store)])
    assert plain.exit_code == 0
    assert set(json.loads(plain.stdout.splitlines()[0])) == {"id", "input", "expected", "tags"}
    elsewhere = tmp_path / "project" / "failpath.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(CONFIG.format(dataset='path = "cases.jsonl"'), encoding="utf-8")
    mapped = CliRunner().invoke(app, ["review", "export", "--store", str(store), "--config", str(elsewhere)])
    assert mapped.exit_code == 0
    assert set(json.loads(mapped.stdout.splitlines()[0])) == {"key", "text", "code", "labels"}
    missing = CliRunner().invoke(app, ["review", "export", "--store", str(store), "--config", "nowhere.toml"])
    assert missing.exit_code == 2 and "nowhere.toml" in missing.output
