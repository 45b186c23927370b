"""Anomaly detectors on the bundled example: what they refuse that the parser handles, what they catch.

    python3 bench/detectors.py            # reference from 400 cases, 500 held-out cases, 100 inputs per shifted source
    python3 bench/detectors.py --quick    # 150 cases, 200 held-out, 50 per source

The system is the bundled example's parser (usaddress) on generated US addresses. Each detector is
``fp.AnomalousInput(alpha=...)`` with a scorer, fitted on one of two references:

- ``clean``: the clean inputs of the reference cases (what the example's policy uses today);
- ``tolerated``: the same clean inputs plus the realistic variants of those cases the raw parser
  answered right (``tolerated_reference``), with each case's variants kept in one cross-fitting fold.

Measured on cases the reference never saw, per detector:

- **false alarms on tolerated variants**: of the upper-case, lower-case, title-case and blank-noise
  (tabs, line breaks, doubled spaces) variants the raw parser answers right, the share the detector
  refuses (target: at most 5%);
- false alarms on the clean held-out inputs;
- **flag rate on a shifted domain**: addresses in other countries' formats generated with Faker locales
  (``en_AU``, ``en_GB``, ``de_DE``, ``fr_FR``; the line break Faker puts between lines written as
  ``", "``, so the format is what differs, not the line break), and person names (Faker ``en_US``) sent
  to the address parser (target: at least 90%);
- the flag rate on real US addresses (``us50_test_tagged.xml`` from the shared data, when present):
  in-domain inputs written by people, where a lower rate is better;
- the cost of one ``check_input`` call against one call of the parser itself, timed alternately in
  the same run (the ratio is what to read on a noisy machine);
- for the last detector: the size of its saved file, the time to save and load it, and whether the
  loaded one decides every input as the fitted one did.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import failpath as fp  # noqa: E402
from failpath.chaos import Casing, NotApplicable, WhitespaceNoise  # noqa: E402
from failpath.chaos.base import derive_rng  # noqa: E402
from failpath.examples.addresses.data import generate_addresses, load_parserator_xml  # noqa: E402
from failpath.examples.addresses.example import REFERENCE_SEED  # noqa: E402
from failpath.examples.addresses.system import AddressParser  # noqa: E402
from failpath.guard.anomaly import tolerated_reference  # noqa: E402
from failpath.guard.ngram import NgramScorer  # noqa: E402

US50 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "usaddress" / "us50_test_tagged.xml"
LOCALES = ("en_AU", "en_GB", "de_DE", "fr_FR")


def tolerated_variants(parser, judge, cases) -> dict[str, list[str]]:
    """Case and blank variants of ``cases`` that the raw parser answers right, by kind."""
    kinds = {
        "upper": Casing(mode="upper"),
        "lower": Casing(mode="lower"),
        "title": Casing(mode="title"),
        "whitespace": WhitespaceNoise(),
    }
    out: dict[str, list[str]] = {k: [] for k in kinds}
    for case in cases:
        for kind, perturbation in kinds.items():
            variant = perturbation.apply(case, derive_rng("bench-detectors", case.id, kind))
            if not isinstance(variant, NotApplicable):
                try:
                    right = judge(parser(variant.input).value, variant.expected)
                except Exception:  # noqa: BLE001 - a variant the parser refuses is not tolerated
                    right = False
                if right:
                    out[kind].append(variant.input)
    return out


def shifted(per_source: int) -> dict[str, list[str]]:
    from faker import Faker

    out: dict[str, list[str]] = {}
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(100 + i)
        out[f"address {locale}"] = [fake.address().replace("\n", ", ") for _ in range(per_source)]
    fake = Faker("en_US")
    fake.seed_instance(200)
    out["person name"] = [fake.name() for _ in range(2 * per_source)]
    return out


def flag_rate(detector, inputs: list[str]) -> float:
    return sum(detector.check_input(x, x) is not None for x in inputs) / max(1, len(inputs))


def cost_ratio(detector, parser, inputs: list[str], rounds: int = 3) -> tuple[float, float, float]:
    """Median µs of one check_input and of one parser call (alternating, input by input), and their ratio."""
    check_times, parse_times = [], []
    ns = time.perf_counter_ns
    for _ in range(rounds):
        for x in inputs:
            t0 = ns()
            detector.check_input(x, x)
            t1 = ns()
            parser(x)
            t2 = ns()
            check_times.append(t1 - t0)
            parse_times.append(t2 - t1)
    check_us, parse_us = statistics.median(check_times) / 1e3, statistics.median(parse_times) / 1e3
    return check_us, parse_us, check_us / parse_us


def main(argv: list[str] | None = None) -> int:
    parser_args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser_args.add_argument("--quick", action="store_true", help="smaller reference and held-out sets")
    parser_args.add_argument("--alpha", type=float, default=0.01, help="the detectors' alpha (the example's policy uses 0.01)")
    args = parser_args.parse_args(argv)
    n_reference, n_held_out, per_source = (150, 200, 50) if args.quick else (400, 500, 100)

    parser = AddressParser()
    judge = fp.TokenLabels()
    start = time.perf_counter()
    reference_cases = generate_addresses(n_reference, seed=REFERENCE_SEED)
    tolerated = tolerated_reference(parser, reference_cases, judge, seed=0)
    clean = list(tolerated.inputs[: tolerated.n_cases])
    held_out = generate_addresses(n_held_out, seed=REFERENCE_SEED + 1)
    variants = tolerated_variants(parser, judge, held_out)
    all_variants = [x for group in variants.values() for x in group]
    sources = shifted(per_source)
    us50 = [c.input for c in load_parserator_xml(US50)] if US50.exists() else []
    print(
        f"reference: {tolerated.n_cases} clean inputs + {tolerated.n_variants} variants answered right "
        f"(of {tolerated.n_tried} tried); held out: {len(held_out)} cases, "
        + ", ".join(f"{k} {len(v)}" for k, v in variants.items())
        + f" tolerated variants; shifted: {', '.join(f'{k} {len(v)}' for k, v in sources.items())}; "
        f"us50 {len(us50) or 'absent'}; alpha {args.alpha:g} (data in {time.perf_counter() - start:.1f} s)"
    )

    detectors = {
        "profile / clean": (None, "clean"),
        "profile / tolerated": (None, "tolerated"),
        "ngram / clean": (NgramScorer, "clean"),
        "ngram / tolerated": (NgramScorer, "tolerated"),
    }
    header = ["detector", "fit s", "FA tolerated", "FA upper", "FA lower", "FA title", "FA blanks", "FA clean",
              *sources, "shifted all", "us50 flagged", "check µs", "parse µs", "ratio"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
    for name, (scorer_type, which) in detectors.items():
        t0 = time.perf_counter()
        if which == "clean":
            detector = fp.AnomalousInput(clean, alpha=args.alpha, scorer=scorer_type() if scorer_type else None)
        else:
            detector = fp.AnomalousInput(
                list(tolerated.inputs), groups=list(tolerated.groups), alpha=args.alpha, scorer=scorer_type() if scorer_type else None
            )
        fit_s = time.perf_counter() - t0
        shifted_rates = [flag_rate(detector, v) for v in sources.values()]
        shifted_all = flag_rate(detector, [x for v in sources.values() for x in v])
        check_us, parse_us, ratio = cost_ratio(detector, parser, [c.input for c in held_out[:200]])
        row = [
            name,
            f"{fit_s:.1f}",
            f"{flag_rate(detector, all_variants):.1%}",
            *(f"{flag_rate(detector, v):.1%}" for v in variants.values()),
            f"{flag_rate(detector, [c.input for c in held_out]):.1%}",
            *(f"{r:.0%}" for r in shifted_rates),
            f"{shifted_all:.1%}",
            f"{flag_rate(detector, us50):.1%}" if us50 else "–",
            f"{check_us:.0f}",
            f"{parse_us:.0f}",
            f"{ratio:.2f}×",
        ]
        print("| " + " | ".join(row) + " |", flush=True)
        last = detector
    save_and_load(last, [c.input for c in held_out] + all_variants + [x for v in sources.values() for x in v])
    return 0


def save_and_load(detector, inputs: list[str]) -> None:
    """Save the last detector, load it back, and compare every decision."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "detector.json"
        t0 = time.perf_counter()
        detector.save(path)
        t1 = time.perf_counter()
        loaded = fp.AnomalousInput.load(path)
        t2 = time.perf_counter()
        same = all((loaded.check_input(x, x) is None) == (detector.check_input(x, x) is None) for x in inputs)
        print(
            f"saved detector: {path.stat().st_size / 1e6:.1f} MB, save {t1 - t0:.2f} s, load {t2 - t1:.2f} s; "
            f"same decision on all {len(inputs)} inputs: {same}"
        )


if __name__ == "__main__":
    sys.exit(main())
