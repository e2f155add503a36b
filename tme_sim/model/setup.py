"""Building a model's pieces from a scenario: substrates, memory check, per-type tables, initial
placements and pulsed boundaries. Plain functions of the scenario (and a generator where random)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tme_sim.config import Placement, Scenario, value_in_unit
from tme_sim.errors import ConfigError
from tme_sim.grid import SUBSTRATES, Microenvironment, SubstrateParams, get_substrate, make_substrate
from tme_sim.model import packing
from tme_sim.phenotype import TypeTables, random_unit_vectors

#: bytes of state per cell used for the memory estimate before allocating
BYTES_PER_CELL_ESTIMATE = 600
#: radius (µm) of the cell assumed when a placement gives a region but no count
PLACEMENT_CELL_RADIUS = 8.4


def resolve_substrates(scenario: Scenario) -> list[SubstrateParams]:
    """Registry defaults with the scenario's overrides; new names need unit, diffusion and decay."""
    out = []
    for name, sc in scenario.substrates.items():
        key = f"substrates.{name}"
        base = get_substrate(name) if name in SUBSTRATES else None
        if base is None:
            missing = [k for k in ("unit", "diffusion", "decay") if getattr(sc, k) is None]
            if missing:
                raise ConfigError(
                    f"{key}: not a known substrate; a new one needs {', '.join(missing)} "
                    "(or use a registry name such as oxygen, glucose, IFNG, TNF)"
                )
            unit = sc.unit
        else:
            unit = sc.unit or base.unit
            if sc.unit is not None and sc.unit != base.unit:
                raise ConfigError(f"{key}.unit: {sc.unit!r} differs from the registry unit {base.unit!r}")
        diffusion = sc.diffusion if sc.diffusion is not None else base.diffusion
        decay = sc.decay if sc.decay is not None else base.decay
        initial = (
            value_in_unit(sc.initial, unit, f"{key}.initial")
            if sc.initial is not None
            else (base.initial if base is not None else 0.0)
        )
        try:
            params = make_substrate(
                name,
                unit=unit,
                diffusion=diffusion,
                decay=decay,
                initial=initial,
                source=sc.source or (base.source if base is not None else "scenario"),
            )
        except Exception as exc:
            raise ConfigError(f"{key}: {exc}") from None
        out.append(params)
    return out


def layer_thickness(scenario: Scenario) -> float | None:
    """Depth (µm) of a 2D grid's voxels: ``domain.thickness``, else one cell diameter — of the
    type placed in the largest number at the start (the tissue that makes up the layer) — a 2D
    run is a monolayer, so volume fractions and concentrations do not depend on ``dx``. ``None``
    in 3D (cubic voxels). Warns when voxels are smaller than that cell (a cell's whole uptake
    then lands in one voxel narrower than the cell)."""
    counts: dict[str, int] = {}
    for p in scenario.initial_cells:
        counts[p.type] = counts.get(p.type, 0) + placement_count(p, scenario.domain.dim, scenario)
    main = max(counts, key=lambda t: counts[t]) if counts else None
    radius = scenario.cell_types[main].volume.radius if main in scenario.cell_types else PLACEMENT_CELL_RADIUS
    diameter = 2.0 * radius
    if 0 < scenario.domain.dx < diameter:
        warnings.warn(
            f"domain.dx = {scenario.domain.dx:g} um is smaller than a cell (diameter {diameter:g} um): each cell's "
            "secretion and uptake land in the one voxel holding its centre",
            stacklevel=2,
        )
    if scenario.domain.dim == 3:
        return None
    return scenario.domain.thickness if scenario.domain.thickness is not None else diameter


#: seeds are stored as signed 64-bit integers (outputs, checkpoints)
MAX_SEED = 2**63 - 1


def check_settings(scenario: Scenario, seed: int) -> None:
    """Values the schema allows but a run cannot use: positive steps, sizes and intervals, a seed
    that fits in 64 bits. Checked before anything is computed or allocated (:class:`ConfigError`)."""
    if isinstance(scenario.seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed: {seed} is not an integer in [0, 2**63 - 1]")
    for group in ("cell_types", "substrates"):
        for name in getattr(scenario, group):
            if not name.strip() or name != name.strip():
                raise ConfigError(f"{group}: {name!r} is not a name (empty or with surrounding spaces)")
    d = scenario.domain
    if not d.dx > 0:
        raise ConfigError(f"domain.dx: voxel size dx must be > 0 um, got {d.dx:g}")
    for k, side in enumerate(d.size):
        if not side > 0:
            raise ConfigError(f"domain.size[{k}]: must be > 0 um, got {side:g}")
    t = scenario.time
    for key in ("diffusion_dt", "mechanics_dt", "phenotype_dt"):
        if not getattr(t, key) > 0:
            raise ConfigError(f"time.{key}: must be > 0 min, got {getattr(t, key):g}")
    if not scenario.duration > 0:
        raise ConfigError(f"duration must be > 0 min, got {scenario.duration:g}")
    if not scenario.output.interval > 0:
        raise ConfigError(f"output.interval: must be > 0 min, got {scenario.output.interval:g}")


def estimate_memory(scenario: Scenario, n_cells: int) -> float:
    """Bytes a run needs at least: the grid (double-buffered) and the cells."""
    dx = scenario.domain.dx
    voxels = math.prod(max(1.0, L / dx) for L in scenario.domain.size)  # float: no integer blow-up
    itemsize = 4 if scenario.domain.float32_fields else 8
    return voxels * len(scenario.substrates) * itemsize * 3 + n_cells * BYTES_PER_CELL_ESTIMATE


def available_memory() -> float:
    """Bytes of memory available (MemAvailable), or +inf where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def type_tables(scenario: Scenario) -> TypeTables:
    """Per-type parameter tables (index = type, scenario order)."""
    cts = list(scenario.cell_types.values())

    def arr(f, dtype=np.float64):
        return np.array([f(c) for c in cts], dtype=dtype)

    return TypeTables(
        has_cycle=arr(lambda c: c.cycle.model != "none", bool),
        ki67_positive_duration=arr(lambda c: c.cycle.ki67_positive_duration),
        apoptosis_duration=arr(lambda c: c.death.apoptosis_duration),
        rupture_ratio=arr(lambda c: c.death.rupture_volume_ratio),
        lysed_removal_time=arr(lambda c: c.death.lysed_removal_time),
        volume0=arr(lambda c: 4.0 / 3.0 * np.pi * c.volume.radius**3),
        growth_rate=arr(lambda c: c.volume.growth_rate),
        apoptotic_shrink_rate=arr(lambda c: c.volume.apoptotic_shrink_rate),
        necrotic_swell_rate=arr(lambda c: c.volume.necrotic_swell_rate),
        lysed_shrink_rate=arr(lambda c: c.volume.lysed_shrink_rate),
        repulsion=arr(lambda c: c.mechanics.repulsion),
        adhesion=arr(lambda c: c.mechanics.adhesion),
        adhesion_rel=arr(lambda c: c.mechanics.max_adhesion_distance),
    )


def lattice_spacing(p: Placement, scenario: Scenario | None = None) -> float:
    """Centre spacing (µm) of a lattice placement: ``spacing``, else one diameter of its type."""
    if p.spacing is not None:
        return p.spacing
    if scenario is not None and p.type in scenario.cell_types:
        return 2.0 * scenario.cell_types[p.type].volume.radius
    return 2.0 * PLACEMENT_CELL_RADIUS


def placement_count(p: Placement, dim: int, scenario: Scenario | None = None) -> int:
    """Number of cells a placement creates (a disc/ball without ``count`` is packed); for a
    lattice, the expected number (the memory check's estimate; the cut at the surface decides)."""
    if p.shape == "points":
        return len(p.points or [])
    if p.count is not None:
        return p.count
    if p.packing == "lattice" and p.radius is not None and p.radius > 0:
        spacing = lattice_spacing(p, scenario)
        if not spacing > 0:
            return 0
        return packing.expected_count(p.radius, spacing, dim, min(p.inner_radius, p.radius))
    if p.radius is not None:
        r0 = PLACEMENT_CELL_RADIUS
        n = 0.64 * (p.radius / r0) ** 3 if dim == 3 else 0.9 * (p.radius / r0) ** 2
        return int(min(n, 1e15))  # the memory estimate refuses anything that large
    return 0


def _inside(coords: Any, domain: np.ndarray, key: str) -> None:
    """A position given in a scenario must lie in the domain [0, size] (µm)."""
    for d, c in enumerate(coords):
        if not 0 <= c <= domain[d]:
            shown = ", ".join(f"{v:g}" for v in coords)
            raise ConfigError(f"{key}: ({shown}) um is outside the domain [0, {domain[d]:g}] um along axis {d}")


def placement_positions(
    p: Placement, key: str, dim: int, domain: np.ndarray, rng: np.random.Generator, scenario: Scenario | None = None
) -> np.ndarray:
    """``(count, 3)`` positions (µm) of placement ``p`` (``key`` names it in errors; ``scenario``
    gives a lattice's default spacing, its type's diameter)."""
    if p.shape == "points":
        pts = np.zeros((len(p.points or []), 3))
        for k, q in enumerate(p.points or []):
            if len(q) != dim:
                raise ConfigError(f"{key}.points[{k}]: expected {dim} coordinates")
            _inside(q, domain, f"{key}.points[{k}]")
            pts[k, :dim] = q
        return pts
    if p.shape in ("disc", "ball"):
        if p.radius is None:
            raise ConfigError(f"{key}.radius: required for shape {p.shape!r}")
        if not p.radius > 0:
            raise ConfigError(f"{key}.radius: must be > 0 um, got {p.radius:g}")
        center = np.zeros(3)
        center[:dim] = p.center if p.center is not None else domain[:dim] / 2
        if p.center is not None and len(p.center) != dim:
            raise ConfigError(f"{key}.center: expected {dim} coordinates")
        if p.center is not None:
            _inside(p.center, domain, f"{key}.center")
        if p.packing == "lattice":
            return _lattice_positions(p, key, dim, center, rng, scenario)
        count = placement_count(p, dim)
        # uniform in the disc/ball (area/volume-uniform radius)
        u = rng.random(count)
        r = p.radius * (u ** (1.0 / dim))
        return center + random_unit_vectors(rng, count, dim) * r[:, None]
    if p.shape in ("box", "random"):
        low = np.zeros(3)
        high = domain.copy()
        if p.low is not None:
            low[:dim] = p.low
        if p.high is not None:
            high[:dim] = p.high
        count = p.count or 0
        pos = np.zeros((count, 3))
        pos[:, :dim] = low[:dim] + rng.random((count, dim)) * (high[:dim] - low[:dim])
        return pos
    raise ConfigError(f"{key}.shape: unknown shape {p.shape!r}")


def _lattice_positions(
    p: Placement, key: str, dim: int, center: np.ndarray, rng: np.random.Generator, scenario: Scenario | None
) -> np.ndarray:
    spacing = lattice_spacing(p, scenario)
    if not spacing > 0:
        raise ConfigError(f"{key}.spacing: must be > 0 um, got {spacing:g}")
    if not 0 <= p.inner_radius < p.radius:
        raise ConfigError(f"{key}.inner_radius: must be in [0, radius = {p.radius:g} um), got {p.inner_radius:g}")
    return packing.packed_ball(center, p.radius, spacing, dim, rng, jitter=p.jitter, inner_radius=p.inner_radius)


def placement_types(p: Placement, n: int, type_names: list[str], rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` int16 types of a placement's n cells: its type, with ``mix`` fractions of others."""
    main = type_names.index(p.type)
    if not p.mix:
        return np.full(n, main, dtype=np.int16)
    return packing.assign_types(n, main, {type_names.index(t): f for t, f in p.mix.items()}, rng)


def set_boundaries(scenario: Scenario, grid: Microenvironment, units: dict[str, str], only: str | None = None) -> None:
    """Impose the scenario's Dirichlet faces on ``grid`` (all substrates, or ``only`` one)."""
    for name, sc in scenario.substrates.items():
        if sc.boundary == "zero-flux" or (only is not None and name != only):
            continue
        for face, value in sc.boundary.items():
            key = f"substrates.{name}.boundary.{face}"
            if value == "zero-flux":
                continue
            v = value_in_unit(value, units[name], key)
            try:
                grid.set_boundary(name, face, "dirichlet", v)
            except Exception as exc:
                raise ConfigError(f"{key}: {exc}") from None


class BoundaryPulses:
    """Substrates pulsed on domain faces (``substrates.<name>.pulse``): on for ``duration`` every
    ``period`` from ``start`` (min), switched only when the state changes."""

    def __init__(self, scenario: Scenario, grid: Microenvironment, units: dict[str, str]) -> None:
        self.scenario = scenario
        self.grid = grid
        self.units = units
        self.pulses: list[tuple[str, list[str], float, float, float, float]] = []
        for name, sc in scenario.substrates.items():
            p = sc.pulse
            if p is None:
                continue
            value = value_in_unit(p.value, units[name], f"substrates.{name}.pulse.value")
            self.pulses.append((name, list(p.faces), value, p.period, p.duration, p.start))
        self.on = [False] * len(self.pulses)

    def __bool__(self) -> bool:
        return bool(self.pulses)

    def states(self, time: float) -> list[bool]:
        """Whether each pulse is on at ``time`` (min)."""
        out = []
        for _name, _faces, _value, period, duration, start in self.pulses:
            t = time - start
            out.append(bool(t >= -1e-9 and ((t + 1e-9) % period) < duration - 1e-9))
        return out

    def apply(self, time: float) -> None:
        """Switch pulsed faces on/off for the step starting at ``time`` (cheap: only on changes)."""
        for k, on in enumerate(self.states(time)):
            if on == self.on[k]:
                continue
            self.on[k] = on
            name, faces, value, *_ = self.pulses[k]
            for face in faces:
                self.grid.set_boundary(name, face, "dirichlet" if on else "neumann", value if on else 0.0)
            if not on:
                set_boundaries(self.scenario, self.grid, self.units, only=name)  # back to its own boundary
