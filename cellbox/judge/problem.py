"""Problem packages: the format Kattis, DOMjudge and the ICPC use, read as problemtools reads
it (the legacy version and 2023-07).

    problem.yaml                  name, type / validation, limits, validator_flags
    .timelimit                    a fixed time limit in seconds (DOMjudge)
    data/sample/*.in, *.ans       test cases; data/secret likewise, with nested groups
    data/**/testdata.yaml         a group's settings, inherited by its subgroups
    output_validators/NAME/...    (legacy) or output_validator/ (2023-07): a custom validator
    submissions/FOLDER/...        programs whose folder states their expected verdict

Test cases and groups are taken in lexicographic order of their names, at each level; a test
case is a ``NAME.in`` with its ``NAME.ans``. ``docs/problems.md`` describes what is read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from cellbox.errors import UsageError

MIB = 1 << 20
LEGACY, V2023 = "legacy", "2023-07"
GROUP_DEFAULTS: dict[str, Any] = {
    "on_reject": "break", "grading": "default", "grader_flags": "", "accept_score": 1.0,
    "reject_score": 0.0, "range": "-inf +inf", "output_validator_flags": "",
    "input_validator_flags": "",
}


@dataclass(frozen=True)
class ProblemLimits:
    """problem.yaml's ``limits`` (sizes in bytes, times in seconds). ``time_limit`` None: it
    is derived from the accepted submissions, ``ac_to_time_limit`` times the slowest one,
    rounded up to ``time_resolution``; ``time_limit_to_tle`` is the safety margin."""

    time_limit: float | None = None
    ac_to_time_limit: float = 2.0
    time_limit_to_tle: float = 1.5
    time_resolution: float = 1.0
    memory: int = 1024 * MIB
    output: int = 8 * MIB
    code: int = 128 << 10
    compilation_time: float = 60.0
    compilation_memory: int = 1024 * MIB
    validation_time: float = 60.0
    validation_memory: int = 1024 * MIB
    validation_output: int = 8 * MIB
    validation_passes: int = 2

    def derived_time_limit(self, slowest_ac: float) -> float:
        exact = slowest_ac * self.ac_to_time_limit
        return max(1, math.ceil(exact / self.time_resolution - 1e-9)) * self.time_resolution


@dataclass(frozen=True)
class ProblemTest:
    name: str  # its path under data/, without the extension: "secret/group1/01"
    input: str  # host paths
    answer: str
    flags: tuple[str, ...]  # output validator flags (the problem's, then its group's)
    sample: bool


@dataclass
class TestGroup:
    name: str  # its path under the package: "data", "data/secret", "data/secret/g1"
    config: dict[str, Any]
    items: list[TestGroup | ProblemTest] = field(default_factory=list)

    def tests(self) -> list[ProblemTest]:
        return [t for item in self.items
                for t in (item.tests() if isinstance(item, TestGroup) else [item])]

    def score_range(self) -> tuple[float, float]:
        low, high = str(self.config["range"]).split()
        return float(low), float(high)


@dataclass(frozen=True)
class Problem:
    path: str
    name: str
    format: str  # LEGACY or V2023
    scoring: bool
    interactive: bool
    multi_pass: bool
    validator: str | None  # the custom output validator's directory or file; None: default
    limits: ProblemLimits
    data: TestGroup
    custom_score: bool = False  # the validator may (legacy "custom score": must) give a score

    def tests(self) -> list[ProblemTest]:
        return self.data.tests()


def _yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"Cannot read {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path} must be a YAML mapping (key: value lines)")
    return data


def _number(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UsageError(f"{where}: {key} must be a positive number, not {value!r}")
    return float(value)


def _limits(path: str, meta: dict[str, Any], fmt: str) -> ProblemLimits:
    where = os.path.join(path, "problem.yaml")
    raw = meta.get("limits") or {}
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: limits must be a mapping")
    values: dict[str, Any] = {}
    if fmt == LEGACY:  # the legacy names and defaults
        values["ac_to_time_limit"] = _number(where, "time_multiplier",
                                             raw.get("time_multiplier", 5.0))
        values["time_limit_to_tle"] = _number(where, "time_safety_margin",
                                              raw.get("time_safety_margin", 2.0))
    else:
        mult = raw.get("time_multipliers") or {}
        values["ac_to_time_limit"] = _number(where, "ac_to_time_limit",
                                             mult.get("ac_to_time_limit", 2.0))
        values["time_limit_to_tle"] = _number(where, "time_limit_to_tle",
                                              mult.get("time_limit_to_tle", 1.5))
        for key in ("time_limit", "time_resolution"):
            if key in raw:
                values[key] = _number(where, key, raw[key])
        if "validation_passes" in raw:
            values["validation_passes"] = int(_number(where, "validation_passes",
                                                      raw["validation_passes"]))
    for key in ("memory", "output", "compilation_memory", "validation_memory",
                "validation_output"):
        if key in raw:
            values[key] = int(_number(where, key, raw[key]) * MIB)  # MiB in the file
    if "code" in raw:
        values["code"] = int(_number(where, "code", raw["code"]) * 1024)  # KiB
    for key in ("compilation_time", "validation_time"):
        if key in raw:
            values[key] = _number(where, key, raw[key])
    if "time_limit" not in values:
        values["time_limit"] = _timelimit_file(path)
    return ProblemLimits(**values)


def _timelimit_file(path: str) -> float | None:
    """DOMjudge's ``.timelimit`` (also read in a 2023-07 package without limits.time_limit)."""
    try:
        with open(os.path.join(path, ".timelimit"), encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    try:
        return _number(os.path.join(path, ".timelimit"), "the time limit", float(text))
    except ValueError:
        raise UsageError(f"{path}/.timelimit must hold a number of seconds, not "
                         f"{text!r}") from None


def _types(meta: dict[str, Any], fmt: str, where: str) -> tuple[set[str], list[str], bool]:
    """(problem types, legacy validator flags, custom validation) from problem.yaml."""
    if fmt == LEGACY:
        kind = meta.get("type", "pass-fail")
        if kind not in ("pass-fail", "scoring"):
            raise UsageError(f"{where}: problem type {kind!r} is not supported; cellbox "
                             "judges pass-fail and scoring problems (interactive and "
                             "multi-pass through validation)")
        validation = str(meta.get("validation", "default")).split()
        if not validation or validation[0] not in ("default", "custom"):
            raise UsageError(f"{where}: validation must be 'default' or 'custom [interactive] "
                             f"[score] [multi-pass]', not {meta.get('validation')!r}")
        types = {kind} | ({"interactive"} if "interactive" in validation else set())
        types |= {"multi-pass"} if "multi-pass" in validation else set()
        types |= {"custom-score"} if "score" in validation else set()
        flags = str(meta.get("validator_flags") or "").split()
        return types, flags, validation[0] == "custom"
    kind = meta.get("type", "pass-fail")
    types = set(kind.split() if isinstance(kind, str) else kind)
    unknown = types - {"pass-fail", "scoring", "interactive", "multi-pass", "submit-answer"}
    if unknown or "submit-answer" in types:
        raise UsageError(f"{where}: problem type {sorted(types)} is not supported; cellbox "
                         "judges pass-fail, scoring, interactive and multi-pass problems")
    return types, [], False


def load_problem(path: str) -> Problem:
    """Read a package (its tests' contents are read only when judged)."""
    where = os.path.join(path, "problem.yaml")
    if not os.path.isfile(where):
        raise UsageError(f"{path!r} is not a problem package: it has no problem.yaml")
    meta = _yaml(where)
    version = str(meta.get("problem_format_version", LEGACY))
    if version not in (LEGACY, "2023-07", "2023-07-draft"):
        raise UsageError(f"{where}: problem_format_version {version!r} is not supported; "
                         "cellbox reads legacy and 2023-07")
    fmt = LEGACY if version == LEGACY else V2023
    types, flags, custom = _types(meta, fmt, where)
    validator = _validator_path(path, fmt)
    if fmt == LEGACY and custom and validator is None:
        raise UsageError(f"{where} asks for a custom validator, but output_validators/ holds "
                         "none")
    if fmt == LEGACY and not custom:
        validator = None  # validation: default, whatever the directory holds
    interactive = "interactive" in types
    if interactive and validator is None:
        raise UsageError(f"{where}: an interactive problem needs a custom output validator")
    name = meta.get("name", os.path.basename(os.path.abspath(path)))
    if isinstance(name, dict):
        name = name.get("en") or next(iter(name.values()), "")
    scoring = "scoring" in types
    grading = meta.get("grading") or {}
    root = _group(path, "data", _root_config(grading, scoring), flags)
    if not root.tests():
        raise UsageError(f"{path}: data/ holds no test case (NAME.in with NAME.ans)")
    return Problem(path=path, name=str(name), format=fmt, scoring=scoring,
                   interactive=interactive, multi_pass="multi-pass" in types,
                   validator=validator, limits=_limits(path, meta, fmt), data=root,
                   custom_score=scoring and (fmt == V2023 or "custom-score" in types))


def _root_config(grading: dict[str, Any], scoring: bool) -> dict[str, Any]:
    """Settings that old packages keep in problem.yaml's grading: (inherited by every group)."""
    config: dict[str, Any] = {k: grading[k] for k in ("accept_score", "reject_score", "range")
                              if k in grading}
    on_reject = grading.get("on_reject")
    if on_reject == "first_error":
        config["on_reject"] = "break"
    elif on_reject == "grade":
        config["on_reject"] = "continue"
    if not scoring:
        config.setdefault("range", "-inf +inf")
    return config


def _validator_path(path: str, fmt: str) -> str | None:
    """The custom output validator: a directory (one program) or a single source file."""
    folder = os.path.join(path, "output_validators" if fmt == LEGACY else "output_validator")
    if not os.path.isdir(folder):
        return None
    if fmt == V2023:
        return folder if os.listdir(folder) else None
    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    if len(entries) > 1:
        raise UsageError(f"{folder} holds {len(entries)} validators ({', '.join(entries)}); "
                         "cellbox runs exactly one")
    return os.path.join(folder, entries[0]) if entries else None


def _group(path: str, rel: str, inherited: dict[str, Any],
           problem_flags: list[str]) -> TestGroup:
    folder = os.path.join(path, rel)
    own = _yaml(os.path.join(folder, "testdata.yaml"))
    config = {**GROUP_DEFAULTS, **inherited, **own}
    if config["grading"] != "default":
        raise UsageError(f"{folder}/testdata.yaml: grading {config['grading']!r} is not "
                         "supported; cellbox grades with the format's default grader")
    group = TestGroup(rel, config)
    flags = tuple(problem_flags) + tuple(str(config["output_validator_flags"] or "").split())
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return group
    sample = rel == "data/sample" or rel.startswith("data/sample/")
    for name in names:
        full = os.path.join(folder, name)
        if os.path.isdir(full):
            group.items.append(_group(path, f"{rel}/{name}", {**inherited, **own},
                                      problem_flags))
        elif name.endswith(".in") and os.path.isfile(full[:-3] + ".ans"):
            test_name = f"{rel}/{name[:-3]}".removeprefix("data/")
            group.items.append(ProblemTest(test_name, full, full[:-3] + ".ans", flags, sample))
    return group
