"""A small, real check whose inputs carry markup and script, shared by the report tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import failpath as fp
from failpath.core import Case

#: Inputs that would run script if a report ever rendered them as markup.
PAYLOADS = (
    "<script>document.title='PWNED-script'</script>",
    "<img src=x onerror=\"document.title='PWNED-img'\">",
    "<svg onload=\"document.title='PWNED-svg'\"></svg>",
    "\"><iframe srcdoc=\"<script>parent.document.title='PWNED-iframe'</script>\">",
)

#: The check's name: shown in the page title and header.
NAME = "shouty <b onmouseover=\"document.title='PWNED-name'\">parser</b>"


def shouty(text: str) -> fp.Prediction:
    """A toy system: the input in capitals, always confident, and so often wrong."""
    return fp.Prediction(text.strip().upper() or "?", confidence=0.97 if len(text) % 2 else 0.42)


def cases() -> list[Case]:
    plain = [Case(id=f"plain-{i}", input=f"word {i}", expected=f"WORD {i}") for i in range(6)]
    hostile = [Case(id=f"payload-{i}", input=payload, expected="SAFE") for i, payload in enumerate(PAYLOADS)]
    return plain + hostile


def run_check(store: Path) -> Any:
    """The check result (a ``CheckResult``) of the toy system on the plain and payload cases."""
    return fp.check(
        shouty, cases(), judge="exact", suites=["hostile"], store=store, quiet=True,
        worst_cases=len(PAYLOADS) + 6, worst_case_seconds=0.5, name=NAME, calibration_share=0.2,
    )


_CACHE: dict[str, Any] = {}


def stored_check(tmp_path_factory: Any) -> tuple[Any, Path]:
    """The sample check run once per test session: ``(CheckResult, store path)``."""
    if "result" not in _CACHE:
        store = tmp_path_factory.mktemp("report-sample") / "failpath.db"
        _CACHE["result"] = run_check(store)
        _CACHE["store"] = store
    return _CACHE["result"], _CACHE["store"]


def without_own_scripts(page: str) -> str:
    """``page`` without the report's own two script elements (the case list's inert JSON data and its
    script, allowed by the policy's hash), each asserted present exactly once and in that form."""
    import re

    from failpath.report.html import case_script

    data = re.findall(r'<script type="application/json" id="fp-case-data">[^<]*</script>', page)
    code = f"<script>{case_script()}</script>"
    assert len(data) == 1 and page.count(code) == 1, "the case list's data and script are each on the page once"
    return page.replace(data[0], "").replace(code, "")


#: A tag that would run script if the case list ever rendered it as markup.
TAG_PAYLOAD = "<img src=x onerror=\"document.title='PWNED-tag'\">"


def capitals(text: str) -> fp.Prediction:
    """A toy system that is right on clean input (the expected answer is the input in capitals) and is
    thrown by hostile variants; unsure (0.42) on inputs of even length."""
    return fp.Prediction(text.strip().upper() or "?", confidence=0.97 if len(text) % 2 else 0.42)


def tagged_cases() -> list[Case]:
    """Cases with tags: plain words (``plain`` and a parity tag), the payloads (``payload`` and a hostile tag)."""
    plain = [
        Case(id=f"word-{i}", input=f"word number {i}", expected=f"WORD NUMBER {i}", tags=("plain", "even" if i % 2 == 0 else "odd"))
        for i in range(24)
    ]
    hostile = [
        Case(id=f"payload-{i}", input=payload, expected=payload.upper(), tags=("payload", TAG_PAYLOAD))
        for i, payload in enumerate(PAYLOADS)
    ]
    return plain + hostile


def tagged_check(tmp_path_factory: Any) -> tuple[Any, Path]:
    """A check of :func:`capitals` over :func:`tagged_cases` under a policy that abstains when unsure, once per session."""
    if "tagged" not in _CACHE:
        store = tmp_path_factory.mktemp("report-tagged") / "failpath.db"
        policy = fp.Policy("unsure-abstains", rules=[
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure")),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ])
        _CACHE["tagged"] = fp.check(
            capitals, tagged_cases(), policy=policy, judge="exact", suites=["hostile", "realistic"], store=store,
            quiet=True, worst_cases=3, worst_case_seconds=0.2, name="capitals", calibration_share=0.25,
        )
        _CACHE["tagged_store"] = store
    return _CACHE["tagged"], _CACHE["tagged_store"]
