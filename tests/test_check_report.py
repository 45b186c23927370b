"""The terminal report: verdict first, every section, plain text for untrusted strings, 100 columns."""

import copy

import pytest
from rich.console import Console

import failpath as fp
from failpath.report import terminal
from failpath.report.terminal import visible
from test_check_toy import partial_policy, toy_kwargs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return fp.check(**toy_kwargs(tmp_path_factory.mktemp("report"), policy=partial_policy(), worst_cases=2))


def text_of(result, width=100):
    console = Console(record=True, width=width, force_terminal=False, color_system=None)
    terminal.render(result, console)
    return console.export_text()


def test_sections_in_order_verdict_first(demo):
    text = text_of(demo)
    order = [
        "READY TO DEMO",
        "silent_failure_bound",
        "The gap: clean → chaos accuracy",
        "Outcomes with and without the policy",
        "Failure states: handled by, exercised by this run",
        "Worst cases: silent failures, most confident first",
        "Thresholds",
        "Confidence quality",
    ]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    # Chaos suites are listed before the clean pass.
    assert text.index("toy-hostile") < text.index("toy-fault") < text.index("\n  clean ")
    assert "NOTHING CERTIFIED" in text.split("The gap")[0]  # said loudly, in the banner
    assert "hash_tag" in text and "???" in text and "minimal" in text


def test_fits_100_columns(demo):
    for line in text_of(demo, width=100).splitlines():
        assert len(line) <= 100, line


def test_renders_from_the_stored_document_and_the_report_document(demo):
    from_result = text_of(demo)
    assert text_of(demo.to_dict()) == from_result
    assert text_of({"schema": "failpath.report/1", "check": demo.to_dict()}) == from_result


def test_untrusted_strings_are_plain_text(demo):
    doc = copy.deepcopy(demo.to_dict())
    hostile = "[bold red]boom[/bold red] \x1b[31mred \u202egnp.exe\u200b <script>alert(1)</script>"
    doc["worst_cases"][0]["input"] = hostile
    doc["worst_cases"][0]["output"] = "[link=http://x]click[/link]"
    doc["name"] = "[blink]name[/blink]"
    text = text_of(doc)
    assert "[bold red]boom[/bold red]" in text
    assert "[U+001B][31mred" in text and "\x1b" not in text  # invisible characters of a worst case as code points
    assert "[U+202E]gnp.exe[U+200B]" in text
    assert "<script>alert(1)</script>" in text
    assert "[link=http://x]click[/link]" in text
    assert "[blink]name[/blink]" in text


def test_ship_banner(tmp_path):
    result = fp.check(**toy_kwargs(tmp_path, worst_cases=0))
    text = text_of(result)
    assert text.index("READY TO SHIP") < text.index("states_handled")
    assert "Worst cases: no silent failure" in text


def test_visible_escapes_and_cuts():
    assert visible("a\nb\tc") == "a\\nb\\tc"
    assert visible("\x00\u200b\U000e0001") == "\\x00\\u200b\\U000e0001"
    assert visible({"k": [1, 2]}) == '{"k": [1, 2]}'
    assert visible("x" * 50, limit=10) == "x" * 9 + "…"
    assert visible("[b]") == "[b]"


def test_difference_names_the_tokens_and_fields_that_are_wrong():
    from failpath.report.terminal import difference

    expected = [["4959", "AddressNumber"], ["Wesr", "StreetNamePreDirectional"], ["Peterson", "StreetName"]]
    output = [["4959", "AddressNumber"], ["Wesr", "StreetName"], ["Peterson", "StreetName"]]
    assert difference(expected, output) == "Wesr: StreetNamePreDirectional → StreetName"
    assert difference(expected, output[:2]) == "2 tokens labeled, 3 expected"
    assert difference({"city": "Paris", "zip": "75001"}, {"city": "Lyon", "zip": "75001"}) == 'city: Paris → Lyon'
    assert difference("a", "b") is None
