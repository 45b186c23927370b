"""failpath.toml: validated with pydantic; every error names the file, the line, the key and the value."""

import textwrap

import pytest

from failpath.check.config import key_lines, load_config
from failpath.core import ConfigError

GOOD = """\
system = "myapp.model:parse"
policy = "myapp.guarding:policy"
suites = ["hostile", "realistic"]
seed = 3
concurrency = 8

[dataset]
path = "data/cases.csv"
input = "text"
expected = "labels"
json_columns = ["labels"]

[judge]
name = "fields"
normalizers = { city = "text" }

[budgets]
silent_failure = 0.01
coverage_floor = 0.6

[budgets.accepted]
inconsistent = "A deterministic parser: two samples always agree."
"""


def write(tmp_path, text):
    path = tmp_path / "failpath.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_complete_config_loads(tmp_path):
    loaded = load_config(write(tmp_path, GOOD))
    c = loaded.config
    assert c.system == "myapp.model:parse" and c.seed == 3 and c.suites == ("hostile", "realistic")
    assert c.dataset.json_columns == ("labels",)
    assert c.judge.name == "fields" and c.judge.options == {"normalizers": {"city": "text"}}
    assert c.budgets.accepted == {"inconsistent": "A deterministic parser: two samples always agree."}
    assert loaded.resolve(c.dataset.path) == tmp_path / "data" / "cases.csv"
    assert loaded.line_of(("budgets", "accepted", "inconsistent")) == 22


@pytest.mark.parametrize(
    "change, message",
    [
        (("silent_failure = 0.01", "silent_failure = 1.5"), r"failpath\.toml:18: budgets\.silent_failure = 1\.5: must be a number strictly between 0 and 1"),
            (("silent_failure = 0.01", "silent_failure = {clean = 0.01, daily = 0.02}"), r"failpath\.toml:18: budgets\.silent_failure = .*unknown families 'daily'; use clean, realistic, hostile, fault"),
        (("seed = 3", 'seed = "three"'), r"failpath\.toml:4: seed = 'three': Input should be a valid integer"),
        (('system = "myapp.model:parse"', 'system = "myapp.model.parse"'), r"failpath\.toml:1: system = 'myapp\.model\.parse': must be 'module:attr'"),
        (("concurrency = 8", "concurency = 8"), r"failpath\.toml:5: concurency = 8: unknown key"),
        (('path = "data/cases.csv"\n', ""), r"failpath\.toml:7: dataset = .*: name the dataset: path = .*, or paths = \["),
        (('path = "data/cases.csv"\n', 'path = "a.csv"\npaths = ["b.csv"]\n'), r"failpath\.toml:7: dataset = .*give path \(one file\) or paths"),
        (("inconsistent = ", "inconsistant = "), r"failpath\.toml:22: budgets\.accepted\.inconsistant = .*unknown failure state 'inconsistant'"),
        (('"A deterministic parser: two samples always agree."', '"ok"'), r"failpath\.toml:22: budgets\.accepted\.inconsistent = 'ok': a waiver needs a written reason of at least 10 characters"),
        (('suites = ["hostile", "realistic"]', 'suites = ["hostile", "clean"]'), r"failpath\.toml:3: suites = .*clean pass always runs last"),
        (("concurrency = 8", "concurrency = 0"), r"failpath\.toml:5: concurrency = 0: Input should be greater than or equal to 1"),
    ],
)
def test_errors_name_file_line_key_and_value(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"failpath\.toml: not valid TOML: .*line 2"):
        load_config(write(tmp_path, 'system = "a:b"\nseed = = 1\n'))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.toml")


def test_judge_may_be_a_plain_name(tmp_path):
    loaded = load_config(write(tmp_path, 'system = "a:b"\njudge = "text"\n[dataset]\npath = "x.jsonl"\n'))
    assert loaded.config.judge.name == "text" and loaded.config.judge.options == {}


def test_key_lines_skips_multiline_values_and_reads_dotted_and_quoted_keys():
    text = textwrap.dedent(
        '''\
        a = """
        [not_a_table]
        b = 1
        """
        list = [
          "x",
          { c = 1 },
        ]
        "quoted key".inner = 2
        [t.u]
        v = { w = 1, 'x y' = 2 }
        [[arr]]
        z = 1
        '''
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert ("not_a_table",) not in lines and ("b",) not in lines
    assert lines[("list",)] == 5
    assert lines[("quoted key", "inner")] == 9
    assert lines[("t", "u")] == 10
    assert lines[("t", "u", "v", "w")] == 11
    assert lines[("t", "u", "v", "x y")] == 11
    assert lines[("arr", "z")] == 13
