"""The failpath pytest plugin: a check run once per test session, as the fixture ``failpath_check``.

Registered through the ``pytest11`` entry point, so installing failpath is enough::

    def test_ships(failpath_check):
        failpath.testing.assert_ready_to_ship(failpath_check)

The check is the one ``failpath check`` would run: the ``failpath.toml`` in pytest's root folder, or
the file given with ``--failpath-config PATH`` (or the ``failpath_config`` ini option). It runs the
first time a test asks for the fixture, without a progress bar; every other test gets the same
result. ``--failpath-output PATH`` (repeatable) also writes reports, chosen by extension as with
``failpath check --output``. The verdict is printed in pytest's summary.

Nothing runs when no test uses the fixture: a session that does not ask for a check pays only for
this module's import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["failpath_check"]

_RESULT = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("failpath", "failpath check")
    group.addoption(
        "--failpath-config", metavar="PATH", default=None,
        help="the failpath.toml whose check the failpath_check fixture runs (default: failpath.toml in the root folder)",
    )
    group.addoption(
        "--failpath-output", metavar="PATH", action="append", default=[],
        help="also write a report of the session's check to PATH, the format chosen by the extension (repeatable)",
    )
    parser.addini("failpath_config", "the failpath.toml the failpath_check fixture runs", default=None)


def _config_path(config: pytest.Config) -> Path:
    given = config.getoption("--failpath-config") or config.getini("failpath_config")
    path = Path(given) if given else Path("failpath.toml")
    return path if path.is_absolute() else Path(config.rootpath) / path


@pytest.fixture(scope="session")
def failpath_check(request: pytest.FixtureRequest) -> Any:
    """The ``CheckResult`` of the project's check, run once per session (see the module's docstring)."""
    from failpath.core import FailpathError

    config = request.config
    path = _config_path(config)
    try:
        from failpath.check.api import check
        from failpath.check.config import check_kwargs, load_config

        if not path.is_file():
            raise FailpathError(
                f"{path}: no failpath.toml; write one (failpath init) or give its path with --failpath-config PATH "
                "or the failpath_config ini option"
            )
        kwargs = check_kwargs(load_config(path))
        result = check(**kwargs, quiet=True)
    except FailpathError as exc:
        pytest.fail(f"the failpath check could not run: {exc}", pytrace=False)
    config.stash[_RESULT] = result
    outputs = config.getoption("--failpath-output")
    if outputs:
        _write_outputs(result, outputs, kwargs.get("store"))
    return result


def _write_outputs(result: Any, outputs: list[str], store: Any) -> None:
    from failpath.report.outputs import write_outputs
    from failpath.report.rows import read_request_rows
    from failpath.store import DEFAULT_STORE_PATH

    written = write_outputs(result.to_dict(), outputs, lambda: read_request_rows(store or DEFAULT_STORE_PATH, result.run_id))
    errors = [f"{path}: {error}" for path, _, error in written if error is not None]
    if errors:
        pytest.fail("failpath could not write its reports: " + "; ".join(errors), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    result = config.stash.get(_RESULT, None)
    if result is None:
        return
    verdict = result.verdict
    failed = [r.name for r in verdict.reasons if not r.passed]
    terminalreporter.section("failpath")
    line = f"{verdict.label} · run {result.run_id} · {result.n_rows:,} requests over {result.n_cases:,} cases"
    terminalreporter.write_line(line + (f" · failed: {', '.join(failed)}" if failed else ""))
