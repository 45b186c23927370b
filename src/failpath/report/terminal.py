"""The terminal report of a check (rich): the verdict first, then the evidence.

Sections, in order: the verdict banner with every criterion; the gap table (clean → chaos accuracy
with its interval, flip rate), chaos suites before the clean pass; the outcome mix with and without
the policy; the failure-state coverage; the figures per case tag; the worst cases with their minimal
reproductions and where every failing case is listed; the recommended thresholds with their guarantee; the confidence quality.

Every string that comes from an input or an output is shown as plain text: never parsed as rich
markup, control and invisible characters made visible, long values cut. Readable at 100 columns; at
any width, names and figures fold onto the next line rather than being cut.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from failpath.report import inputs, wording
from failpath.report.bidi import isolate

__all__ = ["render", "build", "visible", "difference"]

_OUTCOME_COLUMNS = (
    ("right", "right", "green"),
    ("silent", "silent", "bold red"),
    ("clarify", "clarify", "cyan"),
    ("escalated", "escalate", "cyan"),
    ("abstained", "abstain", "cyan"),
    ("defaulted", "default", "cyan"),
    ("escaped", "escaped", "bold magenta"),
)


# --------------------------------------------------------------------------- plain text of untrusted values


def visible(value: Any, limit: int = 120) -> str:
    """``value`` as one line of plain text: JSON for structures, invisible and control characters escaped
    (``\\u200b``, ``\\x00``, the ``\\u202e`` override), newlines shown as ``\\n``, cut to ``limit`` characters;
    text with right-to-left letters is isolated (U+2068 … U+2069) so it cannot reorder the rest of the line."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if text.isprintable():  # nothing to escape (checked in C): only the cut remains
        return isolate(text if len(text) <= limit else text[: max(0, limit - 1)] + "…")
    out: list[str] = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
        else:
            out.append(ch)
        if len(out) > limit:
            break
    shown = "".join(out)
    if len(shown) > limit:
        shown = shown[: max(0, limit - 1)] + "…"
    return isolate(shown)  # right-to-left letters cannot reorder the rest of the line


def _t(value: Any, style: str = "", limit: int = 120) -> Text:
    return Text(visible(value, limit), style=style)


def _pct(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * float(x):.{digits}f}%"


def _num(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{float(x):.{digits}f}"


# --------------------------------------------------------------------------- sections


def _banner(doc: Mapping[str, Any]) -> Panel:
    verdict = doc.get("verdict") or {}
    ship = bool(verdict.get("ship"))
    label = "READY TO SHIP" if ship else "READY TO DEMO"
    style = "bold white on green" if ship else "bold white on red"
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column(width=2, no_wrap=True)
    table.add_column(ratio=2, overflow="fold")  # a long criterion name goes on over two lines, never cut
    table.add_column(ratio=5, overflow="fold")
    for criterion in verdict.get("reasons") or ():
        passed = bool(criterion.get("passed"))
        mark = Text("✓", style="bold green") if passed else Text("✗", style="bold red")
        body = Text(str(criterion.get("figure", "")))
        detail = criterion.get("detail")
        if detail:
            body.append("\n")
            body.append(visible(detail, 300), style="dim")
        table.add_row(mark, Text(str(criterion.get("name", "")), style="bold"), body)
    parts: list[Any] = [Text(f" {label} ", style=style, justify="center"), table]
    thresholds = doc.get("thresholds") or {}
    if thresholds and not wording.certified(thresholds):
        parts.append(Text(visible(wording.nothing_certified(thresholds), 400), style="bold yellow"))
    subtitle = f"run {doc.get('run_id', '?')} · {doc.get('n_rows', 0)} requests over {doc.get('n_cases', 0)} cases"
    return Panel(
        Group(*parts),
        title=Text(f"failpath check · {visible(doc.get('name') or doc.get('system') or '', 60)}", style="bold"),
        subtitle=subtitle,
        border_style="green" if ship else "red",
    )


def _gap_table(doc: Mapping[str, Any]) -> Table:
    table = Table(title="The gap: clean → chaos accuracy (raw system, evaluation half)", box=box.SIMPLE_HEAD,
                  title_justify="left", expand=False)
    table.add_column("suite", no_wrap=True)
    table.add_column("perturbation", overflow="fold", max_width=22)
    table.add_column("n", justify="right")
    table.add_column("clean → chaos", justify="right", no_wrap=True)
    table.add_column(f"gap [{wording.level(doc)} CI]", justify="right", no_wrap=True)
    table.add_column("flip", justify="right")
    for group in doc.get("groups") or ():
        is_suite = group.get("perturbation") is None
        gap = group.get("gap")
        gap_text = "—" if gap is None else f"{100 * gap:+.1f}"
        if group.get("gap_low") is not None and group.get("gap_high") is not None:
            gap_text += f" [{100 * group['gap_low']:+.1f}, {100 * group['gap_high']:+.1f}]"
        style = "bold" if is_suite else ""
        gap_style = "red" if (group.get("gap_low") or 0) > 0 else ""
        table.add_row(
            _t(group.get("suite") if is_suite else "", style, 20),
            _t("(all)" if is_suite else group.get("perturbation"), style, 40),
            str(group.get("n", 0)),
            f"{_pct(group.get('clean_accuracy'))} → {_pct(group.get('accuracy'))}",
            Text(gap_text, style=gap_style),
            _pct(group.get("flip_rate")),
            style=style,
        )
    clean = doc.get("clean") or {}
    table.add_row(Text("clean", style="bold"), "", str(clean.get("n", 0)), _pct(clean.get("accuracy")), "", "",
                  end_section=True)
    return table


def _mix_counts(figures: Mapping[str, Any]) -> dict[str, int]:
    outcomes = figures.get("outcomes") or {}
    answered = int(figures.get("answered") or 0)
    silent = int(figures.get("silent_failures") or 0)
    return {
        "right": answered - silent,
        "silent": silent,
        "escaped": int(figures.get("escaped") or 0),
        **{k: int(outcomes.get(k, 0)) for k in ("clarify", "escalated", "abstained", "defaulted")},
    }


def _mix_table(doc: Mapping[str, Any]) -> Table:
    groups = [("chaos", doc.get("chaos") or {}), ("clean", doc.get("clean") or {})]
    groups += [(g.get("suite", ""), g) for g in doc.get("groups") or () if g.get("perturbation") is None]
    groups = [(label, g) for label, g in groups if g.get("n")]
    rows = []
    for label, group in groups:
        for key, name in (("without_policy", "without"), ("with_policy", "with")):
            figures = group.get(key) or {}
            rows.append((label if key == "without_policy" else "", name, _mix_counts(figures), figures, key == "with_policy"))
    # Handled outcomes that never happened get no column: the table stays readable at 100 columns.
    shown = [c for c in _OUTCOME_COLUMNS if c[0] in ("right", "silent") or any(r[2][c[0]] for r in rows)]
    table = Table(title="Outcomes with and without the policy (share of requests, evaluation half)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("requests", overflow="fold", max_width=16)
    table.add_column("policy", no_wrap=True, min_width=7)
    for _, header, style in shown:
        table.add_column(header, justify="right", style=style, no_wrap=True, min_width=len(header))
    table.add_column("silent ≤", justify="right", no_wrap=True, min_width=8)
    for label, name, counts, figures, last in rows:
        n = int(figures.get("n") or 0)
        cells = [_pct(counts[key] / n, 0) if n else "—" for key, _, _ in shown]
        table.add_row(_t(label, "bold", 40), name, *cells, _pct(figures.get("silent_failure_upper")), end_section=last)
    return table


def _catch_line(doc: Mapping[str, Any]) -> Text:
    return _pieces(wording.catch_sentence(doc.get("chaos")))


def _pieces(pieces: list[tuple[str, bool]]) -> Text:
    text = Text()
    for piece, strong in pieces:
        text.append(piece, style="bold" if strong else "")
    return text


def _states_table(doc: Mapping[str, Any]) -> Table:
    table = Table(title="Failure states: handled by, exercised by this run", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("", width=1)
    table.add_column("state", no_wrap=True)
    table.add_column("handled by", overflow="fold", max_width=28)
    table.add_column("fired", justify="right")
    table.add_column("decided", justify="right")
    table.add_column("detail", overflow="fold", ratio=1)
    for state in doc.get("states") or ():
        ok = bool(state.get("ok"))
        handled = ", ".join(state.get("handled_by") or ()) or ("accepted" if state.get("accepted") else "—")
        table.add_row(
            Text("✓", style="green") if ok else Text("✗", style="red"),
            _t(state.get("state"), "", 30),
            _t(handled, "", 60),
            str(state.get("fired", 0)),
            str(state.get("decided", 0)),
            _t(state.get("detail", ""), "dim", 200),
        )
    return table


def _pairs(value: Any) -> list[tuple[Any, Any]] | None:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return None
    return [(p[0], p[1]) for p in value]


def difference(expected: Any, output: Any, limit: int = 4) -> str | None:
    """What differs between an expected value and an output, in a few words, for token labels and records."""
    want, got = _pairs(expected), _pairs(output)
    if want is not None and got is not None:
        if len(want) != len(got):
            return f"{len(got)} tokens labeled, {len(want)} expected"
        diffs = [f"{visible(t, 24)}: {visible(a, 28)} → {visible(b, 28)}" for (t, a), (_, b) in zip(want, got) if a != b]
        if not diffs:
            return "the tokens differ"
        more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
        return "; ".join(diffs[:limit]) + more
    if isinstance(expected, Mapping) and isinstance(output, Mapping):
        keys = [k for k in expected if output.get(k) != expected.get(k)]
        if keys:
            shown = [f"{visible(k, 24)}: {visible(expected.get(k), 30)} → {visible(output.get(k), 30)}" for k in keys[:limit]]
            return "; ".join(shown) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
    return None


def _worst(doc: Mapping[str, Any]) -> Any:
    """The worst cases: those a perturbation caused first, then, apart, those wrong on clean input."""
    from failpath.report.worst import groups

    worst = doc.get("worst_cases") or ()
    if not worst:
        return Text("Worst cases: no silent failure on the evaluation half.", style="green")
    tables: list[Any] = [Text("Worst cases: silent failures, most confident first, one per case", style="bold")]
    number = 0
    for _, title, members in groups(worst):
        tables.append(Text(f"  {title}", style="bold"))
        table = Table(box=box.SIMPLE_HEAD, show_lines=True)
        table.add_column("#", justify="right", width=2)
        table.add_column("where", overflow="fold", max_width=22)
        table.add_column("what happened", overflow="fold", ratio=1)
        for case in members:
            number += 1
            where = Text(visible(f"{case.get('suite')}/{case.get('perturbation')}", 60))
            where.append("\ncase " + visible(case.get("case_id"), 40), style="dim")
            table.add_row(str(number), where, _worst_body(case))
        tables.append(table)
    return Group(*tables)


def _worst_body(case: Mapping[str, Any]) -> Text:
    """One worst case: input (hidden characters revealed), expected, answer, the edits, the reproduction."""
    from failpath.report.worst import edits_text, shown, shown_input

    body = Text()
    body.append("input    ", style="dim")
    body.append(visible(shown_input(case), 160))
    edits = edits_text(case.get("edits"))
    if edits:
        body.append("\nedits    ", style="dim")
        body.append(visible(edits, 200))
    body.append("\nexpected ", style="dim")
    body.append(visible(case.get("expected"), 160))
    body.append("\nanswered ", style="dim")
    body.append(visible(shown(case.get("output")), 160), style="red")
    body.append(f"  (confidence {_num(case.get('confidence'), 2)})", style="dim")
    diff = difference(case.get("expected"), case.get("output"))
    if diff:
        body.append("\nwrong    ", style="dim")
        body.append(diff, style="red")
    repro = case.get("reproduction") or {}
    if repro.get("found"):
        body.append("\nminimal  ", style="dim")
        body.append(visible(shown_input({"input": repro.get("input")}), 160), style="bold")
        kinds = ", ".join(visible(e.get("kind"), 20) for e in repro.get("edits") or ()) or "input unchanged"
        body.append(f"\n         {visible(repro.get('perturbation') or 'clean', 60)} ({kinds}); "
                    f"{'minimal' if repro.get('minimal') else 'not proven minimal'}, "
                    f"{repro.get('n_tried', 0)} tried", style="dim")
    elif repro:
        body.append("\nminimal  ", style="dim")
        body.append(visible(repro.get("note") or "not found", 160), style="dim")
    return body


def _worst_thing(doc: Mapping[str, Any]) -> Any:
    """The panel answering "what is the worst thing this can do, and have we handled it?"."""
    from failpath.report.worst_thing import TITLE, worst_thing

    section = worst_thing(doc, visible)
    if section is None:
        return Text("")
    body = Text(section.headline, style="bold green" if section.passed else "bold red")
    body.append("\n" + section.graded, style="dim")
    body.append("\nSevere silent failures per family: " + section.bounds)
    for line in section.with_policy:
        body.append("\n  with the policy: ", style="dim")
        body.append(line, style="red")
    body.append("\n" + section.raw)
    for line in section.without_policy:
        body.append("\n  without the policy: ", style="dim")
        body.append(line)
    return Panel(body, title=TITLE, title_align="left", border_style="green" if section.passed else "red")


def _tags(doc: Mapping[str, Any]) -> Any:
    """Figures per case tag: silent failures per family and over-refusal, each with its bound over the tag's cases."""
    from failpath.report.tag_table import tag_table

    table = tag_table(doc)
    if table is None:
        return Text("")
    out = Table(title=f"Per tag (evaluation half): silent failures per family and over-refusal, rate ≤ bound at {table.level} "
                "over the tag's cases (red: over the run's budget)", box=box.SIMPLE_HEAD, title_justify="left")
    out.add_column("tag", overflow="fold", max_width=28)
    out.add_column("cases", justify="right")
    out.add_column("requests", justify="right")
    out.add_column("silent", justify="right")
    for family in table.families:
        out.add_column(family, justify="right", overflow="fold")
    out.add_column("over-refusal", justify="right", overflow="fold")
    for row in table.rows:
        cells = [Text(c.text, style="red" if c.over else "") for c in (*row.families, row.over_refusal)]
        out.add_row(Text(visible(row.tag, 80)), f"{row.n_cases:,}", f"{row.n:,}", f"{row.silent_failures:,}", *cells)
    return out


def _where_cases(doc: Mapping[str, Any]) -> Text:
    """Where every failing case is listed: the HTML report and the rows (the table above shows a few)."""
    silent = sum(int(((doc.get(g) or {}).get("with_policy") or {}).get("silent_failures") or 0) for g in ("chaos", "clean"))
    shown = len(doc.get("worst_cases") or ())
    run = visible(doc.get("run_id"), 80)
    text = Text(f"Every failing case ({silent:,} silent failures on the evaluation half, {shown} shown above; "
                "changed hostile answers, refusals and escapes too), searchable and filtered by suite, perturbation, "
                f"state and tag: the HTML report (failpath check writes it; again: failpath report {run} --output report.html); "
                f"one row per request: failpath report {run} --output rows.csv", style="dim")
    return text


def _thresholds(doc: Mapping[str, Any]) -> Any:
    t = doc.get("thresholds") or {}
    if not t:
        return Text("")
    lines = Text()
    if wording.certified(t):
        lines.append("Recommended threshold: ", style="bold")
        lines.append(f"answer when confidence ≥ {_num(t.get('threshold'), 2)}", style="bold green")
        lines.append(
            f"\n  guarantee: silent failures ≤ {_pct(t.get('risk_budget'))} of requests with probability ≥ "
            f"{wording.level(doc)} ({t.get('method')}, n={t.get('n_calibration')} calibration requests)"
        )
        lines.append(
            f"\n  calibration half: answered {_pct(t.get('calibration_coverage'))}, wrong among answered {_pct(t.get('calibration_risk'))}"
            f"\n  evaluation half: answered {_pct(t.get('evaluation_coverage'))}, wrong among answered {_pct(t.get('evaluation_risk'))},"
            f" silent failures {_pct(t.get('evaluation_silent_failure_rate'))} of requests"
        )
    else:
        lines.append(visible(wording.nothing_certified(t), 400), style="bold yellow")
    cost = t.get("cost_policy") or {}
    if cost and "error" not in cost:
        lines.append("\nCost-optimal policy: ", style="bold")
        lines.append_text(_pieces(wording.cost_rule(cost)))
    return Panel(lines, title="Thresholds", title_align="left", border_style="blue")


def _confidence(doc: Mapping[str, Any]) -> Text:
    c = doc.get("confidence") or {}
    if not c.get("n"):
        return Text("Confidence quality: the raw system gave no confidence.", style="dim")
    text = Text("Confidence quality (raw answers, evaluation half, n=" + str(c.get("n")) + "): ", style="bold")
    text.append(
        f"AUROC {_num(c.get('auroc'))} · AURC {_num(c.get('aurc'))} · E-AURC {_num(c.get('e_aurc'))} · "
        f"ECE {_num(c.get('ece'))} · Brier {_num(c.get('brier'))}",
        style="",
    )
    return text


def build(result: Any) -> Group:
    """The report as one rich renderable (from a ``CheckResult`` or its ``to_dict()`` document)."""
    doc = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    if doc.get("schema") == "failpath.report/1":  # a JSON report document wraps the check
        doc = dict(doc.get("check") or {})
    parts: list[Any] = [_banner(doc), _gap_table(doc), _mix_table(doc), _catch_line(doc), Text(""),
                        _states_table(doc), _worst_thing(doc)]
    parts += inputs.terminal_sections(doc, visible)  # input detectors, variants per perturbation
    parts += [_tags(doc), _worst(doc), _where_cases(doc), _thresholds(doc), _confidence(doc)]
    notes = [n for n in doc.get("notes") or () if "NOTHING CERTIFIED" not in n]
    for note in notes:
        parts.append(Text("note: " + visible(note, 300), style="yellow"))
    return Group(*parts)


def render(result: Any, console: Console | None = None) -> None:
    """Print the terminal report of a check result (``CheckResult`` or its document) to ``console``."""
    console = console or Console()
    console.print(build(result))
