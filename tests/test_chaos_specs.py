"""Suites and faults named as ``module:attr`` in failpath.toml and in Python, with errors naming the entry."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.chaos import get_suite
from failpath.chaos.faults import get_fault
from failpath.check.config import check_kwargs, load_config
from failpath.cli import app
from failpath.core import ConfigError

MODULE = '''
import dataclasses
from failpath.chaos import REALISTIC, Suite, faults
from failpath.core import Prediction

names_suite = REALISTIC.with_contracts({"drop_punctuation": "not_preserved"}, name="names").without("abbreviate", "expand", "move_unit")
flaky = faults.ProviderError(name="gateway_502", status=502, rate=0.5)
FaultClass = faults.Timeout
not_a_suite = 42


def parse(text):
    return Prediction(str(text).split(",")[0].strip().upper(), 0.9)
'''

CONFIG = """\
system = "chaosproj:parse"
suites = {suites}
{faults}
seed = 1
concurrency = 2
worst_cases = 0

[dataset]
path = "cases.jsonl"
input = "text"
expected = "surname"

[judge]
name = "text"
"""


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "chaosproj.py").write_text(MODULE, encoding="utf-8")
    lines = [json.dumps({"id": f"n{i}", "text": f"Smith{i}, John", "surname": f"SMITH{i}"}) for i in range(12)]
    (tmp_path / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("chaosproj", None)


def config(project, suites='["realistic", "chaosproj:names_suite", "fault"]', faults=""):
    path = project / "failpath.toml"
    path.write_text(CONFIG.format(suites=suites, faults=faults), encoding="utf-8")
    return path


def test_a_suite_and_faults_named_as_module_attr_run_in_a_check(project):
    kwargs = check_kwargs(load_config(config(
        project, suites='["chaosproj:names_suite", "fault"]', faults='faults = ["timeout", "chaosproj:flaky"]'
    )))
    suites = kwargs["suites"]
    assert [s.name for s in suites] == ["names", "fault"]
    assert "abbreviate" not in suites[0].names and suites[1].names == ("timeout", "gateway_502")
    result = fp.check(**{**kwargs, "store": project / "s.db", "quiet": True})
    perturbations = {g.perturbation for g in result.groups if g.suite == "fault"}
    assert perturbations == {None, "timeout", "gateway_502"}
    assert any(g.suite == "names" and g.perturbation == "drop_punctuation" and g.contract == "not_preserved" for g in result.groups)


@pytest.mark.parametrize(
    ("suites", "faults", "message"),
    [
        ('["chaosproj:nothing_here"]', "", r"suites = .*suites\[0\] 'chaosproj:nothing_here'.*has no attribute 'nothing_here'"),
        ('["nomodule_xyz:suite"]', "", r"suites\[0\] 'nomodule_xyz:suite'.*cannot import module 'nomodule_xyz'"),
        ('["realistic", "chaosproj:not_a_suite"]', "", r"suites\[1\] 'chaosproj:not_a_suite' is a int, not a failpath\.chaos\.Suite"),
        ('["fault"]', 'faults = ["chaosproj:FaultClass"]', r"faults\[0\] 'chaosproj:FaultClass' is a ABCMeta \(a class: name an instance of it\)"),
        ('["fault"]', 'faults = ["chaosproj:names_suite"]', r"faults\[0\] .* is a Suite, not a failpath\.chaos\.faults\.Fault"),
        ('["fault"]', 'faults = ["timeuot"]', r"unknown fault kind 'timeuot'; valid kinds: timeout"),
        ('["realistic"]', 'faults = ["timeout"]', r"faults = \['timeout'\]: the fault suite does not run; add \"fault\" to suites"),
        ('["realistic", "chaosproj:names_suite", "chaosproj:names_suite"]', "", r"a suite is listed twice"),
    ],
)
def test_a_wrong_entry_is_named_and_exits_2(project, suites, faults, message):
    path = config(project, suites=suites, faults=faults)
    with pytest.raises(ConfigError, match=message):
        check_kwargs(load_config(path))
    result = CliRunner().invoke(app, ["check", str(path), "--store", str(project / "x.db"), "-q"])
    assert result.exit_code == 2, result.output
    assert "failpath.toml:" in result.output


def test_two_suites_with_one_name_are_refused(project):
    (project / "chaosproj.py").write_text(MODULE + "\nsame = REALISTIC.without('casing')\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'realistic' and 'chaosproj:same' are both suites named 'realistic'"):
        check_kwargs(load_config(config(project, suites='["realistic", "chaosproj:same"]')))


def test_python_names_suites_and_faults_as_module_attr_too(project):
    sys.path.insert(0, str(project))
    try:
        assert get_suite("chaosproj:names_suite").name == "names"
        assert get_fault("chaosproj:flaky").status == 502
        with pytest.raises(ConfigError, match=r"suite 'chaosproj:not_a_suite' is a int, not a failpath\.chaos\.Suite"):
            get_suite("chaosproj:not_a_suite")
        with pytest.raises(ConfigError, match=r"fault 'chaosproj:missing': module 'chaosproj' has no attribute 'missing'"):
            get_fault("chaosproj:missing")
        from chaosproj import parse

        result = fp.check(parse, [fp.Case("a", "Smith, John", "SMITH")], judge="text", quiet=True, worst_cases=0,
                          suites=["chaosproj:names_suite"], store=project / "p.db")
        assert {g.suite for g in result.groups} == {"names"}
    finally:
        sys.path.remove(str(project))


def test_the_readme_documents_module_attr_suites_and_faults():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert 'suites = ["hostile", "realistic", "mypkg.chaos:names", "fault"]' in readme
    assert 'faults = ["timeout", "rate_limited", "mypkg.chaos:gateway_502"]' in readme
    text = textwrap.dedent(readme)
    assert "module:attr" in text


def test_perturb_takes_a_module_attr_suite(project, monkeypatch):
    monkeypatch.syspath_prepend(str(project))
    shown = CliRunner().invoke(app, ["perturb", "Smith, John", "--suite", "chaosproj:names_suite", "--seed", "1"])
    assert shown.exit_code == 0, shown.output
    assert "suite names" in shown.output
    wrong = CliRunner().invoke(app, ["perturb", "Smith, John", "--suite", "chaosproj:not_a_suite"])
    assert wrong.exit_code == 2 and "is a int, not a failpath.chaos.Suite" in wrong.output
