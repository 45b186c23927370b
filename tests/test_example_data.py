"""The example's system, Faker generator and parserator XML loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import usaddress

from failpath.core import Case, DatasetError, OutputRejected, Prediction
from failpath.examples.addresses import AddressParser, generate_addresses, load_parserator_xml
from failpath.examples.addresses.system import repeated_label

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "usaddress"


@pytest.fixture(scope="module")
def parser() -> AddressParser:
    return AddressParser()


def test_parser_returns_labeled_tokens_and_the_sequence_probability(parser):
    prediction = parser("123 Main St., Apt. 4, Chicago, IL 60601")
    assert isinstance(prediction, Prediction)
    assert prediction.value == usaddress.parse("123 Main St., Apt. 4, Chicago, IL 60601")
    labels = [label for _, label in prediction.value]
    usaddress.TAGGER.set(usaddress.tokens2features([t for t, _ in prediction.value]))
    assert prediction.confidence == pytest.approx(usaddress.TAGGER.probability(labels))
    assert 0.9 < prediction.confidence <= 1.0


def test_confidence_is_that_of_the_returned_labels_not_the_previous_call(parser):
    """The tagger keeps the last sequence: scoring must use the sequence just tagged."""
    low = parser("ST 123 Apt Chicago Main IL St")
    high = parser("123 Main St, Chicago, IL 60601")
    assert parser("ST 123 Apt Chicago Main IL St").confidence == pytest.approx(low.confidence)
    assert high.confidence > low.confidence


def test_repeated_label_is_an_invalid_output_not_a_crash(parser):
    text = "123 Main St Chicago IL 60601 Apt 4 Chicago"
    with pytest.raises(usaddress.RepeatedLabelError):
        usaddress.tag(text)
    with pytest.raises(OutputRejected) as info:
        parser(text)
    assert "RepeatedLabelError" in str(info.value)
    assert info.value.raw == usaddress.parse(text)


def test_input_without_tokens_is_rejected(parser):
    with pytest.raises(OutputRejected):
        parser(" ,, ")


@pytest.mark.parametrize(
    "labels, expected",
    [
        (["AddressNumber", "StreetName", "StreetName", "PlaceName"], None),
        (["AddressNumber", "StreetName", "PlaceName", "StreetName"], "StreetName"),
        (["StreetName", "IntersectionSeparator", "StreetName"], None),
    ],
)
def test_repeated_label_follows_usaddress_tag(labels, expected):
    assert repeated_label(labels) == expected


def test_generated_addresses_are_token_aligned_seeded_and_sized():
    cases = generate_addresses(200, seed=3)
    assert len(cases) == 200
    assert len({c.id for c in cases}) == 200
    assert cases == generate_addresses(200, seed=3)
    assert [c.input for c in cases] != [c.input for c in generate_addresses(200, seed=4)]
    labels = set()
    for case in cases:
        assert isinstance(case, Case)
        assert case.input == " ".join(token for token, _ in case.expected)
        assert usaddress.tokenize(case.input) == [token for token, _ in case.expected]
        labels |= {label for _, label in case.expected}
    assert labels <= set(usaddress.LABELS)
    assert {"AddressNumber", "StreetName", "StreetNamePostType", "OccupancyType", "OccupancyIdentifier",
            "PlaceName", "StateName", "ZipCode"} <= labels


def test_usaddress_parses_most_generated_addresses_right(parser):
    cases = generate_addresses(300, seed=0)
    right = sum(parser(c.input).value == [tuple(p) for p in c.expected] for c in cases)
    assert right / len(cases) > 0.95


def _write(tmp_path, text, name="bad.xml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loader_reads_tokens_labels_and_line_numbers(tmp_path):
    path = _write(tmp_path, "<AddressCollection>\n"
                  "  <AddressString><AddressNumber>12</AddressNumber> <StreetName>Elm</StreetName> "
                  "<StreetNamePostType>Rd,</StreetNamePostType> <PlaceName>Ames</PlaceName></AddressString>\n"
                  "  <AddressString><PlaceName>Soldotna,</PlaceName> <StateName>AK</StateName></AddressString>\n"
                  "</AddressCollection>\n", "mine.xml")
    cases = load_parserator_xml(path)
    assert [c.id for c in cases] == ["mine-0000", "mine-0001"]
    assert cases[0].input == "12 Elm Rd, Ames"
    assert cases[0].expected == [("12", "AddressNumber"), ("Elm", "StreetName"), ("Rd,", "StreetNamePostType"), ("Ames", "PlaceName")]
    assert cases[1].tags == ("parserator", "mine")


@pytest.mark.parametrize(
    "text, message",
    [
        ("<AddressCollection><AddressString><StreetName>Elm</AddressString>", "line 1, column"),
        ("<AddressCollection></AddressCollection>", "holds no <AddressString>"),
        ("<AddressCollection>\n<AddressString><A>1</A></AddressString>\n<Address><A>1</A></Address></AddressCollection>",
         "line 3 (address 2): expected <AddressString>, found <Address>"),
        ("<AddressCollection><AddressString>12 <StreetName>Elm</StreetName></AddressString></AddressCollection>",
         "'12' outside any label"),
        ("<AddressCollection><AddressString><StreetName>Elm St</StreetName></AddressString></AddressCollection>",
         "exactly one token"),
        ("<AddressCollection><AddressString><StreetName></StreetName></AddressString></AddressCollection>",
         "exactly one token"),
        ("<AddressCollection><AddressString><StreetName>Elm</StreetName> x</AddressString></AddressCollection>",
         "'x' after <StreetName>"),
        ("<AddressCollection><AddressString> </AddressString></AddressCollection>", "no labeled tokens"),
    ],
)
def test_loader_names_file_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(DatasetError) as info:
        load_parserator_xml(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_loader_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_parserator_xml(tmp_path / "absent.xml")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs ../shared/data/usaddress beside the repository ({SHARED} is absent)")
@pytest.mark.parametrize("name, count", [("labeled.xml", 146), ("us50_test_tagged.xml", 687)])
def test_loader_reads_the_reference_files(name, count):
    cases = load_parserator_xml(SHARED / name)
    assert len(cases) == count
    assert all(c.input == " ".join(t for t, _ in c.expected) for c in cases)


def test_loader_drops_line_breaks_around_tokens(tmp_path):
    path = _write(tmp_path, "<AddressCollection><AddressString><Recipient>ACME\n</Recipient> "
                  "<AddressNumber>12</AddressNumber></AddressString></AddressCollection>")
    (case,) = load_parserator_xml(path)
    assert case.input == "ACME 12"
    assert case.expected == [("ACME", "Recipient"), ("12", "AddressNumber")]
