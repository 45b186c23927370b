"""The bundled example's detectors: fitted by the check, the shifted-domain sample, blanks that are no foreign characters."""

from __future__ import annotations

import pytest

import failpath as fp

pytest.importorskip("usaddress")
pytest.importorskip("sklearn")

from failpath.chaos import WhitespaceNoise  # noqa: E402
from failpath.chaos.base import derive_rng  # noqa: E402
from failpath.check.fitting import check_fitted  # noqa: E402
from failpath.examples.addresses import careful_policy, check_kwargs, foreign_characters, generate_addresses, shipping_policy  # noqa: E402
from failpath.examples.addresses.data import SHIFTED_LOCALES, shifted_inputs  # noqa: E402
from failpath.examples.addresses.example import FAULT_SUITE, reference_addresses  # noqa: E402
from failpath.examples.addresses.policy import anomaly_detector  # noqa: E402


def test_both_policies_have_a_detector_the_check_fits():
    for policy in ("careful", "shipping"):
        (detector,) = check_fitted(check_kwargs(n=10, policy=policy)["policy"])
        assert detector.fit == "check" and isinstance(detector.scorer, fp.NgramScorer) and detector.alpha == 0.01
    assert check_fitted(careful_policy(reference_addresses())) == []  # the fixed profile of earlier versions
    assert isinstance(anomaly_detector(reference_addresses()).scorer, fp.guard.ProfileScorer)


def test_production_builds_the_policy_around_the_saved_detector(tmp_path):
    fitted = fp.AnomalousInput(reference_addresses(), scorer=fp.NgramScorer())
    fitted.save(tmp_path / "detector.json")
    loaded = fp.AnomalousInput.load(tmp_path / "detector.json")
    policy = shipping_policy(loaded)
    assert check_fitted(policy) == [] and any(rule.state is loaded for rule in policy.rules)
    guarded = policy.wrap(check_kwargs(n=1)["system"]).with_store(tmp_path / "s.db")
    new = generate_addresses(20, seed=123)  # addresses like the reference's, never seen
    assert sum(guarded(case.input).state != "anomalous_input" for case in new) >= 18
    outcome = guarded("Melissa-Mohaupt-Platz 2, 57368 Rochlitz")
    assert isinstance(outcome, fp.Clarify) and outcome.state == "anomalous_input"


def test_the_shifted_sample_is_other_countries_and_names():
    sample = shifted_inputs(per_source=5)
    assert list(sample) == [f"address {locale}" for locale in SHIFTED_LOCALES] + ["person name"]
    assert [len(v) for v in sample.values()] == [5, 5, 5, 5, 10]
    assert sample == shifted_inputs(per_source=5)  # seeded
    assert all("\n" not in x for v in sample.values() for x in v)
    assert check_kwargs(n=3)["shifted"] == shifted_inputs()


def test_the_fault_suite_draws_for_every_case():
    assert FAULT_SUITE.share == 1.0
    case = generate_addresses(1, seed=5)[0]
    assert len(FAULT_SUITE.variants(case)) == len(FAULT_SUITE.perturbations)


def test_blanks_are_no_foreign_characters():
    """Tabs, line breaks and no-break spaces are how people paste addresses; the parser handles them."""
    assert foreign_characters("12 Main St,\n Springfield\tIL\u00a062704") is None
    variants = [WhitespaceNoise().apply(c, derive_rng(c.id, "ws")) for c in generate_addresses(200, seed=8)]
    assert sum(foreign_characters(v.input) is not None for v in variants) == 0
    for text, what in (("12 Main\x1cSt", "U+001C"), ("12 Main\u2028St", "LINE SEPARATOR"), ("12 Main St; ls", "SEMICOLON")):
        reason = foreign_characters(text)
        assert reason is not None and what in reason, (text, reason)
