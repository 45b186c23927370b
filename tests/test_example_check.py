"""The bundled example end to end: check_kwargs, both policies through fp.check, and their reports."""

from __future__ import annotations

import importlib

import pytest

import failpath as fp
from failpath.examples.addresses import (
    AddressParser,
    careful_policy,
    check_kwargs,
    foreign_characters,
    generate_addresses,
    is_labeled_tokens,
    shipping_policy,
)
from failpath.chaos.faults import Crash
from failpath.examples.addresses.data import SHIFTED_LOCALES
from failpath.examples.addresses.example import FAULT_SUITE, reference_addresses
from failpath.examples.addresses.policy import (
    ACCEPTED,
    CERTIFIED_THRESHOLD,
    HAND_PICKED_THRESHOLD,
    certify_threshold,
)
from failpath.report import html as report_html

N = 50


def test_check_kwargs_puts_the_example_together():
    kwargs = check_kwargs(n=30, seed=3)
    assert len(kwargs["cases"]) == 30
    assert [c.input for c in kwargs["cases"]] == [c.input for c in generate_addresses(30, seed=3)]
    assert isinstance(kwargs["system"], AddressParser)
    assert kwargs["policy"].name == "addresses-careful"
    assert kwargs["suites"] == ["hostile", "realistic", FAULT_SUITE]
    assert kwargs["judge"] == "token_labels" and kwargs["seed"] == 3
    assert kwargs["accepted"] == ACCEPTED
    assert check_kwargs(n=5, policy="shipping")["policy"].name == "addresses-shipping"
    with pytest.raises(ValueError, match="careful' or 'shipping"):
        check_kwargs(n=5, policy="lenient")


def test_the_cli_finds_both_entry_points():
    for name, policy in (("addresses", "addresses-careful"), ("addresses.shipping", "addresses-shipping")):
        module = importlib.import_module(f"failpath.examples.{name}")
        assert module.check_kwargs(n=3)["policy"].name == policy


def test_both_policies_lint_clean():
    reference = reference_addresses()
    for policy in (careful_policy(reference), shipping_policy(reference)):
        result = policy.lint()
        assert result.ok, result
        assert {"inconsistent", "budget_exceeded"} <= set(policy.waived)


def test_foreign_characters():
    assert foreign_characters("12 O'Brien St, Apt #4-B, Peñasco, NM 87553") is None
    for text, what in [
        ("12 Main St; rm -rf /", "';'"),
        ("12 `cat /etc/passwd` St", "'`'"),
        ("12 Main admin'-- St", "\"'\""),
        ("&& shutdown 12 Main St", "'&&'"),
        ("12 Ma\u0131n St", "DOTLESS I"),
        ("12 M\u0430in St", "CYRILLIC"),
        ("12 Main St \U0001F3E0", "HOUSE"),
    ]:
        reason = foreign_characters(text)
        assert reason is not None and what in reason, (text, reason)
    assert all(foreign_characters(c.input) is None for c in generate_addresses(300, seed=5))


def test_is_labeled_tokens():
    assert is_labeled_tokens([("12", "AddressNumber"), ("Main", "StreetName")])
    assert not is_labeled_tokens([])
    assert not is_labeled_tokens('[["12", "AddressNumber"]]')
    assert not is_labeled_tokens([("12", "HouseNumber")])
    assert not is_labeled_tokens([("12",)])


def test_a_crash_is_unexpected_and_goes_to_ops(tmp_path):
    policy = careful_policy(reference_addresses())
    guarded = policy.wrap(Crash().wrap(AddressParser())).with_store(tmp_path / "s.db")
    outcomes = [guarded(case.input) for case in generate_addresses(10, seed=9)]
    crashed = [o for o in outcomes if o.state == "unexpected"]
    assert crashed, outcomes  # inputs the input-side rules let through reach the crashing system
    assert all(isinstance(o, fp.Escalated) and o.queue == "ops" for o in crashed)
    assert all(o.state in ("unexpected", "anomalous_input") for o in outcomes)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    store = tmp_path_factory.mktemp("example") / "failpath.db"
    quick = {"store": store, "quiet": True, "worst_case_seconds": 2.0}  # a shorter search for the worst cases
    careful = fp.check(**{**check_kwargs(n=N), **quick})
    shipping = fp.check(**{**check_kwargs(n=N, policy="shipping"), **quick})
    return careful, shipping, store


def _criterion(result, name):
    return next(c for c in result.verdict.reasons if c.name == name)


@pytest.mark.slow
def test_the_careful_policy_is_ready_to_demo_and_says_why(results):
    careful, _, _ = results
    assert not careful.ship
    assert careful.clean.accuracy >= 0.9
    realistic = next(g for g in careful.groups if g.suite == "realistic" and g.perturbation is None)
    assert realistic.gap > 0.08
    assert not _criterion(careful, "silent_failure_bound").passed
    for name in ("states_handled", "states_exercised", "no_escapes", "coverage_floor"):
        assert _criterion(careful, name).passed, _criterion(careful, name)
    # Without the policy a third of the chaos requests fail silently; with it, a few percent.
    assert careful.chaos.without_policy.silent_failure_rate > 0.2
    assert careful.chaos.with_policy.silent_failure_rate < 0.1
    fired = {s.state: s.fired for s in careful.states}
    assert all(fired[state] > 0 for state in fired if state not in ACCEPTED)
    assert careful.worst_cases and careful.worst_cases[0].confidence >= HAND_PICKED_THRESHOLD


@pytest.mark.slow
def test_the_shipping_policy_fixes_what_the_report_showed(results):
    careful, shipping, _ = results
    assert shipping.policy == "addresses-shipping"
    assert shipping.chaos.with_policy.silent_failure_rate < careful.chaos.with_policy.silent_failure_rate / 2
    # Judged per family: no hostile input gets a wrong answer through, and fewer realistic ones do.
    families = {f.family: f for f in shipping.silent_failure_families}
    careful_families = {f.family: f for f in careful.silent_failure_families}
    # With 25 calibration cases the fitted detector's reference is small and its calibration tail wide:
    # a few plain-English injection_only inputs pass it here (none of the 7,000 at the README's 1,000 cases).
    assert families["hostile"].silent_failures < careful_families["hostile"].silent_failures / 2
    assert families["realistic"].rate < careful_families["realistic"].rate
    changed = {r.policy: int(_criterion(r, "hostile_answers_stable").figure.split()[0]) for r in (careful, shipping)}
    assert changed["addresses-shipping"] < changed["addresses-careful"] / 10, changed
    fired = {s.state: s.fired for s in shipping.states}
    assert fired["foreign_characters"] > 0
    assert CERTIFIED_THRESHOLD > HAND_PICKED_THRESHOLD


def _detector(result, state):
    figures = next(d for d in result.detectors if d.state == state)
    return figures, {(r.group, r.perturbation): r for r in (*figures.false_alarms, *figures.shifted)}


@pytest.mark.slow
def test_the_example_fits_its_anomaly_detector_in_the_check_and_reports_it(results):
    careful, shipping, _ = results
    for result in (careful, shipping):
        anomaly, rates = _detector(result, "anomalous_input")
        assert anomaly.fitted_by_check and anomaly.reference_cases == result.n_calibration == N // 2
        assert 0 < anomaly.reference_variants <= anomaly.reference_tried
        assert {("shifted", f"address {locale}") for locale in SHIFTED_LOCALES} | {("shifted", "person name")} <= set(rates)
        assert rates[("realistic", "casing")].n > 0 and rates[("realistic", "whitespace")].n > 0
    # The shipping policy's own state no longer refuses addresses written on two lines or with tabs.
    _, foreign = _detector(shipping, "foreign_characters")
    assert foreign[("realistic", "whitespace")].n > 20 and foreign[("realistic", "whitespace")].flagged == 0
    counts = {s.suite: s for s in careful.perturbation_counts}
    assert counts["fault"].n_cases == N  # the fault suite draws for every case
    assert not counts["realistic"].no_ops and "drop_field" in counts["realistic"].other_input_kind


@pytest.mark.slow
def test_the_example_report_shows_the_labels(results):
    careful, _, _ = results
    page = report_html.render(careful)
    assert "READY TO DEMO" in page
    assert 'class="tok bad"' in page  # a worst case's wrong label, marked
    assert "addresses-careful" in page


@pytest.mark.slow
def test_certify_threshold_reads_the_stored_run(results, tmp_path):
    careful, _, store = results
    loose = certify_threshold(store, careful.run_id, max_risk=0.5)
    strict = certify_threshold(store, careful.run_id, max_risk=0.05)
    assert loose is not None and 0.0 <= loose <= 1.0
    assert strict is None or strict >= loose  # a smaller risk needs a higher threshold
    with pytest.raises(fp.ConfigError, match="no check run"):
        certify_threshold(tmp_path / "empty.db")


def test_a_missing_extra_is_a_clear_error():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['usaddress'] = None\n"
        "from failpath.core import ConfigError\n"
        "try:\n"
        "    import failpath.examples.addresses\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'failpath[examples]'" in done.stdout, done.stderr
    assert "'usaddress'" in done.stdout
