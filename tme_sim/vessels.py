"""Blood vessels: Dirichlet sources of O2 and glucose (sinks of lactate) and entry points of cells.

A scenario's ``[vessels]`` table (:class:`tme_sim.config.VesselConfig`) places vessel voxels as
points, straight segments (``lines``) and/or a random ``density`` (fraction of voxels). Every vessel
voxel is clamped (:meth:`~tme_sim.grid.Microenvironment.set_dirichlet_mask`) to the plasma value
of each supplied substrate (default: oxygen 38 mmHg, glucose 5 mM, lactate 1 mM — the vessel also
drains lactate). Recruited immune cells enter the tissue at vessel voxels
(:meth:`Vessels.entry_positions`); drug dosing reads the same voxels (:attr:`Vessels.mask`).

The layout is a pure function of the scenario and the seed: random vessels use their own
Generator derived from ``seed`` (:data:`VESSEL_STREAM`), so plotting and drug code can rebuild the
layout from an output file (:func:`layout_from_scenario`) and adding vessels does not shift the
model's random stream. Units: µm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tme_sim.config import Scenario, VesselConfig, value_in_unit
from tme_sim.errors import ConfigError
from tme_sim.grid.geometry import grid_shape

if TYPE_CHECKING:
    from tme_sim.grid import Microenvironment

#: stream key mixed with the seed for the Generator of random vessel placement
VESSEL_STREAM = 0x7E55E1

#: plasma values held in vessel voxels when ``supply`` is not given (only for substrates the
#: scenario has): arterial-to-capillary O2 ~38 mmHg tissue side (McKeown 2014), plasma glucose
#: 5 mM, resting plasma lactate 1 mM.
DEFAULT_SUPPLY = {"oxygen": "38 mmHg", "glucose": "5 mM", "lactate": "1 mM"}

__all__ = [
    "DEFAULT_SUPPLY",
    "VESSEL_STREAM",
    "Vessels",
    "build_vessels",
    "layout_from_scenario",
    "place_vessel_voxels",
]


@dataclass
class Vessels:
    """Vessel voxels of a grid.

    Attributes:
        voxels: ``(N,)`` int64 sorted flat voxel indices ``(k*ny + j)*nx + i``.
        centres: ``(N, 3)`` µm voxel centres (z = 0 in 2D, where cells live).
        mask: ``(nz, ny, nx)`` bool.
        supply: substrate → value held in the vessel voxels (substrate units).
    """

    voxels: np.ndarray
    centres: np.ndarray
    mask: np.ndarray
    supply: dict[str, float]

    #: regression (see :class:`tme_sim.config.VesselConfig`): rate (1/min), index of the cell type
    #: that drives it, and the number of its live cells a vessel voxel must hold
    regression_rate: float = 0.0
    regression_type: int = -1
    regression_min_cells: int = 1

    @property
    def count(self) -> int:
        return int(self.voxels.size)

    def keep_only(self, voxels: np.ndarray, grid: Microenvironment) -> None:
        """Keep only the vessel voxels in ``voxels`` (flat indices, a subset of :attr:`voxels`) and
        release the others on ``grid``: they stop holding the supplied substrates."""
        keep = np.isin(self.voxels, voxels)
        if keep.all():
            return
        self.mask.reshape(-1)[self.voxels[~keep]] = False
        self.voxels = self.voxels[keep]
        self.centres = self.centres[keep]
        for name, value in self.supply.items():
            grid.set_dirichlet_mask(name, self.mask, value)

    def regress(
        self, cell_voxels: np.ndarray, grid: Microenvironment, rng: np.random.Generator, dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """One phenotype step (``dt`` min) of vessel regression, applied to ``grid``; returns the
        flat indices ``(k,)`` and centres ``(k, 3)`` µm of the voxels that stopped being vessels.

        ``cell_voxels``: flat voxel index of every live cell of the regression type. A vessel voxel
        whose neighbourhood (itself and the 8 voxels around it in 2D, 26 in 3D) holds at least
        :attr:`regression_min_cells` of them (the vessel is inside the tumor) regresses with probability
        ``1 − exp(−rate·dt)`` (one draw from ``rng`` per such voxel, in voxel order; no draw when
        none qualifies, so a run without regression keeps its random stream).
        """
        none = (np.zeros(0, np.int64), np.zeros((0, 3)))
        if self.regression_rate <= 0 or self.count == 0 or cell_voxels.size == 0:
            return none
        counts = _neighbourhood_sums(np.bincount(cell_voxels, minlength=int(self.mask.size)).reshape(self.mask.shape))
        covered = np.flatnonzero(counts.reshape(-1)[self.voxels] >= self.regression_min_cells)
        if covered.size == 0:
            return none
        lost = covered[rng.random(covered.size) < -np.expm1(-self.regression_rate * dt)]
        if lost.size == 0:
            return none
        out = (self.voxels[lost].copy(), self.centres[lost].copy())
        self.keep_only(np.delete(self.voxels, lost), grid)
        return out

    def entry_positions(self, counts: np.ndarray, rng: np.random.Generator, dim: int, dx: float) -> np.ndarray:
        """Positions ``(sum(counts), 3)`` µm for ``counts[k]`` cells entering at vessel voxel ``k``.

        Each cell lands uniformly inside its vessel voxel (side ``dx`` µm, draws from ``rng``), so
        cells entering at the same vessel do not start on top of each other.
        """
        centres = self.centres
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (centres.shape[0],):
            raise ValueError(f"counts must have shape ({centres.shape[0]},), got {counts.shape}")
        base = np.repeat(centres, counts, axis=0)
        if base.shape[0]:
            jitter = np.zeros_like(base)
            jitter[:, :dim] = (rng.random((base.shape[0], dim)) - 0.5) * dx
            base = base + jitter
        return base


def _neighbourhood_sums(counts: np.ndarray) -> np.ndarray:
    """Sum of ``counts (nz, ny, nx)`` over each voxel and its neighbours (3×3 in-plane, and the
    layers above and below when nz > 1); zero outside the grid."""
    nz, ny, nx = counts.shape
    dz = 1 if nz > 1 else 0
    pad = np.pad(counts, ((dz, dz), (1, 1), (1, 1)))
    out = np.zeros_like(counts)
    for a in range(2 * dz + 1):
        for b in range(3):
            for c in range(3):
                out += pad[a : a + nz, b : b + ny, c : c + nx]
    return out


def _ijk_of_points(points: np.ndarray, shape: tuple[int, int, int], dx: float) -> np.ndarray:
    nz, ny, nx = shape
    ijk = np.floor(points / dx).astype(np.int64)
    ijk[:, 0] = np.clip(ijk[:, 0], 0, nx - 1)
    ijk[:, 1] = np.clip(ijk[:, 1], 0, ny - 1)
    ijk[:, 2] = np.clip(ijk[:, 2], 0, nz - 1)
    return (ijk[:, 2] * ny + ijk[:, 1]) * nx + ijk[:, 0]


def _as_points(raw: list[list[float]], dim: int, domain: np.ndarray, key: str) -> np.ndarray:
    pts = np.zeros((len(raw), 3))
    for k, q in enumerate(raw):
        if len(q) != dim:
            raise ConfigError(f"{key}[{k}]: expected {dim} coordinates, got {len(q)}")
        pts[k, :dim] = q
        if np.any(pts[k, :dim] < 0) or np.any(pts[k, :dim] > domain[:dim]):
            raise ConfigError(f"{key}[{k}]: point {list(q)} um lies outside the domain")
    return pts


def place_vessel_voxels(
    cfg: VesselConfig, shape: tuple[int, int, int], dx: float, dim: int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted unique flat voxel indices (int64) of the vessels described by ``cfg``.

    ``shape`` is the grid's ``(nz, ny, nx)``, ``dx`` its voxel edge (µm); ``rng`` draws the random
    (``density``) vessels. Raises :class:`ConfigError` for points outside the domain.
    """
    nz, ny, nx = shape
    domain = np.array([nx * dx, ny * dx, nz * dx])
    parts = []
    if cfg.points:
        parts.append(_ijk_of_points(_as_points(cfg.points, dim, domain, "vessels.points"), shape, dx))
    for i, line in enumerate(cfg.lines):
        a, b = _as_points([line.start, line.end], dim, domain, f"vessels.lines[{i}]")
        length = float(np.linalg.norm(b - a))
        k = max(2, int(np.ceil(4 * length / dx)) + 1)  # 4 samples per voxel edge: no gaps
        pts = a + np.linspace(0.0, 1.0, k)[:, None] * (b - a)
        parts.append(_ijk_of_points(pts, shape, dx))
    if cfg.density > 0:
        n_vox = nx * ny * nz
        eligible = np.arange(n_vox, dtype=np.int64)
        if cfg.exclude_radius > 0:
            if cfg.exclude_center is None or isinstance(cfg.exclude_center, str):
                centre = domain / 2
            else:
                if len(cfg.exclude_center) != dim:
                    raise ConfigError(f"vessels.exclude_center: expected {dim} coordinates")
                centre = np.zeros(3)
                centre[:dim] = cfg.exclude_center
            i = eligible % nx
            j = (eligible // nx) % ny
            kk = eligible // (nx * ny)
            c = (np.stack([i, j, kk], axis=1) + 0.5) * dx
            d2 = np.sum((c[:, :dim] - centre[:dim]) ** 2, axis=1)
            eligible = eligible[d2 >= cfg.exclude_radius**2]
        count = min(round(cfg.density * n_vox), eligible.size)
        if count:
            parts.append(np.sort(rng.choice(eligible, size=count, replace=False)))
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(parts)).astype(np.int64)


def _supply(cfg: VesselConfig, substrate_names: list[str], units: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    if cfg.supply is None:
        items = [(k, v) for k, v in DEFAULT_SUPPLY.items() if k in substrate_names]
    else:
        items = list(cfg.supply.items())
    for name, value in items:
        if name not in substrate_names:
            raise ConfigError(f"vessels.supply.{name}: substrate not in [substrates]")
        out[name] = value_in_unit(value, units[substrate_names.index(name)], f"vessels.supply.{name}")
        if out[name] < 0:
            raise ConfigError(f"vessels.supply.{name}: must be >= 0")
    return out


def _centres(voxels: np.ndarray, shape: tuple[int, int, int], dx: float, dim: int) -> np.ndarray:
    _, ny, nx = shape
    i = voxels % nx
    j = (voxels // nx) % ny
    k = voxels // (nx * ny)
    c = (np.stack([i, j, k], axis=1) + 0.5) * dx
    if dim == 2:
        c[:, 2] = 0.0
    return c


def layout_from_scenario(scenario: Scenario, seed: int | None = None) -> Vessels | None:
    """The vessel layout of ``scenario`` (no model needed; ``seed`` overrides ``scenario.seed``).

    Supply values are not resolved here (empty dict); use :func:`build_vessels` for a model.
    """
    if scenario.vessels is None:
        return None
    shape, dim = grid_shape(tuple(scenario.domain.size), scenario.domain.dx)
    s = int(scenario.seed if seed is None else seed)
    rng = np.random.default_rng(np.random.SeedSequence([s, VESSEL_STREAM]))
    vox = place_vessel_voxels(scenario.vessels, shape, scenario.domain.dx, dim, rng)
    mask = np.zeros(shape, dtype=bool)
    mask.reshape(-1)[vox] = True
    return Vessels(vox, _centres(vox, shape, scenario.domain.dx, dim), mask, {})


def build_vessels(
    scenario: Scenario, grid: Microenvironment, substrate_names: list[str], substrate_units: list[str], seed: int
) -> Vessels | None:
    """Place the scenario's vessels on ``grid`` and clamp the supplied substrates there.

    Called once by :class:`~tme_sim.model.TMEModel` after the boundaries are set; returns None when
    the scenario has no ``[vessels]``.
    """
    cfg = scenario.vessels
    if cfg is None:
        return None
    supply = _supply(cfg, substrate_names, substrate_units)
    ves = layout_from_scenario(scenario, seed)
    assert ves is not None
    ves.supply = supply
    if cfg.regression_rate > 0:
        ves.regression_rate = float(cfg.regression_rate)
        ves.regression_type = list(scenario.cell_types).index(cfg.regression_cell_type)
        ves.regression_min_cells = int(cfg.regression_min_cells)
    if ves.count:
        for name, value in supply.items():
            grid.set_dirichlet_mask(name, ves.mask, value)
    return ves
