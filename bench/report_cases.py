"""The HTML report's list of every failing case on a large run: file size, build time, and time in a browser.

A run of ``--cases`` cases with ``--variants`` requests each is made up as request records (the form
``failpath.report.rows.read_request_rows`` returns): address-like inputs, token-label lists as the
expected and answered values, hostile and realistic perturbations, and a share ``--failing`` of the
requests wrong (half of them answered: silent failures; half refused or caught by the policy). The
defaults give 200,000 requests of which 100,000 are listed.

Build time, in rounds, against a baseline every row-based output pays in the same run: writing the
same records as JSONL (``render_jsonl``). Then the page is opened in headless Chromium (Playwright,
``/usr/bin/chromium``) and timed until the list is drawn, against the same report written without
the rows (no list, no script); then a search, a filter and a page turn on the large list.

    python bench/report_cases.py                     # 5,000 cases x 40 requests
    python bench/report_cases.py --cases 500         # quicker
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from failpath.report import case_list  # noqa: E402
from failpath.report import html as report_html  # noqa: E402
from failpath.report.rows import render_jsonl  # noqa: E402

STREETS = ("Main St", "Oak Avenue", "Pine Rd", "Maple Blvd", "Cedar Ln", "Elm Street", "Washington Ave")
CITIES = ("Springfield IL", "Portland OR", "Austin TX", "Madison WI", "Salem MA", "Dayton OH")
PERTURBATIONS = (
    ("hostile", "injection"), ("hostile", "confusables"), ("hostile", "zero_width"), ("hostile", "markup"),
    ("realistic", "typo"), ("realistic", "casing"), ("realistic", "ocr"), ("realistic", "drop_char"),
)
LABELS = ("AddressNumber", "StreetName", "StreetNamePostType", "PlaceName", "StateName", "ZipCode")


def _address(rng: random.Random) -> tuple[str, list[list[str]]]:
    number, street, city, zipcode = str(rng.randint(1, 9999)), rng.choice(STREETS), rng.choice(CITIES), f"{rng.randint(10000, 99999)}"
    tokens = [number, *street.split(), *city.split(), zipcode]
    labels = ["AddressNumber", "StreetName", "StreetNamePostType", "PlaceName", "StateName", "ZipCode"]
    pairs = [[t, labels[min(i, len(labels) - 1)]] for i, t in enumerate(tokens)]
    return " ".join(tokens), pairs


def records(cases: int, variants: int, failing: float, seed: int = 0) -> list[dict]:
    """Request records of a made-up run (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for c in range(cases):
        text, expected = _address(rng)
        tags = ["region:" + rng.choice(("east", "west")), "source:" + rng.choice(("crm", "web", "review"))]
        for v in range(variants):
            clean = v == variants - 1
            family, perturbation = ("clean", "none") if clean else PERTURBATIONS[v % len(PERTURBATIONS)]
            wrong = not clean and rng.random() < failing
            answered = not wrong or rng.random() < 0.5
            output = [list(p) for p in expected]
            if wrong:
                output[rng.randrange(len(output))][1] = rng.choice(LABELS)
            variant_input = text if clean else f"{text} <script>alert({v})</script>" if family == "hostile" else text.lower()
            out.append({
                "case_id": f"case-{c:06d}", "suite": family, "family": family, "perturbation": perturbation,
                "variant": v, "contract": "unchanged", "split": "evaluation" if c % 2 else "calibration", "tags": tags,
                "input_preview": variant_input, "expected": expected, "raw_output": output,
                "raw_confidence": round(rng.random(), 4), "raw_error": None, "right_without_policy": not wrong,
                "outcome": "answered" if answered else "escalated", "state": None if answered else "low_confidence",
                "states": [], "actions": [], "output": output if answered else None,
                "confidence": round(rng.random(), 4) if answered else None, "degraded": False,
                "right_with_policy": (not wrong) if answered else None, "silent_failure": answered and wrong,
                "latency_ms": 1.0, "trace_id": None, "key": f"{family}/{perturbation}/case-{c:06d}/{v}",
            })
    return out


def _timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _browser_times(with_list: Path, without_list: Path, rounds: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {name: [] for name in (
        "open the page without the list (baseline)", "open the page, list drawn", "search (one keystroke)",
        "filter by tag", "next page")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"])
        for _ in range(rounds):
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(without_list.as_uri(), wait_until="load")
            times["open the page without the list (baseline)"].append(time.perf_counter() - started)
            page.close()
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(with_list.as_uri(), wait_until="load")
            page.wait_for_selector("#fp-rows tr")
            times["open the page, list drawn"].append(time.perf_counter() - started)
            before = page.inner_text("#fp-count")
            started = time.perf_counter()
            page.fill("#fp-q", "oak")
            page.wait_for_function("t => document.getElementById('fp-count').textContent !== t", arg=before)
            times["search (one keystroke)"].append(time.perf_counter() - started)
            page.fill("#fp-q", "")
            before = page.inner_text("#fp-count")
            started = time.perf_counter()
            page.select_option("#fp-tag", "source:review")
            page.wait_for_function("t => document.getElementById('fp-count').textContent !== t", arg=before)
            times["filter by tag"].append(time.perf_counter() - started)
            before = page.inner_text("#fp-page")
            started = time.perf_counter()
            page.click("#fp-next")
            page.wait_for_function("t => document.getElementById('fp-page').textContent !== t", arg=before)
            times["next page"].append(time.perf_counter() - started)
            page.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000, help="cases of the made-up run (default 5000)")
    parser.add_argument("--variants", type=int, default=40, help="requests per case, the clean one included (default 40)")
    parser.add_argument("--failing", type=float, default=0.513, help="share of chaos requests that are wrong (default 0.513)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every step (default 3)")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser timings")
    args = parser.parse_args()

    import failpath as fp
    from report_sample import tagged_check

    folder = Path(tempfile.mkdtemp(prefix="failpath-bench-cases-"))
    try:
        class _Folders:  # the test sample's check gives a real result document to draw the run's sections from
            def mktemp(self, name: str) -> Path:
                path = folder / name
                path.mkdir()
                return path

        result, _ = tagged_check(_Folders())
        del fp
        rows = records(args.cases, args.variants, args.failing)
        data = case_list.build_case_list(lambda: rows)
        print(f"run: {len(rows):,} requests over {args.cases:,} cases; listed {data['listed']:,} "
              f"({data['counts']['silent']:,} silent failures), {len(data['rows']):,} rows embedded")
        steps = {
            "JSONL of the same rows (baseline)": lambda: render_jsonl(rows),
            "HTML report with every failing case": lambda: report_html.render(result, rows),
            "HTML report without the rows": lambda: report_html.render(result),
        }
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name].append(_timed(step))
        baseline = statistics.median(times["JSONL of the same rows (baseline)"])
        print(f"\n{'build step':<40} {'median s':>9} {'x baseline':>11}")
        for name, measured in times.items():
            median = statistics.median(measured)
            print(f"{name:<40} {median:>9.2f} {median / baseline:>10.2f}x")
        with_list = report_html.write(result, folder / "with-list.html", rows)
        without_list = report_html.write(result, folder / "without-list.html")
        jsonl = len(render_jsonl(rows).encode("utf-8"))
        size = with_list.stat().st_size
        print(f"\nsizes: page with the list {size / 2**20:,.1f} MiB ({size / data['listed']:,.0f} bytes per listed "
              f"request), without {without_list.stat().st_size / 2**10:,.0f} KiB; JSONL of every row {jsonl / 2**20:,.1f} MiB")
        if args.no_browser:
            return
        browser = _browser_times(with_list, without_list, args.rounds)
        base = statistics.median(browser["open the page without the list (baseline)"])
        print(f"\n{'in headless Chromium':<42} {'median s':>9} {'x baseline':>11}")
        for name, measured in browser.items():
            median = statistics.median(measured)
            print(f"{name:<42} {median:>9.2f} {median / base:>10.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
