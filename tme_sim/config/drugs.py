"""Drug library: a validated TOML file of drugs, their targets, potency, transport and dosing.

A library file has one table per drug under ``[drugs.<name>]``. Every physical value is a string
with units; it is converted at load time to the simulator's internal units:

=====================  ==========================================  ===================
key                    meaning                                     internal unit
=====================  ==========================================  ===================
``ic50``/``ec50``      half-maximal concentration of the target    nM
                       effect (inhibitors: IC50, activators: EC50)
``hill``               Hill coefficient (dimensionless, > 0)       —
``diffusion``          diffusion coefficient in tissue             µm²/min
``decay_rate``         first-order loss in tissue                  1/min
``molar_mass``         needed only when doses are given in mass    g/mol
``pk.volume``          volume of distribution                      L
``pk.clearance`` or    elimination (one compartment)               L/min or min
``pk.half_life``
``pk.absorption_rate`` first-order absorption (oral doses)         1/min
``schedule[].amount``  bolus/oral dose (mass or amount)            nmol
``schedule[].rate``    infusion rate (mass or amount per time)     nmol/min
times, durations       ``start``, ``duration``, ``every``          min
=====================  ==========================================  ===================

Example::

    [drugs.birinapant]
    targets = [{ node = "cIAP", action = "inhibit" }]
    ic50 = "5 nM"
    hill = 1.0
    diffusion = "2.4e4 um**2/min"
    decay_rate = "1e-3 1/min"
    molar_mass = "806.9 g/mol"
    pk = { volume = "40 L", half_life = "30 h" }
    entry = { via = "vessels", permeability = "0.5 um/min" }
    schedule = [{ kind = "bolus", amount = "20 mg", start = "0 h", every = "3 day", count = 3 }]

A target may override the drug's potency (``{ node = "BCL2", action = "inhibit", ic50 = "2 nM" }``).
Every mistake (missing file, unknown drug, missing/wrong unit, unknown key) raises
:class:`~tme_sim.errors.ConfigError` with one line naming the file and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from tme_sim.errors import ConfigError
from tme_sim.units import Diffusivity, Fraction, Rate, Speed, Time, quantity, ureg

Concentration = quantity("nM")
MolarMass = quantity("g/mol")
VolumeL = quantity("L")
FlowL = quantity("L/min")

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
FACES = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")


def _amount(value: Any) -> tuple[float, str]:
    """Parse an amount of drug given as substance (-> nmol) or mass (-> mg)."""
    return _dual(value, "nmol", "mg", 'an amount such as "20 mg" or "50 nmol"')


def _amount_rate(value: Any) -> tuple[float, str]:
    """Parse an infusion rate given as substance/time (-> nmol/min) or mass/time (-> mg/min)."""
    return _dual(value, "nmol/min", "mg/min", 'a rate such as "2 mg/h" or "10 nmol/min"')


def _dual(value: Any, substance_unit: str, mass_unit: str, example: str) -> tuple[float, str]:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected {example}, got {value!r}")
    try:
        q = ureg.Quantity(value.strip())
    except Exception as exc:
        raise ValueError(f"cannot parse {value!r} as a quantity ({type(exc).__name__})") from None
    if not hasattr(q, "to"):
        raise ValueError(f"missing unit in {value!r}: expected {example}")
    for unit in (substance_unit, mass_unit):
        if q.dimensionality == ureg.Quantity(1, unit).dimensionality:
            mag = float(q.to(unit).magnitude)
            if not math.isfinite(mag) or mag < 0:
                raise ValueError(f"{value!r} must be finite and >= 0")
            return mag, unit
    raise ValueError(f"wrong unit in {value!r}: expected {example}")


def _amount_text(value: tuple[float, str]) -> str:
    """Serialise a parsed amount/rate back to text (so a resolved scenario re-validates)."""
    return f"{value[0]!r} {value[1]}"


Amount = Annotated[
    tuple[float, str], BeforeValidator(_amount), PlainSerializer(_amount_text, return_type=str, when_used="json")
]
AmountRate = Annotated[
    tuple[float, str], BeforeValidator(_amount_rate), PlainSerializer(_amount_text, return_type=str, when_used="json")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """One drug–target interaction: the drug switches ``node`` off (inhibit) or on (activate)."""

    node: str
    action: Literal["inhibit", "activate"] = "inhibit"
    ic50: Concentration | None = Field(default=None, description="overrides the drug's IC50/EC50 (nM)")
    hill: float | None = Field(default=None, gt=0, le=20)

    @model_validator(mode="after")
    def _check(self) -> Target:
        if not _NAME_RE.match(self.node):
            raise ValueError(f"node name {self.node!r} is not a valid network node name")
        if self.ic50 is not None and not self.ic50 > 0:
            raise ValueError("ic50 must be > 0")
        return self


class PK(_Strict):
    """One-compartment pharmacokinetics (plasma), with optional first-order absorption.

    ``volume`` (L) is the volume of distribution; elimination is given either as ``clearance``
    (L/min; k_el = CL/V) or as ``half_life`` (min; k_el = ln 2 / t½). ``absorption_rate`` (1/min)
    and ``bioavailability`` apply to ``oral`` doses only.
    """

    model: Literal["one_compartment"] = "one_compartment"
    volume: VolumeL
    clearance: FlowL | None = None
    half_life: Time | None = None
    absorption_rate: Rate | None = None
    bioavailability: Fraction = 1.0

    @model_validator(mode="after")
    def _check(self) -> PK:
        if not self.volume > 0:
            raise ValueError("volume must be > 0")
        if (self.clearance is None) == (self.half_life is None):
            raise ValueError("give exactly one of clearance or half_life")
        if self.clearance is not None and self.clearance < 0:
            raise ValueError("clearance must be >= 0")
        if self.half_life is not None and not self.half_life > 0:
            raise ValueError("half_life must be > 0")
        if self.absorption_rate is not None and not self.absorption_rate > 0:
            raise ValueError("absorption_rate must be > 0")
        if not 0 < self.bioavailability <= 1:
            raise ValueError("bioavailability must be in (0, 1]")
        return self

    @property
    def elimination_rate(self) -> float:
        """k_el in 1/min."""
        if self.clearance is not None:
            return self.clearance / self.volume
        assert self.half_life is not None
        return math.log(2.0) / self.half_life


class Entry(_Strict):
    """How plasma drug reaches the tissue grid.

    ``via = "vessels"``: voxels holding a vessel exchange with plasma at ``permeability`` (µm/min):
    source rate ``P/dx · (C_plasma − C_local)`` (see :func:`tme_sim.drugs.pk.vessel_source`).
    ``via = "faces"``: the listed domain faces hold ``partition · C_plasma`` (Dirichlet).
    """

    via: Literal["vessels", "faces"] = "vessels"
    permeability: Speed = 1.0
    faces: tuple[str, ...] = FACES
    partition: Fraction = 1.0

    @model_validator(mode="after")
    def _check(self) -> Entry:
        bad = [f for f in self.faces if f not in FACES]
        if bad:
            raise ValueError(f"unknown face {bad[0]!r}; known: {', '.join(FACES)}")
        if self.permeability < 0 or self.partition < 0:
            raise ValueError("permeability and partition must be >= 0")
        return self


class Dose(_Strict):
    """One dosing instruction, possibly repeated ``count`` times every ``every`` minutes.

    ``bolus`` (IV, instantaneous) and ``oral`` take ``amount``; ``infusion`` takes ``rate`` and
    ``duration``.
    """

    kind: Literal["bolus", "infusion", "oral"]
    start: Time = 0.0
    amount: Amount | None = None
    rate: AmountRate | None = None
    duration: Time | None = None
    every: Time | None = None
    count: int = Field(default=1, ge=1, le=100_000)

    @model_validator(mode="after")
    def _check(self) -> Dose:
        if self.start < 0:
            raise ValueError("start must be >= 0")
        if self.kind in ("bolus", "oral"):
            if self.amount is None:
                raise ValueError(f"a {self.kind} dose needs amount")
            if self.rate is not None or self.duration is not None:
                raise ValueError(f"a {self.kind} dose takes amount, not rate/duration")
        else:
            if self.rate is None or self.duration is None:
                raise ValueError("an infusion needs rate and duration")
            if self.amount is not None:
                raise ValueError("an infusion takes rate and duration, not amount")
            if not self.duration > 0:
                raise ValueError("duration must be > 0")
        if self.count > 1 and (self.every is None or not self.every > 0):
            raise ValueError("a repeated dose (count > 1) needs every > 0")
        if self.kind == "infusion" and self.every is not None and self.count > 1:
            assert self.duration is not None
            if self.duration > self.every:
                raise ValueError("infusion duration is longer than the dosing interval")
        return self


class Drug(_Strict):
    """One drug of the library (see the module docstring for keys and units)."""

    name: str
    description: str = ""
    targets: tuple[Target, ...] = Field(min_length=1)
    ic50: Concentration | None = None
    ec50: Concentration | None = None
    hill: float = Field(default=1.0, gt=0, le=20)
    diffusion: Diffusivity = 2.4e4
    decay_rate: Rate = 0.0
    molar_mass: MolarMass | None = None
    pk: PK | None = None
    entry: Entry = Entry()
    schedule: tuple[Dose, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Drug:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"drug name {self.name!r}: use letters, digits, '_' or '-'")
        for value, key in ((self.ic50, "ic50"), (self.ec50, "ec50")):
            if value is not None and not value > 0:
                raise ValueError(f"{key} must be > 0")
        nodes = [t.node for t in self.targets]
        if len(set(nodes)) != len(nodes):
            raise ValueError("a node is listed twice in targets")
        for t in self.targets:
            if t.ic50 is None and self._default_potency(t.action) is None:
                key = "ic50" if t.action == "inhibit" else "ec50"
                raise ValueError(f"target {t.node!r} ({t.action}) needs {key} on the drug or the target")
        if self.diffusion < 0 or self.decay_rate < 0:
            raise ValueError("diffusion and decay_rate must be >= 0")
        if self.molar_mass is not None and not self.molar_mass > 0:
            raise ValueError("molar_mass must be > 0")
        uses_mass = any(
            (d.amount is not None and d.amount[1] == "mg") or (d.rate is not None and d.rate[1] == "mg/min")
            for d in self.schedule
        )
        if uses_mass and self.molar_mass is None:
            raise ValueError('doses are given in mass; add molar_mass (e.g. "806.9 g/mol")')
        if self.schedule and self.pk is None:
            raise ValueError("a schedule needs a [pk] table")
        if any(d.kind == "oral" for d in self.schedule) and self.pk and self.pk.absorption_rate is None:
            raise ValueError("oral doses need pk.absorption_rate")
        return self

    def _default_potency(self, action: str) -> float | None:
        if action == "inhibit":
            return self.ic50 if self.ic50 is not None else self.ec50
        return self.ec50 if self.ec50 is not None else self.ic50

    def potency(self, target: Target) -> tuple[float, float]:
        """(half-maximal concentration in nM, Hill coefficient) of ``target``."""
        c50 = target.ic50 if target.ic50 is not None else self._default_potency(target.action)
        assert c50 is not None
        return float(c50), float(target.hill if target.hill is not None else self.hill)

    def to_nmol(self, value: tuple[float, str]) -> float:
        """Convert a parsed amount (``(x, "nmol")`` / ``(x, "mg")``) or rate to nmol(/min)."""
        x, unit = value
        if unit.startswith("nmol"):
            return x
        assert self.molar_mass is not None
        return x * 1e-3 / self.molar_mass * 1e9  # mg -> g -> mol -> nmol


class DrugLibrary(BaseModel):
    """All drugs of a library file, by name, in file order."""

    model_config = ConfigDict(frozen=True)

    path: str = "<memory>"
    drugs: dict[str, Drug]

    @property
    def names(self) -> list[str]:
        return list(self.drugs)

    def get(self, name: str) -> Drug:
        """The drug called ``name``; :class:`ConfigError` naming the library if unknown."""
        try:
            return self.drugs[name]
        except KeyError:
            raise ConfigError(
                f"{self.path}: unknown drug {name!r}; known: {', '.join(self.drugs) or '(none)'}"
            ) from None

    def select(self, names: list[str]) -> list[Drug]:
        return [self.get(n) for n in names]

    def targets(self) -> set[str]:
        return {t.node for d in self.drugs.values() for t in d.targets}


def format_validation_error(source: str, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    """One line ``<source>: <key.path>: <message>`` for the first error of ``exc``."""
    err = exc.errors()[0]
    loc = [str(p) for p in (*prefix, *err.get("loc", ())) if not str(p).startswith("function-")]
    msg = err.get("msg", "invalid value")
    for p in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(p)
    key = ".".join(loc) if loc else "(top level)"
    return f"{source}: {key}: {msg}".replace("\n", " ")


def parse_library(data: dict[str, Any], source: str = "<memory>") -> DrugLibrary:
    """Validate a library already read from TOML (a dict with a ``drugs`` table)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table with [drugs.<name>] entries")
    unknown = [k for k in data if k != "drugs"]
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown top-level key (only [drugs.<name>] tables)")
    table = data.get("drugs")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{source}: drugs: no drugs defined (add [drugs.<name>] tables)")
    drugs: dict[str, Drug] = {}
    for name, body in table.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: drugs.{name}: expected a table")
        if "name" in body and body["name"] != name:
            raise ConfigError(f"{source}: drugs.{name}.name: differs from the table name")
        try:
            drugs[name] = Drug.model_validate({**body, "name": name})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(source, exc, ("drugs", name))) from None
    return DrugLibrary(path=source, drugs=drugs)


def load_library(path: str | Path) -> DrugLibrary:
    """Read and validate a drug library TOML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: drug library file not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    return parse_library(data, str(p))


class GivenDrug(_Strict):
    """One drug of ``[drugs.given.<name>]``: changes to the library's dosing (all optional).

    ``schedule`` replaces the library schedule (same tables as the library's); ``dose_scale``
    (≥ 0) multiplies every amount and infusion rate; ``plasma`` (a concentration) holds the
    plasma level constant instead of using PK and schedule; ``entry`` replaces the library's
    entry route (``{ via = "faces" | "vessels", faces = [...], partition = 1 }``).
    """

    schedule: tuple[Dose, ...] | None = None
    dose_scale: float = Field(default=1.0, ge=0.0)
    plasma: Concentration | None = None
    entry: Entry | None = None

    @model_validator(mode="after")
    def _check(self) -> GivenDrug:
        if self.plasma is not None:
            if not (math.isfinite(self.plasma) and self.plasma >= 0):
                raise ValueError("plasma must be a finite concentration >= 0")
            if self.schedule is not None:
                raise ValueError("give either plasma (constant level) or schedule, not both")
        if not math.isfinite(self.dose_scale):
            raise ValueError("dose_scale must be finite")
        return self


class DrugsConfig(_Strict):
    """The scenario's ``[drugs]`` section (see the module docstring)."""

    library: str
    given: dict[str, GivenDrug] = Field(min_length=1)
    update_tolerance: float = Field(default=0.01, gt=0.0, le=1.0)

    @field_validator("given", mode="before")
    @classmethod
    def _list_to_tables(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            if not all(isinstance(x, str) for x in v):
                raise ValueError("expected a list of drug names or [drugs.given.<name>] tables")
            if len(set(v)) != len(v):
                raise ValueError("a drug is listed twice")
            return {x: {} for x in v}
        return v
