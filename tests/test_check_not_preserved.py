"""A realistic variant whose expected answer is not preserved counts only as answered or handled.

"Smith, John" -> "Smith John": the comma said which token is the surname, so the clean labels no longer
hold for the variant. Whatever the model answers, the variant is neither a silent failure nor right.
"""

from __future__ import annotations

import failpath as fp
from failpath.chaos import Suite
from failpath.chaos.text import DropPunctuation
from failpath.core import Case, Prediction

NAMES = [("Smith", "John"), ("West", "Mary"), ("Okafor", "Ada"), ("Lindqvist", "Nils"), ("Moreau", "Claire"),
         ("Tanaka", "Yui"), ("Rossi", "Marco"), ("Nowak", "Ewa"), ("Silva", "Ana"), ("Kim", "Min"),
         ("Brown", "Lee"), ("Haddad", "Omar")]


def cases() -> list[Case]:
    return [Case(id=f"n{i:02d}", input=f"{last}, {first}", expected=[(f"{last},", "Surname"), (first, "GivenName")])
            for i, (last, first) in enumerate(NAMES)]


def reads_the_comma(text: str) -> Prediction:
    """Right on both forms: "Last, First" when there is a comma, "First Last" when there is none."""
    tokens = text.split()
    if tokens[0].endswith(","):
        return Prediction([(tokens[0], "Surname"), *((t, "GivenName") for t in tokens[1:])], 0.95)
    return Prediction([*((t, "GivenName") for t in tokens[:-1]), (tokens[-1], "Surname")], 0.95)


def first_is_surname(text: str) -> Prediction:
    """Keeps the clean labels whatever the punctuation: matches the stale labels of the variant."""
    tokens = text.split()
    return Prediction([(tokens[0], "Surname"), *((t, "GivenName") for t in tokens[1:])], 0.95)


NAMES_SUITE = Suite("names", "realistic", (DropPunctuation(),))


def run(system, tmp_path, name):
    return fp.check(system, cases(), judge="token_labels", suites=[NAMES_SUITE], seed=0, store=tmp_path / f"{name}.db",
                    worst_cases=3, worst_case_seconds=2, quiet=True)


def group(result, perturbation):
    return next(g for g in result.groups if g.suite == "names" and g.perturbation == perturbation)


def test_the_variants_carry_not_preserved(tmp_path):
    variants = NAMES_SUITE.variants(cases()[0], seed=0)
    assert [(v.input, v.contract.value) for v in variants] == [("Smith John", "not_preserved")]


def test_a_model_right_on_the_new_reading_is_not_a_silent_failure(tmp_path):
    result = run(reads_the_comma, tmp_path, "reads")
    g = group(result, "drop_punctuation")
    assert g.contract == "not_preserved" and g.n == g.n_cases > 0  # the evaluation half: one variant a case
    assert g.with_policy.answered == g.n and g.with_policy.coverage == 1.0  # it counts as answered
    assert g.with_policy.silent_failures == 0 and g.without_policy.silent_failures == 0
    assert g.with_policy.silent_failure_rate is None and g.accuracy is None and g.gap is None
    assert g.catch_rate is None and g.false_alarm_rate is None
    families = {f.family: f for f in result.silent_failure_families}
    assert "realistic" not in families  # nothing in it can be judged, so nothing to bound
    assert not any(w.suite == "names" for w in result.worst_cases)


def test_a_model_that_matches_the_stale_labels_is_not_counted_right(tmp_path):
    result = run(first_is_surname, tmp_path, "stale")
    g = group(result, "drop_punctuation")
    assert g.with_policy.answered == g.n > 0
    assert g.accuracy is None and g.flip_rate is None  # the stale labels do not make it right either
    assert g.without_policy.silent_failures == 0


def test_the_same_wrong_answer_under_a_kept_contract_is_a_silent_failure(tmp_path):
    """Contrast: when the comma separates tokens of address labels, the contract holds and a wrong answer counts."""
    kept = Suite("names", "realistic", (DropPunctuation(separator_safe_labels=frozenset({"Surname", "GivenName"})),))
    result = fp.check(reads_the_comma, cases(), judge="token_labels", suites=[kept], seed=0, store=tmp_path / "kept.db",
                      worst_cases=0, quiet=True)
    g = group(result, "drop_punctuation")
    assert g.contract == "transformed"
    assert g.with_policy.silent_failures == g.n > 0 and g.accuracy == 0.0


def test_the_rows_report_it_as_neither_right_nor_a_silent_failure(tmp_path):
    from failpath.report.rows import request_row
    from failpath.store import open_store

    result = run(reads_the_comma, tmp_path, "rows")
    with open_store(tmp_path / "rows.db") as store:
        rows = [request_row(r["key"], r["data"]) for r in store.results(result.run_id)]
    variants = [r for r in rows if r["perturbation"] == "drop_punctuation"]
    assert variants and all(r["right_with_policy"] is None and r["right_without_policy"] is None
                            and r["silent_failure"] is False and r["outcome"] == "answered" for r in variants)
    clean = [r for r in rows if r["suite"] == "clean"]
    assert all(r["right_with_policy"] is True and r["silent_failure"] is False for r in clean)
