"""Sweep files: a TOML schema (pydantic) and its resolution into typed parameters.

A sweep file names a base scenario, the parameters to vary (dotted scenario keys), a design,
replicates, a root seed and the summary metrics. Example (see ``scenarios/sweeps/``)::

    name = "spheroid-immune"
    scenario = "../spheroid.toml"        # relative to this file
    design = "grid"                      # grid | list | lhs | sobol | salib-sobol | morris
    replicates = 2
    seed = 2024
    duration = "2 h"                     # optional: overrides the scenario duration
    metrics = ["final_cells", "tumor_auc", "tcell_infiltration", "kills"]

    [fixed]                              # overrides applied to every run
    "output.interval" = "30 min"

    [parameters."cell_types.tumor.cycle.ki67_positive_duration"]
    low = "600 min"
    high = "1200 min"
    num = 3                              # grid points (grid design only)
    scale = "linear"                     # or "log"

    [parameters."cell_types.cd8.params.kill_rate"]
    values = ["0.01 1/min", "0.05 1/min"]

Values carry units exactly as in scenarios (``"0.002 1/min"``); all values of a parameter are
converted to the unit of its first value (``low`` or ``values[0]``), which is the unit of its
column in the summary table. Plain numbers are dimensionless.

:func:`load_sweep` validates everything before anything is written: the schema (unknown keys,
unknown design), the units, and each parameter against the base scenario (the key must exist in
the resolved scenario, its unit must fit, and the scenario must validate at the parameter's
extreme values). Every mistake is a one-line :class:`~tme_sim.errors.ConfigError` naming the
sweep file and the key.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pint
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tme_sim.config import load_scenario
from tme_sim.errors import ConfigError
from tme_sim.paths import confined_path
from tme_sim.units import parse_duration, ureg

DESIGNS = ("grid", "list", "lhs", "sobol", "salib-sobol", "morris")
#: designs whose points are drawn from the unit hypercube (``samples`` required)
SAMPLED_DESIGNS = ("lhs", "sobol", "salib-sobol", "morris")
DEFAULT_METRICS = ("final_cells", "tumor_auc", "tcell_infiltration", "kills")

Scalar = str | int | float | bool

# ---------------------------------------------------------------------------------------------
# schema (what the TOML may contain)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterSpec(_Strict):
    """One swept parameter: either ``values`` or a ``low``/``high`` range."""

    values: list[str | int | float] | None = Field(None, min_length=1)
    low: str | int | float | None = None
    high: str | int | float | None = None
    num: int | None = Field(None, ge=1, description="grid points of a range (grid design)")
    scale: Literal["linear", "log"] = "linear"
    integer: bool = False


class DesignOptions(_Strict):
    """Options of the sampled designs."""

    scramble: bool = True  # sobol, salib-sobol
    calc_second_order: bool = True  # salib-sobol
    num_levels: int = Field(4, ge=2)  # morris
    optimal_trajectories: int | None = Field(None, ge=2)  # morris


class MetricOptions(_Strict):
    """Which cell types the metrics treat as tumor and as T cells.

    ``None`` means: every type whose ``rules`` is ``"tumor"`` (resp. ``"cd8_t_cell"``) in the
    scenario, or the type literally named ``tumor`` (resp. ``tcell``/``cd8``) otherwise.
    """

    tumor_types: list[str] | None = None
    tcell_types: list[str] | None = None


class SweepFile(_Strict):
    """The whole sweep file."""

    name: str | None = None
    scenario: str
    design: Literal["grid", "list", "lhs", "sobol", "salib-sobol", "morris"]
    parameters: dict[str, ParameterSpec] = {}
    points: list[dict[str, str | int | float]] = []
    samples: int | None = Field(None, ge=1)
    replicates: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)
    common_seeds: bool = False
    duration: str | None = None
    fixed: dict[str, Any] = {}
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    metric_options: MetricOptions = MetricOptions()
    options: DesignOptions = DesignOptions()


#: most runs (design points x replicates) a sweep may plan: a bigger plan is refused before the
#: design is built (a typo such as samples = 1e9 would otherwise allocate for minutes)
MAX_RUNS = 1_000_000


def _check_plan_size(doc: SweepFile, params: tuple, points: tuple, path: Path) -> None:
    """Refuse a sweep whose number of runs exceeds :data:`MAX_RUNS`, counted without building it."""
    d = max(len(params), 1)
    if doc.design == "grid":
        n = 1
        for prm in params:
            n *= len(prm.values) if prm.values is not None else int(prm.num or 1)
    elif doc.design == "list":
        n = len(points)
    elif doc.design == "salib-sobol":
        n = int(doc.samples or 0) * (2 * d + 2)
    elif doc.design == "morris":
        n = int(doc.samples or 0) * (d + 1)
    else:
        n = int(doc.samples or 0)
    total = n * int(doc.replicates)
    if total > MAX_RUNS:
        raise ConfigError(
            f"{path}: the sweep plans {total:,} runs ({n:,} points x {doc.replicates:,} replicates), more than "
            f"{MAX_RUNS:,}; reduce samples, grid points or replicates"
        )


# ---------------------------------------------------------------------------------------------
# resolved form


@dataclass(frozen=True)
class Parameter:
    """A swept parameter with its values as floats in ``unit`` (``""`` = dimensionless)."""

    key: str
    unit: str
    low: float | None = None
    high: float | None = None
    values: tuple[float, ...] | None = None
    num: int | None = None
    scale: str = "linear"
    integer: bool = False

    def grid_values(self) -> np.ndarray:
        """The grid levels: ``values`` or ``num`` points from ``low`` to ``high`` (float64)."""
        if self.values is not None:
            return np.asarray(self.values, dtype=np.float64)
        assert self.low is not None and self.high is not None and self.num is not None
        if self.num == 1:
            out = np.array([self.low], dtype=np.float64)
        elif self.scale == "log":
            out = np.geomspace(self.low, self.high, self.num)
        else:
            out = np.linspace(self.low, self.high, self.num)
        return np.round(out) if self.integer else out

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map samples ``u`` in [0, 1] to parameter values (float64, same shape).

        Ranges map linearly (or log-linearly); a ``values`` list maps to equal-width bins.
        """
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.values is not None:
            vals = np.asarray(self.values, dtype=np.float64)
            idx = np.minimum((u * len(vals)).astype(np.int64), len(vals) - 1)
            return vals[idx]
        assert self.low is not None and self.high is not None
        if self.scale == "log":
            out = np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        else:
            out = self.low + u * (self.high - self.low)
        return np.round(out) if self.integer else out

    def extremes(self) -> list[float]:
        """The values a scenario check should try (range ends, or every listed value)."""
        if self.values is not None:
            return sorted(set(self.values))
        assert self.low is not None and self.high is not None
        return [self.low, self.high]

    def override(self, value: float) -> str | int | float:
        """The scenario override for ``value``: ``"0.002 1/min"``, an int, or a float."""
        if self.integer:
            v: int | float = round(float(value))
        else:
            v = float(value)
        if self.unit:
            return f"{v:.12g} {self.unit}" if isinstance(v, float) else f"{v} {self.unit}"
        return v

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "unit": self.unit,
            "low": self.low,
            "high": self.high,
            "values": list(self.values) if self.values is not None else None,
            "num": self.num,
            "scale": self.scale,
            "integer": self.integer,
        }


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the file's settings with paths resolved and units parsed."""

    path: Path
    text: str
    name: str
    scenario: Path
    design: str
    parameters: tuple[Parameter, ...]
    points: tuple[tuple[float, ...], ...]  # design "list": one row per point, in parameter order
    samples: int | None
    replicates: int
    seed: int
    common_seeds: bool
    duration: str | None
    fixed: dict[str, Any]
    metrics: tuple[str, ...]
    metric_options: MetricOptions
    options: DesignOptions
    scenario_types: dict[str, str] = field(default_factory=dict)  # cell type -> rules

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.parameters)

    def base_overrides(self) -> dict[str, Any]:
        """Overrides shared by every run (``fixed`` plus ``duration``)."""
        out = dict(self.fixed)
        if self.duration is not None:
            out["duration"] = self.duration
        return out

    def scenario_sha256(self) -> str:
        return hashlib.sha256(self.scenario.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# parsing helpers

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _quantity(value: str | int | float, where: str) -> tuple[float, str, pint.Quantity | None]:
    """``"0.002 1/min"`` → ``(0.002, "1/min", Quantity)``; a number → ``(x, "", None)``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number or a quantity string, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: value must be finite")
        return float(value), "", None
    m = _NUMBER.match(value)
    if m is None:
        raise ConfigError(f"{where}: cannot read {value!r} as '<number> <unit>', e.g. \"0.002 1/min\"")
    number, unit = float(m.group(1)), m.group(2)
    if not unit:
        return number, "", None
    try:
        q = ureg.Quantity(number, ureg.parse_units(unit))
    except Exception:
        raise ConfigError(f"{where}: unknown unit {unit!r} in {value!r}") from None
    return number, unit, q


def _convert(value: str | int | float, unit: str, ref: pint.Quantity | None, where: str) -> float:
    """Convert ``value`` to ``unit`` (the unit of the parameter's first value)."""
    number, vunit, q = _quantity(value, where)
    if not unit:
        if vunit:
            raise ConfigError(f"{where}: {value!r} has a unit but the first value of this parameter has none")
        return number
    if q is None:
        raise ConfigError(f"{where}: missing unit in {value!r}: expected something convertible to {unit}")
    try:
        return float(q.to(ref.units).magnitude)  # type: ignore[union-attr]
    except pint.DimensionalityError:
        raise ConfigError(f"{where}: wrong unit in {value!r}: expected something convertible to {unit}") from None


def _format_validation_error(exc: ValidationError, source: Path) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "missing required key"
    elif err["type"] == "literal_error" and err["loc"] and err["loc"][0] == "design":
        msg = f"unknown design {err.get('input')!r} (choose from {', '.join(DESIGNS)})"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{more}" if loc else f"{source}: {msg}{more}"


def _resolve_parameter(key: str, spec: ParameterSpec, design: str, source: Path) -> Parameter:
    where = f"{source}: parameters.{key}"
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{where}: not a dotted scenario key")
    if spec.values is not None:
        if spec.low is not None or spec.high is not None:
            raise ConfigError(f"{where}: give either 'values' or 'low'/'high', not both")
        v0, unit, ref = _quantity(spec.values[0], f"{where}.values[0]")
        vals = [v0] + [_convert(v, unit, ref, f"{where}.values[{i}]") for i, v in enumerate(spec.values) if i]
        if spec.integer:
            vals = [float(round(v)) for v in vals]
        if len(set(vals)) != len(vals):
            raise ConfigError(f"{where}.values: duplicate values")
        return Parameter(key, unit, values=tuple(vals), scale=spec.scale, integer=spec.integer)
    if spec.low is None or spec.high is None:
        raise ConfigError(f"{where}: give 'values' or both 'low' and 'high'")
    low, unit, ref = _quantity(spec.low, f"{where}.low")
    high = _convert(spec.high, unit, ref, f"{where}.high")
    if not high > low:
        raise ConfigError(f"{where}: 'high' must be greater than 'low'")
    if spec.scale == "log" and low <= 0:
        raise ConfigError(f"{where}: a log scale needs 'low' > 0")
    if design == "grid" and spec.num is None:
        raise ConfigError(f"{where}.num: a range in a grid design needs 'num' (number of grid points)")
    return Parameter(key, unit, low=low, high=high, num=spec.num, scale=spec.scale, integer=spec.integer)


def _resolve_points(doc: SweepFile, source: Path) -> tuple[tuple[Parameter, ...], tuple[tuple[float, ...], ...]]:
    if doc.parameters:
        raise ConfigError(f"{source}: parameters: a 'list' design takes its values from [[points]] only")
    if not doc.points:
        raise ConfigError(f"{source}: points: a 'list' design needs at least one [[points]] table")
    keys = list(doc.points[0])
    if not keys:
        raise ConfigError(f"{source}: points[0]: empty point")
    units: dict[str, tuple[str, pint.Quantity | None]] = {}
    for key in keys:
        _, unit, ref = _quantity(doc.points[0][key], f"{source}: points[0].{key}")
        units[key] = (unit, ref)
    rows = []
    for i, pt in enumerate(doc.points):
        if set(pt) != set(keys):
            extra = sorted(set(pt) ^ set(keys))
            raise ConfigError(f"{source}: points[{i}].{extra[0]}: every point must set the same keys")
        rows.append(tuple(_convert(pt[k], *units[k], f"{source}: points[{i}].{k}") for k in keys))
    params = []
    for j, key in enumerate(keys):
        vals = tuple(sorted({r[j] for r in rows}))
        params.append(Parameter(key, units[key][0], values=vals))
    return tuple(params), tuple(rows)


# ---------------------------------------------------------------------------------------------
# checks against the base scenario

ScenarioLoader = Callable[[Path, Mapping[str, Any]], Any]


def _default_loader(path: Path, overrides: Mapping[str, Any]) -> Any:
    return load_scenario(path, dict(overrides))


def _lookup(doc: Any, key: str) -> tuple[bool, Any]:
    node = doc
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _check_unit_fits(param: Parameter, current: Any, where: str) -> None:
    """The parameter's unit must have the dimension of the scenario's current value."""
    if isinstance(current, bool) or current is None or isinstance(current, dict | list):
        return
    if isinstance(current, int | float):
        if param.unit:
            raise ConfigError(f"{where}: the scenario value is a plain number ({current}), not in {param.unit!r}")
        return
    if isinstance(current, str):
        m = _NUMBER.match(current)
        if m is None or not m.group(2):
            if m is not None and param.unit:
                raise ConfigError(
                    f"{where}: the scenario value {current!r} has no unit but the sweep gives {param.unit!r}"
                )
            return
        try:
            cur = ureg.parse_units(m.group(2))
        except Exception:
            return
        if not param.unit:
            raise ConfigError(f"{where}: missing unit: the scenario value is {current!r}")
        if ureg.parse_units(param.unit).dimensionality != cur.dimensionality:
            raise ConfigError(f"{where}: wrong unit {param.unit!r}: the scenario value is {current!r}")


def _scenario_doc(scenario: Any) -> Any:
    if hasattr(scenario, "model_dump"):
        return scenario.model_dump(mode="json")
    return scenario


def check_against_scenario(sweep: Sweep, loader: ScenarioLoader | None = None) -> dict[str, str]:
    """Validate ``sweep`` against its base scenario; return ``{cell type: rules}``.

    Loads the scenario with the fixed overrides, then once per parameter extreme value (so a
    failure names the parameter). ``loader(path, overrides)`` defaults to
    :func:`tme_sim.config.load_scenario`.
    """
    load = loader or _default_loader
    src = sweep.path

    def attempt(overrides: Mapping[str, Any], where: str) -> Any:
        try:
            return load(sweep.scenario, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{src}: {where}: {exc}") from None

    attempt({}, "scenario")
    for key, value in sweep.fixed.items():
        attempt({key: value}, f"fixed.{key}")
    base = attempt(sweep.base_overrides(), "fixed")
    doc = _scenario_doc(base)
    for p in sweep.parameters:
        where = f"parameters.{p.key}" if sweep.design != "list" else f"points.{p.key}"
        found, current = _lookup(doc, p.key)
        if not found:
            raise ConfigError(f"{src}: {where}: not a key of scenario {sweep.scenario.name}")
        _check_unit_fits(p, current, f"{src}: {where}")
        for v in p.extremes():
            attempt({**sweep.base_overrides(), p.key: p.override(v)}, where)
    types: dict[str, str] = {}
    cts = doc.get("cell_types", {}) if isinstance(doc, Mapping) else {}
    for name, ct in cts.items():
        types[name] = ct.get("rules", "generic") if isinstance(ct, Mapping) else "generic"
    return types


# ---------------------------------------------------------------------------------------------
# entry point


def load_sweep(
    path: str | Path,
    *,
    scenario_loader: ScenarioLoader | None = None,
    check_scenario: bool = True,
    known_metrics: Sequence[str] | None = None,
) -> Sweep:
    """Read and validate a sweep file (nothing is written).

    ``scenario_loader(path, overrides)`` validates scenario overrides (default: the project's
    :func:`tme_sim.config.load_scenario`); ``check_scenario=False`` skips the scenario checks
    (tests of the design logic only).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep file") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise ConfigError(f"{path}: not a UTF-8 TOML file") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    try:
        doc = SweepFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, path)) from None

    scenario = confined_path(doc.scenario, path.parent, f"{path}: scenario")
    if not scenario.is_file():
        raise ConfigError(f"{path}: scenario: no such scenario file {scenario}")

    if doc.design == "list":
        params, points = _resolve_points(doc, path)
    else:
        if doc.points:
            raise ConfigError(f'{path}: points: [[points]] is only for design = "list"')
        if not doc.parameters:
            raise ConfigError(f"{path}: parameters: no parameters to vary")
        params = tuple(_resolve_parameter(k, s, doc.design, path) for k, s in doc.parameters.items())
        points = ()

    if doc.design in SAMPLED_DESIGNS:
        if doc.samples is None:
            raise ConfigError(f"{path}: samples: design {doc.design!r} needs 'samples'")
        if doc.design in ("sobol", "salib-sobol") and doc.samples & (doc.samples - 1):
            raise ConfigError(f"{path}: samples: a Sobol design needs a power of two (got {doc.samples})")
        if doc.design == "salib-sobol" and len(params) < 2:
            raise ConfigError(f"{path}: parameters: Sobol indices need at least two parameters")
        if doc.design == "morris" and doc.options.optimal_trajectories is not None:
            if doc.options.optimal_trajectories >= doc.samples:
                raise ConfigError(f"{path}: options.optimal_trajectories: must be smaller than 'samples'")
    elif doc.samples is not None:
        raise ConfigError(f"{path}: samples: only for designs {', '.join(SAMPLED_DESIGNS)}")

    if doc.duration is not None:
        try:
            if parse_duration(doc.duration) <= 0:
                raise ValueError("must be > 0")
        except ValueError as exc:
            raise ConfigError(f"{path}: duration: {exc}") from None

    if known_metrics is None:
        from tme_sim.sweep.metrics import METRICS

        known_metrics = tuple(METRICS)
    for i, m in enumerate(doc.metrics):
        if m not in known_metrics:
            raise ConfigError(f"{path}: metrics[{i}]: unknown metric {m!r} (choose from {', '.join(known_metrics)})")
    if len(set(doc.metrics)) != len(doc.metrics):
        raise ConfigError(f"{path}: metrics: duplicate metric names")
    overlap = set(doc.fixed) & {p.key for p in params}
    if overlap:
        raise ConfigError(f"{path}: fixed.{sorted(overlap)[0]}: also a swept parameter")

    _check_plan_size(doc, params, points, path)
    sweep = Sweep(
        path=path.resolve(),
        text=text,
        name=doc.name or path.stem,
        scenario=scenario,
        design=doc.design,
        parameters=params,
        points=points,
        samples=doc.samples,
        replicates=doc.replicates,
        seed=doc.seed,
        common_seeds=doc.common_seeds,
        duration=doc.duration,
        fixed=dict(doc.fixed),
        metrics=tuple(doc.metrics),
        metric_options=doc.metric_options,
        options=doc.options,
    )
    if check_scenario:
        types = check_against_scenario(sweep, scenario_loader)
        object.__setattr__(sweep, "scenario_types", types)
        for opt in ("tumor_types", "tcell_types"):
            for t in getattr(doc.metric_options, opt) or []:
                if t not in types:
                    raise ConfigError(f"{path}: metric_options.{opt}: no cell type {t!r} in the scenario")
    return sweep
