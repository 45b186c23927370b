"""The tasks of an agent check: a request, and what must hold in the environment when the run ends.

An agent is judged on what it did, not on what it said: a task's judge reads the **environment's final
state** (a snapshot of it, compared with the state the task expects, or a function of your own over the
environment), and optionally the outcome kind the run must end in (``"escalated"`` for a request that
must reach a person). A run that ends ``Answered`` while the state is wrong is a silent failure.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failpath.chaos.tool_faults import AttackGoal
from failpath.core import ConfigError, DatasetError

__all__ = ["AgentTask", "Trial", "OUTCOME_KINDS", "load_tasks", "sqlite_snapshot", "judge_state", "decide_approval"]

#: The outcome kinds a task may expect.
OUTCOME_KINDS = ("answered", "escalated", "clarify", "abstained", "defaulted")


@dataclass(frozen=True)
class AgentTask:
    """One task of an agent check.

    - ``id``: unique text; ``input``: the user's request.
    - ``expected_state``: ``{key: value}`` that the environment's ``snapshot()`` must hold at the end
      (each key compared with ``==``; lists compared as multisets, so row order does not matter).
    - ``judge``: ``judge(environment, outcome) -> bool | str``, your own check of the final state: True
      when it is right; False or a sentence saying what is wrong otherwise. Give ``expected_state``,
      ``judge``, or both (both must hold).
    - ``outcome``: the outcome kind the run must end in (``"answered"`` by default; ``"escalated"`` for a
      request a person must decide).
    - ``approve``: how the reviewer answers an approval this task's runs ask for: ``"approve"``,
      ``"reject"``, or ``approve(tool, arguments) -> bool``. Default: approve, except a call that is an
      attacker's goal, which is always rejected.
    - ``tags``: free labels, shown in reports.
    """

    id: str
    input: Any
    expected_state: Mapping[str, Any] | None = None
    judge: Callable[[Any, Any], Any] | None = None
    outcome: str = "answered"
    approve: str | Callable[[str, Mapping[str, Any]], Any] = "approve"
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise DatasetError(f"AgentTask(id={self.id!r}): a task needs a non-empty text id")
        if self.expected_state is None and self.judge is None:
            raise DatasetError(
                f"task {self.id!r}: give expected_state (what the environment's snapshot must hold) or judge(environment, outcome); "
                "an agent is judged on the final state, not on its words"
            )
        if self.expected_state is not None and not isinstance(self.expected_state, Mapping):
            raise DatasetError(f"task {self.id!r}: expected_state must be a mapping of snapshot key to value, got {type(self.expected_state).__name__}")
        if self.expected_state is not None and not self.expected_state and self.judge is None:
            raise DatasetError(
                f"task {self.id!r}: expected_state is empty, so it checks nothing and every run would pass it; name what the "
                "snapshot must hold at the end (an empty list for nothing done: {\"refunds\": []}), or give a judge"
            )
        if self.judge is not None and not callable(self.judge):
            raise DatasetError(f"task {self.id!r}: judge must be a function judge(environment, outcome) -> bool | str")
        if self.outcome not in OUTCOME_KINDS:
            raise DatasetError(f"task {self.id!r}: outcome={self.outcome!r} is not an outcome kind; choose one of {', '.join(OUTCOME_KINDS)}")
        if not (callable(self.approve) or self.approve in ("approve", "reject")):
            raise DatasetError(f"task {self.id!r}: approve must be 'approve', 'reject' or approve(tool, arguments) -> bool, got {self.approve!r}")


@dataclass(frozen=True)
class Trial:
    """What one trial is: handed to your environment factory, so a stochastic stand-in or a fault can be seeded.

    ``family`` is ``clean``, ``fault``, ``attack``, ``realistic`` or ``hostile``; ``variant`` names the
    chaos applied (``clean``, ``tool:timeout``, ``model:server_error``, ``attack:override:0``,
    ``realistic:typo``); ``seed`` derives from the check's seed, the task, the trial and the variant.
    ``store`` is the check's store for the trials' traces, tickets and checkpoints: give it to the
    agent's policy (``fp.Policy(..., store=trial.store)``) so the check can answer its approvals.
    """

    task_id: str
    index: int
    family: str
    variant: str
    seed: int
    store: Any = field(default=None, compare=False, repr=False)


def load_tasks(source: Any) -> list[AgentTask]:
    """Tasks from a list of ``AgentTask``s or dicts, or a ``.jsonl`` / ``.json`` file of dicts.

    A dict has the fields of :class:`AgentTask`; in a file, ``judge`` and a callable ``approve`` cannot
    be given, so ``expected_state`` is required there. Ids must be unique.
    """
    if isinstance(source, (str, Path)):
        rows = _read_rows(Path(source))
        where = str(source)
    elif isinstance(source, Iterable) and not isinstance(source, Mapping):
        rows = list(source)
        where = "tasks"
    else:
        raise DatasetError(f"tasks must be a list of fp.AgentTask (or dicts) or the path of a .jsonl file, got {type(source).__name__}")
    tasks: list[AgentTask] = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, AgentTask):
            tasks.append(row)
            continue
        if not isinstance(row, Mapping):
            raise DatasetError(f"{where}, task {number}: expected an object with id, input and expected_state, got {type(row).__name__}")
        unknown = set(row) - {"id", "input", "expected_state", "judge", "outcome", "approve", "tags"}
        if unknown:
            raise DatasetError(f"{where}, task {number}: unknown field(s) {', '.join(sorted(unknown))}; a task has id, input, expected_state, outcome, approve, tags")
        if "id" not in row or "input" not in row:
            raise DatasetError(f"{where}, task {number}: a task needs an id and an input")
        try:
            tasks.append(AgentTask(**{**row, "id": str(row["id"]), "tags": tuple(row.get("tags") or ())}))
        except DatasetError as exc:
            raise DatasetError(f"{where}, task {number}: {exc}") from None
    if not tasks:
        raise DatasetError(f"{where}: no tasks; an agent check needs at least one task")
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise DatasetError(f"{where}: two tasks have the id {task.id!r}; ids must be unique")
        seen.add(task.id)
    return tasks


def _read_rows(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read the tasks file {path}: {exc.strerror or exc}") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(rows, list):
            raise DatasetError(f"{path}: expected a JSON list of tasks")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise DatasetError(f"{path}, line {number}: not valid JSON ({exc})") from None
    return rows


def sqlite_snapshot(path: str | Path, queries: Mapping[str, str] | Sequence[str]) -> dict[str, list[list[Any]]]:
    """A snapshot of a SQLite database: ``{name: sorted rows}`` (each row a list).

    ``queries`` maps a name to a ``SELECT``, or lists table names (``SELECT * FROM table``). Rows are
    sorted, so the snapshot does not depend on insertion order.
    """
    named = dict(queries) if isinstance(queries, Mapping) else {t: f"SELECT * FROM {t}" for t in queries}
    with sqlite3.connect(path) as db:
        return {name: sorted((list(row) for row in db.execute(sql)), key=repr) for name, sql in named.items()}


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, list) and isinstance(actual, (list, tuple)):
        return sorted(map(_canonical, actual)) == sorted(map(_canonical, expected))
    return _canonical(actual) == _canonical(expected)


def _canonical(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, sort_keys=True, default=str)


def judge_state(task: AgentTask, environment: Any, outcome: Any) -> str | None:
    """None when the final state is what ``task`` expects; else a sentence saying what is wrong.

    Raises what the snapshot or the judge raised (the caller reports it as an infrastructure error).
    """
    if task.expected_state is not None:
        snapshot = getattr(environment, "snapshot", None)
        if not callable(snapshot):
            raise ConfigError(f"task {task.id!r} gives expected_state, but the environment ({type(environment).__name__}) has no snapshot() method")
        state = snapshot()
        for key, expected in task.expected_state.items():
            if key not in state:
                raise ConfigError(f"task {task.id!r} expects {key!r}, but the environment's snapshot has only {', '.join(map(str, state)) or 'nothing'}")
            if not _same(state[key], expected):
                return f"{key} is {_canonical(state[key])[:200]}, expected {_canonical(expected)[:200]}"
    if task.judge is not None:
        verdict = task.judge(environment, outcome)
        if isinstance(verdict, str) and verdict:
            return verdict
        if verdict is not True:
            return "the task's judge found the final state wrong"
    return None


def decide_approval(task: AgentTask, tool: str, arguments: Mapping[str, Any], goals: Sequence[AttackGoal]) -> str:
    """What the reviewer answers about a call waiting for approval: ``"approve"`` or ``"reject"``."""
    if any(goal.matches(tool, arguments) for goal in goals):
        return "reject"
    if callable(task.approve):
        return "approve" if task.approve(tool, arguments) else "reject"
    return task.approve
