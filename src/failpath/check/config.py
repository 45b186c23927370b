"""The ``failpath.toml`` configuration of a check, validated with pydantic.

Every error names the file, the line, the key and the value. ``tomllib`` gives no positions, so the
lines of keys are found by scanning the TOML text (:func:`key_lines`).

A complete example::

    system = "myapp.model:parse"          # module:attr of the system (sync or async callable)
    policy = "myapp.guarding:policy"      # module:attr of the failpath.Policy
    suites = ["hostile", "realistic", "fault"]   # names, or "module:attr" of a failpath.chaos.Suite
    # faults = ["timeout", "mypkg.chaos:gateway"]   # the fault suite's faults: names, or "module:attr" of a Fault
    seed = 0
    concurrency = 32
    store = ".failpath/failpath.db"
    # severity = "myapp.grading:severity" # how bad a wrong answer is: fn(case, output) -> [0, 1] or a label

    [dataset]
    path = "data/addresses.jsonl"         # .jsonl or .csv, relative to this file
    # paths = ["data/addresses.jsonl", "data/regressions.jsonl"]   # or several files, read in order
    id = "id"
    input = "text"
    expected = "labels"

    [judge]
    name = "token_labels"

    # severity = { ZipCode = "severe" }  # how bad each wrong label is (fields / token_labels judges)

    [budgets]
    silent_failure = 0.02                 # per family: upper bound of its silent-failure rate, cases as the unit
    severe_silent_failure = 0.005         # per family: the same for silent failures of severity >= 0.75
    false_alarm = 0.10                    # upper bound of the realistic requests answered right by the model that the policy refuses
    coverage_floor = 0.5
    delta = 0.05
    # [budgets.silent_failure]            # or per family (families left out: 0.02)
    # clean = 0.02
    # hostile = 0.01
    # [budgets.mix]                       # or judge the families on the traffic mix expected in production
    # clean = 0.6
    # realistic = 0.35
    # hostile = 0.05

    [waive]                               # failure states left without a rule, chaos families left out: why
    inconsistent = "A deterministic parser: sampling it twice always agrees."
    # fault = "The system is a local function: it makes no call that can time out or fail."

    [detector]                            # for a policy with AnomalousInput(fit="check")
    save = "detector.json"                # the detector the check fitted, for production
    shifted = "data/other-domain.jsonl"   # inputs from another domain: each input detector's flag rate

``[budgets.accepted]`` is the older spelling of ``[waive]`` for failure states; both are read.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from failpath.check.datasets import MAX_INPUT_BYTES
from failpath.check.toml_lines import key_lines
from failpath.check.plan import DEFAULT_SUITES  # defined with the plan, so fp.check needs no pydantic
from failpath.core import STATES, ConfigError

__all__ = [
    "DEFAULT_SUITES",
    "DatasetConfig",
    "JudgeConfig",
    "BudgetsConfig",
    "DetectorConfig",
    "CheckConfig",
    "LoadedConfig",
    "load_config",
    "check_kwargs",
    "key_lines",
]


_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _check_spec(value: str | None) -> str | None:
    if value is not None and not _SPEC.match(value):
        raise ValueError("must be 'module:attr', e.g. 'myapp.model:parse'")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """``[dataset]``: the labeled cases and how their columns map onto a case.

    ``path`` names one file; ``paths`` several (the cases, then regression cases exported from the
    review queue, ...), read in order with the same column mapping. Give one of the two.
    """

    path: Path | None = None
    paths: tuple[Path, ...] = ()
    format: Literal["jsonl", "ndjson", "csv", "tsv"] | None = None
    id: str = "id"
    input: str = "input"
    expected: str = "expected"
    tags: str | None = "tags"
    json_columns: tuple[str, ...] = ()
    tags_separator: str = ";"
    limit: int | None = Field(default=None, ge=1)
    max_input_bytes: int = Field(default=MAX_INPUT_BYTES, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetConfig":
        if self.path is not None and self.paths:
            raise ValueError("give path (one file) or paths (a list of files), not both")
        if self.path is None and not self.paths:
            raise ValueError('name the dataset: path = "data/cases.jsonl", or paths = ["data/cases.jsonl", "data/regressions.jsonl"]')
        if len(set(self.paths)) != len(self.paths):
            raise ValueError("paths lists a file twice")
        return self

    @property
    def files(self) -> tuple[Path, ...]:
        """The dataset files, in the order they are read."""
        return (self.path,) if self.path is not None else self.paths


class JudgeConfig(BaseModel):
    """``[judge]``: a judge by name (``exact``, ``text``, ``fields``, ``token_labels``, ``numeric``,
    ``function``); every other key is an option of that judge."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = "exact"

    @property
    def options(self) -> dict[str, Any]:
        """The judge's options: every key but ``name``."""
        return dict(self.model_extra or {})


def _known_state(state: str) -> str:
    if state not in STATES:
        raise ValueError(f"unknown failure state {state!r}; the catalog is: {', '.join(STATES)}")
    return state


def _written_reason(reason: str) -> str:
    from failpath.core import reason_problem

    problem = reason_problem(reason)
    if problem:
        raise ValueError(f"a waiver {problem}")
    return reason.strip()


def _waivable(name: str) -> str:
    from failpath.check.plan import REQUIRED_FAMILIES

    if name not in STATES and name not in REQUIRED_FAMILIES:
        raise ValueError(
            f"{name!r} is neither a catalog failure state ({', '.join(STATES)}) nor a chaos family ({', '.join(REQUIRED_FAMILIES)})"
        )
    return name


StateName = Annotated[str, AfterValidator(_known_state)]
FamilyName = Literal["clean", "realistic", "hostile", "fault"]
Reason = Annotated[str, AfterValidator(_written_reason)]
Waivable = Annotated[str, AfterValidator(_waivable)]


class BudgetsConfig(_Strict):
    """``[budgets]``: what the verdict demands.

    ``silent_failure``: for each family present (clean, realistic, hostile, fault), the upper confidence
    bound of its silent-failure rate (case as the unit) must be at most this; one number for every
    family, or a table ``[budgets.silent_failure]`` of per-family values (families left out: 0.02).
    ``mix``: the share of production traffic of each family (``[budgets.mix]``, summing to 1); the
    families it names are judged together on the weighted rate. ``false_alarm``: the upper bound of the
    share of realistic requests the raw system answers right that the policy refuses.
    ``coverage_floor``: the share of clean requests answered must be at least this.
    ``delta``: 1 − confidence level of the bounds and of the threshold guarantee. ``accepted``: failure
    states left without a rule on purpose, each with a written reason (the older spelling of ``[waive]``).
    ``severe_silent_failure``: for each family, the upper bound of its rate of severe silent failures
    (severity at least 0.75; every wrong answer when no severity is configured).
    """

    silent_failure: float | dict[FamilyName, float] = 0.02
    severe_silent_failure: float = Field(default=0.005, gt=0.0, le=1.0)
    mix: dict[FamilyName, Annotated[float, Field(ge=0.0, le=1.0)]] | None = None
    false_alarm: float = Field(default=0.10, gt=0.0, le=1.0)
    coverage_floor: float = Field(default=0.5, ge=0.0, le=1.0)
    delta: float = Field(default=0.05, gt=0.0, lt=1.0)
    accepted: dict[StateName, Reason] = Field(default_factory=dict)

    @field_validator("silent_failure", mode="before")
    @classmethod
    def _budget_per_family(cls, value: Any) -> Any:
        from failpath.check.plan import silent_failure_budgets

        try:
            silent_failure_budgets(value)
        except ConfigError as exc:
            raise ValueError(str(exc).replace("silent_failure_budget must", "must")) from None
        return value

    @field_validator("mix", mode="before")
    @classmethod
    def _shares_of_traffic(cls, value: Any) -> Any:
        from failpath.check.plan import traffic_mix

        try:
            traffic_mix(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


class DetectorConfig(_Strict):
    """``[detector]``: the anomaly detector the check fits, and the shifted-domain sample it is measured on.

    ``save``: where to write the detector fitted by the check (a policy with ``AnomalousInput(fit="check")``),
    for ``AnomalousInput.load`` in production. ``shifted``: one file or a list of files of inputs from another
    domain (``.txt``: one input a line; ``.jsonl``: a JSON string a line, or an object holding the dataset's
    input column, or ``shifted_input`` when given); the report gives each input detector's flag rate on them.
    """

    save: Path | None = None
    shifted: Path | tuple[Path, ...] | None = None
    shifted_input: str | None = None


class CheckConfig(_Strict):
    """The whole ``failpath.toml`` of a check."""

    system: str
    policy: str | None = None
    dataset: DatasetConfig
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    suites: tuple[str, ...] = DEFAULT_SUITES
    faults: tuple[str, ...] | None = None
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    waive: dict[Waivable, Reason] = Field(default_factory=dict)
    severity: str | dict[str, str | float] | None = None
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    seed: int = 0
    concurrency: int = Field(default=16, ge=1, le=4096)
    executor: Literal["auto", "thread", "process"] = "auto"
    store: Path | None = None
    calibration_share: float = Field(default=0.5, gt=0.0, lt=1.0)
    worst_cases: int = Field(default=5, ge=0, le=100)
    worst_case_seconds: float = Field(default=20.0, gt=0.0)
    costs: dict[Literal["answer", "clarify", "escalate"], tuple[float, float]] | None = None
    name: str | None = None

    @field_validator("system", "policy")
    @classmethod
    def _spec(cls, value: str | None) -> str | None:
        return _check_spec(value)

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _check_spec(value)
        if isinstance(value, dict):
            from failpath.check.severity import severity_weights

            try:
                severity_weights(value, "the")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("suites")
    @classmethod
    def _suites(cls, suites: tuple[str, ...]) -> tuple[str, ...]:
        if "clean" in suites:
            raise ValueError("the clean pass always runs last; do not list 'clean' among the suites")
        if len(set(suites)) != len(suites):
            raise ValueError("a suite is listed twice")
        return suites

    @field_validator("faults")
    @classmethod
    def _faults(cls, faults: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if faults is not None and not faults:
            raise ValueError("faults is empty; name at least one fault (e.g. \"timeout\"), or leave the key out")
        if faults is not None and len(set(faults)) != len(faults):
            raise ValueError("a fault is listed twice")
        return faults


class LoadedConfig:
    """A validated configuration with where it came from, so later errors can name the line."""

    def __init__(self, config: CheckConfig, path: Path, lines: Mapping[tuple[str, ...], int]):
        self.config = config
        self.path = path
        self.lines = dict(lines)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file are resolved against."""
        return self.path.parent

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """The line of the key at ``loc`` (or of its nearest enclosing key), if found."""
        return _line_of(self.lines, loc)

    def error(self, loc: tuple[Any, ...], value: Any, message: str) -> ConfigError:
        """A ``ConfigError`` naming this file, the line of ``loc``, the key and the value."""
        return ConfigError(_format(self.path, self.line_of(loc), loc, value, message))

    def resolve(self, path: Path) -> Path:
        """``path`` relative to the config file's folder (absolute paths unchanged)."""
        return path if path.is_absolute() else (self.base_dir / path)


def _format(path: Path, line: int | None, loc: tuple[Any, ...], value: Any, message: str) -> str:
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(str(p) for p in loc) or "(top level)"
    shown = "" if value is _MISSING else f" = {value!r}"
    return f"{where}: {key}{shown}: {message}"


_MISSING = object()


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate the check configuration at ``path``; raises ``ConfigError`` naming file, line and key."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found; pass the path of your failpath.toml")
    try:
        text = file.read_text(encoding="utf-8-sig")  # a byte-order mark is not TOML
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    lines = key_lines(text)
    try:
        config = CheckConfig.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: _line_of(lines, tuple(e["loc"])) or 10**9)
        first = errors[0]
        loc = tuple(p for p in first["loc"] if p != "[key]")
        value = _value_at(data, loc)
        message = first["msg"]
        if first["type"] == "missing":
            message = "is required but missing"
        elif first["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        raise ConfigError(_format(file, _line_of(lines, loc), loc, value, message)) from None
    return LoadedConfig(config, file, lines)


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    node = data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return _MISSING
    return node


def _line_of(lines: Mapping[tuple[str, ...], int], loc: tuple[Any, ...]) -> int | None:
    parts = tuple(str(p) for p in loc)
    for end in range(len(parts), 0, -1):
        if parts[:end] in lines:
            return lines[parts[:end]]
    return None


# --------------------------------------------------------------------------- from the file to fp.check


def check_kwargs(loaded: LoadedConfig) -> dict[str, Any]:
    """The keyword arguments of ``fp.check`` for a loaded configuration.

    Imports the system and the policy (each named module from the config file's folder, else the
    working directory; both folders go at the end of ``sys.path`` for the project's other modules, so a
    ``scipy.py`` beside failpath.toml shadows no library) and reads the dataset, so every mistake surfaces here, before
    any model call, as a ``ConfigError`` naming the key and line (or a ``DatasetError`` naming the
    dataset file and line).
    """
    import sys

    from failpath.check.datasets import load_cases
    from failpath.check.judges import get_judge

    c = loaded.config
    folders = (str(loaded.base_dir.resolve()), str(Path.cwd()))
    for folder in folders:  # last: a scipy.py beside failpath.toml must not shadow scipy
        if folder not in sys.path:
            sys.path.append(folder)
    _import_system_and_policy(loaded, folders)
    try:
        judge = get_judge(c.judge.name, **c.judge.options)
    except ConfigError as exc:
        raise loaded.error(("judge", "name"), c.judge.name, str(exc)) from None
    from failpath.check.suite_specs import chaos_suites

    suites = chaos_suites(loaded, folders)
    d = c.dataset
    cases = load_cases(
        [loaded.resolve(file) for file in d.files],
        format=d.format,
        id=d.id,
        input=d.input,
        expected=d.expected,
        tags=d.tags,
        json_columns=d.json_columns,
        tags_separator=d.tags_separator,
    )
    if d.limit is not None:
        cases = cases[: d.limit]
    kwargs: dict[str, Any] = {
        "system": c.system,
        "cases": cases,
        "policy": c.policy,
        "judge": judge,
        "suites": suites,
        "seed": c.seed,
        "concurrency": c.concurrency,
        "executor": c.executor,
        "silent_failure_budget": c.budgets.silent_failure,
        "mix": c.budgets.mix,
        "false_alarm_budget": c.budgets.false_alarm,
        "coverage_floor": c.budgets.coverage_floor,
        "delta": c.budgets.delta,
        "accepted": dict(c.budgets.accepted),
        "waive": dict(c.waive),
        "severe_silent_failure_budget": c.budgets.severe_silent_failure,
        "severity": _severity_function(loaded, folders) if isinstance(c.severity, str) else c.severity,
        "calibration_share": c.calibration_share,
        "worst_cases": c.worst_cases,
        "worst_case_seconds": c.worst_case_seconds,
        "name": c.name,
        "max_input_bytes": d.max_input_bytes,
    }
    if c.costs is not None:
        if "answer" not in c.costs or "escalate" not in c.costs:
            raise loaded.error(("costs",), dict(c.costs), "give at least answer and escalate as [cost if right, cost if wrong]")
        kwargs["costs"] = dict(c.costs)
    if c.store is not None:
        kwargs["store"] = loaded.resolve(c.store)
    kwargs.update(_detector_kwargs(loaded))
    return kwargs


def _detector_kwargs(loaded: LoadedConfig) -> dict[str, Any]:
    """``save_detector`` and ``shifted`` from ``[detector]``; the shifted files are read now (``ConfigError`` names the key)."""
    from failpath.check.fitting import read_inputs

    d = loaded.config.detector
    kwargs: dict[str, Any] = {}
    if d.save is not None:
        kwargs["save_detector"] = loaded.resolve(d.save)
    if d.shifted is not None:
        files = (d.shifted,) if isinstance(d.shifted, Path) else d.shifted
        key = d.shifted_input or loaded.config.dataset.input
        sources: dict[str, tuple[Any, ...]] = {}
        for file in files:
            try:
                inputs = read_inputs(loaded.resolve(file), key)
            except ConfigError as exc:
                raise loaded.error(("detector", "shifted"), str(file), str(exc)) from None
            if not inputs:
                raise loaded.error(("detector", "shifted"), str(file), "the file holds no input")
            sources[file.stem] = inputs
        kwargs["shifted"] = sources
    return kwargs


def _severity_function(loaded: LoadedConfig, folders: tuple[str, ...]) -> Any:
    """The ``severity = "module:attr"`` function, imported now so a mistake names the key and line."""
    from failpath.check.judges import _import_attr

    spec = loaded.config.severity
    try:
        fn = _import_attr(str(spec), "severity", folders)
    except ConfigError as exc:
        raise loaded.error(("severity",), spec, str(exc).removeprefix(f"severity {spec!r}: ")) from exc
    if not callable(fn):
        raise loaded.error(("severity",), spec, f"is a {type(fn).__name__}, not a function severity(case, output)")
    return fn


def _import_system_and_policy(loaded: LoadedConfig, folders: tuple[str, ...]) -> None:
    """Import the configured system and policy now, so a mistake in either is a ``ConfigError`` naming the key."""
    from failpath.check.judges import _import_attr

    c = loaded.config
    for key in ("system", "policy"):
        spec = getattr(c, key)
        if spec is None:
            continue
        try:
            obj = _import_attr(spec, key, folders)
        except ConfigError as exc:
            raise loaded.error((key,), spec, str(exc).removeprefix(f"{key} {spec!r}: ")) from exc
        if key == "system" and not callable(obj):
            raise loaded.error((key,), spec, f"is a {type(obj).__name__}, not a callable input -> output")
        if key == "policy" and not callable(getattr(obj, "wrap", None)):
            raise loaded.error((key,), spec, f"is a {type(obj).__name__}, not a failpath.Policy")

