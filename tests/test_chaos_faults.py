"""Model-side faults: each kind misbehaves as declared, sync stays sync, async stays async, by seed and call."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import time

import pytest

from failpath.chaos import FAULT, FAULT_KINDS, LabelContract, faults, get_fault
from failpath.core import Case, ConfigError, Prediction, ProviderFailure, SystemTimeout


def parse(text):
    return {"street": text.upper(), "tokens": text.split()}


def scored(text):
    return Prediction(text.upper(), 0.9, {"usage": {"input_tokens": 3}})


async def aparse(text):
    await asyncio.sleep(0)
    return parse(text)


def test_timeout_raises_system_timeout():
    with pytest.raises(SystemTimeout):
        get_fault("timeout").wrap(parse)("x")


@pytest.mark.parametrize(("kind", "status", "retry_after"), [("rate_limited", 429, 0.01), ("server_error", 500, None), ("service_unavailable", 503, None)])
def test_provider_errors_carry_their_status(kind, status, retry_after):
    with pytest.raises(ProviderFailure) as info:
        get_fault(kind).wrap(parse)("x")
    assert info.value.status == status and info.value.retry_after == retry_after
    assert str(status) in str(info.value)


def test_connection_reset_is_a_provider_failure_caused_by_the_connection():
    with pytest.raises(ProviderFailure) as info:
        get_fault("connection_reset").wrap(parse)("x")
    assert isinstance(info.value.__cause__, ConnectionResetError) and info.value.status is None


def test_none_and_empty_output_skip_the_model():
    calls = []

    def system(text):
        calls.append(text)
        return "fine"

    assert get_fault("none_output").wrap(system)("x") is None
    assert get_fault("empty_output").wrap(system)("x") == ""
    assert calls == []


@pytest.mark.parametrize("system", [parse, scored, lambda t: 42, lambda t: ["a", "b"], lambda t: "plain text"])
def test_truncated_json_never_parses(system):
    out = get_fault("truncated_json").wrap(system)("12 Main St")
    text = out.value if isinstance(out, Prediction) else out
    assert isinstance(text, str) and text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_truncated_json_keeps_the_confidence_the_model_claimed():
    out = get_fault("truncated_json").wrap(scored)("12 Main St")
    assert isinstance(out, Prediction) and out.confidence == 0.9


@pytest.mark.parametrize(("system", "expected_type"), [(parse, str), (lambda t: "text", list), (lambda t: 3, str), (lambda t: [1], str), (lambda t: None, dict)])
def test_wrong_type_changes_the_type(system, expected_type):
    out = get_fault("wrong_type").wrap(system)("x")
    assert isinstance(out, expected_type)
    assert type(out) is not type(system("x"))


def test_nan_confidence():
    for system in (parse, scored):
        out = get_fault("nan_confidence").wrap(system)("12 Main St")
        assert isinstance(out, Prediction) and math.isnan(out.confidence)
        assert out.value == (parse("12 Main St") if system is parse else "12 MAIN ST")


def test_slow_answers_right_but_late():
    fault = faults.Slow(delay=0.03)
    start = time.perf_counter()
    assert fault.wrap(parse)("a b") == parse("a b")
    assert time.perf_counter() - start >= 0.03


def test_every_built_in_kind_is_tested_here():
    assert set(FAULT_KINDS) == {
        "timeout", "rate_limited", "server_error", "service_unavailable", "connection_reset", "none_output",
        "empty_output", "truncated_json", "wrong_type", "nan_confidence", "slow", "crash",
    }  # fmt: skip


async def test_async_stays_async_and_sync_stays_sync():
    for kind in FAULT_KINDS:
        sync_wrapped = get_fault(kind).wrap(parse)
        async_wrapped = get_fault(kind).wrap(aparse)
        assert not inspect.iscoroutinefunction(sync_wrapped)
        assert inspect.iscoroutinefunction(async_wrapped)
    with pytest.raises(SystemTimeout):
        await get_fault("timeout").wrap(aparse)("x")
    assert await get_fault("none_output").wrap(aparse)("x") is None
    out = await get_fault("nan_confidence").wrap(aparse)("x y")
    assert math.isnan(out.confidence) and out.value == parse("x y")
    start = time.perf_counter()
    assert await faults.Slow(delay=0.02).wrap(aparse)("x") == parse("x")
    assert time.perf_counter() - start >= 0.02


def _outcomes(system, n):
    out = []
    for i in range(n):
        try:
            value = system(f"call {i}")
            out.append("ok" if value == parse(f"call {i}") else f"bad:{type(value).__name__}")
        except Exception as exc:  # noqa: BLE001 - recording what happened
            out.append(type(exc).__name__)
    return out


def test_inject_hits_the_chosen_share_deterministically():
    flaky = faults.inject(parse, rate=0.2, kinds=("timeout", "none_output", "rate_limited"), seed=7)
    first = _outcomes(flaky, 500)
    again = _outcomes(faults.inject(parse, rate=0.2, kinds=("timeout", "none_output", "rate_limited"), seed=7), 500)
    other = _outcomes(faults.inject(parse, rate=0.2, kinds=("timeout", "none_output", "rate_limited"), seed=8), 500)
    assert first == again and first != other
    hit = sum(o != "ok" for o in first)
    assert 70 <= hit <= 130  # 20% of 500, with room for chance
    assert set(first) == {"ok", "SystemTimeout", "bad:NoneType", "ProviderFailure"}
    schedule = flaky.schedule(500)
    assert [s is not None for s in schedule] == [o != "ok" for o in first]


def test_inject_rate_bounds_and_kinds_are_checked():
    assert _outcomes(faults.inject(parse, rate=0.0), 50) == ["ok"] * 50
    assert "ok" not in _outcomes(faults.inject(parse, rate=1.0, kinds=("timeout", "empty_output")), 50)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        faults.inject(parse, rate=1.5)
    with pytest.raises(ConfigError, match="unknown fault kind 'tiemout'; valid kinds: timeout"):
        faults.inject(parse, kinds=("tiemout",))
    with pytest.raises(ConfigError, match="kinds is empty"):
        faults.inject(parse, kinds=())
    with pytest.raises(ConfigError, match="wraps a system"):
        faults.inject("not callable")


def test_a_fault_at_a_partial_rate_is_deterministic_by_seed():
    fault = faults.Timeout(rate=0.5)
    a = _outcomes(fault.wrap(parse, seed=1), 200)
    assert a == _outcomes(fault.wrap(parse, seed=1), 200)
    assert 60 <= a.count("SystemTimeout") <= 140


def test_a_fault_variant_keeps_the_input_and_carries_the_fault():
    case = Case("c", "12 Main St", "ok")
    variants = FAULT.variants(case, seed=0)
    assert [v.perturbation for v in variants] == list(FAULT_KINDS)
    for v in variants:
        assert v.input == case.input and v.expected == case.expected
        assert v.contract is LabelContract.NOT_PRESERVED and v.family == "fault"
        assert v.fault is not None and v.fault.name == v.perturbation
        assert v.edits[0].kind == "fault"
    with pytest.raises(SystemTimeout):
        variants[0].fault.wrap(parse, seed=0)(case.input)


def test_wrapped_system_keeps_its_name():
    wrapped = get_fault("timeout").wrap(parse)
    assert "parse" in wrapped.__name__ and "timeout" in wrapped.__name__


def test_the_crash_fault_raises_what_no_failure_state_claims_so_unexpected_handles_it():
    import failpath as fp

    assert isinstance(faults.FAULTS[-1], faults.Crash) and "crash" in FAULT_KINDS
    with pytest.raises(faults.InjectedCrash, match="injected fault"):
        get_fault("crash").wrap(parse)("x")
    ordinary = fp.Policy(
        "ordinary",
        rules=[
            fp.on(fp.Timeout()).do(fp.Abstain("timed out")),
            fp.on(fp.ProviderError(ConnectionError)).do(fp.Abstain("provider down")),
            fp.on(fp.InvalidOutput()).do(fp.Abstain("bad output")),
            fp.on(fp.Unexpected()).do(fp.Default("n/a", "a bug")),
        ],
        store=False,
    )
    outcome = ordinary.wrap(get_fault("crash").wrap(parse))("x")
    assert isinstance(outcome, fp.Defaulted) and outcome.state == "unexpected"
    catch_all = fp.Policy(
        "catch-all",
        rules=[fp.on(fp.ProviderError()).do(fp.Abstain("any error")), fp.on(fp.Unexpected()).do(fp.Default("n/a", "a bug"))],
        store=False,
    )
    assert catch_all.wrap(get_fault("crash").wrap(parse))("x").state == "provider_error"


async def test_the_crash_fault_wraps_an_async_system_too():
    with pytest.raises(faults.InjectedCrash):
        await get_fault("crash").wrap(aparse)("x")
