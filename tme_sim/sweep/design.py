"""Designs (which parameter points to run) and per-run seeds.

Every design is a float64 matrix ``values`` of shape ``(n_points, n_params)`` in each parameter's
unit. Sampled designs (LHS, Sobol, SALib Sobol/Morris) are drawn in the unit hypercube first;
that matrix is kept (``unit_samples``) because SALib analyses work on it.

Randomness: one ``numpy.random.SeedSequence(sweep.seed)`` is the root; its first child seeds the
design sampler and its second child is spawned into one child per run (or one per replicate
with ``common_seeds``), so the whole sweep is reproducible from the one seed and independent of
how runs are scheduled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import qmc

from tme_sim.sweep.config import Sweep


@dataclass(frozen=True)
class Design:
    """The design points of a sweep."""

    kind: str
    keys: tuple[str, ...]
    values: np.ndarray  # (n_points, n_params) float64, parameter units
    unit_samples: np.ndarray | None = None  # (n_points, n_params) in [0, 1] for sampled designs
    problem: dict[str, Any] | None = None  # SALib problem (bounds [0, 1]) for SALib designs

    @property
    def n_points(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class RunSpec:
    """One run: a design point, a replicate and its seed.

    ``params`` are the swept values (floats in parameter units, for the summary table);
    ``overrides`` are the dotted scenario overrides the run applies (fixed ones included).
    """

    run_id: str
    point: int
    replicate: int
    seed: int
    params: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.run_id}.h5"


def _seed_int(ss: np.random.SeedSequence) -> int:
    """A 63-bit non-negative integer seed (fits int64 in tables and HDF5 attributes)."""
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _root(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    design_ss, runs_ss = np.random.SeedSequence(seed).spawn(2)
    return design_ss, runs_ss


def _salib_problem(sweep: Sweep) -> dict[str, Any]:
    keys = list(sweep.keys)
    return {"num_vars": len(keys), "names": keys, "bounds": [[0.0, 1.0]] * len(keys)}


def build_design(sweep: Sweep) -> Design:
    """The design points of ``sweep`` (deterministic for a given sweep seed)."""
    params = sweep.parameters
    keys = sweep.keys
    d = len(params)
    design_seed = _seed_int(_root(sweep.seed)[0])
    if sweep.design == "grid":
        levels = [p.grid_values() for p in params]
        values = np.array(list(itertools.product(*levels)), dtype=np.float64).reshape(-1, d)
        return Design("grid", keys, values)
    if sweep.design == "list":
        return Design("list", keys, np.asarray(sweep.points, dtype=np.float64).reshape(-1, d))

    n = sweep.samples
    assert n is not None
    problem = None
    if sweep.design == "lhs":
        u = qmc.LatinHypercube(d=d, seed=np.random.default_rng(design_seed)).random(n)
    elif sweep.design == "sobol":
        sampler = qmc.Sobol(d=d, scramble=sweep.options.scramble, seed=np.random.default_rng(design_seed))
        u = sampler.random_base2(int(np.log2(n)))
    elif sweep.design == "salib-sobol":
        from SALib.sample import sobol as salib_sobol

        problem = _salib_problem(sweep)
        u = salib_sobol.sample(
            problem,
            n,
            calc_second_order=sweep.options.calc_second_order,
            scramble=sweep.options.scramble,
            seed=design_seed,
        )
    elif sweep.design == "morris":
        from SALib.sample import morris as salib_morris

        problem = _salib_problem(sweep)
        u = salib_morris.sample(
            problem,
            n,
            num_levels=sweep.options.num_levels,
            optimal_trajectories=sweep.options.optimal_trajectories,
            seed=design_seed,
        )
    else:  # pragma: no cover - the schema rejects other names
        raise ValueError(sweep.design)
    u = np.asarray(u, dtype=np.float64).reshape(-1, d)
    values = np.column_stack([p.from_unit(u[:, j]) for j, p in enumerate(params)]) if d else u
    return Design(sweep.design, keys, values, unit_samples=u, problem=problem)


def spawn_seeds(seed: int, n_points: int, replicates: int, common: bool = False) -> np.ndarray:
    """Per-run seeds, shape ``(n_points, replicates)`` int64, from one ``SeedSequence``.

    ``common=True`` gives every design point the same seed for replicate ``r`` (common random
    numbers, which lowers the noise of differences between points).
    """
    runs_ss = _root(seed)[1]
    if common:
        per_rep = np.array([_seed_int(c) for c in runs_ss.spawn(replicates)], dtype=np.int64)
        return np.tile(per_rep, (n_points, 1))
    children = runs_ss.spawn(n_points * replicates)
    return np.array([_seed_int(c) for c in children], dtype=np.int64).reshape(n_points, replicates)


def run_id(point: int, replicate: int, n_points: int, replicates: int) -> str:
    """``p0003_r01``: zero-padded so that names sort in design order."""
    wp = max(4, len(str(max(n_points - 1, 0))))
    wr = max(2, len(str(max(replicates - 1, 0))))
    return f"p{point:0{wp}d}_r{replicate:0{wr}d}"


def plan_runs(sweep: Sweep, design: Design) -> list[RunSpec]:
    """All runs of the sweep, point-major (every replicate of point 0 first)."""
    seeds = spawn_seeds(sweep.seed, design.n_points, sweep.replicates, sweep.common_seeds)
    base = sweep.base_overrides()
    runs: list[RunSpec] = []
    for i in range(design.n_points):
        params = {p.key: float(design.values[i, j]) for j, p in enumerate(sweep.parameters)}
        overrides = dict(base)
        overrides.update({p.key: p.override(design.values[i, j]) for j, p in enumerate(sweep.parameters)})
        for r in range(sweep.replicates):
            runs.append(
                RunSpec(
                    run_id=run_id(i, r, design.n_points, sweep.replicates),
                    point=i,
                    replicate=r,
                    seed=int(seeds[i, r]),
                    params=params,
                    overrides=overrides,
                )
            )
    return runs
