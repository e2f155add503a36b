"""Designs and seeds: sizes, bounds, stratification, reproducibility, SeedSequence spawning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tme_sim.config import load_scenario
from tme_sim.sweep.config import load_sweep
from tme_sim.sweep.design import build_design, plan_runs, spawn_seeds

ROOT = Path(__file__).resolve().parents[1]
SPHEROID = ROOT / "tme_sim" / "scenarios" / "spheroid.toml"

RATE = "cell_types.tumor.cycle.entry_rate"
DUR = "cell_types.tumor.cycle.ki67_positive_duration"
RAD = "cell_types.tumor.volume.radius"


def sweep_file(tmp_path: Path, head: str, params: str | None = None) -> Path:
    params = (
        params
        if params is not None
        else f"""
[parameters."{RATE}"]
low = "0.001 1/min"
high = "0.1 1/min"
scale = "log"
num = 3
[parameters."{DUR}"]
low = "600 min"
high = "1200 min"
num = 2
[parameters."{RAD}"]
values = ["7 um", "8 um", "9 um", "10 um"]
"""
    )
    p = tmp_path / "s.toml"
    p.write_text(f'scenario = "{SPHEROID.as_posix()}"\n{head}\n{params}', encoding="utf-8")
    return p


def test_grid_is_the_full_product(tmp_path):
    sw = load_sweep(sweep_file(tmp_path, 'design = "grid"\nreplicates = 2'))
    d = build_design(sw)
    assert d.values.shape == (3 * 2 * 4, 3)
    assert np.unique(d.values[:, 0]) == pytest.approx([0.001, 0.01, 0.1])  # log spacing
    assert set(d.values[:, 1]) == {600.0, 1200.0}
    assert set(d.values[:, 2]) == {7.0, 8.0, 9.0, 10.0}
    assert len({tuple(r) for r in d.values}) == 24
    runs = plan_runs(sw, d)
    assert len(runs) == 48
    assert [r.run_id for r in runs[:3]] == ["p0000_r00", "p0000_r01", "p0001_r00"]
    assert runs == sorted(runs, key=lambda r: r.run_id)


def test_overrides_are_accepted_by_the_scenario(tmp_path):
    sw = load_sweep(sweep_file(tmp_path, 'design = "lhs"\nsamples = 5\nduration = "1 h"'))
    runs = plan_runs(sw, build_design(sw))
    r = runs[3]
    assert r.overrides[RATE].endswith(" 1/min") and r.overrides["duration"] == "1 h"
    sc = load_scenario(SPHEROID, r.overrides)
    assert sc.cell_types["tumor"].cycle.entry_rate == pytest.approx(r.params[RATE], rel=1e-10)
    assert sc.cell_types["tumor"].volume.radius == pytest.approx(r.params[RAD])
    assert sc.duration == 60.0


def test_lhs_is_stratified_and_in_bounds(tmp_path):
    n = 16
    sw = load_sweep(sweep_file(tmp_path, f'design = "lhs"\nsamples = {n}'))
    d = build_design(sw)
    assert d.unit_samples is not None and d.unit_samples.shape == (n, 3)
    for j in range(3):  # one sample in each of the n strata of every column
        assert sorted(np.floor(d.unit_samples[:, j] * n).astype(int)) == list(range(n))
    assert np.all((d.values[:, 0] >= 0.001) & (d.values[:, 0] <= 0.1))
    assert np.all((d.values[:, 1] >= 600) & (d.values[:, 1] <= 1200))
    assert set(d.values[:, 2]) == {7.0, 8.0, 9.0, 10.0}  # 16 strata → every listed value 4 times
    assert np.all(np.bincount(d.values[:, 2].astype(int))[7:] == 4)


def test_qmc_sobol_and_reproducibility(tmp_path):
    sw = load_sweep(sweep_file(tmp_path, 'design = "sobol"\nsamples = 32\nseed = 3'))
    a, b = build_design(sw), build_design(sw)
    assert a.values.shape == (32, 3)
    np.testing.assert_array_equal(a.values, b.values)
    # balanced: each half of the unit interval gets exactly half of the points
    assert np.all(np.sum(a.unit_samples < 0.5, axis=0) == 16)
    other = load_sweep(sweep_file(tmp_path, 'design = "sobol"\nsamples = 32\nseed = 4'))
    assert not np.array_equal(build_design(other).values, a.values)


def test_salib_designs_sizes(tmp_path):
    sw = load_sweep(sweep_file(tmp_path, 'design = "salib-sobol"\nsamples = 8'))
    d = build_design(sw)
    assert d.values.shape == (8 * (2 * 3 + 2), 3)
    assert d.problem["names"] == [RATE, DUR, RAD]
    sw1 = load_sweep(sweep_file(tmp_path, 'design = "salib-sobol"\nsamples = 8\n[options]\ncalc_second_order = false'))
    assert build_design(sw1).values.shape == (8 * (3 + 2), 3)
    sw2 = load_sweep(sweep_file(tmp_path, 'design = "morris"\nsamples = 5\n[options]\nnum_levels = 4'))
    d2 = build_design(sw2)
    assert d2.values.shape == (5 * (3 + 1), 3)
    # Morris trajectories move one factor at a time, by one level step (2/3 of the range at 4 levels)
    u = d2.unit_samples.reshape(5, 4, 3)
    steps = np.abs(np.diff(u, axis=1))
    assert np.all(np.count_nonzero(steps > 1e-12, axis=2) == 1)
    assert np.allclose(steps[steps > 1e-12], 2 / 3)


def test_seeds_spawned_from_one_seed_sequence():
    s = spawn_seeds(42, 10, 3)
    assert s.shape == (10, 3) and s.dtype == np.int64
    assert len(np.unique(s)) == 30 and np.all(s >= 0)
    np.testing.assert_array_equal(s, spawn_seeds(42, 10, 3))
    assert not np.array_equal(s, spawn_seeds(43, 10, 3))
    # spawning is prefix-stable: a bigger design keeps the seeds of the runs it shares
    np.testing.assert_array_equal(spawn_seeds(42, 20, 3).ravel()[:30], s.ravel())
    # the design sampler and the runs use different children of the root
    c = spawn_seeds(42, 10, 3, common=True)
    assert np.all(c == c[0]) and len(np.unique(c[0])) == 3


def test_common_seeds_in_runs(tmp_path):
    sw = load_sweep(sweep_file(tmp_path, 'design = "grid"\nreplicates = 2\ncommon_seeds = true'))
    runs = plan_runs(sw, build_design(sw))
    by_rep = {r.replicate: {x.seed for x in runs if x.replicate == r.replicate} for r in runs}
    assert all(len(v) == 1 for v in by_rep.values()) and by_rep[0] != by_rep[1]


def test_integer_parameters_round(tmp_path):
    params = """
[parameters."initial_cells.0.count"]
low = 10
high = 20
integer = true
[parameters."cell_types.tumor.cycle.entry_rate"]
low = "0.001 1/min"
high = "0.002 1/min"
"""
    sw = load_sweep(sweep_file(tmp_path, 'design = "lhs"\nsamples = 7', params), check_scenario=False)
    runs = plan_runs(sw, build_design(sw))
    counts = [r.overrides["initial_cells.0.count"] for r in runs]
    assert all(isinstance(c, int) and 10 <= c <= 20 for c in counts)
