"""``tme train`` command functions (typer), with one-line errors for expected mistakes."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner

from tme_sim.cli.train import train_app
from tme_sim.errors import ConfigError, DataError, OutputError


def csv_data(path, n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 3)) < 0.5).astype(float)
    y = x @ rng.random((3, 2)) + 0.01 * rng.standard_normal((n, 2))
    lines = ["cond,in:a,in:b,in:c,o1,o2"] + [f"c{i}," + ",".join(f"{v:g}" for v in (*x[i], *y[i])) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_mlp_from_csv_writes_artifact_and_report(tmp_path):
    data = csv_data(tmp_path / "d.csv")
    out = tmp_path / "m.pt"
    r = CliRunner().invoke(
        train_app, ["--data", str(data), "--model", "mlp", "--epochs", "50", "--out", str(out), "-q", "--threads", "1"]
    )
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.with_suffix(".json").is_file() and out.with_suffix(".png").is_file()
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["training"]["epochs"] <= 50 and "train_pooled_r" in rep
    r2 = CliRunner().invoke(train_app, ["--data", str(data), "--model", "mlp", "--out", str(out), "-q"])
    assert isinstance(r2.exception, OutputError)


def test_train_errors_are_tme_errors(tmp_path):
    r = CliRunner().invoke(
        train_app, ["--data", str(tmp_path / "nope.csv"), "--model", "mlp", "--out", str(tmp_path / "m.pt"), "-q"]
    )
    assert isinstance(r.exception, DataError) and "nope.csv" in str(r.exception)
    data = csv_data(tmp_path / "d.csv")
    r = CliRunner().invoke(train_app, ["--data", str(data), "--out", str(tmp_path / "m.pt"), "-q"])
    assert isinstance(r.exception, DataError) and "missing network (--network)" in str(r.exception)
    r = CliRunner().invoke(
        train_app, ["--data", str(data), "--model", "transformer", "--out", str(tmp_path / "m.pt"), "-q"]
    )
    assert isinstance(r.exception, ConfigError)


def test_cv_command_prints_table(tmp_path):
    data = csv_data(tmp_path / "d.csv", n=24)
    r = CliRunner().invoke(
        train_app,
        [
            "cv",
            "--data",
            str(data),
            "--models",
            "mlp",
            "--mlp-epochs",
            "20",
            "--folds",
            "3",
            "--seeds",
            "0",
            "--out-dir",
            str(tmp_path / "cv"),
            "-q",
            "--threads",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "ridge" in r.output and "mlp" in r.output and "pooled r" in r.output
    assert (tmp_path / "cv" / "cv_report.json").is_file() and (tmp_path / "cv" / "cv_report.png").is_file()
    r2 = CliRunner().invoke(
        train_app, ["cv-merge", str(tmp_path / "cv" / "cv_report.json"), "--out-dir", str(tmp_path / "merged")]
    )
    assert r2.exit_code == 0, r2.output and "ridge" in r2.output


def test_cv_command_paired_protocol_and_bad_protocol(tmp_path):
    r = CliRunner().invoke(
        train_app, ["cv", "--models", "", "--protocol", "paired", "--seeds", "0", "--out-dir", str(tmp_path), "-q"]
    )
    assert r.exit_code == 0, r.output
    assert "paired protocol" in r.output and "85 predictable of 103" in r.output
    r = CliRunner().invoke(train_app, ["cv", "--models", "", "--protocol", "loo", "--out-dir", str(tmp_path), "-q"])
    assert isinstance(r.exception, ConfigError) and "--protocol" in str(r.exception)


def test_cv_on_any_lembas_folder_drops_unmatched_outputs_and_prints_plain_progress(tmp_path):
    from tests.test_surrogate_sources import write_lembas

    folder = write_lembas(tmp_path / "d", n=12)
    args = ["cv", "--data", str(folder), "--models", "signaling,mlp", "--epochs", "3", "--mlp-epochs", "5"]
    args += ["--folds", "3", "--seeds", "0", "--scramble-seeds", "0", "--out-dir", str(tmp_path / "cv")]
    r = CliRunner().invoke(train_app, args)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert sum("network nodes:" in ln for ln in lines) == 1 and "2 dropped (NOTANODE, ALSO_MISSING)" in r.output
    assert any(ln.startswith("[") and "signaling" in ln and "/" in ln for ln in lines)  # plain progress lines
    rep = json.loads((tmp_path / "cv" / "cv_report.json").read_text())
    assert rep["threads"] == 1  # one torch thread per job by default
    r = CliRunner().invoke(train_app, [*args, "--unmatched", "error"])
    assert isinstance(r.exception, DataError) and "'NOTANODE', 'ALSO_MISSING'" in str(r.exception)
