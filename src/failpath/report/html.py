"""The HTML report: one self-contained file, charts inline as SVG, every shown value escaped.

``render(result)`` returns the page for a ``CheckResult``, its ``failpath.check/2`` dict or a
``failpath.report/1`` document; ``write(result, path)`` saves it. The page loads nothing: no external
script, font, style or image, and a Content-Security-Policy that forbids them. Inputs and outputs
are shown as text (chaos inputs carry markup and script by design), with invisible and control
characters made visible.

Given the run's request rows (``render(result, rows=...)``), the page also lists every failing case
(:mod:`failpath.report.case_list`): the rows are embedded as inert JSON, and one script of the
project's own (``templates/cases.js``), written into the page, lists, filters, pages and drills into
them, showing every value through ``textContent``. The policy allows that script by its SHA-256 hash
and no other; without rows the page has no script and its policy is ``script-src 'none'``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from failpath.report.json_report import build_report
from failpath.report import inputs, wording

__all__ = ["render", "write", "CONTENT_SECURITY_POLICY", "content_security_policy", "case_script"]

#: The page's policy: nothing may be fetched or run; inline styles (the page's and the SVG charts') only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
    "script-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

Rows = Iterable[Mapping[str, Any]] | Callable[[], Iterable[Mapping[str, Any]]]


@lru_cache(maxsize=1)
def case_script() -> str:
    """The text of the case list's script (``templates/cases.js``), as written into the page."""
    return (Path(__file__).parent / "templates" / "cases.js").read_text(encoding="utf-8")


def content_security_policy(with_cases: bool) -> str:
    """The page's policy: :data:`CONTENT_SECURITY_POLICY`, or, for a page with the case list, the same
    allowing one script: the case list's, by its SHA-256 hash (no other inline or fetched script runs)."""
    if not with_cases:
        return CONTENT_SECURITY_POLICY
    digest = base64.b64encode(hashlib.sha256(case_script().encode("utf-8")).digest()).decode("ascii")
    return CONTENT_SECURITY_POLICY.replace("script-src 'none'", f"script-src 'sha256-{digest}'")


_MAX_SHOWN_CHARS = 1200
_MAX_ACCURACY_BARS = 40


def render(result: Any, rows: Rows | None = None) -> str:
    """The HTML page for ``result``: a ``CheckResult``, its ``failpath.check/2`` dict or a ``failpath.report/1`` document.

    ``rows``: the run's request records (:func:`failpath.report.rows.read_request_rows`), or a function
    returning them afresh at each call (called twice; e.g. :func:`failpath.report.rows.stream_request_rows`,
    which reads them from the store a batch at a time); with them the page lists every
    failing case. Without them it shows the worst cases only and says how to get the full list.
    """
    from markupsafe import Markup

    from failpath.report import case_list
    from failpath.report.tag_table import tag_table

    document = build_report(result)
    view = _view(document)
    cases = None
    if rows is not None:
        if callable(rows):
            source = rows
        else:
            kept = rows if isinstance(rows, Sequence) else list(rows)
            source = lambda: kept  # noqa: E731 (the rows are read twice)
        cases = case_list.build_case_list(source)
        # embed() leaves no <, > or & in the text: it cannot close the element or open markup.
        view.update(case_data=Markup(case_list.embed(cases)), case_script=Markup(case_script()))
    view.update(cases=cases, kinds=case_list.KINDS, csp=content_security_policy(cases is not None))
    view.update(tag_figures=tag_table(document["check"]))
    template = _environment().get_template("report.html.j2")
    return template.render(**view)


def write(result: Any, path: str | Path, rows: Rows | None = None) -> Path:
    """Write the HTML report to ``path`` (parent folders created) and return the path; ``rows`` as for :func:`render`."""
    from failpath.report.files import write_atomic

    return write_atomic(path, render(result, rows))


# --------------------------------------------------------------------------- jinja


def _environment() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,  # every value is escaped, whatever the template's name
        finalize=_isolated,  # a value with right-to-left text or overrides cannot reorder its line
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(pct=pct, pts=pts, num=num, show=show, when=when)
    from failpath.report import worst

    environment.globals.update(token_table=token_table, catch_sentence=_sentence(wording.catch_sentence),
                               cost_rule=_sentence(wording.cost_rule), worst_groups=worst.groups,
                               shown_input=worst.shown_input, shown=worst.shown, edit_text=worst.edit_text)
    environment.globals.update(inputs_detector_rows=inputs.detector_rows, inputs_detector_label=inputs.detector_label,
                               inputs_fitted_sentence=inputs.fitted_sentence)
    return environment


def _sentence(words: Any) -> Any:
    """A :mod:`failpath.report.wording` function as escaped HTML, its strong pieces in ``<strong>``."""
    from markupsafe import Markup, escape

    def render(*args: Any) -> Any:
        return Markup("").join(
            Markup("<strong>{}</strong>").format(piece) if strong else escape(piece) for piece, strong in words(*args)
        )

    return render


def pct(value: Any, digits: int = 1) -> str:
    """``0.1234`` as ``"12.3%"``; ``None`` as an em dash."""
    if value is None:
        return "—"
    return f"{100 * float(value):.{digits}f}%"


def pts(value: Any, digits: int = 1) -> str:
    """A difference of two rates in percentage points, signed: ``"+12.3 pts"``."""
    if value is None:
        return "—"
    return f"{100 * float(value):+.{digits}f} pts"


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``None`` as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def when(seconds: Any) -> str:
    """Unix seconds as a UTC date and time."""
    if not seconds:
        return "—"
    return _dt.datetime.fromtimestamp(float(seconds), tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _visible(text: str) -> Any:
    """``text`` escaped, long text cut, control and invisible characters shown as ``⟨U+200B⟩`` marks."""
    from markupsafe import Markup, escape

    cut = len(text) - _MAX_SHOWN_CHARS
    if cut > 0:
        text = text[:_MAX_SHOWN_CHARS]
    parts = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\t" or (category[0] not in "CZ" and ch != "\u00ad") or ch == " ":
            parts.append(escape(ch))
        else:
            parts.append(Markup('<span class="ctl" title="{}">⟨U+{:04X}⟩</span>').format(
                unicodedata.name(ch, category), ord(ch)))
    if cut > 0:
        parts.append(Markup('<span class="cut">… {:,} more characters</span>').format(cut))
    return Markup("").join(parts)


def show(value: Any) -> Any:
    """Any input or output as escaped markup: text as it is (with invisible characters marked), else JSON."""
    from markupsafe import Markup

    if value is None:
        return Markup('<span class="none">none</span>')
    if isinstance(value, str):
        return _visible(value)
    try:
        text = json.dumps(value, ensure_ascii=False, indent=None, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return _visible(text)


def _pairs(value: Any) -> list[tuple[str, str]] | None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        return None
    out = []
    for item in value:
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
            return None
        out.append((str(item[0]), str(item[1])))
    return out


def token_table(output: Any, expected: Any) -> Any:
    """Token-aligned output beside the expected labels, one chip per token, wrong labels marked.

    None when either value is not a list of ``(token, label)`` pairs. When the token counts differ the
    two sequences are shown one above the other.
    """
    from markupsafe import Markup

    got, want = _pairs(output), _pairs(expected)
    if got is None or want is None:
        return None
    chip = Markup('<span class="tok{}"><span class="t">{}</span><span class="o">{}</span>{}</span>')
    if len(got) == len(want):
        chips = [
            chip.format(" bad" if g[1] != w[1] else "", _visible(g[0]), g[1],
                        Markup('<span class="e">{}</span>').format(w[1]))
            for g, w in zip(got, want)
        ]
        return Markup('<div class="tokens"><span class="tok legend"><span class="t">token</span>'
                      '<span class="o">answered</span><span class="e">expected</span></span>{}</div>').format(Markup("").join(chips))
    rows = []
    for title, pairs in (("answered", got), ("expected", want)):
        chips = [chip.format("", _visible(t), label, "") for t, label in pairs]
        rows.append(Markup('<div class="tokens"><span class="tok legend"><span class="t">{}</span><span class="o">{} tokens</span></span>{}</div>').format(
            title, len(pairs), Markup("").join(chips)))
    return Markup("").join(rows)


# --------------------------------------------------------------------------- the page's data


def _isolated(value: Any) -> Any:
    """Every value the template prints: text (not markup) isolated when it could reorder its neighbours."""
    if type(value) is str:
        from failpath.report.bidi import isolate

        return isolate(value)
    return value


def _view(document: Mapping[str, Any]) -> dict[str, Any]:
    from markupsafe import Markup

    from failpath.report.terminal import visible
    from failpath.report.worst_thing import TITLE as WORST_THING_TITLE
    from failpath.report.worst_thing import worst_thing

    from failpath.report import charts

    check = document["check"]
    svgs: dict[str, str] = {}
    accuracy = list(document.get("accuracy") or [])
    if accuracy:
        # Clean first, then the hardest perturbations; suite rows are in the table.
        # Only perturbations whose expected answer is known (hostile and fault variants are scored on
        # "right or handled", shown in the outcome table).
        contracts = {(g.get("suite"), g.get("perturbation")): g.get("contract") for g in check.get("groups") or ()}
        perturbations = [
            r for r in accuracy[1:]
            if r.get("perturbation") and contracts.get((r.get("suite"), r.get("perturbation"))) != "not_preserved"
        ]
        bars = accuracy[:1] + sorted(perturbations, key=lambda r: r["accuracy"])[: _MAX_ACCURACY_BARS - 1]
        svgs["accuracy"] = charts.accuracy_chart(bars, level=wording.level(check))
    mix = list(document.get("outcome_mix") or [])
    pooled = [(row["label"], row["counts"]) for row in mix if row["group"] in ("chaos", "clean")]
    if pooled:
        svgs["outcome_mix"] = charts.outcome_mix_chart(pooled)
    curves = check.get("curves") or {}
    rc = curves.get("risk_coverage")
    if rc and rc.get("coverage"):
        thresholds = check.get("thresholds") or {}
        point = None
        if wording.certified(thresholds) and thresholds.get("evaluation_coverage") is not None:
            point = (thresholds["evaluation_coverage"], thresholds.get("evaluation_risk") or 0.0)
        svgs["risk_coverage"] = charts.risk_coverage_chart(
            rc["coverage"], rc["selective_risk"], rc["oracle"]["coverage"], rc["oracle"]["selective_risk"],
            operating_point=point,
        )
    reliability = curves.get("reliability")
    if reliability and reliability.get("bins"):
        svgs["reliability"] = charts.reliability_chart(reliability["bins"])

    verdict = check["verdict"]
    reasons = sorted(verdict.get("reasons") or [], key=lambda c: c["passed"])  # failed criteria first
    certified_message = (check.get("thresholds") or {}).get("message")
    return {
        "check": check,
        "document": document,
        "verdict_label": "READY TO SHIP" if verdict["ship"] else "READY TO DEMO",
        "ship": bool(verdict["ship"]),
        "reasons": reasons,
        "mix": mix,
        "mix_kinds": [k for k in charts.COLORS if k in ("right", "silent_failure") or any(r["counts"].get(k) for r in mix)],
        "mix_labels": _MIX_LABELS,
        "colors": charts.COLORS,
        # matplotlib wrote these SVGs and escaped every text in them; they hold no script and no URL.
        "charts": {name: Markup(svg) for name, svg in svgs.items()},
        "notes": [n for n in check.get("notes") or () if n != certified_message],
        "level": wording.level(check),
        "certified": wording.certified(check.get("thresholds")),
        "nothing_certified": wording.nothing_certified(check.get("thresholds")),
        "csp": CONTENT_SECURITY_POLICY,
        "worst_thing": worst_thing(check, visible),
        "worst_thing_title": WORST_THING_TITLE,
    }


_MIX_LABELS = {
    "right": "right",
    "silent_failure": "silent",
    "clarify": "clarify",
    "escalated": "escalate",
    "abstained": "abstain",
    "defaulted": "default",
    "error": "raised",
}
