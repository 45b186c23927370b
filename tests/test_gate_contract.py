"""The gate's edges: the exit-code contract of every command, the crash fault that reaches `unexpected`, and
lint on a catch-all ``ProviderError()``.

Exit codes: ``failpath check`` exits 0 only for READY TO SHIP, 1 only for READY TO DEMO, 130 on Ctrl-C and 2
for everything else, with one message naming the problem and no traceback (``--debug`` shows it). The rows
run the real console script in a subprocess on the project of ``examples/ci/``, whose ``exit_codes.sh`` is
run here too so that it stays true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.cli import app

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "examples" / "ci"
SCRIPT = Path(sys.executable).with_name("failpath")
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-c", "from failpath.cli import main; main()"]


def failpath(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A scratch copy of the CI example's project."""
    target = tmp_path / "p"
    shutil.copytree(CI / "project", target, ignore=shutil.ignore_patterns("__pycache__", ".failpath", "*.html"))
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def _error(done: subprocess.CompletedProcess) -> str:
    """The error line, after checking the contract: exit 2, one `error:` line, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


# --------------------------------------------------------------------------- the verdicts


def test_ship_is_0_and_demo_is_1(project):
    ship = failpath("check", "--quiet", "--no-html", cwd=project)
    assert ship.returncode == 0 and "READY TO SHIP" in ship.stdout, ship.stdout + ship.stderr
    demo = failpath("check", "demo.toml", "--quiet", "--no-html", cwd=project)
    assert demo.returncode == 1 and "READY TO DEMO" in demo.stdout, demo.stdout + demo.stderr


# --------------------------------------------------------------------------- user modules


@pytest.mark.parametrize(
    "module, code, message",
    [
        ("shop.py", "def system(text:\n", r"shop.py:1 has a SyntaxError"),
        ("shop.py", None, r"importing module 'shop' raised RuntimeError: SHOP_API_KEY is not set at .*shop.py:\d+; fix the module"),
        ("shop.py", "import sys\nsys.exit(0)\n", r"importing module 'shop' called sys.exit\(0\) at .*shop.py:2; a module named here must not exit"),
        ("shop.py", "import sys\nsys.exit('no key')\n", r"called sys.exit\('no key'\)"),
        ("shop.py", "import not_installed_anywhere\n", r"cannot import module 'shop' \(No module named 'not_installed_anywhere'\)"),
    ],
    ids=["syntax-error", "raises-at-import", "exit-0-at-import", "exit-text-at-import", "missing-dependency"],
)
def test_a_system_module_that_fails_at_import_exits_2_naming_the_key_and_the_file(project, module, code, message):
    import re

    path = project / module
    if code is None:
        path.write_text(path.read_text(encoding="utf-8") + '\nraise RuntimeError("SHOP_API_KEY is not set")\n', encoding="utf-8")
    else:
        path.write_text(code, encoding="utf-8")
    line = _error(failpath("check", "--quiet", "--no-html", cwd=project))
    assert line.startswith("error: failpath.toml:2: system = 'shop:system': "), line
    assert re.search(message, line), line
    assert not (project / ".failpath").exists()  # refused before any run was recorded


def test_a_policy_or_judge_module_that_fails_at_import_exits_2(project):
    (project / "guards.py").write_text("from shop import *\npolicy = (\n", encoding="utf-8")
    _edit(project / "failpath.toml", '"shop:policy"', '"guards:policy"')
    assert "failpath.toml:3: policy = 'guards:policy': " in _error(failpath("check", "-q", "--no-html", cwd=project))
    _edit(project / "failpath.toml", '"guards:policy"', '"shop:policy"')
    (project / "judging.py").write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    _edit(project / "failpath.toml", 'judge = "text"', 'judge = { name = "function", function = "judging:same" }')
    line = _error(failpath("check", "-q", "--no-html", cwd=project))
    assert "judge function 'judging:same': importing module 'judging' called sys.exit(3)" in line


@pytest.mark.parametrize("executor", ["thread", "process", "async"])
def test_sys_exit_in_the_system_during_the_run_exits_2(project, executor):
    if executor == "process" and (os.cpu_count() or 1) < 2:
        pytest.skip("a process run needs two cores to start a worker")
    (project / "quitting.py").write_text(
        "import sys\nfrom shop import *\n\ncalls = 0\n\ndef quitting(text):\n    global calls\n    calls += 1\n"
        "    if calls > 3:\n        sys.exit(0)\n    return system(text)\n\n\nasync def aquitting(text):\n    return quitting(text)\n",
        encoding="utf-8",
    )
    _edit(project / "failpath.toml", '"shop:system"', '"quitting:aquitting"' if executor == "async" else '"quitting:quitting"')
    done = failpath("check", "-q", "--no-html", "--executor", "auto" if executor == "async" else executor, cwd=project)
    line = _error(done)
    assert "READY TO" not in done.stdout
    assert "user code called sys.exit(0) at " in line and "quitting.py:10" in line, line


def test_an_error_in_user_code_during_the_run_is_named_and_debug_shows_the_traceback(project):
    with open(project / "shop.py", "a", encoding="utf-8") as f:
        f.write(
            "\n\ndef _label(text):\n    return {'sku': 'SKU'}[text.split()[0].upper()]\n\n\n"
            "register_suite(Suite('shop-relabel', 'realistic', (Edited('relabel', 'realistic', lambda s: _label(s)),)), replace=True)\n"
        )
    _edit(project / "failpath.toml", '"shop-realistic"', '"shop-relabel"')
    plain = failpath("check", "-q", "--no-html", cwd=project)
    line = _error(plain)
    assert "your code raised KeyError: 'SKU' at " in line and "shop.py:" in line and "--debug" in line, line
    debug = failpath("check", "-q", "--no-html", "--debug", cwd=project)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert "in _label" in debug.stderr and debug.stderr.rstrip().splitlines()[-1].startswith("error: your code raised")


def test_an_internal_error_exits_2_and_says_it_is_a_bug():
    code = (
        "import failpath.check.api as api\n"
        "def broken(**kwargs):\n    raise ZeroDivisionError('division by zero')\n"
        "api.check = broken\n"
        "from failpath.cli import main\nmain(['check', '--example', 'addresses', '-q', '--no-html'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = _error(done)
    assert "ZeroDivisionError: division by zero" in line and ("bug in failpath" in line or "<string>" not in line), line


def test_ctrl_c_before_the_run_starts_exits_130(project):
    import signal
    import time

    (project / "sleepy.py").write_text(
        "import pathlib, time\npathlib.Path('importing').touch()\ntime.sleep(60)\n", encoding="utf-8"
    )
    _edit(project / "failpath.toml", '"shop:system"', '"sleepy:system"')
    child = subprocess.Popen([*CLI, "check", "-q", "--no-html"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (project / "importing").exists():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130 and "Traceback" not in err, err


def test_debug_shows_what_a_config_error_hid(project):
    (project / "shop.py").write_text("def system(text:\n", encoding="utf-8")
    done = failpath("--debug", "check", "-q", "--no-html", cwd=project)
    assert done.returncode == 2 and "Traceback" in done.stderr and "SyntaxError" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("error: failpath.toml:2: system")


# --------------------------------------------------------------------------- datasets


def _append(project: Path, line: str) -> None:
    with open(project / "cases.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: (p / "cases.jsonl").unlink(), "cases.jsonl: dataset file not found"),
        (lambda p: (p / "cases.jsonl").write_bytes(b'\xff\xfe{"id": 1}\n'), "cases.jsonl:1: not valid utf-8 text"),
        (lambda p: ((p / "cases.jsonl").unlink(), (p / "cases.jsonl").mkdir()), "cases.jsonl: dataset file not found"),
        (lambda p: _append(p, '{"id": "x", "input": "sku 1", "expected": ' + "[" * 100_000 + "]" * 100_000 + "}"),
         "cases.jsonl:41: a JSON value is nested too deeply to read"),
        (lambda p: _append(p, '{"id": "x", "input": "sku 1", "expected": ' + "7" * 5000 + "}"),
         "cases.jsonl:41: a JSON integer has more digits than Python reads"),
        (lambda p: _append(p, '{"id": "x", "input": "sku 1"'), "cases.jsonl:41: bad JSON"),
    ],
    ids=["missing", "not-utf8", "a-directory", "nested-100000-deep", "5000-digit-integer", "bad-json"],
)
def test_an_unreadable_dataset_exits_2_naming_file_and_line(project, change, message):
    change(project)
    assert message in _error(failpath("check", "-q", "--no-html", cwd=project))


def test_a_value_json_reads_but_nested_too_deep_to_report_is_refused_before_the_run(project, tmp_path):
    from failpath.check.datasets import MAX_NESTING, as_cases, load_cases
    from failpath.core import DatasetError

    _append(project, '{"id": "x", "input": "sku 1", "expected": ' + "[" * 300 + "]" * 300 + "}")
    line = _error(failpath("check", "-q", "--no-html", cwd=project))
    assert "cases.jsonl:41: 'expected' nests lists or objects more than 100 levels deep" in line
    assert not (project / ".failpath").exists()
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"input": {"a": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + '}, "expected": 1}\n', encoding="utf-8")
    assert len(load_cases(ok)) == 1  # exactly MAX_NESTING levels is fine
    deep: list = []
    for _ in range(MAX_NESTING):
        deep = [deep]
    with pytest.raises(DatasetError, match=r"case #1: input nests lists or objects more than 100 levels deep"):
        as_cases([fp.Case("a", "x", "y"), fp.Case("b", deep, "y")])
    with pytest.raises(DatasetError, match=r"case #0: expected holds an integer of more than 4300 digits"):
        as_cases([fp.Case("a", "x", {"total": [10**4400]})])
    assert as_cases([fp.Case("a", "x", 10**4299)])[0].expected == 10**4299


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_a_dataset_without_read_permission_exits_2(project):
    (project / "cases.jsonl").chmod(0)
    assert "cannot read the dataset" in _error(failpath("check", "-q", "--no-html", cwd=project))


def test_a_csv_json_column_too_deep_is_a_dataset_error(tmp_path):
    from failpath.check.datasets import load_cases
    from failpath.core import DatasetError

    path = tmp_path / "cases.csv"
    path.write_text('input,expected\n"a","' + "[" * 5000 + "]" * 5000 + '"\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"cases.csv:2: column 'expected': a JSON value is nested too deeply"):
        load_cases(path, json_columns=["expected"])


# --------------------------------------------------------------------------- usage and the other commands


def test_usage_errors_of_every_command_exit_2(project):
    rows = [
        (("check", "--shipit"), "No such option"),
        (("check", "--concurrency", "0"), "--concurrency"),
        (("check", "nowhere.toml", "-q"), "configuration file not found"),
        (("lint", "--config", "nowhere.toml"), "configuration file not found"),
        (("lint", "shop"), "write the policy as module:attribute"),
        (("perturb", "sku 1", "--suite", "nosuch"), "unknown suite"),
        (("report", "--store", "nowhere.db"), "no store"),
        (("traces", "--since", "yesterday-ish", "--store", "nowhere.db"), ""),
        (("nosuchcommand",), "No such command"),
    ]
    for args, words in rows:
        done = failpath(*args, cwd=project)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert words in done.stderr + done.stdout, (args, done.stderr)


def test_lint_of_a_module_that_exits_or_breaks_at_import_exits_2(project):
    (project / "quits.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    (project / "broken.py").write_text("policy = (\n", encoding="utf-8")
    assert "importing quits called sys.exit(0)" in _error(failpath("lint", "quits:policy", cwd=project))
    assert "broken.py:1 has a SyntaxError" in _error(failpath("lint", "broken:policy", cwd=project))
    ok = failpath("lint", "shop:policy", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_ci_script_shows_every_exit_code():
    env = {**os.environ, "FAILPATH": " ".join(CLI)}
    done = subprocess.run(["bash", str(CI / "exit_codes.sh")], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if "  expected " in line]
    assert len(rows) == 20 and all(line.endswith("  ok") for line in rows), done.stdout
    codes = {line.split("  expected ")[1].split()[0] for line in rows}
    assert codes == {"0", "1", "2", "130"}
    assert "sys.exit(0) at import" in done.stdout and "nested 100,000 deep" in done.stdout


# --------------------------------------------------------------------------- unexpected is reachable


def test_the_built_in_fault_suite_exercises_an_ordinary_policys_unexpected_rule(tmp_path):
    sys.path.insert(0, str(CI / "project"))
    try:
        import shop
    finally:
        sys.path.remove(str(CI / "project"))
    cases = [fp.Case(f"c{i}", f"sku {i}", f"SKU {i}") for i in range(1, 13)]
    result = fp.check(system=shop.system, cases=cases, policy=shop.policy, judge="text", suites=["fault"],
                      store=tmp_path / "s.db", quiet=True, accepted=shop.ACCEPTED, worst_cases=0)
    unexpected = next(s for s in result.states if s.state == "unexpected")
    assert unexpected.fired >= len(cases) // 2 and unexpected.ok  # the crash variants (of the evaluation half at least)


def test_lint_warns_when_a_catch_all_provider_error_leaves_unexpected_unreachable():
    def policy(*rules):
        return fp.Policy("p", rules=[*rules, fp.on(fp.Unexpected()).do(fp.Abstain("a bug"))], store=False)

    closed = policy(fp.on(fp.ProviderError()).do(fp.Abstain("down")), fp.on(fp.InvalidOutput()).do(fp.Abstain("bad")))
    finding = next(f for f in closed.lint().findings if f.code == "unexpected-unreachable")
    assert finding.severity == "warning" and finding.rule == 1 and "it can never fire" in finding.message
    assert "ProviderError(ConnectionError)" in finding.message and not closed.lint().ok
    leaky = policy(fp.on(fp.ProviderError()).do(fp.Abstain("down")))
    message = next(f.message for f in leaky.lint().findings if f.code == "unexpected-unreachable")
    assert "only None or NaN outputs (no InvalidOutput rule) reach it" in message
    named = policy(fp.on(fp.ProviderError(ConnectionError)).do(fp.Abstain("down")), fp.on(fp.InvalidOutput()).do(fp.Abstain("bad")))
    assert not any(f.code == "unexpected-unreachable" for f in named.lint().findings)


def test_failpath_lint_exits_1_on_the_catch_all_warning(tmp_path, monkeypatch):
    (tmp_path / "catchall.py").write_text(
        "import failpath as fp\npolicy = fp.Policy('p', rules=[fp.on(fp.ProviderError()).do(fp.Abstain('down')),"
        " fp.on(fp.Unexpected()).do(fp.Abstain('bug'))], store=False)\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    done = CliRunner().invoke(app, ["lint", "catchall:policy", "--json"])
    assert done.exit_code == 1 and "unexpected-unreachable" in done.output


# --------------------------------------------------------------------------- every printed level comes from delta


@pytest.fixture(scope="module")
def toy_document(tmp_path_factory):
    sys.path.insert(0, str(CI / "project"))
    try:
        import shop
    finally:
        sys.path.remove(str(CI / "project"))
    cases = [fp.Case(f"c{i}", f"sku {i}", f"SKU {i}") for i in range(1, 41)]
    result = fp.check(system=shop.system, cases=cases, policy=shop.hasty, judge="text", suites=["shop-realistic", "shop-hostile"],
                      store=tmp_path_factory.mktemp("levels") / "s.db", quiet=True, accepted=shop.ACCEPTED, worst_cases=1,
                      worst_case_seconds=0.5, delta=0.1)
    return result.to_dict()


def _terminal(document) -> str:
    from rich.console import Console

    from failpath.report import terminal

    console = Console(width=140, record=True, file=open(os.devnull, "w"))
    terminal.render(document, console)
    return console.export_text()


def test_the_reports_print_the_level_the_intervals_are_computed_at(toy_document):
    from failpath.report import html, json_report

    assert toy_document["budgets"]["delta"] == 0.1
    text = _terminal(toy_document)
    assert "gap [90% CI]" in text and "95%" not in text
    if toy_document["thresholds"]["certified"]:
        assert "with probability ≥ 90%" in text
    page = html.render(toy_document)
    assert "90% interval</th>" in page and "silent ≤ (90%)" in page and "exact 90% intervals" in page
    assert "95%" not in page
    rows = json_report.build_report(toy_document)["accuracy"]
    from failpath.stats import clopper_pearson

    clean = rows[0]
    exact = clopper_pearson(round(clean["accuracy"] * clean["n"]), clean["n"], alpha=0.1)
    assert (clean["low"], clean["high"]) == pytest.approx((exact.low, exact.high))


def test_a_certified_threshold_that_answers_nothing_is_reported_as_nothing_certified(toy_document):
    from failpath.report import html

    document = json_loads_copy(toy_document)
    document["thresholds"].update(
        certified=True, threshold=0.71, calibration_coverage=0.0, calibration_risk=None, evaluation_coverage=0.0,
        evaluation_risk=None, evaluation_silent_failure_rate=0.0, message="answer when confidence ≥ 0.71",
    )
    text = _terminal(document)
    assert "NOTHING CERTIFIED" in text and "answers none of the" in text
    assert "answer when confidence ≥ 0.71" not in text and "Recommended threshold" not in text
    page = html.render(document)
    assert "NOTHING CERTIFIED" in page and "Recommended threshold" not in page and "≥ <span class=\"mono\">0.71" not in page
    document["thresholds"]["calibration_coverage"] = 0.4  # the same threshold answering some requests is certified
    assert "Recommended threshold" in _terminal(document) and "Recommended threshold" in html.render(document)


def json_loads_copy(document):
    import json

    return json.loads(json.dumps(document))
