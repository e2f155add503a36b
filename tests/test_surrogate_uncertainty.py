"""Bootstrap-ensemble prediction intervals: calibrated 80 % intervals cover ~80 % of held-out values."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from tme_sim.errors import ConfigError
from tme_sim.training.data import Dataset
from tme_sim.training.uncertainty import conformal_quantile, ensemble_interval, interval_cv


def noisy_linear(n=200, n_in=6, n_out=5, noise=0.2, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, n_in)) < 0.4).astype(np.float32)
    y = x @ rng.normal(size=(n_in, n_out)) + noise * rng.standard_normal((n, n_out))
    return Dataset(x, y, [f"i{k}" for k in range(n_in)], [f"o{k}" for k in range(n_out)], [f"c{k}" for k in range(n)])


def test_conformal_quantile_finite_sample():
    r = np.arange(1, 11, dtype=float)[:, None]  # 10 residuals
    assert conformal_quantile(r, 0.8)[0] == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(r, 0.95)[0] == 10.0  # capped at the largest


@pytest.mark.parametrize("seed", [0, 1])
def test_calibrated_intervals_cover_near_nominal_ensemble_spread_does_not(seed):
    ds = noisy_linear(seed=seed)
    rep = interval_cv(ds, None, "ridge", None, members=10, folds=5, seed=seed, level=0.8)
    assert 0.7 <= rep["calibrated"]["coverage"] <= 0.9
    assert rep["ensemble"]["coverage"] < 0.6  # model disagreement alone misses the noise
    rep90 = interval_cv(ds, None, "ridge", None, members=10, folds=5, seed=seed, level=0.9)
    assert rep90["calibrated"]["mean_width"] > rep["calibrated"]["mean_width"]
    assert rep90["calibrated"]["coverage"] > rep["calibrated"]["coverage"]


def test_bad_settings_are_config_errors():
    ds = noisy_linear(n=20)
    for kw in ({"members": 1}, {"level": 1.0}, {"folds": 1}):
        with pytest.raises(ConfigError):
            interval_cv(ds, None, "ridge", None, **kw)


def test_intervals_command_mlp(tmp_path):
    from typer.testing import CliRunner

    from tme_sim.cli.train import train_app

    ds = noisy_linear(n=40, n_out=2)
    lines = ["cond," + ",".join(f"in:{n}" for n in ds.input_names) + "," + ",".join(ds.output_names)]
    lines += [
        ",".join([c, *(f"{v:g}" for v in ds.inputs[i]), *(f"{v:.4f}" for v in ds.outputs[i])])
        for i, c in enumerate(ds.condition_names)
    ]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    args = ["intervals", "--data", str(tmp_path / "d.csv"), "--model", "mlp", "--members", "3", "--folds", "3"]
    args += ["--epochs", "30", "--seeds", "0,1", "--out-dir", str(tmp_path / "iv"), "-q", "--at", "i0=1"]
    r = CliRunner().invoke(train_app, args)
    assert r.exit_code == 0, r.output
    assert "calibrated (J+aB)" in r.output and "calibrated coverage over seeds [0, 1]" in r.output
    rep = json.loads((tmp_path / "iv" / "intervals_report.json").read_text())
    assert len(rep) == 2 and rep[0]["model"] == "mlp" and 0 <= rep[0]["calibrated"]["coverage"] <= 1
    at = rep[0]["at"]
    assert at["low"]["o0"] < at["mean"]["o0"] < at["high"]["o0"]
    r = CliRunner().invoke(train_app, [*args[:-2], "--at", "nope=1"])
    assert isinstance(r.exception, ConfigError) and "--at: 'nope'" in str(r.exception)


def test_ensemble_interval_at_new_inputs_covers_fresh_draws():
    ds = noisy_linear(n=300, seed=3)
    truth = np.random.default_rng(3)  # replay noisy_linear's draws to get its true weights
    truth.random((300, ds.inputs.shape[1]))
    w = truth.normal(size=(ds.inputs.shape[1], ds.outputs.shape[1]))
    rng = np.random.default_rng(9)
    x = (rng.random((200, ds.inputs.shape[1])) < 0.4).astype(np.float32)
    y = x @ w + 0.2 * rng.standard_normal((200, ds.outputs.shape[1]))
    mean, lo, hi = ensemble_interval(ds, None, "ridge", None, x, members=10, level=0.8)
    assert mean.shape == lo.shape == hi.shape == y.shape and (hi > lo).all()
    assert 0.7 <= ((y >= lo) & (y <= hi)).mean() <= 0.9
