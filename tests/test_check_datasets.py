"""Datasets: JSONL and CSV read into cases; every bad file fails with its file and line, before any call."""

import json

import pytest

from failpath.check.datasets import as_cases, load_cases
from failpath.core import Case, DatasetError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_with_column_mapping_and_tags(tmp_path):
    path = write(
        tmp_path,
        "cases.jsonl",
        '{"key": "a", "text": "hello", "label": {"x": 1}, "tags": ["t1", "t2"]}\n'
        "\n"
        '{"key": 7, "text": "bye", "label": [1, 2], "tags": "solo"}\n',
    )
    cases = load_cases(path, id="key", input="text", expected="label")
    assert cases == [
        Case(id="a", input="hello", expected={"x": 1}, tags=("t1", "t2")),
        Case(id="7", input="bye", expected=[1, 2], tags=("solo",)),
    ]


def test_jsonl_without_ids_numbers_cases_by_line(tmp_path):
    path = write(tmp_path, "c.jsonl", '{"input": 1, "expected": 2}\n{"input": 3, "expected": 4}\n')
    assert [c.id for c in load_cases(path)] == ["1", "2"]


def test_csv_with_json_expected_and_tag_separator(tmp_path):
    path = write(
        tmp_path,
        "c.csv",
        'id,question,answer,tags\n'
        'q1,"two, plus two","{""value"": 4}",math;easy\n'
        'q2,"multi\nline",[1],\n',
    )
    cases = load_cases(path, input="question", expected="answer", json_columns=["answer"])
    assert cases[0] == Case(id="q1", input="two, plus two", expected={"value": 4}, tags=("math", "easy"))
    assert cases[1] == Case(id="q2", input="multi\nline", expected=[1], tags=())


@pytest.mark.parametrize(
    "name, text, options, message",
    [
        ("c.jsonl", '{"input": 1, "expected": 2}\n{"input": 1}\n', {}, r"c\.jsonl:2: no 'expected' field"),
        ("c.jsonl", '{"input": 1, "expected": 2}\n\n{"input": 1, "expected": \n', {}, r"c\.jsonl:3: bad JSON"),
        ("c.jsonl", "[1, 2]\n", {}, r"c\.jsonl:1: each line must be a JSON object"),
        ("c.jsonl", "\n  \n", {}, r"c\.jsonl: the dataset is empty"),
        ("c.jsonl", "", {}, r"c\.jsonl: the dataset is empty"),
        (
            "c.jsonl",
            '{"id": "a", "input": 1, "expected": 2}\n{"id": "b", "input": 1, "expected": 2}\n{"id": "a", "input": 1, "expected": 2}\n',
            {},
            r"c\.jsonl:3: duplicate id 'a' \(first at line 1\)",
        ),
        ("c.csv", "id,input\n1,2\n", {}, r"c\.csv:1: no column 'expected' in the header"),
        ("c.csv", "id,input,expected\n1,2,3\n2,x,{bad\n", {"json_columns": ["expected"]}, r"c\.csv:3: column 'expected' holds bad JSON"),
        ("c.csv", "id,input,expected\n", {}, r"c\.csv: the dataset is empty"),
        ("c.csv", "", {}, r"c\.csv: the dataset is empty"),
        ("c.csv", "id,input,expected\n1,2,3\n1,4,5\n", {}, r"c\.csv:3: duplicate id '1'"),
        ("c.csv", "id,input,expected\n1,2\n", {}, r"c\.csv:2: 2 cells but the header has 3"),
        ("c.jsonl", '{"name": "x", "input": 1, "expected": 2}\n', {"id": "name2"}, r"c\.jsonl:1: no 'name2' field"),
        ("c.txt", "hello\n", {}, r"unknown dataset format 'txt'"),
    ],
)
def test_bad_datasets_name_file_and_line(tmp_path, name, text, options, message):
    path = write(tmp_path, name, text)
    with pytest.raises(DatasetError, match=message):
        load_cases(path, **options)


def test_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_cases(tmp_path / "nope.jsonl")
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"input": "ok", "expected": 1}\n{"input": "caf\xe9", "expected": 1}\n')
    with pytest.raises(DatasetError, match=r"latin\.jsonl:2: not valid utf-8"):
        load_cases(path)


def test_as_cases_accepts_cases_dicts_and_paths(tmp_path):
    path = write(tmp_path, "c.jsonl", json.dumps({"id": "x", "input": 1, "expected": 1}) + "\n")
    assert as_cases(path)[0].id == "x"
    assert as_cases([{"id": "a", "input": 1, "expected": 2, "tags": "t"}])[0].tags == ("t",)
    assert as_cases([Case("a", 1, 1)]) == [Case("a", 1, 1)]
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        as_cases([Case("a", 1, 1), Case("a", 2, 2)])
    with pytest.raises(DatasetError, match="missing expected"):
        as_cases([{"input": 1}])
    with pytest.raises(DatasetError, match="empty"):
        as_cases([])


# --------------------------------------------------------------------------- several files


def test_several_files_are_read_in_order_with_one_mapping(tmp_path):
    first = write(tmp_path, "cases.jsonl", '{"id": "a", "text": "x", "label": "X"}\n')
    second = write(tmp_path, "more.csv", "id,text,label\nb,y,Y\n")
    cases = load_cases([first, second], input="text", expected="label")
    assert [(c.id, c.input, c.expected) for c in cases] == [("a", "x", "X"), ("b", "y", "Y")]
    assert load_cases([first], input="text", expected="label") == load_cases(first, input="text", expected="label")


def test_a_duplicate_id_across_files_names_both_files_and_lines(tmp_path):
    first = write(tmp_path, "cases.jsonl", '{"id": "a", "input": 1, "expected": 1}\n{"id": "b", "input": 2, "expected": 2}\n')
    second = write(tmp_path, "regressions.jsonl", '{"id": "c", "input": 3, "expected": 3}\n{"id": "b", "input": 4, "expected": 4}\n')
    with pytest.raises(DatasetError) as info:
        load_cases([first, second])
    message = str(info.value)
    assert message.startswith(f"{second}:2: duplicate id 'b'") and f"{first}:2 has it too" in message


def test_line_numbered_ids_carry_the_file_name_when_several_files_are_read(tmp_path):
    first = write(tmp_path, "a.jsonl", '{"input": 1, "expected": 2}\n')
    second = write(tmp_path, "b.jsonl", '{"input": 3, "expected": 4}\n')
    assert [c.id for c in load_cases([first, second])] == ["a.jsonl:1", "b.jsonl:1"]
    assert [c.id for c in load_cases(first)] == ["1"]  # one file: as before


def test_no_files_and_a_missing_one_are_named(tmp_path):
    with pytest.raises(DatasetError, match="no dataset file given"):
        load_cases([])
    present = write(tmp_path, "a.jsonl", '{"input": 1, "expected": 2}\n')
    with pytest.raises(DatasetError, match=r"gone\.jsonl: dataset file not found"):
        load_cases([present, tmp_path / "gone.jsonl"])
