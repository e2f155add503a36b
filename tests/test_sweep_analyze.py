"""Sweep analysis against responses with known sensitivity indices (synthetic runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tme_sim.errors import OutputError
from tme_sim.sweep.analyze import analyze_sweep
from tme_sim.sweep.config import load_sweep
from tme_sim.sweep.execute import run_sweep
from tme_sim.sweep.synthetic import LinearResponse, SyntheticRun

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SPHEROID = ROOT / "tme_sim" / "scenarios" / "spheroid.toml"


@pytest.fixture(scope="module")
def client():
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        yield c


def sweep(tmp_path: Path, head: str, params: str | None = None):
    params = params or "[parameters.a]\nlow = 0.0\nhigh = 1.0\n[parameters.b]\nlow = 0.0\nhigh = 1.0\n"
    p = tmp_path / "s.toml"
    p.write_text(f'scenario = "{SPHEROID.as_posix()}"\n{head}\n{params}', encoding="utf-8")
    # synthetic runs: the parameters need not be scenario keys
    return load_sweep(p, check_scenario=False)


def test_sobol_indices_of_a_linear_response(tmp_path, client):
    sw = sweep(tmp_path, 'design = "salib-sobol"\nsamples = 32\nseed = 5')
    out = tmp_path / "out"
    run_sweep(sw, out, client, run_fn=SyntheticRun(), metrics_fn=LinearResponse({"a": 4.0, "b": 1.0}))
    res = analyze_sweep(out, metrics=["y"])
    t = res.tables["sobol_indices.csv"].set_index("parameter")
    # y = 4a + b with a, b ~ U(0, 1): S1 = ST = 16/17 and 1/17
    assert t.loc["a", "S1"] == pytest.approx(16 / 17, abs=0.08)
    assert t.loc["b", "S1"] == pytest.approx(1 / 17, abs=0.05)
    assert t.loc["a", "ST"] == pytest.approx(16 / 17, abs=0.08)
    assert t.loc["b", "ST"] == pytest.approx(1 / 17, abs=0.05)
    s2 = res.tables["sobol_s2.csv"]
    assert abs(float(s2["S2"].iloc[0])) < 0.1  # additive: no interaction
    assert (out / "analysis" / "sobol_y.png").stat().st_size > 1000
    assert (out / "analysis" / "sobol_indices.csv").is_file()


def test_morris_effects_are_exact_for_a_linear_response(tmp_path, client):
    sw = sweep(tmp_path, 'design = "morris"\nsamples = 32\nseed = 5')
    out = tmp_path / "out"
    run_sweep(sw, out, client, run_fn=SyntheticRun(), metrics_fn=LinearResponse({"a": 4.0, "b": -1.0}))
    res = analyze_sweep(out)
    t = res.tables["morris_indices.csv"]
    t = t[t["metric"] == "y"].set_index("parameter")
    assert t.loc["a", "mu"] == pytest.approx(4.0) and t.loc["a", "mu_star"] == pytest.approx(4.0)
    assert t.loc["b", "mu"] == pytest.approx(-1.0) and t.loc["b", "mu_star"] == pytest.approx(1.0)
    assert t.loc["a", "sigma"] == pytest.approx(0.0, abs=1e-9)
    assert "payload: skipped (constant over the sweep)" in res.notes
    assert (out / "analysis" / "morris_y.png").is_file()


def test_grid_response_and_failed_runs(tmp_path, client):
    params = "[parameters.a]\nvalues = [1, 2, 3]\n[parameters.b]\nvalues = [10, 20]\n"
    sw = sweep(tmp_path, 'design = "grid"\nreplicates = 2', params)
    out = tmp_path / "out"
    run = SyntheticRun(fail_ids=("p0005_r01",))
    run_sweep(sw, out, client, run_fn=run, metrics_fn=LinearResponse({"a": 1.0, "b": 1.0}, noise=0.5))
    res = analyze_sweep(out, metrics=["y"])
    df = pd.read_csv(out / "summary.csv")
    ok = df[df["status"] == "done"]
    r = res.tables["response.csv"]
    for p in ("a", "b"):
        for level, g in ok.groupby(p):
            row = r[(r["parameter"] == p) & (r["level"] == level)].iloc[0]
            assert row["mean"] == pytest.approx(g["y"].mean()) and row["n"] == len(g)
    assert r[(r["parameter"] == "a") & (r["level"] == 3)]["n"].item() == 3  # one failed run left out
    assert "1 runs not successful; left out" in res.notes
    for f in ("response_y.png", "response_y_heatmap.png", "rank_correlation.csv"):
        assert (out / "analysis" / f).is_file()
    corr = pd.read_csv(out / "analysis" / "rank_correlation.csv", index_col=0)
    assert corr.loc["a", "y"] > 0 and corr.loc["b", "y"] > 0.5


def test_lhs_rbd_fast_and_scatter(tmp_path, client):
    sw = sweep(tmp_path, 'design = "lhs"\nsamples = 32\nseed = 5')
    out = tmp_path / "out"
    run_sweep(sw, out, client, run_fn=SyntheticRun(), metrics_fn=LinearResponse({"a": 4.0, "b": 1.0}))
    res = analyze_sweep(out, metrics=["y"])
    t = res.tables["rbd_fast_indices.csv"].set_index("parameter")
    assert t.loc["a", "S1"] == pytest.approx(16 / 17, abs=0.1)
    assert t.loc["b", "S1"] < 0.2
    assert (out / "analysis" / "scatter_y.png").is_file()


def test_analyze_errors(tmp_path):
    with pytest.raises(OutputError, match=r"manifest\.json: no such file"):
        analyze_sweep(tmp_path)


def test_point_means_average_replicates():
    from tme_sim.sweep.analyze import point_means

    df = pd.DataFrame(
        {
            "point": [0, 0, 1, 1, 2],
            "status": ["done", "done", "done", "failed", "failed"],
            "y": [1.0, 3.0, 5.0, 9.0, 1.0],
        }
    )
    m = point_means(df, 3, ["y"])
    assert m["y"].iloc[0] == 2.0 and m["y"].iloc[1] == 5.0 and np.isnan(m["y"].iloc[2])
