"""The `tme` command end to end: run, info, plot, validate, one-line errors with exit 2."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPHEROID = ROOT / "tme_sim" / "scenarios" / "spheroid.toml"
SMALL = [
    "--set", 'domain.size=["300 um", "300 um"]',
    "--set", 'initial_cells.0.center=["150 um", "150 um"]',
    "--set", "initial_cells.0.radius=60 um",
    "--set", "time.diffusion_dt=0.1 min",
    "--set", "output.interval=20 min",
]  # fmt: skip


def tme(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "tme_sim", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run.h5"
    res = tme("run", SPHEROID, "--out", out, "--duration", "1h", "-q", "--plot", *SMALL)
    assert res.returncode == 0, res.stderr
    return out, res


def test_run_writes_output_and_figures(run_output):
    out, res = run_output
    assert out.exists()
    assert (out.parent / "run_snapshot_last_oxygen.png").stat().st_size > 10_000
    assert (out.parent / "run_population.png").exists()
    assert f"wrote {out}" in res.stdout


def test_info_describes_the_run(run_output):
    res = tme("info", run_output[0])
    assert res.returncode == 0
    assert "complete (4 snapshots, last at 60 min)" in res.stdout
    assert "tumor" in res.stdout


def test_plot_with_movie_and_colour_by_column(run_output, tmp_path):
    res = tme("plot", run_output[0], "--movie", "--color-by", "cycle_rate", "--out-dir", tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run_oxygen_by-cycle_rate.gif").stat().st_size > 1000


def test_existing_output_is_not_overwritten_without_force(run_output):
    out = run_output[0]
    before = out.stat().st_mtime_ns
    res = tme("run", SPHEROID, "--out", out, "--duration", "6min", "-q", *SMALL)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and "--force" in res.stderr
    assert out.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "missing.toml"], "missing.toml: no such file"),
        (["run", SPHEROID, "--set", "domain.dx=20"], "domain.dx: missing unit"),
        (["run", SPHEROID, "--set", "cell_types.tumor.speed=1 um/min"], "cell_types.tumor.speed: unknown key"),
        (["run", SPHEROID, "--duration", "5 parsecs"], "--duration"),
        (["run", SPHEROID, "--set", "substrates.nonsense.initial=1 mM"], "substrates.nonsense"),
        (["validate", SPHEROID, "--set", 'domain.size=["1010 um", "1000 um"]'], "whole number of voxels"),
        (["info", "nothing.h5"], "nothing.h5: no such file"),
        (["info", SPHEROID], "not a readable HDF5 file"),
    ],
)
def test_expected_mistakes_give_one_line_errors_and_exit_2(args, fragment, tmp_path):
    res = tme(*args, "--out", tmp_path / "x.h5") if args[0] == "run" else tme(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "x.h5").exists()


def test_validate_accepts_shipped_scenarios():
    for name in ("spheroid.toml", "spheroid_3d.toml"):
        res = tme("validate", ROOT / "tme_sim" / "scenarios" / name)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("ok:")
