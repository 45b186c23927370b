"""The HTML report of an agent check: one self-contained page, built from the result document.

The same sections as the terminal report (:mod:`failpath.report.agent_terminal`), with the pass^k curve
drawn (estimate, lower bound, and what ``(c/n)^k`` would have claimed). Every value from a run (tool
arguments and results, the agent's words, planted instructions) is escaped by the template engine:
chaos puts markup and script into tool output by design, and the page never runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from failpath.report.html import CONTENT_SECURITY_POLICY, _environment

__all__ = ["render", "write", "pass_k_chart"]


def pass_k_chart(curve: Sequence[Mapping[str, Any]], *, level: str = "95%") -> str:
    """pass^k against k: the unbiased estimate, its lower confidence bound, and ``(c/n)^k``, as inline SVG."""
    from failpath.report.charts import _pyplot, svg_from_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    ks = [p["k"] for p in curve]
    ax.plot(ks, [100 * p["estimate"] for p in curve], marker="o", color="#37474f", label="pass^k (unbiased)")
    ax.plot(ks, [100 * p["lower_bound"] for p in curve], marker="v", color="#c62828", label=f"lower bound ({level})")
    ax.plot(ks, [100 * p["naive"] for p in curve], linestyle="--", color="#90a4ae", label="(c/n)^k, reads high")
    ax.set_xticks(ks)
    ax.set_ylim(0, 102)
    ax.set_xlabel("k: tries that must all succeed")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("pass^k on clean trials", loc="left", fontsize=10)
    return svg_from_figure(fig, "pass_k")


def render(document: Mapping[str, Any]) -> str:
    """The page for an agent check's result document (``AgentCheckResult.to_dict()``)."""
    figures = document["figures"]
    from markupsafe import Markup

    chart = Markup(pass_k_chart(figures["pass_k_curve"], level=f"{figures['confidence']:.0%}")) if figures["pass_k_curve"] else None
    template = _environment().get_template("agent_report.html.j2")
    return template.render(doc=document, figures=figures, verdict=document["verdict"], chart=chart, csp=CONTENT_SECURITY_POLICY)


def write(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write the page to ``path`` (atomically, parent folders created) and return the path."""
    from failpath.report.files import write_atomic

    return write_atomic(path, render(document))
