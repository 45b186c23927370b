"""Suites: determinism (also across processes), registration, ordering; the ``failpath perturb`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.chaos import (
    FAULT,
    HOSTILE,
    PERTURBATIONS,
    REALISTIC,
    SUITES,
    Chain,
    Casing,
    KeyboardTypo,
    LabelContract,
    NotApplicable,
    Suite,
    get_perturbation,
    get_suite,
    ordered,
    register_suite,
)
from failpath.chaos.suites import _REGISTRY
from failpath.cli import app
from failpath.core import Case, ConfigError

ADDRESS = Case(
    "addr-1",
    "Apt 1B 626 E Kilbourn Ave Milwaukee, WI 53202",
    [("Apt", "OccupancyType"), ("1B", "OccupancyIdentifier"), ("626", "AddressNumber"), ("E", "StreetNamePreDirectional"),
     ("Kilbourn", "StreetName"), ("Ave", "StreetNamePostType"), ("Milwaukee,", "PlaceName"), ("WI", "StateName"), ("53202", "ZipCode")],
)  # fmt: skip
RECORD = Case("rec-1", {"name": "Ann Lee", "city": "Springfield", "phone": "(217) 555-0147", "joined": "2024-03-05", "total": 1234}, "ok")

_DUMP = """
import json, sys
sys.path.insert(0, {src!r})
from failpath.chaos import get_suite
from failpath.core import Case
cases = [Case(c["id"], c["input"], c["expected"]) for c in json.loads(sys.stdin.read())]
out = []
for name in ("hostile", "realistic", "fault"):
    for case in cases:
        for v in get_suite(name).variants(case, seed=11):
            out.append(v.to_dict())
print(json.dumps(out, ensure_ascii=False))
"""


def _dump_here() -> list:
    out = []
    for name in ("hostile", "realistic", "fault"):
        for case in (ADDRESS, RECORD):
            out.extend(v.to_dict() for v in get_suite(name).variants(case, seed=11))
    return json.loads(json.dumps(out, ensure_ascii=False))


def test_same_seed_same_variants_in_another_process():
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    payload = json.dumps([{"id": c.id, "input": c.input, "expected": c.expected} for c in (ADDRESS, RECORD)])
    runs = []
    for hashseed in ("1", "2"):  # different str hashing: nothing may depend on hash()
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        proc = subprocess.run(
            [sys.executable, "-c", _DUMP.format(src=src)], input=payload, capture_output=True, text=True, env=env, timeout=60, check=True
        )
        runs.append(json.loads(proc.stdout))
    here = _dump_here()
    # JSON turned tuples into lists on the way in; compare the renderings.
    assert runs[0] == runs[1] == here
    assert len(here) > 30


def test_variants_are_deterministic_and_seed_dependent():
    a = REALISTIC.variants(ADDRESS, seed=1)
    assert a == REALISTIC.variants(ADDRESS, seed=1)
    assert a != REALISTIC.variants(ADDRESS, seed=2)
    assert len({v.id for v in a}) == len(a)
    for v in a:
        assert v.case_id == ADDRESS.id and v.index in range(REALISTIC.variants_per_case)


def test_variants_skip_what_does_not_apply_and_never_repeat():
    variants = REALISTIC.variants(ADDRESS, seed=0)
    names = {v.perturbation for v in variants}
    assert "drop_field" not in names  # a record perturbation on text: skipped
    assert {"typo", "casing", "expand"} <= names
    assert "move_unit" not in names  # the unit is at the front already
    keys = [(v.perturbation, repr(v.input)) for v in variants]
    assert len(keys) == len(set(keys))
    assert REALISTIC.why_not(ADDRESS)["drop_field"].startswith("drop_field needs a record")


def test_asking_for_n_variants():
    assert len(REALISTIC.variants(ADDRESS, seed=0, n=7)) == 7
    assert len(REALISTIC.variants(ADDRESS, seed=0, n=60)) == 60
    only_casing = Suite("casing-only", "realistic", (Casing(),))
    assert len(only_casing.variants(ADDRESS, seed=0, n=10)) == 3  # lower, upper, title: then it runs out


def test_built_in_suites_and_order():
    assert list(SUITES)[:3] == ["hostile", "realistic", "fault"]
    assert get_suite("fault") is FAULT and get_suite(HOSTILE) is HOSTILE
    assert [s.name for s in ordered(["fault", "realistic", "hostile"])] == ["hostile", "realistic", "fault"]
    for suite in (HOSTILE, REALISTIC, FAULT):
        assert all(p.family == suite.family for p in suite.perturbations)
    assert get_perturbation("typo") is PERTURBATIONS["typo"]


def test_unknown_names_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown suite 'realstic'; valid suites: hostile, realistic, fault"):
        get_suite("realstic")
    with pytest.raises(ConfigError, match="unknown perturbation 'tpyo'"):
        get_perturbation("tpyo")


def test_register_a_suite():
    mine = Suite("typos-only", "realistic", (KeyboardTypo(), KeyboardTypo(name="two_typos", intensity=2)), variants_per_case=3)
    try:
        register_suite(mine)
        assert get_suite("typos-only") is mine
        with pytest.raises(ConfigError, match="registered already"):
            register_suite(mine)
        register_suite(Suite("typos-only", "realistic", (KeyboardTypo(),)), replace=True)
        with pytest.raises(ConfigError, match="built in"):
            register_suite(Suite("realistic", "realistic", (KeyboardTypo(),)), replace=True)
        variants = get_suite("typos-only").variants(ADDRESS, seed=0)
        assert variants and all(v.perturbation == "typo" for v in variants)
    finally:
        _REGISTRY.pop("typos-only", None)


def test_bad_suites_are_refused():
    with pytest.raises(ConfigError, match="family must be one of"):
        Suite("x", "weird", (KeyboardTypo(),))
    with pytest.raises(ConfigError, match="no perturbations"):
        Suite("x", "realistic", ())
    with pytest.raises(ConfigError, match="repeated: typo"):
        Suite("x", "realistic", (KeyboardTypo(), KeyboardTypo()))
    with pytest.raises(ConfigError, match="is not a perturbation"):
        Suite("x", "realistic", (lambda c, r: c,))
    with pytest.raises(ConfigError, match="variants_per_case"):
        Suite("x", "realistic", (KeyboardTypo(),), variants_per_case=0)


def test_a_chain_applies_its_steps_in_order_and_keeps_the_weakest_contract():
    chain = Chain(steps=(Casing(mode="lower"), KeyboardTypo()))
    v = chain.apply(ADDRESS, __import__("random").Random(0))
    assert v.perturbation == "casing+typo" and v.contract is LabelContract.TRANSFORMED
    assert v.input.split()[0] == "apt" and any(e.kind == "typo" for e in v.edits)
    nothing = Chain(steps=(Casing(mode="lower"),)).apply(Case("n", "123 456", "x"), __import__("random").Random(0))
    assert isinstance(nothing, NotApplicable)


def test_top_level_exports():
    assert fp.LabelContract is LabelContract and fp.Suite is Suite
    assert fp.chaos.get_suite("hostile") is HOSTILE
    assert LabelContract("unchanged") is LabelContract.UNCHANGED and LabelContract.NOT_PRESERVED == "not_preserved"


def test_importing_failpath_does_not_import_hypothesis():
    code = "import sys, failpath, failpath.chaos; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the CLI

runner = CliRunner()


def test_cli_perturb_prints_a_table_with_the_perturbations():
    result = runner.invoke(app, ["perturb", "Apt 1B 626 East Kilbourn Avenue, Milwaukee, WI 53202", "--suite", "realistic", "-n", "10", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "10 variants" in result.output and "suite realistic" in result.output
    assert sum(name in result.output for name in REALISTIC.names) >= 3


def test_cli_perturb_json_is_one_record_per_variant_and_deterministic():
    args = ["perturb", "123 Main St, Springfield, IL 62704", "-s", "hostile", "-n", "5", "--seed", "3", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in first.output.strip().splitlines()]
    assert len(rows) == 5
    assert all(r["family"] == "hostile" and r["seed"] == 3 and r["perturbation"] in HOSTILE.names for r in rows)
    assert all(r["contract"] in {c.value for c in LabelContract} for r in rows)
    assert runner.invoke(app, args).output == first.output


def test_cli_perturb_list_shows_every_perturbation():
    result = runner.invoke(app, ["perturb", "--list", "--json"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert {r["name"] for r in rows} >= set(PERTURBATIONS)
    typo = next(r for r in rows if r["name"] == "typo")
    assert typo["contract"] == "transformed" and typo["contract_plain"] == "unchanged" and typo["family"] == "realistic"
    table = runner.invoke(app, ["perturb", "--list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "injection" in table.output and "not_preserved" in table.output


def test_cli_perturb_bad_suite_exits_2_listing_valid_ones():
    result = runner.invoke(app, ["perturb", "text", "--suite", "nope"])
    assert result.exit_code == 2
    assert "unknown suite 'nope'" in result.output and "hostile, realistic, fault" in result.output


def test_cli_perturb_other_input_errors():
    assert runner.invoke(app, ["perturb"]).exit_code == 2
    bad_json = runner.invoke(app, ["perturb", "{not json", "--record"])
    assert bad_json.exit_code == 2 and "not valid JSON" in bad_json.output
    not_object = runner.invoke(app, ["perturb", "[1, 2]", "--record"])
    assert not_object.exit_code == 2 and "JSON object" in not_object.output
    unknown = runner.invoke(app, ["perturb", "x", "-p", "tpyo"])
    assert unknown.exit_code == 2 and "no perturbation 'tpyo'" in unknown.output


def test_cli_perturb_records_stdin_and_invisible_characters():
    record = runner.invoke(app, ["perturb", '{"city": "Chicago", "phone": "312-555-0147"}', "--record", "-n", "3", "--json"])
    assert record.exit_code == 0
    assert all(isinstance(json.loads(line)["input"], dict) for line in record.output.strip().splitlines())
    stdin = runner.invoke(app, ["perturb", "-", "-s", "hostile", "-p", "zero_width", "-n", "1"], input="123 Main St")
    assert stdin.exit_code == 0 and "\\u" in stdin.output  # zero-width characters are shown as escapes
    none = runner.invoke(app, ["perturb", "12 34", "-p", "abbreviate"])
    assert none.exit_code == 0 and "no perturbation" in none.output


def test_cli_help_lists_perturb():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "perturb" in result.output


def test_visible_escapes_invisible_characters():
    from failpath.cli.perturb import visible

    assert visible("a\u200bb\x00c\td\u202e") == "a\\u200bb\\x00c\\td\\u202e"
    assert visible("plain text, ünïcode") == "plain text, ünïcode"


def test_share_draws_for_a_stable_subset_of_cases():
    from failpath.chaos import FAULT, Suite
    from failpath.core import Case, ConfigError

    quarter = Suite("fault-quarter", "fault", FAULT.perturbations, share=0.25)
    cases = [Case(f"c{i}", f"{i} Main St", "x") for i in range(400)]
    drawn = [c.id for c in cases if quarter.variants(c, seed=3)]
    assert 60 <= len(drawn) <= 140  # about a quarter of 400
    assert drawn == [c.id for c in cases if quarter.variants(c, seed=3)]  # the same cases every time
    assert drawn != [c.id for c in cases if quarter.variants(c, seed=4)]  # the seed picks them
    picked = next(c for c in cases if c.id in drawn)
    assert len(quarter.variants(picked, seed=3)) == len(FAULT.variants(picked, seed=3))
    for bad in (0, 1.5, -0.1, True, "half"):
        with pytest.raises(ConfigError, match="share"):
            Suite("bad", "fault", FAULT.perturbations, share=bad)


def test_variants_are_numbered_exactly_as_dataclasses_replace_would():
    """Suite.variants builds its numbered copies field by field; they must equal replace()'s."""
    import dataclasses

    from failpath.chaos import get_suite
    from failpath.chaos.base import derive_rng
    from failpath.core import Case

    case = Case(id="r1", input="12 Main Street, Springfield IL 62704", expected="12 MAIN STREET")
    for name in ("hostile", "realistic", "fault"):
        suite = get_suite(name)
        for variant in suite.variants(case, 3):
            p = next(p for p in suite.perturbations if p.name == variant.perturbation)
            fresh = p.apply(case, derive_rng(3, case.id, p.name, variant.index))
            assert variant == dataclasses.replace(fresh, case_id=case.id, index=variant.index)


# --------------------------------------------------------------------------- contracts a user declares

NAME_CASE = fp.Case("n", "Smith, John A.", [("Smith,", "Surname"), ("John", "GivenName"), ("A.", "MiddleInitial")])


def test_a_user_declares_a_contract_that_does_not_hold_for_their_data():
    names = REALISTIC.with_contracts({"drop_punctuation": "not_preserved", "casing": LabelContract.NOT_PRESERVED}, name="names")
    assert names.name == "names" and names.names == REALISTIC.names
    by_name = {p.name: p for p in names.perturbations}
    assert by_name["casing"].contract is LabelContract.NOT_PRESERVED
    assert "declared not_preserved" in by_name["casing"].description
    variants = names.variants(NAME_CASE, seed=0)
    seen = {v.perturbation: v.contract for v in variants}
    assert seen["casing"] is LabelContract.NOT_PRESERVED
    assert seen["drop_punctuation"] is LabelContract.NOT_PRESERVED
    assert seen["crm_mix"] is LabelContract.NOT_PRESERVED  # the chain holds drop_punctuation and casing
    assert seen["typo"] is LabelContract.TRANSFORMED
    # The variants themselves are the suite's own: only the contract changed.
    plain = {(v.perturbation, v.input) for v in REALISTIC.variants(NAME_CASE, seed=0)}
    assert {(v.perturbation, v.input) for v in variants} == plain
    # A declaration only weakens: a variant already NOT_PRESERVED stays so under "transformed".
    weaker = REALISTIC.with_contracts({"drop_punctuation": "transformed"})
    comma_only = fp.Case("c", "Smith, John", [("Smith,", "Surname"), ("John", "GivenName")])
    v = next(v for v in weaker.variants(comma_only) if v.perturbation == "drop_punctuation")
    assert v.contract is LabelContract.NOT_PRESERVED


def test_a_user_leaves_perturbations_out():
    smaller = REALISTIC.without("abbreviate", "expand", "move_unit", name="names")
    assert smaller.name == "names" and not {"abbreviate", "expand", "move_unit"} & set(smaller.names)
    assert len(smaller.names) == len(REALISTIC.names) - 3
    assert REALISTIC.without("typo").name == "realistic"


def test_declaring_a_contract_names_what_is_wrong():
    with pytest.raises(fp.ConfigError, match="no perturbation named 'drop_punctuaton'.*drop_punctuation"):
        REALISTIC.with_contracts({"drop_punctuaton": "not_preserved"})
    with pytest.raises(fp.ConfigError, match="must be one of unchanged, transformed, not_preserved"):
        REALISTIC.with_contracts({"casing": "broken"})
    with pytest.raises(fp.ConfigError, match="no perturbation named 'nope'"):
        REALISTIC.without("nope")
    with pytest.raises(fp.ConfigError, match="nothing would be left"):
        Suite("one", "realistic", (Casing(),)).without("casing")
