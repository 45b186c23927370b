"""The check fits AnomalousInput(fit="check") on its calibration half, measures every input detector, counts variants.

The domain here is person names ("First Last", "Last, First") parsed by a rule-based parser that
handles any case: the fitted detector must not refuse re-cased names the parser handles, must flag
addresses sent to it, and the report must say which perturbations made nothing for names.
"""

from __future__ import annotations

import json

import pytest

import failpath as fp
from failpath.check.fitting import check_fitted, install_fitted, read_inputs, shifted_sources
from failpath.check.result import CheckResult

pytest.importorskip("sklearn")
pytest.importorskip("faker")


def parse_name(text: str) -> list[tuple[str, str]]:
    """'Last, First' or 'First Last', in any case and with any blanks."""
    tokens = text.split()
    if len(tokens) == 2 and tokens[0].endswith(","):
        return [(tokens[0], "Surname"), (tokens[1], "GivenName")]
    if len(tokens) == 2:
        return [(tokens[0], "GivenName"), (tokens[1], "Surname")]
    return [(t, "Unknown") for t in tokens]


def name_cases(n: int, seed: int) -> list[fp.Case]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    cases = []
    for i in range(n):
        given, surname = fake.first_name(), fake.last_name()
        pairs = [(surname + ",", "Surname"), (given, "GivenName")] if i % 3 == 0 else [(given, "GivenName"), (surname, "Surname")]
        cases.append(fp.Case(f"name-{i}", " ".join(t for t, _ in pairs), pairs))
    return cases


def addresses(n: int) -> list[str]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(3)
    return [fake.address().replace("\n", ", ") for _ in range(n)]


def names_policy(detector: fp.AnomalousInput) -> fp.Policy:
    return fp.Policy(
        "names",
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("Please type a name.")),
            fp.on(detector).do(fp.Clarify("That does not look like a name.")),
            fp.on(fp.Unexpected()).do(fp.Abstain("failed")),
        ],
        store=False,
    )


@pytest.fixture(scope="module")
def names_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    detector = fp.AnomalousInput(fit="check", scorer=fp.NgramScorer(), alpha=0.01)
    cases = name_cases(400, seed=1)
    result = fp.check(
        parse_name, cases, policy=names_policy(detector), judge="token_labels", suites=["realistic"],
        store=folder / "s.db", quiet=True, executor="thread", worst_cases=0,
        shifted={"address": addresses(150)}, save_detector=folder / "detector.json",
    )
    return result, detector, cases, folder


def _rates(result, state="anomalous_input"):
    figures = next(d for d in result.detectors if d.state == state)
    return figures, {(r.group, r.perturbation): r for r in (*figures.false_alarms, *figures.shifted)}


def test_the_check_fits_the_detector_on_the_calibration_half_only(names_run):
    result, detector, cases, _ = names_run
    assert detector.fitted
    figures, _ = _rates(result)
    assert figures.fitted_by_check and figures.reference_cases == result.n_calibration == 200
    assert 0 < figures.reference_variants <= figures.reference_tried
    assert detector.reference_size == figures.reference_cases + figures.reference_variants
    from failpath.check.plan import split_cases

    split = split_cases(cases, 0, 0.5)
    calibration_groups = {c.id for c in cases if split[c.id] == "calibration"}
    assert set(detector.groups) == calibration_groups  # every reference input comes from a calibration case
    judged = {c.input for c in cases if split[c.id] == "evaluation"} - {c.input for c in cases if split[c.id] == "calibration"}
    assert judged and not judged & set(detector.reference_texts)


def test_the_fitted_detector_accepts_recased_names_and_flags_addresses(names_run):
    result, *_ = names_run
    _, rates = _rates(result)
    casing = rates[("realistic", "casing")]
    assert casing.n >= 150 and casing.rate <= 0.05  # re-cased names the parser handles are not refused
    assert rates[("realistic", "whitespace")].rate <= 0.05
    assert rates[("shifted", "address")].n == 150 and rates[("shifted", "address")].rate >= 0.9
    assert rates[("clean", None)].n > 150
    empty, empty_rates = _rates(result, "empty_input")
    assert not empty.fitted_by_check and empty_rates[("shifted", "address")].flagged == 0


def test_a_detector_fitted_on_clean_names_only_refuses_them(names_run):
    """The defect the check's fitting removes: the profile fitted on the clean names refuses re-cased ones."""
    from failpath.chaos import Casing
    from failpath.chaos.base import derive_rng

    clean = fp.AnomalousInput([c.input for c in name_cases(200, seed=1)], alpha=0.01)
    recased = [Casing(mode=m).apply(c, derive_rng(c.id, m)).input for c in name_cases(150, seed=2) for m in ("upper", "lower")]
    assert sum(clean.check_input(x, x) is not None for x in recased) / len(recased) > 0.3


def test_the_saved_detector_decides_as_the_fitted_one(names_run):
    result, detector, _, folder = names_run
    figures, _ = _rates(result)
    assert figures.saved_to == str(folder / "detector.json")
    loaded = fp.AnomalousInput.load(folder / "detector.json")
    probes = [c.input for c in name_cases(60, seed=9)] + [x.upper() for x in addresses(20)] + addresses(20)
    assert [loaded.check_input(x, x) is None for x in probes] == [detector.check_input(x, x) is None for x in probes]
    # production: the same policy built around the loaded detector guards calls
    outcome = names_policy(loaded).wrap(parse_name)("ADA LOVELACE")
    assert isinstance(outcome, fp.Answered)


def test_the_report_names_the_perturbations_that_made_nothing(names_run):
    result, *_ = names_run
    realistic = next(s for s in result.perturbation_counts if s.suite == "realistic")
    assert {"abbreviate", "expand", "move_unit"} <= set(realistic.no_ops)
    assert "drop_field" in realistic.other_input_kind and "drop_field" not in realistic.no_ops
    typo = next(p for p in realistic.perturbations if p.name == "typo")
    assert typo.n_variants > 400 and typo.n_cases_varied == 400 and typo.n_not_applicable == 0
    abbreviate = next(p for p in realistic.perturbations if p.name == "abbreviate")
    assert abbreviate.n_variants == 0 and abbreviate.n_not_applicable == 400 and abbreviate.reasons

    from failpath.report import html, json_report, markdown, terminal
    from rich.console import Console

    console = Console(record=True, width=120)
    terminal.render(result, console)
    text = console.export_text()
    assert "no-op in realistic" in text and "abbreviate" in text and "Input detectors" in text
    assert "anomalous_input (rule 2)" in text and "shifted: address" in text
    md = markdown.render(result)
    assert "**no-op**" in md and "move\\_unit" in md and "### Input detectors" in md
    page = html.render(result)
    assert 'id="variants"' in page and "No-op in <strong>realistic</strong>" in page and 'id="detectors"' in page
    document = json.loads(json_report.render(result))
    assert "abbreviate" in document["check"]["perturbation_counts"][0]["no_ops"]
    assert document["check"]["detectors"][1]["shifted"][0]["perturbation"] == "address"
    assert CheckResult.from_dict(result.to_dict()) == result


def test_an_unfitted_detector_cannot_guard_and_save_needs_one():
    detector = fp.AnomalousInput(fit="check")
    assert not detector.fitted and repr(detector) == "AnomalousInput(fit='check', alpha=0.01)"
    with pytest.raises(fp.PolicyError, match="not fitted yet"):
        names_policy(detector).wrap(parse_name)
    with pytest.raises(fp.PolicyError, match="not fitted yet"):
        detector.save("x.json")
    with pytest.raises(fp.PolicyError, match="give a reference or fit='check'"):
        fp.AnomalousInput(["a"] * 200, fit="check")
    with pytest.raises(fp.PolicyError, match="fit must be 'check'"):
        fp.AnomalousInput(fit="production")
    with pytest.raises(fp.PolicyError, match="give the reference inputs"):
        fp.AnomalousInput()
    fixed = fp.AnomalousInput([c.input for c in name_cases(200, seed=1)])
    with pytest.raises(fp.ConfigError, match="no detector the check fits"):
        fp.check(parse_name, name_cases(20, seed=1), policy=names_policy(fixed), judge="token_labels", suites=[],
                 store=":memory:", quiet=True, save_detector="x.json")


def test_too_small_a_calibration_half_is_a_clear_error(tmp_path):
    with pytest.raises(fp.ConfigError, match="could not fit .* on its calibration half"):
        fp.check(parse_name, name_cases(6, seed=1), policy=names_policy(fp.AnomalousInput(fit="check", alpha=0.001)),
                 judge="token_labels", suites=["realistic"], store=tmp_path / "s.db", quiet=True, worst_cases=0)


def test_a_worker_process_takes_the_fitted_state():
    """A policy imported again in a worker process gets the detectors the check fitted in the parent."""
    here = fp.AnomalousInput(fit="check", scorer=fp.NgramScorer())
    there = fp.AnomalousInput(fit="check", scorer=fp.NgramScorer())
    here.fit_reference([c.input for c in name_cases(200, seed=1)])
    install_fitted(names_policy(there), [here])
    assert there.fitted and there.score("Ada Lovelace") == here.score("Ada Lovelace")
    with pytest.raises(fp.ConfigError, match="1 detectors with fit='check', the check fitted 2"):
        install_fitted(names_policy(fp.AnomalousInput(fit="check")), [here, here])
    assert check_fitted(names_policy(here)) == [here]


def test_the_shifted_sample_from_files_and_from_failpath_toml(tmp_path):
    (tmp_path / "other.txt").write_text("12 High St, Leeds LS1 4AP\n\nFlat 2, 9 Kings Rd, London\n")
    (tmp_path / "names.jsonl").write_text('"Ada Lovelace"\n{"text": "Alan Turing"}\n')
    assert shifted_sources(tmp_path / "other.txt") == {"other": ("12 High St, Leeds LS1 4AP", "Flat 2, 9 Kings Rd, London")}
    assert read_inputs(tmp_path / "names.jsonl", "text") == ("Ada Lovelace", "Alan Turing")
    assert shifted_sources(["a", "b"]) == {"shifted": ("a", "b")}
    with pytest.raises(fp.ConfigError, match="no 'input' key"):
        read_inputs(tmp_path / "names.jsonl")
    with pytest.raises(fp.ConfigError, match="not found"):
        shifted_sources(tmp_path / "missing.txt")
    with pytest.raises(fp.ConfigError, match="holds no input"):
        shifted_sources({"empty": []})

    from failpath.check.config import check_kwargs, load_config

    (tmp_path / "names_system.py").write_text("def parse(text):\n    return text.split()\n")
    (tmp_path / "cases.jsonl").write_text(json.dumps({"id": "1", "text": "Ada Lovelace", "expected": ["Ada", "Lovelace"]}) + "\n")
    config = tmp_path / "failpath.toml"
    config.write_text(
        'system = "names_system:parse"\n[dataset]\npath = "cases.jsonl"\ninput = "text"\n'
        '[detector]\nsave = "out/detector.json"\nshifted = ["names.jsonl", "other.txt"]\n'
    )
    kwargs = check_kwargs(load_config(config))
    assert kwargs["save_detector"] == tmp_path / "out" / "detector.json"
    assert kwargs["shifted"] == {"names": ("Ada Lovelace", "Alan Turing"), "other": ("12 High St, Leeds LS1 4AP", "Flat 2, 9 Kings Rd, London")}
    config.write_text('system = "names_system:parse"\n[dataset]\npath = "cases.jsonl"\ninput = "text"\n[detector]\nshifted = "nowhere.jsonl"\n')
    with pytest.raises(fp.ConfigError, match=r"failpath.toml:6: detector.shifted = 'nowhere.jsonl': .*not found"):
        check_kwargs(load_config(config))


NAMES_PROJECT = '''
import failpath as fp


def parse(text):
    tokens = text.split()
    if len(tokens) == 2 and tokens[0].endswith(","):
        return [(tokens[0], "Surname"), (tokens[1], "GivenName")]
    if len(tokens) == 2:
        return [(tokens[0], "GivenName"), (tokens[1], "Surname")]
    return [(t, "Unknown") for t in tokens]


policy = fp.Policy(
    "names",
    rules=[
        fp.on(fp.AnomalousInput(fit="check", scorer=fp.NgramScorer())).do(fp.Clarify("Is that a name?")),
        fp.on(fp.Unexpected()).do(fp.Abstain("failed")),
    ],
    store=False,
)
'''


def test_failpath_check_saves_the_detector_its_spawned_workers_used(tmp_path, monkeypatch):
    """--save-detector and [detector] shifted through the CLI, with worker processes that import the policy afresh."""
    from typer.testing import CliRunner

    import failpath.check.processes as processes
    from failpath.cli import app

    (tmp_path / "names_project.py").write_text(NAMES_PROJECT)
    with (tmp_path / "cases.jsonl").open("w") as out:
        for case in name_cases(120, seed=4):
            out.write(json.dumps({"id": case.id, "input": case.input, "expected": case.expected}) + "\n")
    (tmp_path / "addresses.txt").write_text("\n".join(addresses(40)) + "\n")
    (tmp_path / "failpath.toml").write_text(
        'system = "names_project:parse"\npolicy = "names_project:policy"\nsuites = ["realistic"]\nexecutor = "process"\n'
        'concurrency = 2\nworst_cases = 0\n[dataset]\npath = "cases.jsonl"\n[judge]\nname = "token_labels"\n'
        '[budgets.accepted]\n' + "".join(f'{s} = "Not part of this small test of the detector."\n' for s in (
            "empty_input", "injection_suspected", "timeout", "provider_error", "invalid_output", "inconsistent",
            "low_confidence", "budget_exceeded")) +
        '[detector]\nshifted = "addresses.txt"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(processes, "START_METHOD", "spawn")
    result = CliRunner().invoke(app, ["check", "-q", "--no-html", "--json", "out.json", "--save-detector", "det.json"],
                                catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    assert "Input detectors" in result.output and "shifted: addresses" in result.output
    document = json.loads((tmp_path / "out.json").read_text())
    (figures,) = document["detectors"]
    assert figures["fitted_by_check"] and figures["saved_to"] == "det.json"
    # Every request ran, most in the spawned workers: a worker whose policy had the detector unfitted
    # could not have guarded a call (PolicyError).
    assert document["n_rows"] > 1000
    assert document["over_refusal"]["refused"] <= 0.1 * document["over_refusal"]["n"]
    loaded = fp.AnomalousInput.load(tmp_path / "det.json")
    assert loaded.fitted and loaded.reference_size == figures["reference_cases"] + figures["reference_variants"]
