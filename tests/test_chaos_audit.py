"""The audit of a suite over a dataset: what each perturbation does to the cases and their expected answers."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from failpath.chaos import REALISTIC, audit_suite
from failpath.cli import app
from failpath.core import Case, ConfigError
from failpath.examples.addresses.data import generate_addresses

NAMES = [
    Case("n0", "Smith, John", [("Smith,", "Surname"), ("John", "GivenName")]),
    Case("n1", "Dr. John West", [("Dr.", "Title"), ("John", "GivenName"), ("West", "Surname")]),
    Case("n2", "RUSH, WILLIE H", [("RUSH,", "Surname"), ("WILLIE", "GivenName"), ("H", "MiddleInitial")]),
    Case("n3", "Mary Ann Lee", [("Mary", "GivenName"), ("Ann", "MiddleName"), ("Lee", "Surname")]),
]
RECORD_EDITS = {"drop_field", "blank_field", "swap_fields", "duplicate_into_field", "reorder_fields",
                "reformat_date", "reformat_phone", "reformat_number", "reformat_case", "stray_whitespace"}  # fmt: skip


def test_the_audit_names_what_made_nothing_for_names():
    result = audit_suite(NAMES, "realistic", seed=0, samples=3)
    assert result.n_cases == 4 and [p.name for p in result.perturbations] == list(REALISTIC.names)
    assert result.no_ops == ("abbreviate", "expand", "move_unit")
    assert set(result.other_input_kind) == RECORD_EDITS
    abbreviate = result["abbreviate"]
    assert abbreviate.n_variants == 0 and abbreviate.n_not_applicable == 4
    assert "no word from the tables" in next(iter(abbreviate.reasons))


def test_the_audit_shows_the_expected_answer_before_and_after():
    result = audit_suite(NAMES, "realistic", seed=0, samples=3)
    drop = result["drop_punctuation"]
    assert drop.contracts["not_preserved"] == 2 and drop.contracts["transformed"] >= 1  # the two surname commas
    assert drop.n_cases_varied + drop.n_not_applicable == 4
    shown = {s.contract for s in drop.samples}
    assert shown == {"not_preserved", "transformed"}  # one sample of each contract seen
    sample = next(s for s in drop.samples if s.case_id == "n0")
    assert sample.input_before == "Smith, John" and sample.input_after == "Smith John"
    assert sample.expected_before[0] == ("Smith,", "Surname") and sample.expected_after[0] == ("Smith", "Surname")
    assert sample.expected_changed and sample.edits[0].before == "Smith,"
    assert result["crm_mix"].contracts.get("not_preserved", 0) >= 2
    whitespace = result["whitespace"].samples[0]
    assert not whitespace.expected_changed
    document = json.loads(json.dumps(result.to_dict()))
    assert document["no_ops"] == ["abbreviate", "expand", "move_unit"]
    drop_document = next(p for p in document["perturbations"] if p["name"] == "drop_punctuation")
    first = next(s for s in drop_document["samples"] if s["case_id"] == "n0")
    assert first["expected_before"][0] == ["Smith,", "Surname"] and first["expected_changed"] is True


def test_the_audit_of_addresses_finds_every_text_perturbation_at_work():
    cases = generate_addresses(40, seed=3)
    result = audit_suite(cases, "realistic", seed=0, samples=1)
    assert result.no_ops == ()
    assert result["drop_punctuation"].contracts.get("not_preserved", 0) == 0
    assert result["abbreviate"].n_variants > 0 and result["abbreviate"].contracts == {"transformed": result["abbreviate"].n_variants}
    declared = audit_suite(cases, REALISTIC.with_contracts({"casing": "not_preserved"}), samples=0)
    assert declared["casing"].contracts == {"not_preserved": declared["casing"].n_variants}
    assert all(p.samples == () for p in declared.perturbations)


def test_the_audit_refuses_what_it_cannot_audit():
    with pytest.raises(ConfigError, match="no cases"):
        audit_suite([], "realistic")
    with pytest.raises(ConfigError, match="Case values.*load_cases"):
        audit_suite([{"input": "x"}], "realistic")
    with pytest.raises(ConfigError, match="unknown suite"):
        audit_suite(NAMES, "realistc")


def _write(path, cases):
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps({"id": c.id, "input": c.input, "expected": [list(p) for p in c.expected]}) + "\n")


runner = CliRunner()


def test_cli_perturb_audit_prints_samples_and_the_perturbations_that_made_nothing(tmp_path):
    path = tmp_path / "names.jsonl"
    _write(path, NAMES)
    result = runner.invoke(app, ["perturb", "--audit", str(path), "--samples", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "audit · suite realistic · 4 cases" in result.output
    assert "Smith,/Surname → Smith/Surname" in result.output and "not_preserved" in result.output
    assert "made nothing for this data: abbreviate, expand, move_unit" in result.output
    assert "not for this kind of input: drop_field" in result.output

    as_json = runner.invoke(app, ["perturb", "--audit", str(path), "--json", "-p", "drop_punctuation", "-p", "abbreviate"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert [p["name"] for p in document["perturbations"]] == ["drop_punctuation", "abbreviate"]
    assert document["no_ops"] == ["abbreviate"]


def test_cli_perturb_audit_names_a_file_it_cannot_read(tmp_path):
    result = runner.invoke(app, ["perturb", "--audit", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "--audit" in result.output and "missing.jsonl" in result.output
