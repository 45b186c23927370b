"""AnomalousInput fitted on what the system tolerates; the n-gram scorer; saving and loading a fitted detector."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import failpath as fp
from failpath.chaos import Casing, WhitespaceNoise
from failpath.chaos.base import derive_rng
from failpath.guard.anomaly import ConformalScore, ProfileScorer, tolerated_reference
from failpath.guard.ngram import NgramScorer, shape_of

pytest.importorskip("sklearn")
usaddress = pytest.importorskip("usaddress")

from failpath.examples.addresses.data import generate_addresses  # noqa: E402
from failpath.examples.addresses.system import AddressParser  # noqa: E402

PARSER = AddressParser()
JUDGE = fp.TokenLabels()
NAMES = ["Samantha Washington", "Aaron Bates", "Dr. John West", "Smith, John", "RUSH, WILLIE H", "Mary Ann Lee",
         "Jose Maria Gonzalez", "Li Wei", "Fatima Al-Sayed", "Olivia Brown"]  # fmt: skip
ABROAD = ["Melissa-Mohaupt-Platz 2, 57368 Rochlitz", "18, rue Manon Roux, 20215 Lelièvre",
          "Flat 26k, Bradley River, Clarketown, L3 2NP", "3 Shelley Terrace, Port Kent, TAS, 0222"]  # fmt: skip


@pytest.fixture(scope="module")
def reference():
    return tolerated_reference(PARSER, generate_addresses(120, seed=10_000), JUDGE, seed=0)


@pytest.fixture(scope="module")
def recased():
    """Upper- and lower-case and blank-noise variants of new addresses that the parser gets right."""
    out = []
    for case in generate_addresses(120, seed=777):
        for p, mode in ((Casing(mode="upper"), "upper"), (Casing(mode="lower"), "lower"), (WhitespaceNoise(), "ws")):
            v = p.apply(case, derive_rng(1, case.id, mode))
            if JUDGE(PARSER(v.input).value, v.expected):
                out.append(v.input)
    assert len(out) > 250
    return out


def _flag_rate(detector, inputs):
    return sum(detector.check_input(x, x) is not None for x in inputs) / len(inputs)


def test_the_tolerated_reference_holds_the_clean_inputs_and_the_variants_answered_right(reference):
    assert reference.n_cases == 120 and len(reference.inputs) == 120 + reference.n_variants
    assert 0 < reference.n_variants < reference.n_tried
    assert len(reference.groups) == len(reference.inputs) and len(set(reference.groups)) == 120
    assert any(x.isupper() for x in reference.inputs) and any("\t" in x or "\n" in x for x in reference.inputs)
    # Every variant kept was parsed right; one the parser gets wrong is left out.
    failing = tolerated_reference(lambda text: [], generate_addresses(10, seed=1), JUDGE)
    assert failing.n_variants == 0 and len(failing.inputs) == 10


def test_a_detector_fitted_on_clean_inputs_refuses_what_the_model_tolerates_and_a_fitted_one_does_not(reference, recased):
    clean_only = list(reference.inputs[: reference.n_cases])
    profile_clean = fp.AnomalousInput(clean_only, alpha=0.01)
    assert _flag_rate(profile_clean, recased) > 0.4  # the defect: all-caps and two-line addresses refused
    ngram = fp.AnomalousInput(reference.inputs, groups=reference.groups, scorer=NgramScorer(), alpha=0.01)
    assert _flag_rate(ngram, recased) <= 0.05
    # A small reference here (120 cases); bench/detectors.py measures the example's 400 on larger samples.
    assert _flag_rate(ngram, NAMES) >= 0.7
    assert _flag_rate(ngram, ABROAD) >= 0.5


def test_the_ngram_scorer_explains_what_it_never_saw(reference):
    scorer = NgramScorer().fit(reference.inputs)
    assert scorer.score(reference.inputs[0]) == pytest.approx(0.0, abs=1e-9)
    assert scorer.score("Aaron Bates") > 0.5
    why = scorer.explain("Aaron Bates")
    assert "closest reference input" in why and ("'^ Aaaa Aaaa'" in why or "'Aaaa Aaaa $'" in why)
    assert shape_of("Apt. 730 157 Oscar Circle,\tNORTH  Jessica, VIC, 2826") == [
        "^", "Aaa.", "999", "999", "Aaaa", "Aaaa,", "\\t", "AAA", "__", "Aaaa,", "AAA,", "9999", "$"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="shape_weight"):
        NgramScorer(shape_weight=2)
    with pytest.raises(RuntimeError, match="before fit"):
        NgramScorer().score("x")


def test_groups_keep_a_cases_variants_in_one_fold(reference):
    by_position = ConformalScore.fit(ProfileScorer(), reference.inputs, folds=5)
    by_case = ConformalScore.fit(ProfileScorer(), reference.inputs, folds=5, groups=reference.groups)
    assert len(by_position.calibration) == len(by_case.calibration) == len(reference.inputs)
    # A held-out variant scored against its own case looks closer than a new input would.
    near = ConformalScore.fit(NgramScorer(), reference.inputs[:600], folds=5)
    apart = ConformalScore.fit(NgramScorer(), reference.inputs[:600], folds=5, groups=reference.groups[:600])
    assert sum(apart.calibration) > sum(near.calibration)
    with pytest.raises(fp.ConfigError, match="groups"):
        fp.AnomalousInput(["a"] * 200, groups=["g"] * 200)
    with pytest.raises(fp.ConfigError, match="one group per reference input"):
        fp.AnomalousInput(["a"] * 200, groups=["g"] * 3)


@pytest.mark.parametrize("scorer", [None, NgramScorer(shape_weight=0.5)], ids=["profile", "ngram"])
def test_a_fitted_detector_is_saved_and_loaded_as_json(tmp_path, reference, scorer):
    detector = fp.AnomalousInput(reference.inputs[:500], groups=reference.groups[:500], scorer=scorer, alpha=0.02)
    path = detector.save(tmp_path / "detector.json")
    document = json.loads(path.read_text())
    assert document["format"] == "failpath.anomalous_input/1" and document["alpha"] == 0.02
    assert document["scorer"]["kind"] == ("profile" if scorer is None else "ngram")
    assert len(document["reference"]) == 500 and len(document["calibration"]) == 500
    loaded = fp.AnomalousInput.load(path)
    assert type(loaded.scorer) is type(detector.scorer) and loaded.alpha == 0.02 and loaded.folds == 5
    for text in [*NAMES, *ABROAD, *reference.inputs[500:560]]:
        assert loaded.score(text) == detector.score(text)
        assert (loaded.check_input(text, text) is None) == (detector.check_input(text, text) is None)


def test_loading_names_what_is_wrong(tmp_path):
    with pytest.raises(fp.ConfigError, match="no saved detector there"):
        fp.AnomalousInput.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(fp.ConfigError, match="not a saved detector"):
        fp.AnomalousInput.load(bad)
    bad.write_text(json.dumps({"format": "something/9"}))
    with pytest.raises(fp.ConfigError, match="'something/9' is not 'failpath.anomalous_input/1'"):
        fp.AnomalousInput.load(bad)
    bad.write_text(json.dumps({"format": "failpath.anomalous_input/1", "alpha": 0.01}))
    with pytest.raises(fp.ConfigError, match="missing or malformed"):
        fp.AnomalousInput.load(bad)

    class Length:
        def score(self, value):
            return len(value)

    detector = fp.AnomalousInput(["abc"] * 200, scorer=Length())
    with pytest.raises(fp.ConfigError, match="only the built-in scorers"):
        detector.save(tmp_path / "custom.json")


def test_import_failpath_does_not_import_scikit_learn():
    code = "import sys, failpath as fp; fp.AnomalousInput; fp.NgramScorer; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- another domain: person names


def _name_cases(n: int, seed: int) -> list[fp.Case]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    cases = []
    for i in range(n):
        given, surname = fake.first_name(), fake.last_name()
        if i % 3 == 0:
            pairs = [(surname + ",", "Surname"), (given, "GivenName")]
        else:
            pairs = [(given, "GivenName"), (surname, "Surname")]
        cases.append(fp.Case(f"name-{seed}-{i}", " ".join(t for t, _ in pairs), pairs))
    return cases


def parse_name(text: str) -> list[tuple[str, str]]:
    """A rule-based name parser: 'Last, First' or 'First Last' (any case, any blanks)."""
    tokens = text.split()
    if len(tokens) == 2 and tokens[0].endswith(","):
        return [(tokens[0], "Surname"), (tokens[1], "GivenName")]
    if len(tokens) == 2:
        return [(tokens[0], "GivenName"), (tokens[1], "Surname")]
    return [(t, "Unknown") for t in tokens]


def test_on_names_the_fitted_detector_accepts_recased_names_and_flags_addresses():
    reference = tolerated_reference(parse_name, _name_cases(200, seed=1), JUDGE)
    assert reference.n_variants > 1000
    detector = fp.AnomalousInput(reference.inputs, groups=reference.groups, scorer=NgramScorer(), alpha=0.01)
    recased = []
    for case in _name_cases(150, seed=2):
        for mode in ("upper", "lower"):
            v = Casing(mode=mode).apply(case, derive_rng(case.id, mode))
            assert JUDGE(parse_name(v.input), v.expected)
            recased.append(v.input)
    profile = fp.AnomalousInput([c.input for c in _name_cases(200, seed=1)], alpha=0.01)
    assert _flag_rate(profile, recased) > 0.3  # the clean-fitted profile refuses re-cased names
    assert _flag_rate(detector, recased) <= 0.05
    addresses = [c.input for c in generate_addresses(100, seed=5)]
    assert _flag_rate(detector, addresses) >= 0.9
