"""Chaos speed: variants per second of the realistic text suite, against nlpaug's character augmenters.

    python3 bench/chaos_throughput.py             # every address in labeled.xml, best of 5 interleaved rounds
    python3 bench/chaos_throughput.py --quick     # 40 addresses, 1 repeat

Addresses come from ``../shared/data/usaddress/labeled.xml`` beside the repository (read with the stdlib
XML parser), or from a generated list when that file is absent. Measured in the same run, on the same
addresses:

1. failpath's character edits (typo, drop_char, double_char, transpose_chars, ocr), one variant per
   address each, against nlpaug's ``KeyboardAug``, ``RandomCharAug`` and ``OcrAug`` (one augmented string
   per address each, called per address as a per-case perturbation is).
2. The whole realistic text suite of failpath (also casing, whitespace, punctuation, abbreviation tables,
   moved units, the CRM mix), on token-aligned cases (labels transformed with the text) and on plain text.

nlpaug's augmenters are also called once with the whole list (its batch path), for reference.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from failpath.chaos import REALISTIC, Suite, TextPerturbation  # noqa: E402
from failpath.chaos.base import NotApplicable, derive_rng  # noqa: E402
from failpath.core import Case  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usaddress" / "labeled.xml"


def load_addresses() -> tuple[list[list[tuple[str, str]]], str]:
    """Labeled addresses as (token, label) lists, and where they came from."""
    if DATA.exists():
        out = []
        for node in ET.parse(DATA).getroot():
            pairs = [(el.text or "", el.tag) for el in node]
            if pairs and all(t and not any(ch.isspace() for ch in t) for t, _ in pairs):
                out.append(pairs)
        return out, str(DATA)
    rng = random.Random(0)
    streets = ["Main", "Oak", "Maple", "Kilbourn", "Marietta", "Washington", "Lake Shore"]
    types = ["St", "Ave", "Blvd", "Dr", "Road", "Lane"]
    cities = [("Chicago,", "IL"), ("Milwaukee,", "WI"), ("Atlanta,", "GA"), ("Springfield,", "Illinois")]
    out = []
    for _ in range(150):
        pairs = [(str(rng.randint(1, 9999)), "AddressNumber")]
        if rng.random() < 0.4:
            pairs.append((rng.choice(["N", "S", "East", "West"]), "StreetNamePreDirectional"))
        pairs += [(w, "StreetName") for w in rng.choice(streets).split()]
        pairs.append((rng.choice(types), "StreetNamePostType"))
        if rng.random() < 0.3:
            pairs += [(rng.choice(["Apt", "Suite", "Fl"]), "OccupancyType"), (str(rng.randint(1, 40)), "OccupancyIdentifier")]
        city, state = rng.choice(cities)
        pairs += [(city, "PlaceName"), (state, "StateName"), (f"{rng.randint(10000, 99999)}", "ZipCode")]
        out.append(pairs)
    return out, "generated (labeled.xml not found)"


def best_of(repeats: int, fn) -> tuple[float, int]:
    """(best seconds, count) over ``repeats`` runs of ``fn`` (which returns how many variants it made)."""
    best, count = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - start)
    return best, count


def run_failpath(perturbations, cases: list[Case]) -> int:
    made = 0
    for case in cases:
        for p in perturbations:
            if not isinstance(p.apply(case, derive_rng(0, case.id, p.name, 0)), NotApplicable):
                made += 1
    return made


def run_suite(suite: Suite, cases: list[Case]) -> int:
    return sum(len(suite.variants(case, seed=0)) for case in cases)


def run_nlpaug(augmenters, texts: list[str]) -> int:
    made = 0
    for text in texts:
        for aug in augmenters:
            made += len(aug.augment(text))
    return made


def run_nlpaug_batch(augmenters, texts: list[str]) -> int:
    return sum(len(aug.augment(texts)) for aug in augmenters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 addresses, one repeat")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5

    addresses, source = load_addresses()
    if args.quick:
        addresses = addresses[:40]
    aligned = [Case(f"a{i}", " ".join(t for t, _ in p), p) for i, p in enumerate(addresses)]
    plain = [Case(c.id, c.input, "expected") for c in aligned]
    texts = [c.input for c in aligned]

    import nlpaug.augmenter.char as nac

    char_names = ("typo", "drop_char", "double_char", "transpose_chars", "ocr")
    ours_char = [p for p in REALISTIC.perturbations if p.name in char_names]
    text_suite = Suite("realistic-text", "realistic", tuple(p for p in REALISTIC.perturbations if isinstance(p, TextPerturbation) or "+" in p.name or p.name == "crm_mix"), 1)
    # One edit per string, so the work matches ours (one changed token per variant).
    theirs = [
        nac.KeyboardAug(aug_word_max=1, aug_char_max=1, include_numeric=False),
        nac.RandomCharAug(action="substitute", aug_word_max=1, aug_char_max=1, include_numeric=False),
        nac.OcrAug(aug_word_max=1, aug_char_max=1),
    ]

    print(f"addresses: {len(addresses)} from {source}; best of {repeats} rounds, contenders interleaved")
    suite_size = len(text_suite.perturbations)
    contenders = [
        ("failpath character edits (5), token-aligned", lambda: run_failpath(ours_char, aligned)),
        ("nlpaug KeyboardAug+RandomCharAug+OcrAug, per address", lambda: run_nlpaug(theirs, texts)),
        ("nlpaug, the same, one batch call per augmenter", lambda: run_nlpaug_batch(theirs, texts)),
        (f"failpath realistic text suite ({suite_size}), token-aligned", lambda: run_suite(text_suite, aligned)),
        (f"failpath realistic text suite ({suite_size}), plain text", lambda: run_suite(text_suite, plain)),
    ]
    # Rounds interleave the contenders so that a busy machine slows them alike; the best round counts.
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeats):
        for name, fn in contenders:
            seconds, count = best_of(1, fn)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, count)
    rate = {name: count / seconds for name, (seconds, count) in best.items()}

    width = max(len(name) for name, _ in contenders)
    for name, _ in contenders:
        seconds, count = best[name]
        print(f"  {name:<{width}}  {count:>6} variants  {seconds * 1000:8.1f} ms  {count / seconds:>9,.0f} variants/s")
    names = [name for name, _ in contenders]
    ours, theirs_one, theirs_batch, suite_aligned, suite_plain = (rate[n] for n in names)
    print(f"ratio, character edits: failpath / nlpaug per address = {ours / theirs_one:.2f}x"
          f" (failpath / nlpaug batch = {ours / theirs_batch:.2f}x)")
    print(f"ratio, whole realistic text suite / nlpaug per address = {suite_aligned / theirs_one:.2f}x token-aligned,"
          f" {suite_plain / theirs_one:.2f}x plain text")

if __name__ == "__main__":
    main()
