"""Dosing in the spatial simulation: the scenario's ``[drugs]`` section and its controller.

A scenario names a drug library (a file relative to the scenario), the drugs given and,
optionally, per-drug changes to the library's schedule or entry route::

    [drugs]
    library = "drugs.toml"
    update_tolerance = 0.01            # re-impose tissue-side values after a 1 % plasma change

    [drugs.given.birinapant]           # the library's schedule, PK and entry route
    dose_scale = 0.5                   # every amount / infusion rate × 0.5 (PK is linear)

    [drugs.given.venetoclax]
    schedule = [{ kind = "oral", amount = "200 mg", start = "6 h", every = "1 day", count = 5 }]
    entry = { via = "faces", faces = ["xmin", "xmax"] }

    [drugs.given.tpca1]
    plasma = "30 nM"                   # constant plasma level instead of PK (a screen dose point)

``given`` may also be a plain list of names (``given = ["birinapant", "venetoclax"]``).

Every drug given becomes a substrate of the grid (unit nM, the drug's diffusion coefficient and
tissue decay from the library), added after the scenario's own substrates. Each mechanics step
:class:`DrugDosing` reads the plasma concentration ``C_p(t)`` from the one-compartment PK
(:class:`~tme_sim.drugs.pk.OneCompartment`, evaluated at the middle of the step) and holds
``partition · C_p`` as a Dirichlet value on the drug's entry sites: the listed domain faces
(``entry.via = "faces"``) or the vessel voxels of the scenario's ``[vessels]``
(``entry.via = "vessels"``; the clamp is the high-permeability limit of the wall exchange
``P/dx · (C_p − C)``, so the library's ``permeability`` is not used here). The value is
re-imposed only when it changed by more than ``update_tolerance`` (relative) since it was last
imposed, so a step usually costs one table look-up per drug (plasma values are computed in
blocks of steps, vectorised). The imposed values are a deterministic function of the step
index, which is what :meth:`DrugDosing.restore` replays after a checkpoint restart.

How drugs act in cells (``drugs = [...]`` in a cell type's ``intracellular`` table) is wired by
:func:`tme_sim.intracellular.factory.build_intracellular` with
:class:`~tme_sim.drugs.effects.DrugEffects`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tme_sim.config import scenario_dir
from tme_sim.config.drugs import FACES, Drug, DrugLibrary, DrugsConfig, Entry, GivenDrug, load_library
from tme_sim.drugs.pk import OneCompartment
from tme_sim.errors import ConfigError
from tme_sim.grid import make_substrate
from tme_sim.paths import confined_path

if TYPE_CHECKING:
    from tme_sim.config import Scenario
    from tme_sim.grid import Microenvironment, SubstrateParams
    from tme_sim.vessels import Vessels

__all__ = ["DrugDosing", "DrugsConfig", "GivenDrug", "build_dosing", "resolve_drugs"]

#: mechanics steps whose plasma values are computed in one vectorised call
BLOCK_STEPS = 512


@dataclass(frozen=True)
class ResolvedDrug:
    """A given drug after the scenario's changes: what the controller needs (internal units)."""

    drug: Drug
    entry: Entry
    scale: float
    constant: float | None  # nM, when the plasma level is held constant
    pk: OneCompartment | None

    @property
    def name(self) -> str:
        return self.drug.name

    def plasma(self, t: np.ndarray) -> np.ndarray:
        """Plasma concentration (nM, float64, shape of ``t``) at times ``t`` (min)."""
        t = np.asarray(t, dtype=np.float64)
        if self.constant is not None:
            return np.full(t.shape, self.constant)
        if self.pk is None or self.scale == 0.0:
            return np.zeros(t.shape)
        return self.scale * self.pk.concentration(t)


def library_path(scenario: Scenario) -> Path:
    """The drug library file named by ``[drugs].library`` (relative to the scenario's folder)."""
    assert scenario.drugs is not None
    return confined_path(scenario.drugs.library, scenario_dir(scenario), "drugs.library")


def _resolve_one(drug: Drug, given: GivenDrug, lib: DrugLibrary) -> ResolvedDrug:
    key = f"drugs.given.{drug.name}"
    entry = given.entry if given.entry is not None else drug.entry
    if given.plasma is not None:
        return ResolvedDrug(drug, entry, 1.0, float(given.plasma), None)
    schedule = drug.schedule if given.schedule is None else given.schedule
    if not schedule:
        raise ConfigError(f"{key}: {drug.name} has no schedule in {lib.path}; give schedule or plasma")
    if drug.pk is None:
        raise ConfigError(f"{key}: {drug.name} has no pk table in {lib.path}; give plasma instead")
    uses_mass = any(
        (d.amount is not None and d.amount[1] == "mg") or (d.rate is not None and d.rate[1] == "mg/min")
        for d in schedule
    )
    if uses_mass and drug.molar_mass is None:
        raise ConfigError(f"{key}.schedule: doses in mass need molar_mass for {drug.name} in {lib.path}")
    if any(d.kind == "oral" for d in schedule) and drug.pk.absorption_rate is None:
        raise ConfigError(f"{key}.schedule: oral doses need pk.absorption_rate for {drug.name} in {lib.path}")
    d2 = drug.model_copy(update={"schedule": tuple(schedule)})
    return ResolvedDrug(d2, entry, float(given.dose_scale), None, OneCompartment.from_drug(d2))


def resolve_drugs(scenario: Scenario) -> tuple[DrugLibrary, list[ResolvedDrug]]:
    """Load the library named by ``[drugs]`` and resolve every given drug (ConfigError on mistakes)."""
    cfg = scenario.drugs
    assert cfg is not None
    path = library_path(scenario)
    if not path.is_file():
        raise ConfigError(f"drugs.library: drug library file not found: {path}")
    lib = load_library(path)
    out = []
    for name, given in cfg.given.items():
        if name not in lib.drugs:
            raise ConfigError(f"drugs.given.{name}: unknown drug in {lib.path}; known: {', '.join(lib.names)}")
        out.append(_resolve_one(lib.drugs[name], given, lib))
    return lib, out


class DrugDosing:
    """Plasma → tissue controller of the drugs given in a scenario (one per model).

    Build with :func:`build_dosing` (before the grid: it adds the drug substrates), then
    :meth:`attach` once the grid and vessels exist; :meth:`apply` runs before each grid advance.
    """

    def __init__(self, library: DrugLibrary, drugs: list[ResolvedDrug], tolerance: float) -> None:
        self.library = library
        self.drugs = drugs
        self.names = [d.name for d in drugs]
        self.tolerance = float(tolerance)
        self.applied = np.full(len(drugs), np.nan)  # value (nM) currently imposed per drug
        self.updates = 0  # how many times values were re-imposed (for tests / benchmarks)
        self._block_start = -1
        self._block = np.zeros((0, len(drugs)))
        self._dt = 0.0
        self._faces: list[list[str]] = []
        self._mask: np.ndarray | None = None
        self._micro: Any = None

    # ------------------------------------------------------------------ setup
    def substrate_params(self, existing: list[str]) -> list[SubstrateParams]:
        """One grid substrate per drug (unit nM, the drug's D in µm²/min and decay in 1/min)."""
        out = []
        for rd in self.drugs:
            d = rd.drug
            if d.name in existing:
                raise ConfigError(
                    f"drugs.given.{d.name}: a substrate of that name is already in [substrates]; "
                    "drug substrates are added from the library"
                )
            try:
                out.append(
                    make_substrate(
                        d.name,
                        unit="nM",
                        diffusion=d.diffusion,
                        decay=d.decay_rate,
                        initial=0.0,
                        source=f"drug library {self.library.path}",
                    )
                )
            except Exception as exc:
                raise ConfigError(f"drugs.given.{d.name}: {exc}") from None
        return out

    def attach(self, grid: Microenvironment, vessels: Vessels | None, dim: int, dt_mech: float, step: int = 0) -> None:
        """Bind to the ``grid`` and its ``vessels`` (``dim`` 2 or 3, mechanics step ``dt_mech`` min)
        and impose the values of mechanics step ``step``."""
        self._micro = grid
        self._dt = float(dt_mech)
        allowed = set(FACES[: 2 * dim])
        self._faces = []
        for rd in self.drugs:
            key = f"drugs.given.{rd.name}.entry"
            if rd.entry.via == "faces":
                faces = [f for f in rd.entry.faces if f in allowed]
                if not faces:
                    raise ConfigError(f"{key}.faces: none of {list(rd.entry.faces)} is a face of a {dim}D domain")
                self._faces.append(faces)
            else:
                self._faces.append([])
                if self._mask is None:
                    mask = vessels.mask if vessels is not None else np.zeros(grid.shape, dtype=bool)
                    if not mask.any():
                        raise ConfigError(
                            f"{key}: {rd.name} enters through vessels but the scenario has no vessel voxels; "
                            f'add [vessels] or set {key} = {{ via = "faces" }}'
                        )
                    self._mask = mask
        self.applied[:] = np.nan
        self.apply(step)

    # ------------------------------------------------------------------ per step
    def plasma(self, t: np.ndarray | float) -> np.ndarray:
        """Plasma concentrations (nM), shape ``(len(t), n_drugs)``, at times ``t`` (min)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return np.stack([rd.plasma(t) for rd in self.drugs], axis=1) if self.drugs else np.zeros((t.size, 0))

    def step_values(self, step: int) -> np.ndarray:
        """Tissue-side target values (nM, ``(n_drugs,)``) for mechanics step ``step`` (its midpoint)."""
        b0 = step - step % BLOCK_STEPS
        if b0 != self._block_start:
            t = (np.arange(b0, b0 + BLOCK_STEPS) + 0.5) * self._dt
            part = np.array([rd.entry.partition for rd in self.drugs])
            self._block = self.plasma(t) * part[None, :]
            self._block_start = b0
        return self._block[step - b0]

    @staticmethod
    def _moved(v: float, a: float, tol: float) -> bool:
        """True when ``v`` differs from the imposed ``a`` by more than ``tol`` (relative); NaN = never set."""
        return a != a or abs(v - a) > tol * max(abs(v), abs(a))

    def apply(self, step: int) -> None:
        """Impose the values of mechanics step ``step`` where they changed noticeably (call before
        the grid advances that step). Plain-float work per drug when nothing changed."""
        values = self.step_values(step)
        tol = self.tolerance
        for j in range(len(self.drugs)):
            v = float(values[j])
            if not self._moved(v, float(self.applied[j]), tol):
                continue
            rd = self.drugs[j]
            if rd.entry.via == "faces":
                for face in self._faces[j]:
                    self._micro.set_boundary(rd.name, face, "dirichlet", v)
            else:
                self._micro.set_dirichlet_mask(rd.name, self._mask, v)
            self.applied[j] = v
            self.updates += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """The values imposed so far (nM per drug, NaN = never) and the update count."""
        return {"applied": self.applied.copy(), "updates": np.array(self.updates)}

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` (the grid's own state carries the imposed boundary values)."""
        self.applied = np.asarray(d["applied"], dtype=np.float64).copy()
        self.updates = int(d["updates"])

    # ------------------------------------------------------------------ reporting
    def describe(self) -> list[str]:
        """One line per drug: name, entry route and dosing."""
        out = []
        for rd in self.drugs:
            via = f"faces {','.join(rd.entry.faces)}" if rd.entry.via == "faces" else "vessels"
            if rd.constant is not None:
                how = f"plasma held at {rd.constant:g} nM"
            else:
                n = len(rd.pk.events) if rd.pk is not None else 0
                how = f"{n} administrations × dose_scale {rd.scale:g}"
            out.append(f"{rd.name}: {how}, enters via {via}")
        return out


def build_dosing(scenario: Scenario, substrates: list[SubstrateParams]) -> DrugDosing | None:
    """The controller of ``scenario``'s ``[drugs]`` (None without one); appends the drug substrates
    to ``substrates`` (the model's list, before the grid is built)."""
    if scenario.drugs is None:
        return None
    lib, drugs = resolve_drugs(scenario)
    dosing = DrugDosing(lib, drugs, scenario.drugs.update_tolerance)
    substrates.extend(dosing.substrate_params([s.name for s in substrates]))
    return dosing
