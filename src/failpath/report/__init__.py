"""Reports of a check: terminal (rich), HTML (one self-contained file), JSON, JUnit XML, CSV/JSONL
rows and a Markdown summary.

``failpath.report.terminal.render(result, console)`` prints the terminal report; the HTML and JSON
reports live in :mod:`failpath.report.html` and :mod:`failpath.report.json_report`, JUnit XML in
:mod:`failpath.report.junit`, the rows of every request in :mod:`failpath.report.rows`, the Markdown
summary in :mod:`failpath.report.markdown`; :mod:`failpath.report.outputs` picks one by a file's
extension and writes it atomically. Every report is
built from ``CheckResult.to_dict()`` (schema ``failpath.check/2``), so a stored run can be reported
again without running anything. Submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("terminal", "html", "json_report", "charts", "wording", "junit", "rows", "markdown", "outputs")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"failpath.report.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'failpath.report' has no attribute {name!r}")
