"""Compare two check runs: what changed, by how much, and whether it is more than noise.

``compare_runs(doc_a, rows_a, doc_b, rows_b)`` takes run A (the baseline, e.g. the main branch's last
run) and run B (the change), each as its ``failpath.check/2`` document and its request rows
(:func:`failpath.report.rows.read_request_rows`), and returns a :class:`Comparison`:

- **criteria**: each criterion of the verdict in A and in B, passed or failed, with its figure;
- **metrics**, per suite (each chaos suite, every chaos request pooled, the clean pass): the
  silent-failure rate with the policy, the raw system's accuracy without it, and on the clean pass
  the coverage with the policy. Each change B − A comes with a paired bootstrap interval over the
  cases both runs share — the case is the independent unit: a case's figure is the share of its
  requests in that suite (a per-case value in [0, 1]), and its difference B − A is one draw. The
  intervals hold jointly (Bonferroni over the metrics compared), so a comparison of many suites does
  not cry wolf because one of them moved by chance;
- **cases** that got worse and better: the cases whose count of silent failures (with the policy,
  over every suite) went up or down.

A metric *regressed* when its whole interval lies on the worse side of zero; ``Comparison.regressed``
is True when any did (``failpath compare`` then exits 1). Both halves of the split are compared
(the cases both runs share), not only the evaluation half the verdict counts: the comparison asks
whether the system changed, and every shared case is evidence of that.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from failpath.core import ConfigError
from failpath.report.json_report import check_document

__all__ = [
    "MetricChange",
    "CriterionChange",
    "CaseChange",
    "Comparison",
    "compare_runs",
    "render_markdown",
    "render_terminal",
    "CASES_SHOWN",
]

#: How many cases that got worse (and better) a rendering lists.
CASES_SHOWN = 10

_CLEAN = "clean"
_CHAOS = "chaos"


@dataclass(frozen=True)
class MetricChange:
    """One figure of one suite in both runs: ``a``, ``b``, ``change`` = b − a and its interval ``[low, high]``.

    ``better`` is ``"lower"`` or ``"higher"``; ``regressed``: the interval lies wholly on the worse side
    of zero; ``improved``: wholly on the better side. ``n_cases``: the cases both runs share here.
    """

    suite: str
    metric: str
    better: str
    a: float | None
    b: float | None
    change: float | None
    low: float | None
    high: float | None
    n_cases: int
    regressed: bool
    improved: bool


@dataclass(frozen=True)
class CriterionChange:
    """One criterion of the verdict in run A and in run B (``None``: the run has no such criterion)."""

    name: str
    a_passed: bool | None
    b_passed: bool | None
    a_figure: str
    b_figure: str

    @property
    def change(self) -> str:
        """``"regressed"`` (passed, now failed), ``"improved"``, ``"same"``, ``"new"`` or ``"gone"``."""
        if self.a_passed is None:
            return "new"
        if self.b_passed is None:
            return "gone"
        if self.a_passed == self.b_passed:
            return "same"
        return "improved" if self.b_passed else "regressed"


@dataclass(frozen=True)
class CaseChange:
    """A case's silent failures (with the policy, every suite) out of its requests, in A and in B."""

    case_id: str
    a_silent: int
    a_requests: int
    b_silent: int
    b_requests: int
    input: str = ""


@dataclass(frozen=True)
class Comparison:
    """Run B against run A (see the module's docstring)."""

    run_a: str
    run_b: str
    verdict_a: bool
    verdict_b: bool
    n_cases: int
    confidence: float
    criteria: tuple[CriterionChange, ...]
    metrics: tuple[MetricChange, ...]
    worse: tuple[CaseChange, ...]
    better: tuple[CaseChange, ...]
    only_a: int = 0
    only_b: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def regressed(self) -> bool:
        """True when some metric got worse beyond its interval."""
        return any(m.regressed for m in self.metrics)

    @property
    def exit_code(self) -> int:
        """1 when :attr:`regressed`, else 0."""
        return 1 if self.regressed else 0

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (schema ``failpath.compare/1``)."""
        data = asdict(self)
        data["regressed"] = self.regressed
        data["criteria"] = [dict(asdict(c), change=c.change) for c in self.criteria]
        data["schema"] = "failpath.compare/1"
        return data


# --------------------------------------------------------------------------- computing


def _per_case(rows: Sequence[Mapping[str, Any]], keep: Any, value: Any) -> dict[str, float]:
    """Case id -> the mean of ``value(row)`` over the rows ``keep(row)`` holds for."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if keep(row):
            case = str(row.get("case_id"))
            sums[case] += float(value(row))
            counts[case] += 1
    return {case: sums[case] / counts[case] for case in counts}


def _metric_specs(suites: Sequence[str]) -> list[tuple[str, str, str, Any, Any]]:
    """(suite, metric, better, keep, value) for every figure compared."""
    specs: list[tuple[str, str, str, Any, Any]] = []

    def in_suite(name: str) -> Any:
        if name == _CHAOS:
            return lambda row: row.get("suite") != _CLEAN
        return lambda row: row.get("suite") == name

    def silent(row: Mapping[str, Any]) -> bool:
        return bool(row.get("silent_failure"))

    def raw_right(row: Mapping[str, Any]) -> bool:
        return bool(row.get("right_without_policy"))

    def answered(row: Mapping[str, Any]) -> bool:
        return row.get("outcome") == "answered"

    def judged_in(keep: Any) -> Any:  # a request no one can judge (right_* None) is in no rate of correctness
        return lambda row: keep(row) and row.get("right_without_policy") is not None

    for name in [*suites, _CHAOS, _CLEAN]:
        keep = in_suite(name)
        specs.append((name, "silent_failure_rate", "lower", judged_in(keep), silent))
        specs.append((name, "accuracy_without_policy", "higher", judged_in(keep), raw_right))
        if name == _CLEAN:
            specs.append((name, "coverage", "higher", keep, answered))
    return specs


def _interval(differences: list[float], confidence: float, seed: int, n_resamples: int) -> tuple[float | None, float | None]:
    from failpath.stats import bootstrap_ci

    if len(differences) < 2:
        return None, None
    if all(d == differences[0] for d in differences):
        return differences[0], differences[0]
    import numpy as np

    interval = bootstrap_ci(
        np.mean, differences, n_resamples=n_resamples, confidence=confidence, seed=seed, method="percentile"
    )
    return interval.low, interval.high


def compare_runs(
    doc_a: Any,
    rows_a: Sequence[Mapping[str, Any]],
    doc_b: Any,
    rows_b: Sequence[Mapping[str, Any]],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 4000,
) -> Comparison:
    """Compare run B (``doc_b``, ``rows_b``) with the baseline run A; see the module's docstring.

    ``confidence`` is the joint level of the metric intervals. Raises ``ConfigError`` when the two runs
    share no case (they checked different datasets).
    """
    a, b = check_document(doc_a), check_document(doc_b)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence!r}")
    cases_a = {str(r.get("case_id")) for r in rows_a}
    cases_b = {str(r.get("case_id")) for r in rows_b}
    shared = cases_a & cases_b
    if not shared:
        raise ConfigError(
            f"runs {a.get('run_id')} and {b.get('run_id')} share no case id: they checked different datasets, "
            "so there is nothing to pair; compare runs of the same dataset"
        )
    rows_a = [r for r in rows_a if str(r.get("case_id")) in shared]
    rows_b = [r for r in rows_b if str(r.get("case_id")) in shared]

    suites = [s for s in dict.fromkeys(str(r.get("suite")) for r in [*rows_b, *rows_a]) if s != _CLEAN]
    specs = _metric_specs(suites)
    measured = []
    for suite, metric, better, keep, value in specs:
        per_a, per_b = _per_case(rows_a, keep, value), _per_case(rows_b, keep, value)
        paired = sorted(set(per_a) & set(per_b))
        if not paired:
            continue
        measured.append((suite, metric, better, per_a, per_b, paired))
    # Bonferroni: every interval at 1 - (1 - confidence) / m, so all m hold together at `confidence`.
    level = 1.0 - (1.0 - confidence) / max(1, len(measured))
    metrics = []
    for suite, metric, better, per_a, per_b, paired in measured:
        mean_a = sum(per_a[c] for c in paired) / len(paired)
        mean_b = sum(per_b[c] for c in paired) / len(paired)
        low, high = _interval([per_b[c] - per_a[c] for c in paired], level, seed, n_resamples)
        worse = (low is not None and low > 0) if better == "lower" else (high is not None and high < 0)
        improved = (high is not None and high < 0) if better == "lower" else (low is not None and low > 0)
        metrics.append(MetricChange(suite, metric, better, mean_a, mean_b, mean_b - mean_a, low, high, len(paired), worse, improved))

    criteria = _criteria(a, b)
    worse, better_cases = _cases(rows_a, rows_b)
    notes = []
    if cases_a - cases_b or cases_b - cases_a:
        notes.append(
            f"{len(shared)} cases are in both runs and compared; {len(cases_a - cases_b)} only in {a.get('run_id')}, "
            f"{len(cases_b - cases_a)} only in {b.get('run_id')}"
        )
    if a.get("seed") != b.get("seed"):
        notes.append(f"the runs used different seeds ({a.get('seed')} and {b.get('seed')}): their variants differ, cases still pair")
    return Comparison(
        run_a=str(a.get("run_id")),
        run_b=str(b.get("run_id")),
        verdict_a=bool((a.get("verdict") or {}).get("ship")),
        verdict_b=bool((b.get("verdict") or {}).get("ship")),
        n_cases=len(shared),
        confidence=confidence,
        criteria=criteria,
        metrics=tuple(metrics),
        worse=worse,
        better=better_cases,
        only_a=len(cases_a - cases_b),
        only_b=len(cases_b - cases_a),
        notes=tuple(notes),
    )


def _criteria(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[CriterionChange, ...]:
    in_a = {r.get("name"): r for r in (a.get("verdict") or {}).get("reasons") or ()}
    in_b = {r.get("name"): r for r in (b.get("verdict") or {}).get("reasons") or ()}
    names = list(dict.fromkeys([*in_a, *in_b]))
    return tuple(
        CriterionChange(
            name=str(name),
            a_passed=None if name not in in_a else bool(in_a[name].get("passed")),
            b_passed=None if name not in in_b else bool(in_b[name].get("passed")),
            a_figure=str((in_a.get(name) or {}).get("figure") or ""),
            b_figure=str((in_b.get(name) or {}).get("figure") or ""),
        )
        for name in names
    )


def _cases(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]]) -> tuple[tuple[CaseChange, ...], tuple[CaseChange, ...]]:
    def tally(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
        silent: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        inputs: dict[str, str] = {}
        for row in rows:
            case = str(row.get("case_id"))
            total[case] += 1
            silent[case] += bool(row.get("silent_failure"))
            if row.get("suite") == _CLEAN:
                inputs[case] = str(row.get("input_preview") or "")
        return silent, total, inputs

    silent_a, total_a, _ = tally(rows_a)
    silent_b, total_b, inputs = tally(rows_b)
    changes = [
        CaseChange(case, silent_a[case], total_a[case], silent_b[case], total_b[case], inputs.get(case, ""))
        for case in total_b
        if case in total_a and silent_a[case] != silent_b[case]
    ]
    worse = sorted((c for c in changes if c.b_silent > c.a_silent), key=lambda c: (c.a_silent - c.b_silent, c.case_id))
    better = sorted((c for c in changes if c.b_silent < c.a_silent), key=lambda c: (c.b_silent - c.a_silent, c.case_id))
    return tuple(worse), tuple(better)


# --------------------------------------------------------------------------- rendering

_METRIC_NAMES = {
    "silent_failure_rate": "silent failures (with policy)",
    "accuracy_without_policy": "accuracy (raw, without policy)",
    "coverage": "coverage (with policy)",
}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _pts(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.2f}"


def _status(passed: bool | None) -> str:
    return "—" if passed is None else ("pass" if passed else "FAIL")


def _mark(metric: MetricChange) -> str:
    if metric.regressed or metric.improved:
        return "regressed" if metric.regressed else "improved"
    return "unchanged" if metric.low == metric.high == 0 else "within noise"


def _headline(comparison: Comparison) -> str:
    regressed = [m for m in comparison.metrics if m.regressed]
    if regressed:
        shown = ", ".join(f"{m.suite} {_METRIC_NAMES[m.metric]}" for m in regressed)
        return f"REGRESSED beyond the intervals: {shown}"
    return "no regression beyond the intervals"


def render_markdown(comparison: Comparison, *, cases: int = CASES_SHOWN) -> str:
    """The comparison as Markdown: headline, criteria, metric changes with intervals, cases worse and better."""
    from failpath.report.markdown import cell

    c = comparison
    verdicts = f"{'SHIP' if c.verdict_a else 'DEMO'} → {'SHIP' if c.verdict_b else 'DEMO'}"
    lines = [
        f"### {'❌' if c.regressed else '✅'} Compared with `{c.run_a}`: {_headline(c)}",
        "",
        f"Verdict {verdicts} · {c.n_cases:,} cases paired · intervals of the change (points) at "
        f"{100 * c.confidence:.0f}% jointly over {len(c.metrics)} figures",
        "",
        "| criterion | before | after | |",
        "|---|---|---|---|",
    ]
    for criterion in c.criteria:
        lines.append(
            f"| {cell(criterion.name, 60)} | {_status(criterion.a_passed)} · {cell(criterion.a_figure, 100)} "
            f"| {_status(criterion.b_passed)} · {cell(criterion.b_figure, 100)} | {criterion.change} |"
        )
    lines += ["", "| suite | figure | before | after | change [interval] | |", "|---|---|---:|---:|---:|---|"]
    for m in c.metrics:
        lines.append(
            f"| {cell(m.suite, 40)} | {_METRIC_NAMES[m.metric]} | {_pct(m.a)} | {_pct(m.b)} "
            f"| {_pts(m.change)} [{_pts(m.low)}, {_pts(m.high)}] | {'**regressed**' if m.regressed else _mark(m)} |"
        )
    for title, group in (("worse", c.worse), ("better", c.better)):
        if not group:
            continue
        lines += ["", f"Cases with {'more' if title == 'worse' else 'fewer'} silent failures ({len(group)}):", "",
                  "| case | before | after | input |", "|---|---:|---:|---|"]
        for case in group[:cases]:
            lines.append(
                f"| {cell(case.case_id, 40)} | {case.a_silent} of {case.a_requests} | {case.b_silent} of {case.b_requests} "
                f"| {cell(case.input, 80)} |"
            )
        if len(group) > cases:
            lines.append(f"| … {len(group) - cases} more | | | |")
    for note in c.notes:
        lines += ["", f"_{cell(note, 400)}_"]
    return "\n".join(lines) + "\n"


def render_terminal(comparison: Comparison, *, cases: int = CASES_SHOWN) -> Any:
    """The comparison as one rich renderable (tables fold rather than cut)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from failpath.report.terminal import visible

    c = comparison
    parts: list[Any] = [
        Text(f"Run {c.run_b} compared with {c.run_a}: {_headline(c)}", style="bold red" if c.regressed else "bold green"),
        Text(
            f"verdict {'SHIP' if c.verdict_a else 'DEMO'} → {'SHIP' if c.verdict_b else 'DEMO'}; {c.n_cases:,} cases paired; "
            f"intervals at {100 * c.confidence:.0f}% jointly over {len(c.metrics)} figures"
        ),
    ]
    criteria = Table(box=box.SIMPLE_HEAD, title="Criteria", title_justify="left")
    for column in ("criterion", "before", "after", "change"):
        criteria.add_column(column, overflow="fold")
    for criterion in c.criteria:
        style = {"regressed": "bold red", "improved": "green"}.get(criterion.change, "")
        criteria.add_row(
            criterion.name, f"{_status(criterion.a_passed)} {visible(criterion.a_figure, 120)}",
            f"{_status(criterion.b_passed)} {visible(criterion.b_figure, 120)}", Text(criterion.change, style=style),
        )
    metrics = Table(box=box.SIMPLE_HEAD, title="Figures, per suite (change in points, with its interval)", title_justify="left")
    for column, justify in (("suite", "left"), ("figure", "left"), ("before", "right"), ("after", "right"),
                            ("change [interval]", "right"), ("", "left")):
        metrics.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for m in c.metrics:
        style = "bold red" if m.regressed else ("green" if m.improved else "dim")
        metrics.add_row(m.suite, _METRIC_NAMES[m.metric], _pct(m.a), _pct(m.b),
                        f"{_pts(m.change)} [{_pts(m.low)}, {_pts(m.high)}]", Text(_mark(m), style=style))
    parts += [criteria, metrics]
    for title, group in (("more", c.worse), ("fewer", c.better)):
        if not group:
            continue
        table = Table(box=box.SIMPLE_HEAD, title=f"Cases with {title} silent failures ({len(group)})", title_justify="left")
        for column in ("case", "before", "after", "input"):
            table.add_column(column, overflow="fold")
        for case in group[:cases]:
            table.add_row(visible(case.case_id, 60), f"{case.a_silent} of {case.a_requests}",
                          f"{case.b_silent} of {case.b_requests}", visible(case.input, 100))
        if len(group) > cases:
            table.add_row(f"… {len(group) - cases} more", "", "", "")
        parts.append(table)
    for note in c.notes:
        parts.append(Text("note: " + note, style="yellow"))
    return Group(*parts)
