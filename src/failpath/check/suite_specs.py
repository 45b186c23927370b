"""The chaos suites a ``failpath.toml`` names: registered names or ``module:attr`` of a ``Suite``, and the
``faults`` key, whose entries (built-in names or ``module:attr`` of a ``Fault``) make the ``fault`` suite.

Every wrong entry is a ``ConfigError`` naming the file, line, key and entry (``failpath check`` exits 2).
"""

from __future__ import annotations

from typing import Any

from failpath.core import ConfigError

__all__ = ["chaos_suites"]


def chaos_suites(loaded: Any, folders: tuple[str, ...]) -> list[Any]:
    """The ``suites`` of the file, each a registered name or a ``module:attr`` naming a ``Suite``, with the
    ``fault`` suite made of the ``faults`` entries when that key is set; ``ConfigError`` naming the entry."""
    from failpath.chaos import Suite, get_suite
    from failpath.check.judges import _import_attr

    c = loaded.config
    suites: list[Any] = []
    for index, entry in enumerate(c.suites):
        where = f"suites[{index}]"
        try:
            if ":" in entry:
                suite = _import_attr(entry, where, folders)
                if not isinstance(suite, Suite):
                    raise ConfigError(
                        f"{where} {entry!r} is a {type(suite).__name__}, not a failpath.chaos.Suite; "
                        "name a Suite value (e.g. Suite(\"mine\", \"realistic\", (...)) or REALISTIC.without(...))"
                    )
            else:
                suite = get_suite(entry)
        except ConfigError as exc:
            raise loaded.error(("suites",), list(c.suites), str(exc)) from None
        suites.append(suite)
    if c.faults is not None:
        if "fault" not in c.suites:
            raise loaded.error(("faults",), list(c.faults), 'the fault suite does not run; add "fault" to suites, or leave faults out')
        fault_suite = Suite("fault", "fault", _faults(loaded, folders))
        suites = [fault_suite if s is get_suite("fault") else s for s in suites]
    seen: dict[str, str] = {}
    for entry, suite in zip(c.suites, suites):
        if suite.name in seen:
            raise loaded.error(
                ("suites",), list(c.suites),
                f"{seen[suite.name]!r} and {entry!r} are both suites named {suite.name!r}; "
                "give one another name (Suite(name=...), or with_contracts(..., name=...))",
            )
        seen[suite.name] = entry
    return suites


def _faults(loaded: Any, folders: tuple[str, ...]) -> tuple[Any, ...]:
    """The ``faults`` entries: built-in fault names or ``module:attr`` naming a ``Fault``."""
    from failpath.chaos.faults import Fault, get_fault
    from failpath.check.judges import _import_attr

    faults = []
    for index, entry in enumerate(loaded.config.faults or ()):
        where = f"faults[{index}]"
        try:
            if ":" in entry:
                fault = _import_attr(entry, where, folders)
                if not isinstance(fault, Fault):
                    hint = " (a class: name an instance of it)" if isinstance(fault, type) and issubclass(fault, Fault) else ""
                    raise ConfigError(f"{where} {entry!r} is a {type(fault).__name__}{hint}, not a failpath.chaos.faults.Fault")
            else:
                fault = get_fault(entry)
        except ConfigError as exc:
            raise loaded.error(("faults",), list(loaded.config.faults or ()), str(exc)) from None
        faults.append(fault)
    names = [f.name for f in faults]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise loaded.error(("faults",), list(loaded.config.faults or ()), f"two faults are named {', '.join(map(repr, repeated))}; fault names must be unique")
    return tuple(faults)
