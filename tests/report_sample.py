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
