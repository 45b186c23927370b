"""A small check's fixed start-up: what it imports, and the result document written without pydantic."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import TypeAdapter

import failpath as fp
from failpath.check.result import CheckResult, Reproduction, WorstCase, _clean_floats
from test_check_toy import partial_policy, toy_kwargs

SRC = Path(__file__).resolve().parents[1] / "src"

SMALL_CHECK = textwrap.dedent("""
    import os, sys, tempfile
    import failpath as fp

    def system(text):
        return fp.Prediction(text.upper() if int(text[5:]) % 7 else text, 0.3 + (int(text[5:]) % 7) / 10)

    cases = [fp.Case(id=str(i), input=f"case-{i}", expected=f"CASE-{i}") for i in range(60)]
    policy = fp.Policy("small", rules=[fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure")),
                                       fp.on(fp.Unexpected()).do(fp.Abstain("crash"))], store=False)
    with tempfile.TemporaryDirectory() as directory:
        result = fp.check(system, cases, policy=policy, suites=[], store=os.path.join(directory, "c.db"),
                          worst_cases=0, quiet=True)
    assert result.n_rows == 60 and result.to_dict()["verdict"]["reasons"]
    print(sorted(name for name in sys.modules
                 if name.split(".")[0] in ("scipy", "pydantic", "hypothesis")
                 or name in ("failpath.chaos", "failpath.check.config")))
""")


def test_a_small_check_imports_no_scipy_pydantic_hypothesis_or_chaos():
    done = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(SRC)!r})\n" + SMALL_CHECK],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_chaos_package_loads_the_audit_only_when_asked():
    code = ("import sys, failpath.chaos as c; print('failpath.chaos.audit' in sys.modules); "
            "c.audit_suite; print('failpath.chaos.audit' in sys.modules, c.audit_suite.__module__)")
    done = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); " + code],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "failpath.chaos.audit"]


def test_default_suites_are_the_same_name_everywhere():
    from failpath.check import api, config, plan

    assert config.DEFAULT_SUITES is plan.DEFAULT_SUITES == ("hostile", "realistic", "fault")
    assert api.check.__kwdefaults__["suites"] is plan.DEFAULT_SUITES
    assert config.CheckConfig.model_fields["suites"].default == plan.DEFAULT_SUITES


def _pydantic_document(result: CheckResult) -> dict:
    return _clean_floats(TypeAdapter(CheckResult).dump_python(result, mode="json"))


@pytest.fixture(scope="module")
def real_result(tmp_path_factory):
    return fp.check(**toy_kwargs(tmp_path_factory.mktemp("startup"), policy=partial_policy(), worst_cases=2))


def test_result_document_is_what_pydantic_writes(real_result):
    assert real_result.worst_cases  # the document covers reproductions too
    ours = real_result.to_dict()
    assert ours == _pydantic_document(real_result)
    assert json.dumps(ours, sort_keys=True) == json.dumps(_pydantic_document(real_result), sort_keys=True)
    assert CheckResult.from_dict(ours) == CheckResult.from_dict(_pydantic_document(real_result))


def test_inputs_of_any_type_are_written_as_pydantic_writes_them(real_result):
    odd = {  # values a case's input or a system's output may be
        "bytes": b"\x00ab", "set": {3}, "int_keys": {1: "a"}, "nested": ({"a": (1, 2.5)}, None), "nan": float("nan"),
        "path": Path("a/b"), "float_sub": _Half(0.5), "inf": [float("inf")],
    }
    worst = WorstCase(key="k", suite="s", perturbation="p", case_id="c", input=odd, expected=(b"x", 1),
                      **{f.name: getattr(real_result.worst_cases[0], f.name)
                         for f in dataclasses.fields(WorstCase)
                         if f.name not in ("key", "suite", "perturbation", "case_id", "input", "expected")})
    worst = dataclasses.replace(worst, reproduction=Reproduction(found=True, input={"x": {1, 2}}, output=b"y"))
    result = dataclasses.replace(real_result, worst_cases=(worst,), curves={"odd": odd}, notes=("n",))
    assert result.to_dict() == _pydantic_document(result)


class _Half(float):
    pass
