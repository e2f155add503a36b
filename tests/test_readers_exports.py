"""Readers (tidy tables, exact/nearest time, labels, units), exports, figures, scenario copies,
clean Ctrl-C and default checkpoints."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tme_sim import io
from tme_sim.errors import ConfigError, OutputError
from tme_sim.io.export import export
from tme_sim.runner import run_scenario

SMALL_FLAGSHIP = {
    "domain.size": '["500 um", "500 um"]',
    "initial_cells.0.center": '["250 um", "250 um"]',
    "initial_cells.0.radius": '"150 um"',
    "vessels.exclude_center": '["250 um", "250 um"]',
    "vessels.exclude_radius": '"170 um"',
    "output.interval": '"20 min"',
}


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rx") / "run.h5"
    run_scenario("tumor_immune", out, overrides=SMALL_FLAGSHIP, duration="40 min")
    return out


def test_all_snapshots_as_one_tidy_table(run_file):
    every = io.read_cells(run_file, snapshot=None)
    times = io.snapshot_times(run_file)
    assert list(np.unique(every["snapshot"])) == list(range(len(times)))
    for k in range(len(times)):
        one = io.read_cells(run_file, k)
        part = every[every["snapshot"] == k].reset_index(drop=True)
        pd.testing.assert_frame_equal(one.reset_index(drop=True), part, check_categorical=False)
    assert isinstance(every["type"].dtype, pd.CategoricalDtype)
    assert set(every["phase"].cat.categories) >= {"Ki67-", "Ki67+"}
    assert every.attrs["units"]["x"] == "um" and every.attrs["units"]["volume"] == "um3"


def test_time_is_exact_or_explicitly_nearest(run_file):
    assert float(io.read_cells(run_file, time=20)["time"].iloc[0]) == 20.0
    with pytest.raises(OutputError, match=r"no snapshot at t = 25 min \(nearest: 20 min"):
        io.read_cells(run_file, time=25)
    with pytest.warns(UserWarning, match="using the nearest, t = 20 min"):
        near = io.read_cells(run_file, time=25, nearest=True)
    assert float(near["time"].iloc[0]) == 20.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read_cells(run_file, time=40, nearest=True)  # exact: no warning


def test_cf_units_per_variable_and_old_files(run_file, tmp_path):
    with h5py.File(run_file, "r") as fh:
        assert fh["cells/x"].attrs["units"] == "um"
        assert fh["cells/cycle_rate"].attrs["units"] == "1/min"
        assert fh["events/time"].attrs["units"] == "min"
        assert json.loads(fh["fields/concentration"].attrs["species_units"])["oxygen"] == "mmHg"
    fields = io.read_fields(run_file)
    assert fields["oxygen"].attrs["units"] == "mmHg" and fields["IFNG"].attrs["units"] == "ng/mL"
    assert fields["x"].attrs["units"] == "um"
    old = tmp_path / "old.h5"
    shutil.copy(run_file, old)
    with h5py.File(old, "a") as fh:  # the previous layout: one JSON string in `units`
        conc = fh["fields/concentration"]
        units = conc.attrs["species_units"]
        del conc.attrs["species_units"]
        conc.attrs["units"] = units
    assert io.species_units(old)["oxygen"] == "mmHg"


def test_states_of_all_snapshots(run_file):
    st = io.read_states(run_file, "macrophage", snapshot=None)
    assert {"snapshot", "time"} <= set(st.columns)
    last = io.read_states(run_file, "macrophage")
    k = len(io.snapshot_times(run_file)) - 1
    np.testing.assert_array_equal(st[st["snapshot"] == k].drop(columns=["snapshot", "time"]).to_numpy(),
                                  last.to_numpy())  # fmt: skip
    with pytest.raises(OutputError, match="stored: macrophage"):
        io.read_states(run_file, "tumor")


def test_export_anndata_time_series(run_file, tmp_path):
    anndata = pytest.importorskip("anndata")
    (p,) = export(run_file, "anndata", tmp_path / "a.h5ad")
    a = anndata.read_h5ad(p)
    cells = io.read_cells(run_file, snapshot=None)
    assert a.n_obs == len(cells)
    assert a.obsm["spatial"].shape == (len(cells), 2)
    assert "state_macrophage" in a.obsm
    mac = (a.obs["type"] == "macrophage").to_numpy()
    assert np.isfinite(a.obsm["state_macrophage"].to_numpy()[mac]).all()
    assert np.isnan(a.obsm["state_macrophage"].to_numpy()[~mac]).all()
    assert a.var.loc["volume", "units"] == "um3"
    np.testing.assert_allclose(a[:, "volume"].X.ravel(), cells["volume"].to_numpy(), rtol=1e-6)


def test_export_vtk_and_csv(run_file, tmp_path):
    pvds = export(run_file, "vtk", tmp_path / "v")
    assert {p.name for p in pvds} == {"cells.pvd", "fields.pvd"}
    n = len(io.snapshot_times(run_file))
    assert len(list((tmp_path / "v").glob("cells_*.vtu"))) == n
    vti = (tmp_path / "v" / "fields_0000.vti").read_bytes()
    assert b'WholeExtent="0 25 0 25 0 1"' in vti and b'Name="oxygen"' in vti
    steps = (tmp_path / "v" / "cells.pvd").read_text()
    assert 'timestep="20.0"' in steps or 'timestep="20"' in steps
    files = export(run_file, "csv", tmp_path / "c")
    names = {p.name for p in files}
    assert {"cells.csv", "population.csv", "events.csv", "fields.csv", "units.csv", "states_macrophage.csv"} <= names
    cells = pd.read_csv(tmp_path / "c" / "cells.csv")
    assert len(cells) == len(io.read_cells(run_file, snapshot=None))
    units = pd.read_csv(tmp_path / "c" / "units.csv", keep_default_na=False)
    assert units.set_index(["table", "column"]).loc[("fields", "oxygen"), "units"] == "mmHg"


def test_export_refuses_overwrite_and_unknown_format(run_file, tmp_path):
    export(run_file, "csv", tmp_path / "c")
    with pytest.raises(OutputError, match="exists; use --force"):
        export(run_file, "csv", tmp_path / "c")
    export(run_file, "csv", tmp_path / "c", force=True)
    with pytest.raises(OutputError, match="did you mean 'vtk'"):
        export(run_file, "vtkk", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_figures_fixed_scales_distinct_names_legends(run_file, tmp_path):
    from tme_sim.plotting import field_range, plot_run, plot_snapshot

    a = plot_run(run_file, out_dir=tmp_path)
    b = plot_run(run_file, field="IFNG", out_dir=tmp_path)
    c = plot_run(run_file, field="IFNG", color_by="pdl1", out_dir=tmp_path)
    snaps = [p for p in a + b + c if "snapshot" in p.name]
    assert len({p.name for p in snaps}) == 3  # --field and --color-by never overwrite --plot's figures
    lo, hi = field_range(run_file, "IFNG")
    for k in (0, -1):  # the same colour scale at every snapshot
        fig = plot_snapshot(run_file, k, "IFNG")
        (img,) = fig.axes[0].get_images()
        assert img.get_clim() == (lo, hi)
        assert img.get_cmap().name == "viridis"
        plt.close(fig)
    fig = plot_snapshot(run_file, -1, "IFNG", color_by="pdl1")
    assert len(fig.axes) == 2  # the map and ONE colour bar
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("tumor") for t in labels) and any(t.startswith("IFNG") for t in labels)
    fig.canvas.draw()
    legend_box = fig.legends[0].get_window_extent()
    w, h = fig.canvas.get_width_height()
    assert legend_box.x1 <= w and legend_box.y1 <= h  # inside the canvas: not clipped (GIF frames too)
    plt.close(fig)


def test_scenario_copy_brings_everything_it_references(tmp_path):
    from tme_sim.config import load_scenario
    from tme_sim.config.shipped import copy_shipped

    written = {p.relative_to(tmp_path).as_posix() for p in copy_shipped("drug_combo", tmp_path)}
    expected = {
        "drug_combo.toml",
        "tumor_immune_rules.toml",
        "tumor_immune.toml",
        "drugs.toml",
        "networks/tnf_cellfate.bnd",
        "networks/tnf_cellfate.cfg",
        "models/macrophage_ligand_screen.pt",
    }
    assert expected <= written
    sc = load_scenario(tmp_path / "drug_combo.toml")
    assert sc._source_path.parent == tmp_path.resolve()  # type: ignore[attr-defined]
    (tmp_path / "tumor_immune.toml").write_text("# edited\n" + (tmp_path / "tumor_immune.toml").read_text())
    with pytest.raises(ConfigError, match="differs from the shipped file"):
        copy_shipped("tumor_immune", tmp_path)
    copy_shipped("tumor_immune", tmp_path, force=True)


def test_checkpoints_are_on_by_default():
    from tme_sim.config import load_scenario

    assert load_scenario("spheroid").output.checkpoint_interval == 360.0


def test_ctrl_c_stops_cleanly_with_file_and_checkpoint(tmp_path):
    out = tmp_path / "r.h5"
    args = ["run", "spheroid", "--out", str(out), "--duration", "30 d", "-q", "--set", "output.interval=10 min",
            "--set", 'domain.size=["400 um", "400 um"]', "--set", 'initial_cells.0.center=["200 um", "200 um"]',
            "--set", "initial_cells.0.radius=100 um"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "tme_sim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)  # fmt: skip
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300 and not Path(str(out) + ".ckpt").exists():  # the first default checkpoint
        time.sleep(0.5)  # (the output itself is locked for reading while it is written)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "SystemError" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted: stopped by SIGINT")
    assert not io.read_attrs(out)["complete"]
    n = len(io.snapshot_times(out))
    assert n >= 2 and len(io.read_cells(out, snapshot=None)) > 0
    assert Path(str(out) + ".ckpt").exists()
    again = [*args[:4], "--duration", f"{10 * n + 20} min", "-q", "--resume", *args[7:]]
    res = subprocess.run([sys.executable, "-m", "tme_sim", *again], capture_output=True, text=True, cwd=tmp_path,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert io.read_attrs(out)["complete"]
