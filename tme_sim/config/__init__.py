"""Scenario files: TOML validated by pydantic, values with units converted at load time.

A scenario is the one source of truth for a run. :func:`load_scenario` reads the TOML, applies
``--set key=value`` overrides (dotted keys), validates everything (unknown keys, missing or
wrong units are errors that name the key and the file) and returns a :class:`Scenario` whose
numbers are plain floats in the simulator's units (µm, minutes, substrate units).
The resolved scenario (``Scenario.model_dump(mode="json")``) and the original TOML text are
stored in every output file.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from tme_sim.config.drugs import DrugsConfig
from tme_sim.config.rules import BehaviorRule, InteractionsConfig
from tme_sim.config.suggest import suggestion
from tme_sim.errors import ConfigError
from tme_sim.scenarios import resolve
from tme_sim.units import Diffusivity, Fraction, Length, Rate, Speed, Time, quantity, to_unit


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class TimeSteps(Strict):
    """The three clocks (PhysiCell defaults)."""

    diffusion_dt: Time = Field(
        "0.01 min",
        description="diffusion–reaction step; a whole multiple k of mechanics_dt makes the grid step on every"
        " k-th mechanics step",
    )
    mechanics_dt: Time = Field("0.1 min", description="mechanics step")
    phenotype_dt: Time = Field("6 min", description="phenotype step (cycle, death, secretion rates)")
    diffusion_scheme: Literal["lod", "adi", "implicit"] = Field(
        "implicit",
        description="'implicit' (default) = backward Euler on the unsplit operator solved by conjugate"
        " gradients: exact steady state and vessels, stable for any dt, 2D and 3D; 'lod' = BioFVM's locally"
        " one-dimensional splitting (steady state off by O(dt)); 'adi' = Douglas–Rachford ADI, exact steady"
        " state for any dt, 2D only (see tme_sim.grid.Microenvironment)",
    )
    lod_form: Literal["biofvm", "increment"] = Field(
        "biofvm",
        description="with diffusion_scheme 'lod' only: 'biofvm' (default) = BioFVM's step, the 1-D implicit"
        " factors applied to the field (what PhysiCell computes; steady state off by O(dt), tens of per cent"
        " next to vessels at 0.01 min); 'increment' = the same factors applied to the residual of the unsplit"
        " problem plus a half-weighted Jacobi term: exact steady state and vessels for any dt, 1.3-2.6x the"
        " cost (see tme_sim.grid.lod_increment)",
    )

    @model_validator(mode="after")
    def _positive_and_nested(self) -> TimeSteps:
        for key in ("diffusion_dt", "mechanics_dt", "phenotype_dt"):
            if getattr(self, key) <= 0:
                raise ValueError(f"time.{key} must be > 0")

        def whole(a: float, b: float) -> bool:
            return abs(a / b - round(a / b)) <= 1e-6 and round(a / b) >= 1

        if self.diffusion_dt <= self.mechanics_dt:
            if not whole(self.mechanics_dt, self.diffusion_dt):
                raise ValueError("time.mechanics_dt must be a whole multiple of time.diffusion_dt")
        elif not (whole(self.diffusion_dt, self.mechanics_dt) and whole(self.phenotype_dt, self.diffusion_dt)):
            raise ValueError(
                "time.diffusion_dt larger than time.mechanics_dt must be a whole multiple of it and divide"
                " time.phenotype_dt"
            )
        if not whole(self.phenotype_dt, self.mechanics_dt):
            raise ValueError("time.phenotype_dt must be a whole multiple of time.mechanics_dt")
        return self


class Domain(Strict):
    """The simulated box, [0, Lx] × [0, Ly] (× [0, Lz]) µm; two sizes → 2D, three → 3D."""

    size: list[Length] = Field(min_length=2, max_length=3)
    dx: Length = Field("20 um", description="voxel edge of the diffusion grid")
    thickness: Length | None = Field(
        None,
        description="2D only: thickness of the monolayer a 2D run represents (voxel volume dx²·thickness);"
        " default one cell diameter (of the type placed in the largest number), so results do not depend on dx",
    )
    float32_fields: bool = False

    @property
    def dim(self) -> int:
        return len(self.size)


class BoundarySpec(Strict):
    """Boundary of one substrate: Dirichlet values per face (missing faces are zero-flux)."""

    all: float | None = None
    xmin: float | None = None
    xmax: float | None = None
    ymin: float | None = None
    ymax: float | None = None
    zmin: float | None = None
    zmax: float | None = None


class PulseConfig(Strict):
    """Periodic pulses of a substrate in the medium: Dirichlet ``value`` on ``faces`` while on.

    On during [start + k·period, start + k·period + duration) for k = 0, 1, …; off in between
    (faces back to what ``boundary`` says). PhysiBoSS's spheroid-TNF sample pulses TNF this way.
    """

    value: str | float
    period: Time
    duration: Time
    start: Time = "0 min"
    faces: list[Literal["all", "xmin", "xmax", "ymin", "ymax", "zmin", "zmax"]] = ["all"]

    @model_validator(mode="after")
    def _sane(self) -> PulseConfig:
        if self.period <= 0 or self.duration <= 0:
            raise ValueError("pulse period and duration must be > 0")
        if self.duration > self.period:
            raise ValueError("pulse duration must not exceed its period")
        return self


class SubstrateConfig(Strict):
    """A substrate of the run: a registry name with optional overrides, or a new one (a drug).

    Values are in the substrate's unit (the registry's, or ``unit`` here for a new substrate);
    write them as strings with units, e.g. ``initial = "38 mmHg"``.
    """

    unit: str | None = None
    diffusion: Diffusivity | None = None
    decay: Rate | None = None
    initial: str | float | None = None
    boundary: dict[str, str] | Literal["zero-flux"] = "zero-flux"
    pulse: PulseConfig | None = None
    source: str = ""


class CycleConfig(Strict):
    """Ki67-basic cycle (PhysiCell): Ki67− (G0/G1) exits at an O2-dependent rate to Ki67+.

    Ki67+ lasts ``ki67_positive_duration`` and ends in division. Source: PhysiCell 1.x
    ``Ki67_basic`` (Ki67− 4.59 h, Ki67+ 15.5 h); O2 dependence as in PhysiCell's
    ``update_cell_and_death_parameters_O2_based`` (threshold 5 mmHg, saturation 38 mmHg).
    """

    model: Literal["ki67", "none"] = "ki67"
    entry_rate: Rate = Field("0.003631 1/min", description="Ki67− exit rate at O2 saturation (1/4.59 h)")
    ki67_positive_duration: Time = "930 min"
    o2_threshold: quantity("mmHg") = "5 mmHg"
    o2_saturation: quantity("mmHg") = "38 mmHg"
    o2_dependent: bool = True


class DeathConfig(Strict):
    """Apoptosis (background rate) and O2-driven necrosis (PhysiCell defaults)."""

    apoptosis_rate: Rate = Field("5.31667e-05 1/min", description="PhysiCell default background apoptosis")
    apoptosis_duration: Time = Field("516 min", description="PhysiCell apoptotic phase (8.6 h)")
    necrosis_o2_threshold: quantity("mmHg") = "5 mmHg"
    necrosis_o2_critical: quantity("mmHg") = "2.5 mmHg"
    necrosis_max_rate: Rate = Field("0.002778 1/min", description="PhysiCell max necrosis rate, 1/(6 h)")
    necrosis_rate: Rate = Field("0 1/min", description="background necrosis rate (PhysiCell's necrosis death_rate)")
    o2_necrosis: bool = True
    rupture_volume_ratio: float = Field(2.0, gt=1.0, description="necrotic swelling until V ≥ ratio·V0")
    lysed_removal_time: Time = Field("86400 min", description="PhysiCell keeps lysed debris 60 days")


class VolumeConfig(Strict):
    """Cell volume and its relaxation rates (PhysiCell standard volume model, lumped)."""

    radius: Length = Field("8.412710547954228 um", description="PhysiCell default: V = 2494 µm³")
    growth_rate: Rate = Field("0.0045 1/min", description="PhysiCell cytoplasm biomass change 0.27/h")
    apoptotic_shrink_rate: Rate = Field("0.01667 1/min", description="PhysiCell apoptotic cytoplasm 1/60 min")
    necrotic_swell_rate: Rate = Field("0.05 1/min", description="PhysiCell necrotic fluid change 0.05/min")
    lysed_shrink_rate: Rate = Field("0.0000167 1/min", description="lysed debris slowly loses fluid")

    @field_validator("radius")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("radius must be > 0")
        return v


class ChemotaxisConfig(Strict):
    """Chemotaxis up (or down) one substrate's gradient, or, with ``sensitivities``, PhysiCell's
    advanced chemotaxis: the direction is ``normalize(Σ_s w_s g_s)`` over the substrates ``s`` with
    sensitivity ``w_s`` (each gradient ``g_s`` first made unit length when
    ``normalize_each_gradient``). ``bias`` mixes that direction into the random one."""

    substrate: str | None = None
    sensitivities: dict[str, float] | None = Field(
        None,
        description="per substrate, the weight of its gradient (negative: down the gradient); instead of"
        " substrate/direction",
    )
    normalize_each_gradient: bool = False
    bias: Fraction = Field(0.5, ge=0.0, le=1.0)
    direction: Literal["up", "down"] = "up"

    @model_validator(mode="after")
    def _one_form(self) -> ChemotaxisConfig:
        if (self.substrate is None) == (self.sensitivities is None):
            raise ValueError("give either substrate (with direction) or sensitivities, not both or neither")
        if self.sensitivities is not None:
            if "direction" in self.model_fields_set:
                raise ValueError("direction is for one substrate; with sensitivities, a negative weight goes down")
            if not self.sensitivities:
                raise ValueError("sensitivities: give at least one substrate")
            for name, w in self.sensitivities.items():
                if not math.isfinite(w):
                    raise ValueError(f"sensitivities.{name}: must be a finite number, got {w}")
        elif self.normalize_each_gradient:
            raise ValueError("normalize_each_gradient is for sensitivities")
        return self

    def weights(self) -> dict[str, float]:
        """Substrate → sensitivity (one substrate: ±1 by ``direction``)."""
        if self.sensitivities is not None:
            return dict(self.sensitivities)
        return {self.substrate: -1.0 if self.direction == "down" else 1.0}


class MechanicsConfig(Strict):
    """PhysiCell-like potentials and motility (PhysiCell defaults)."""

    repulsion: Speed = "10 um/min"
    adhesion: Speed = "0.4 um/min"
    max_adhesion_distance: float = Field(1.25, ge=1.0, description="relative to the sum of radii")
    speed: Speed = "0 um/min"
    persistence: Time = "5 min"
    chemotaxis: ChemotaxisConfig | None = None


class SecretionConfig(Strict):
    """BioFVM coupling for one substrate (values in the substrate's unit)."""

    secretion_rate: Rate = "0 1/min"
    saturation: str | float = 0.0
    uptake_rate: Rate = "0 1/min"
    net_export: str | float = 0.0


class CellTypeConfig(Strict):
    """One cell type: which rule set drives it, and its parameters."""

    #: the behaviour (a registered ``CellRules.rules_name``: tumor, cd8_t_cell, macrophage, fibroblast,
    #: generic, or one from the scenario's ``plugins``); checked when the model is built
    rules: str = Field(default="generic", min_length=1)
    color: str | None = None
    volume: VolumeConfig = VolumeConfig()
    cycle: CycleConfig = CycleConfig()
    death: DeathConfig = DeathConfig()
    mechanics: MechanicsConfig = MechanicsConfig()
    secretion: dict[str, SecretionConfig] = {}
    params: dict[str, Any] = Field(default_factory=dict, description="rule-specific parameters")
    intracellular: dict[str, Any] | None = None
    #: PhysiCell-grammar signal → behaviour rules, applied after the behaviour above (tme_sim.rules)
    behavior_rules: list[BehaviorRule] = []
    #: base rates of contact interactions and transformations carried out by the rules engine
    interactions: InteractionsConfig = InteractionsConfig()


class Placement(Strict):
    """Initial cells of one type: a filled disc/ball, a rectangle/box, or explicit points.

    A disc/ball is filled at random (``packing = "random"``, overlapping cells, ``count`` or a
    density-based number) or as a confluent tissue (``packing = "lattice"``: a jittered
    close-packed lattice — FCC in 3D, hexagonal in 2D — cut to the radius, or to the shell
    ``inner_radius`` … ``radius``; :mod:`tme_sim.model.packing`). A lattice placement may share
    its sites with other types (``mix``: type → fraction of the sites, drawn at random), so one
    placement builds a tumor with infiltrating immune cells in one vectorised pass (10⁶ cells in
    about a second)."""

    type: str
    shape: Literal["disc", "ball", "box", "points", "random"] = "disc"
    center: list[Length] | None = None
    radius: Length | None = None
    count: int | None = Field(None, ge=0)
    low: list[Length] | None = None
    high: list[Length] | None = None
    points: list[list[Length]] | None = None
    packing: Literal["random", "lattice"] = Field(
        "random", description="disc/ball only: 'random' (uniform, overlapping) or 'lattice' (close-packed)"
    )
    spacing: Length | None = Field(
        None, description="lattice: centre-to-centre distance (default: one diameter of the placement's type)"
    )
    jitter: float = Field(0.1, ge=0.0, le=0.5, description="lattice: random offset per axis, in spacings")
    inner_radius: Length = Field("0 um", description="lattice: leave the ball/disc of this radius empty (a shell)")
    mix: dict[str, Fraction] = Field(
        default_factory=dict, description="lattice: other types → fraction of the sites they take"
    )

    @model_validator(mode="after")
    def _lattice_only(self) -> Placement:
        if self.packing == "lattice":
            if self.shape not in ("disc", "ball"):
                raise ValueError(f"packing 'lattice' needs shape 'disc' or 'ball', not {self.shape!r}")
            if self.count is not None:
                raise ValueError("packing 'lattice': the count follows from radius and spacing; remove count")
            if sum(self.mix.values()) > 1.0:
                raise ValueError("mix: the fractions add up to more than 1")
        elif self.mix or self.spacing is not None or self.inner_radius != 0.0:
            raise ValueError("spacing, inner_radius and mix need packing = 'lattice'")
        return self


class OutputConfig(Strict):
    interval: Time = "60 min"
    path: str | None = None
    fields: bool = True
    cells: bool = True
    checkpoint_interval: Time = Field(
        "6 h", description="checkpoint every so often (simulated time) so `tme run --resume` can continue; 0 = off"
    )
    #: extra observers by registered name → their settings (``[output.observers.population_csv]``)
    observers: dict[str, dict[str, Any]] = {}


class VesselLine(Strict):
    """A straight vessel segment from ``start`` to ``end`` (µm); every voxel it crosses holds a vessel."""

    start: list[Length] = Field(min_length=2, max_length=3)
    end: list[Length] = Field(min_length=2, max_length=3)


class VesselConfig(Strict):
    """Blood vessels (``[vessels]``): Dirichlet voxels of the supplied substrates and the entry points
    of recruited immune cells (and, later, of drugs). See :mod:`tme_sim.vessels`.

    Vessel voxels are the union of ``points`` (the voxel containing each point), ``lines``
    (voxels crossed by each segment) and a random ``density`` (fraction of the voxels, drawn with
    the model's Generator), optionally kept ``exclude_radius`` away from ``exclude_center`` (an
    avascular tumor core; ``"centre"`` or unset: the domain's centre, which follows ``domain.size``
    when a scenario is resized with ``--set``). ``supply`` maps substrate → value held in vessel voxels (plasma level);
    by default oxygen 38 mmHg, glucose 5 mM and lactate 1 mM for those of them the scenario has.

    Vessel regression (co-opted vessels that tumor cells surround regress; Holash et al., Science
    1999): each phenotype step, a vessel voxel whose neighbourhood (itself and the voxels around it:
    3×3 in 2D, 3×3×3 in 3D) holds at least ``regression_min_cells`` live cells of
    ``regression_cell_type`` stops being a vessel with probability ``1 − exp(−regression_rate·dt)``
    (no supply, no recruitment there any more). Off when ``regression_rate`` is 0 (the default).
    Drugs entering through vessels (``[drugs]``) still use the initial vessel voxels.
    """

    points: list[list[Length]] = []
    lines: list[VesselLine] = []
    density: Fraction = Field(0.0, ge=0.0, le=1.0)
    exclude_center: list[Length] | Literal["centre", "center"] | None = None
    exclude_radius: Length = "0 um"
    supply: dict[str, str] | None = None
    regression_rate: Rate = "0 1/min"
    regression_cell_type: str = "tumor"
    regression_min_cells: StrictInt = Field(1, ge=1, le=1000)


class ImmuneConfig(Strict):
    """Scenario-wide immune switches (``[immune]``).

    ``anti_pdl1``: fraction of PD-L1 blocked by an antibody (``true`` = 1): the PD-L1 inhibition of
    T-cell killing and PD-L1-driven exhaustion are multiplied by ``1 − anti_pdl1``.
    ``recruitment``: ``false`` switches off recruitment of every immune type from vessels.
    """

    anti_pdl1: Fraction = Field(0.0, ge=0.0, le=1.0)
    recruitment: bool = True

    @field_validator("anti_pdl1", mode="before")
    @classmethod
    def _bool_to_fraction(cls, v: Any) -> Any:
        return float(v) if isinstance(v, bool) else v


class Scenario(Strict):
    """A whole scenario file."""

    name: str
    description: str = ""
    seed: StrictInt = 0  # not a boolean
    duration: Time = "1 day"
    domain: Domain
    time: TimeSteps = TimeSteps()
    substrates: dict[str, SubstrateConfig]
    cell_types: dict[str, CellTypeConfig]
    initial_cells: list[Placement] = []
    output: OutputConfig = OutputConfig()
    vessels: VesselConfig | None = None
    immune: ImmuneConfig = ImmuneConfig()
    drugs: DrugsConfig | None = None  # [drugs]: library, drugs given, schedules (tme_sim/drugs/dosing.py)
    #: Python files (relative to the scenario's folder) defining extra behaviours, intracellular
    #: kinds or observers (tme_sim.plugins); executed when the scenario is built
    plugins: list[str] = []

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        if "oxygen" not in self.substrates:
            raise ValueError("substrates: 'oxygen' is required (cycle and necrosis depend on it)")
        if self.time.diffusion_scheme == "adi" and len(self.domain.size) != 2:
            raise ValueError("time.diffusion_scheme: 'adi' is for 2D domains (in 3D use 'implicit')")
        if self.time.lod_form != "biofvm" and self.time.diffusion_scheme != "lod":
            raise ValueError("time.lod_form: applies to diffusion_scheme 'lod' only")
        for i, p in enumerate(self.initial_cells):
            if p.type not in self.cell_types:
                raise ValueError(f"initial_cells[{i}].type: unknown cell type {p.type!r}")
            for other in p.mix:
                if other not in self.cell_types:
                    raise ValueError(f"initial_cells[{i}].mix.{other}: unknown cell type")
        for name, ct in self.cell_types.items():
            for sub in ct.secretion:
                if sub not in self.substrates:
                    raise ValueError(f"cell_types.{name}.secretion.{sub}: substrate not in [substrates]")
            chem = ct.mechanics.chemotaxis
            if chem is not None:
                where = "substrate" if chem.sensitivities is None else "sensitivities"
                for sub in chem.weights():
                    if sub not in self.substrates:
                        raise ValueError(f"cell_types.{name}.mechanics.chemotaxis.{where}: {sub!r} not in [substrates]")
        if self.duration <= 0:
            raise ValueError("duration must be > 0")
        ves = self.vessels
        if ves is not None and ves.regression_rate > 0 and ves.regression_cell_type not in self.cell_types:
            raise ValueError(f"vessels.regression_cell_type: unknown cell type {ves.regression_cell_type!r}")
        return self


# ---------------------------------------------------------------------------------------------
# loading


def _set_dotted(doc: dict[str, Any], key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise ConfigError(f"{source}: --set {key}: no list element {part!r}") from None
            continue
        if part not in node or not isinstance(node[part], dict | list):
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        try:
            node[int(last)] = value
        except (ValueError, IndexError):
            raise ConfigError(f"{source}: --set {key}: no list element {last!r}") from None
    else:
        node[last] = value


def parse_override_value(text: Any) -> Any:
    """Interpret an override: a TOML literal (number, bool, array, quoted string) or a bare string."""
    if not isinstance(text, str):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set_options(items: list[str] | None) -> dict[str, str]:
    """``["a.b=1 um", ...]`` → ``{"a.b": "1 um"}``; a malformed item is a ConfigError."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set duration='2 h'")
        out[key.strip()] = value.strip()
    return out


def _format_validation_error(exc: ValidationError, source: str) -> str:
    """The first problem of ``exc`` on one line (with ``(+N more)`` when there are more)."""
    lines = validation_messages(exc, source)
    more = f" (+{len(lines) - 1} more; `tme validate` lists them all)" if len(lines) > 1 else ""
    return f"{lines[0]}{more}"


def validation_messages(exc: ValidationError, source: str) -> list[str]:
    """Every problem of ``exc``, one line each, naming the source and the dotted key, with a
    "did you mean" for misspelt keys and choices (difflib)."""
    out = []
    for err in exc.errors():
        loc_parts = [p for p in err["loc"] if not str(p).startswith("function-")]
        loc = ".".join(str(p) for p in loc_parts)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "missing required key"
        hint = suggestion(Scenario, loc_parts, err)
        where = f"{source}: {loc}: " if loc else f"{source}: "
        out.append(f"{where}{msg}{f' (did you mean {hint!r}?)' if hint else ''}")
    return out


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Read a TOML file; a missing file or a syntax error is a one-line ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    try:
        return tomllib.loads(text), text
    except RecursionError:
        raise ConfigError(f"{path}: TOML nested too deeply to read") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: tables merge key by key, any other value (arrays too) replaces."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: longest ``extends`` chain (each link is read recursively; real chains have two or three)
MAX_EXTENDS = 32


def read_scenario(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """Read a scenario TOML, resolving ``extends = "base.toml"`` (a file in the same folder).

    The file's tables are merged over the base's key by key; any other value, arrays included
    (``initial_cells``, ``inputs``…), replaces the base's. Returns the merged document and the
    text of the whole chain (the file first, then each base under a ``# ==== extends`` line), which
    is stored in outputs beside the resolved scenario.
    """
    doc, text = read_toml(path)
    base = doc.pop("extends", None)
    if base is None:
        return doc, text
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: extends: expected the file name of a base scenario, got {base!r}")
    base_path = path.parent / base
    if base_path.resolve().parent != path.resolve().parent:
        raise ConfigError(
            f"{path}: extends: {base!r} must be a scenario in the same folder (relative paths inside a"
            " scenario resolve from its folder)"
        )
    chain = (*_chain, path.resolve())
    if len(chain) > MAX_EXTENDS:
        raise ConfigError(f"{path}: extends: a chain of more than {MAX_EXTENDS} scenarios")
    if base_path.resolve() in chain:
        raise ConfigError(f"{path}: extends: {base!r} extends this file again (a cycle)")
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends: {base_path}: no such file")
    base_doc, base_text = read_scenario(base_path, chain)
    return _deep_merge(base_doc, doc), f"{text}\n\n# ==== extends {base} ====\n{base_text}"


def validate_scenario(doc: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a scenario dictionary; errors name the source and the dotted key."""
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source), details=validation_messages(exc, source)) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load, override and validate a scenario file.

    ``overrides`` maps dotted keys to values (strings are parsed as TOML literals where they can
    be, so ``"2"`` is the number 2 and ``"2 h"`` stays a string with a unit). A bare name such
    as ``"tumor_immune"`` that is not a file names a shipped scenario (:mod:`tme_sim.scenarios`).
    """
    path = resolve(path)
    doc, text = read_scenario(path)
    doc = apply_overrides(doc, overrides, str(path))
    scenario = validate_scenario(doc, str(path))
    scenario._source_path = path.resolve()  # type: ignore[attr-defined]
    scenario._source_text = text  # type: ignore[attr-defined]
    return scenario


def apply_overrides(doc: dict[str, Any], overrides: dict[str, Any] | None, source: str) -> dict[str, Any]:
    """A copy of ``doc`` with dotted-key overrides applied (unknown keys are caught by validation)."""
    doc = copy.deepcopy(doc)
    for key, value in (overrides or {}).items():
        _set_dotted(doc, key, parse_override_value(value), source)
    return doc


def scenario_dir(scenario: Scenario) -> Path:
    """Folder the scenario file lives in (relative paths inside it resolve from here)."""
    p = getattr(scenario, "_source_path", None)
    return p.parent if p is not None else Path.cwd()


def scenario_json(scenario: Scenario) -> str:
    """The resolved scenario as JSON (stored in every output; ``plugins`` only when used)."""
    doc = scenario.model_dump(mode="json")
    if not doc.get("plugins"):
        doc.pop("plugins", None)
    if not doc["output"].get("observers"):
        doc["output"].pop("observers", None)
    return json.dumps(doc, indent=1, sort_keys=True)


def value_in_unit(value: str | float, unit: str, key: str) -> float:
    """Convert a substrate-unit value given in the config (string with unit) to a float.

    A plain 0 needs no unit.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0
    try:
        return to_unit(value, unit, allow_dimensionless=unit in ("", "1", "dimensionless"))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
