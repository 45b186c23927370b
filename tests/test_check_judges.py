"""Judges: right/wrong and partial scores for exact, text, fields, token labels, numbers and functions."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failpath.check.judges import (
    Exact,
    Fields,
    FunctionJudge,
    NormalizedText,
    NumericTolerance,
    TokenLabels,
    as_judge,
    get_judge,
)
from failpath.core import ConfigError

ALL = [Exact(), NormalizedText(), Fields(), TokenLabels(), NumericTolerance(abs_tol=0.1), FunctionJudge(lambda o, e: o == e)]


def test_exact_treats_tuples_and_lists_alike():
    j = Exact()
    assert j([("a", 1)], [["a", 1]])
    assert not j("a", "A")
    assert j.score({"k": (1, 2)}, {"k": [1, 2]}) == 1.0
    assert j.score(1, 2) == 0.0


def test_normalized_text_ignores_case_space_width_and_zero_width():
    j = NormalizedText()
    assert j("  Hello\u200b   WORLD ", "hello world")
    assert j("ＡＢＣ", "abc")  # NFKC folds full-width letters
    assert not j("hello, world", "hello world")
    assert NormalizedText(strip_punctuation=True)("hello, world!", "hello world")
    assert 0.0 < j.score("hello wrld", "hello world") < 1.0
    assert j.score("x", "x") == 1.0


def test_fields_judges_each_field_with_its_own_normalizer():
    j = Fields(normalizers={"city": "text", "amount": {"name": "numeric", "abs_tol": 0.01}})
    expected = {"city": "Paris", "amount": 10.0, "zip": "75001"}
    assert j({"city": " paris", "amount": "10.004", "zip": "75001", "extra": 1}, expected)
    assert j.field_scores({"city": "Lyon", "amount": 10, "zip": "75001"}, expected) == {
        "city": False,
        "amount": True,
        "zip": True,
    }
    assert j.score({"city": "Lyon", "amount": 10, "zip": "75001"}, expected) == pytest.approx(2 / 3)
    assert not j({"city": "Paris", "amount": 10}, expected)  # a missing field is wrong
    assert j.score("not a dict", expected) == 0.0
    assert Fields(min_score=0.6)({"city": "Lyon", "amount": 10, "zip": "75001"}, expected)
    assert not Fields(strict=True)({"a": 1, "b": 2}, {"a": 1})
    assert Fields(fields=("a",))({"a": 1, "b": 3}, {"a": 1, "b": 2})


def test_token_labels_compares_normalized_tokens_and_labels_position_by_position():
    j = TokenLabels()
    expected = [("123", "AddressNumber"), ("Main", "StreetName"), ("St,", "StreetNamePostType"), ("Chicago", "PlaceName")]
    output = [["123", "AddressNumber"], ["MAIN", "StreetName"], ["St", "StreetNamePostType"], ["Chicago", "PlaceName"]]
    assert j(output, expected)
    # A wrong label on one token: wrong, with partial credit for the other three.
    wrong = list(output)
    wrong[3] = ["Chicago", "StreetName"]
    assert not j(wrong, expected)
    assert j.score(wrong, expected) == pytest.approx(3 / 4)
    # A dropped token misaligns the sequence: wrong, but the alignment keeps credit for the rest.
    dropped = output[:1] + output[2:]
    assert not j(dropped, expected)
    assert j.score(dropped, expected) == pytest.approx(3 / 4)
    # Punctuation-only tokens are ignored; case can be made to count.
    assert j(output + [[",", "X"]], expected)
    assert not TokenLabels(case_sensitive=True)(output, expected)
    assert not j("123 Main St", expected)
    assert j.score(None, expected) == 0.0


def test_numeric_tolerance_parses_numbers_and_scores_by_distance():
    j = NumericTolerance(abs_tol=0.5)
    assert j("10.4", 10)
    assert j("1,000", 1000)
    assert not j(11, 10)
    assert j.score(10.2, 10) == 1.0
    assert 0.0 < j.score(11, 10) < 1.0
    assert j.score(100, 10) == 0.0
    assert not j(True, 1)
    assert not j("nan", 1)
    assert not j(None, 1)
    with pytest.raises(ConfigError):
        NumericTolerance(abs_tol=-1)


def test_function_judge_takes_bools_or_scores():
    assert FunctionJudge(lambda o, e: o.lower() == e)("A", "a")
    scored = FunctionJudge(lambda o, e: 0.7, pass_score=0.5)
    assert scored("x", "y") and scored.score("x", "y") == 0.7
    with pytest.raises(TypeError, match="return a bool"):
        FunctionJudge(lambda o, e: "yes")("x", "y")


def test_get_judge_by_name_and_bad_names_or_options():
    assert isinstance(get_judge("token_labels"), TokenLabels)
    assert get_judge("numeric", abs_tol=1)(1.5, 1)
    assert get_judge("function", function="operator:eq")(1, 1)
    with pytest.raises(ConfigError, match="unknown judge 'fuzzy'"):
        get_judge("fuzzy")
    with pytest.raises(ConfigError, match="bad options"):
        get_judge("exact", tolerance=1)
    with pytest.raises(ConfigError, match="no attribute"):
        get_judge("function", function="operator:nope")
    assert isinstance(as_judge(lambda o, e: True), FunctionJudge)
    assert isinstance(as_judge(None), Exact)


def test_judges_pickle_for_process_pools():
    for judge in [Exact(), NormalizedText(), Fields(normalizers={"a": "text"}), TokenLabels(), NumericTolerance()]:
        clone = pickle.loads(pickle.dumps(judge))
        assert clone == judge or type(clone) is type(judge)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(output=values, expected=values)
def test_every_judge_scores_in_unit_interval_and_full_score_when_right(output, expected):
    for judge in ALL:
        try:
            right = judge(output, expected)
            score = judge.score(output, expected)
        except TypeError:
            # Fields refuses a non-dict expected value: a configuration error, raised, never silent.
            assert isinstance(judge, Fields) and not isinstance(expected, dict)
            continue
        assert 0.0 <= score <= 1.0
        if right and not isinstance(judge, (Fields,)):
            assert score == 1.0
        assert judge(expected, expected) or isinstance(judge, (NumericTolerance, TokenLabels, Fields))


# --------------------------------------------------------------------------- typed answers (the support-ticket schema)


def _support_ticket_example():
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "examples" / "support_tickets"
    modules = []
    for name in ("run", "stand_in"):
        spec = importlib.util.spec_from_file_location(f"support_tickets_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def test_the_fields_judge_compares_pydantic_models_and_dataclasses_as_plain_data():
    import dataclasses
    import enum

    from failpath.check.judges import Fields

    run, _ = _support_ticket_example()
    judge = Fields()
    label = run.TicketLabel(category="billing", urgency="high")
    assert judge(label, {"category": "billing", "urgency": "high"})
    assert judge(label, run.TicketLabel(category="billing", urgency="high"))
    assert not judge(label, {"category": "bug", "urgency": "high"})
    assert judge.score(label, {"category": "bug", "urgency": "high"}) == 0.5

    class Urgency(enum.Enum):
        HIGH = "high"

    @dataclasses.dataclass
    class Label:
        category: str
        urgency: Urgency

    assert judge(Label("billing", Urgency.HIGH), {"category": "billing", "urgency": "high"})
    assert Exact()(label, {"category": "billing", "urgency": "high"})
    with pytest.raises(TypeError, match="pydantic model or a dataclass"):
        judge(label, "billing")


def test_check_scores_the_support_ticket_schema_answers_field_by_field(tmp_path):
    import failpath as fp
    from failpath.core import Case

    run, stand_in = _support_ticket_example()

    def rules(text: str):
        lowered = text.lower()
        for keywords, category, urgency in stand_in.RULES:
            if any(k in lowered for k in keywords):
                return category, urgency
        return "other", "medium"

    def triage(text: str):
        category, urgency = rules(text)
        return fp.Prediction(run.TicketLabel(category=category, urgency=urgency), 0.9)

    tickets = [t for t in run.TICKETS if t.strip() and rules(t)[0] != "other"]
    cases = [Case(f"t{i}", t, dict(zip(("category", "urgency"), rules(t)))) for i, t in enumerate(tickets)]
    cases.append(Case("wrong", tickets[0], {"category": "bug", "urgency": "low"}))  # one the system gets wrong
    result = fp.check(
        triage, cases, judge="fields", suites=["realistic"], store=tmp_path / "f.db", quiet=True,
        worst_cases=0, calibration_share=0.2,
    )
    n = result.clean.n_cases
    assert n >= 5
    # The raw answers are read back as plain data; the guarded answer stays a TicketLabel: both are judged.
    assert result.clean.accuracy >= (n - 1) / n  # every answer right but the one mislabeled case (if it is evaluated)
    wrong = round(n * (1 - result.clean.accuracy))
    assert result.clean.with_policy.silent_failures == result.clean.without_policy.silent_failures == wrong
