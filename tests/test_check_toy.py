"""A small, fully known world for the check's tests: a deterministic system, perturbations and a policy.

Case ``i`` has input ``"item i"`` and expected ``"ITEM I"``. The system upper-cases its input with
confidence 0.9, except:

- on cases with ``i % 10 == 0`` it answers ``"?"`` with confidence 0.2 (wrong, unsure);
- on an input holding ``#`` it answers ``"???"`` with confidence ``HASH_CONFIDENCE`` (wrong);
- on an input holding a NUL byte it raises ``ValueError``.

Perturbations: ``hash_tag`` (hostile, appends `` #x``), ``nul`` (hostile, inserts ``\\x00``), ``pad``
(realistic, surrounding spaces: right under the text judge). The full policy handles every state;
``partial_policy`` forgets the ``#`` rule. Other test modules import this one.
"""

from __future__ import annotations

import random
import time

import failpath as fp
from failpath.chaos import FAULT, LabelContract, Perturbation, Suite
from failpath.chaos.base import Edit, Variant
from failpath.chaos.faults import ProviderError, Timeout, WrongType
from failpath.core import Case, Prediction

HASH_CONFIDENCE = 0.95


def make_cases(n: int = 40) -> list[Case]:
    return [Case(id=f"c{i:03d}", input=f"item {i}", expected=f"ITEM {i}") for i in range(n)]


def index_of(case_id: str) -> int:
    return int(case_id[1:])


class ToySystem:
    """The deterministic system of the toy world (``delay`` seconds per call, for resume tests)."""

    def __init__(self, hash_confidence: float = HASH_CONFIDENCE, delay: float = 0.0):
        self.hash_confidence = hash_confidence
        self.delay = delay

    def __call__(self, text: str) -> Prediction:
        if self.delay:
            time.sleep(self.delay)
        if "\x00" in text:
            raise ValueError("NUL byte in the input")
        if "#" in text:
            return Prediction("???", self.hash_confidence)
        number = int(text.split()[-1]) if text.split()[-1].isdigit() else -1
        if number % 10 == 0:
            return Prediction("?", 0.2)
        return Prediction(text.upper(), 0.9)


def toy_system(text: str) -> Prediction:
    """The toy system as a module-level function (importable as ``test_check_toy:toy_system``)."""
    return ToySystem()(text)


class _Simple(Perturbation):
    contract = LabelContract.UNCHANGED

    def __init__(self, name: str, family: str, fn):
        self.name = name
        self.family = family
        self.fn = fn

    def apply(self, case: Case, rng: random.Random) -> Variant:
        new = self.fn(case.input)
        return self._variant(case, new, case.expected, [Edit(kind=self.name, before=case.input, after=new)], self.contract)


HASH = _Simple("hash_tag", "hostile", lambda s: s + " #x")
NUL = _Simple("nul", "hostile", lambda s: s.replace(" ", " \x00", 1))
PAD = _Simple("pad", "realistic", lambda s: "  " + s + "  ")

HOSTILE = Suite("toy-hostile", "hostile", (HASH, NUL))
REALISTIC = Suite("toy-realistic", "realistic", (PAD,))
FAULTS = Suite("toy-fault", "fault", (Timeout(), ProviderError(name="server_error", status=500), WrongType()))
SUITES = [HOSTILE, REALISTIC, FAULTS]

ACCEPTED = {
    "anomalous_input": "Inputs are short labels; an anomaly detector adds nothing here.",
    "inconsistent": "The system is deterministic, so two samples always agree.",
    "injection_suspected": "The # rule of this policy covers the only injection the toy knows.",
    "empty_input": "Empty inputs are refused upstream by the form that calls this system.",
    "budget_exceeded": "No deadline or token budget is set, so the budget cannot run out.",
}


def _rules(with_hash_rule: bool) -> list:
    rules = [
        fp.on(fp.Timeout()).do(fp.Abstain("timed out")),
        fp.on(fp.ProviderError(fp.ProviderFailure)).do(fp.Retry(1), fp.Default("n/a", "provider down")),
        fp.on(fp.InvalidOutput(validator=lambda v: isinstance(v, str))).do(fp.Abstain("bad output")),
        fp.on(fp.LowConfidence(below=0.5)).do(fp.Escalate(queue="toy")),
        fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ]
    if with_hash_rule:
        rules.insert(0, fp.on(fp.State("hash", lambda value, _: "#" in value, stage="input")).do(fp.Abstain("hash")))
    return rules


def full_policy() -> fp.Policy:
    """Every state handled (or accepted in ``ACCEPTED``), ``#`` inputs refused."""
    return fp.Policy("toy-full", rules=_rules(True), store=False)


def partial_policy() -> fp.Policy:
    """The same without the ``#`` rule: hostile ``#`` inputs are answered, wrongly and confidently."""
    return fp.Policy("toy-partial", rules=_rules(False), store=False)


FULL_POLICY = full_policy()


def toy_kwargs(tmp_path, **overrides):
    """Keyword arguments of ``fp.check`` for the toy world, storing in ``tmp_path``."""
    kwargs = dict(
        system=ToySystem(),
        cases=make_cases(40),
        policy=full_policy(),
        judge="text",
        suites=SUITES,
        seed=7,
        concurrency=4,
        store=tmp_path / "store.db",
        # 20 evaluation cases: with no failure at all, the case-level bounds at 95% are 13.9% (silent
        # failures) and 16.2% (over-refusal, 17 raw-right cases); budgets below those could never pass.
        silent_failure_budget=0.15,
        # No severity is configured, so every wrong answer counts as severe: the severe budget must be
        # as loose as the silent-failure one on so few cases (598 evaluation cases are needed for 0.5%).
        severe_silent_failure_budget=0.15,
        false_alarm_budget=0.2,
        accepted=ACCEPTED,
        worst_cases=3,
        worst_case_seconds=2.0,
        quiet=True,
    )
    kwargs.update(overrides)
    return kwargs


def test_toy_system_behaves_as_documented():
    s = ToySystem()
    assert s("item 3") == Prediction("ITEM 3", 0.9)
    assert s("item 20").value == "?"
    assert s("item 3 #x").value == "???"
    assert FAULT.family == "fault"
    try:
        s("item \x003")
    except ValueError:
        pass
    else:
        raise AssertionError("a NUL byte must raise")
