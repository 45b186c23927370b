"""Core values: outcomes match well, are frozen, carry state and trace id; the package imports light."""

import dataclasses
import math
import subprocess
import sys

import pytest

import failpath as fp
from failpath.core import OUTCOME_KINDS, is_valid_confidence


def describe(outcome: fp.Outcome) -> str:
    match outcome:
        case fp.Answered(value=v, degraded=True):
            return f"degraded {v}"
        case fp.Answered(value=v):
            return f"answer {v}"
        case fp.Clarify(question=q):
            return f"ask {q}"
        case fp.Escalated(ticket_id=t, queue=q):
            return f"ticket {t} in {q}"
        case fp.Abstained(reason=r):
            return f"abstain {r}"
        case fp.Defaulted(value=v, reason=r):
            return f"default {v} ({r})"
    return "unreachable"


def test_outcomes_match_by_type_and_field():
    assert describe(fp.Answered(1, 0.9)) == "answer 1"
    assert describe(fp.Answered(1, 0.9, degraded=True)) == "degraded 1"
    assert describe(fp.Clarify("which city?", state="low_confidence")) == "ask which city?"
    assert describe(fp.Escalated("t-1", "ops")) == "ticket t-1 in ops"
    assert describe(fp.Abstained("input refused")) == "abstain input refused"
    assert describe(fp.Defaulted(None, "slow")) == "default None (slow)"


def test_outcomes_are_frozen_and_carry_state_and_trace():
    o = fp.Abstained("no", state="injection_suspected", trace_id="abc")
    assert (o.state, o.trace_id, o.kind, o.handled) == ("injection_suspected", "abc", "abstained", True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.reason = "yes"  # type: ignore[misc]
    a = fp.Answered("x")
    assert a.state is None and not a.handled and a.kind == "answered"


def test_outcome_kinds_cover_the_five_outcomes():
    kinds = {cls(**{f.name: "v" for f in dataclasses.fields(cls) if f.name not in ("state", "trace_id")}).kind
             for cls in (fp.Answered, fp.Clarify, fp.Escalated, fp.Abstained, fp.Defaulted)}
    assert kinds == set(OUTCOME_KINDS) and len(OUTCOME_KINDS) == 5


@pytest.mark.parametrize(
    "value, ok",
    [(0.0, True), (1, True), (0.5, True), (math.nan, False), (math.inf, False), (-0.1, False), (1.01, False), (True, False), ("0.5", False), (None, False)],
)
def test_valid_confidence(value, ok):
    assert is_valid_confidence(value) is ok


def test_provider_failure_keeps_status_and_retry_after():
    e = fp.ProviderFailure("rate limited", status=429, retry_after=1.5)
    assert (e.status, e.retry_after, str(e)) == (429, 1.5, "rate limited")


def test_import_is_light():
    code = (
        "import sys, time; t = time.perf_counter(); import failpath, failpath.guard; "
        "heavy = [m for m in ('scipy', 'matplotlib', 'hypothesis', 'jinja2', 'usaddress', 'faker', 'openai', "
        "'anthropic', 'opentelemetry', 'numpy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fp_check_is_callable_and_leaves_the_check_package_importable():
    code = (
        "import failpath as fp; f = fp.check; assert callable(f); "
        "import failpath.check.api as api; assert callable(api.check); "
        "from failpath.check import CheckResult; assert fp.check is f; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
