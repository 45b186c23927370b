"""``failpath init``: a commented config, a policy module and a sample dataset that ``failpath check`` runs."""

from __future__ import annotations

import json
import tomllib

from ci_project import failpath
from typer.testing import CliRunner

from failpath.check.config import load_config
from failpath.cli import app
from failpath.cli.init import DATASET_PATH, init_files

SYSTEM = '''
import failpath as fp


def parse(text):
    """Echoes its input, sure of itself: right on the sample cases' inputs only by accident."""
    return fp.Prediction(text.strip(), 0.9)
'''


def test_init_writes_the_three_files_and_check_runs_on_them(tmp_path):
    (tmp_path / "mysystem.py").write_text(SYSTEM, encoding="utf-8")
    done = failpath(tmp_path, "init", "mysystem:parse")
    assert done.returncode == 0, done.stderr
    for name in ("failpath.toml", "failpath_policy.py", DATASET_PATH):
        assert f"wrote {name}" in done.stdout
    assert "next:" in done.stdout and "failpath check" in done.stdout and "note:" not in done.stdout
    config = tomllib.loads((tmp_path / "failpath.toml").read_text(encoding="utf-8"))
    assert config["system"] == "mysystem:parse" and config["policy"] == "failpath_policy:policy"
    assert load_config(tmp_path / "failpath.toml").config.dataset.path.as_posix() == DATASET_PATH
    lines = (tmp_path / DATASET_PATH).read_text(encoding="utf-8").splitlines()
    assert all({"id", "input", "expected"} <= set(json.loads(line)) for line in lines)

    lint = failpath(tmp_path, "lint", "failpath_policy:policy")
    assert lint.returncode in (0, 1), lint.stderr  # loads; its warnings name the states left to decide
    assert "anomalous_input" in lint.stdout

    check = failpath(tmp_path, "check", "--quiet", "--no-html", "--json", "result.json")
    assert check.returncode == 1, check.stderr  # it runs; the sample data and open states make it DEMO
    document = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    assert document["n_cases"] == len(lines) and document["system"] == "mysystem:parse"
    states = next(r for r in document["verdict"]["reasons"] if r["name"] == "states_handled")
    assert "anomalous_input" in states["detail"] and "inconsistent" in states["detail"]


def test_init_refuses_to_overwrite_and_force_does(tmp_path):
    (tmp_path / "failpath.toml").write_text("# mine\n", encoding="utf-8")
    runner = CliRunner()
    refused = runner.invoke(app, ["init", "myapp.model:parse", "--dir", str(tmp_path)])
    assert refused.exit_code == 2 and "failpath.toml exists already" in refused.output and "--force" in refused.output
    assert (tmp_path / "failpath.toml").read_text() == "# mine\n"
    assert not (tmp_path / "failpath_policy.py").exists()  # nothing at all was written
    forced = runner.invoke(app, ["init", "myapp.model:parse", "--dir", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert 'system = "myapp.model:parse"' in (tmp_path / "failpath.toml").read_text()
    assert "note: myapp.model:parse cannot be imported" in forced.output  # said, not fatal
    assert f"cd {tmp_path} && failpath check" in forced.output


def test_init_refuses_a_system_that_is_not_module_attr(tmp_path):
    refused = CliRunner().invoke(app, ["init", "myapp.parse", "--dir", str(tmp_path)])
    assert refused.exit_code == 2 and "not module:attr" in refused.output
    assert list(tmp_path.iterdir()) == []


def test_the_written_files_are_valid_python_and_toml():
    files = init_files("pkg.mod:fn")
    compile(files["failpath_policy.py"], "failpath_policy.py", "exec")
    assert tomllib.loads(files["failpath.toml"])["dataset"]["path"] == DATASET_PATH
    assert "pkg.mod:fn" in files["failpath_policy.py"]
