"""``tme sweep`` / ``tme analyze`` end to end on a LocalCluster with the real simulator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tme_sim.cli.sweep import analyze_command, sweep_command
from tme_sim.errors import ConfigError, TMEError

ROOT = Path(__file__).resolve().parents[1]
SPHEROID = ROOT / "tme_sim" / "scenarios" / "spheroid.toml"

#: a few seconds per run: small domain, coarse diffusion step, a few minutes of biology
TINY = f"""
scenario = "{SPHEROID.as_posix()}"
design = "grid"
replicates = 2
seed = 11
duration = "12 min"
metrics = ["final_cells", "tumor_auc", "kills", "events"]

[fixed]
"domain.size" = ["300 um", "300 um"]
"initial_cells.0.center" = ["150 um", "150 um"]
"initial_cells.0.radius" = "40 um"
"time.diffusion_dt" = "0.1 min"
"output.interval" = "6 min"

[parameters."cell_types.tumor.cycle.entry_rate"]
values = ["0.003 1/min", "0.3 1/min"]
"""


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("sweep")(sweep_command)
    a.command("analyze")(analyze_command)
    return a


def invoke(*args: str):
    return CliRunner().invoke(app(), [str(a) for a in args])


@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        (TINY.replace('design = "grid"', 'design = "grid"\ncolour = "red"'), "colour: unknown key"),
        (TINY.replace('"0.3 1/min"', '"0.3 1/parsec"'), "values[1]: wrong unit"),
        (TINY.replace('"0.3 1/min"', '"0.3 1/blorp"'), "values[1]: unknown unit '1/blorp'"),
        (TINY.replace('"grid"', '"sobolev"'), "design: unknown design 'sobolev'"),
        (
            TINY.replace("cycle.entry_rate", "cycle.entry_speed"),
            "parameters.cell_types.tumor.cycle.entry_speed",
        ),
        (TINY.replace(SPHEROID.as_posix(), "nowhere.toml"), "scenario: no such scenario file"),
    ],
)
def test_bad_sweep_file_writes_nothing(tmp_path, bad, expect):
    sf = tmp_path / "bad.toml"
    sf.write_text(bad, encoding="utf-8")
    out = tmp_path / "out"
    res = invoke("sweep", sf, "--out", out, "--workers", "1", "--no-progress")
    assert isinstance(res.exception, ConfigError), res.output
    msg = str(res.exception)
    assert expect in msg and str(sf) in msg and "\n" not in msg
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_cli_option_errors(tmp_path):
    sf = tmp_path / "s.toml"
    sf.write_text(TINY, encoding="utf-8")
    res = invoke("sweep", sf, "--backend", "lsf", "--out", tmp_path / "o")
    assert isinstance(res.exception, ConfigError) and "--backend" in str(res.exception)
    res = invoke("sweep", sf, "--queue", "short", "--out", tmp_path / "o")
    assert isinstance(res.exception, ConfigError) and "--queue: only for --backend slurm" in str(res.exception)
    assert not (tmp_path / "o").exists()
    res = invoke("sweep", sf, "--dry-run", "--out", tmp_path / "o")
    assert res.exit_code == 0 and "2 points x 2 replicates = 4 runs" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_local_sweep_end_to_end_then_resume_and_analyze(tmp_path):
    from tme_sim.io import read_attrs, read_population

    sf = tmp_path / "tiny.toml"
    sf.write_text(TINY, encoding="utf-8")
    out = tmp_path / "sweep"
    res = invoke("sweep", sf, "--workers", "2", "--out", out, "--no-progress")
    assert res.exit_code == 0, (res.output, res.exception)
    assert "4 runs: done 4, skipped 0, failed 0" in res.output

    df = pd.read_csv(out / "summary.csv")
    assert len(df) == 4 and set(df["status"]) == {"done"}
    files = sorted(p.name for p in (out / "runs").iterdir())
    assert files == ["p0000_r00.h5", "p0000_r01.h5", "p0001_r00.h5", "p0001_r01.h5"]
    for _, row in df.iterrows():
        attrs = read_attrs(out / row["path"])
        assert attrs["complete"] is True and attrs["seed"] == row["seed"]
        pop = read_population(out / row["path"])
        last = pop[pop["time"] == pop["time"].max()]
        assert row["final_tumor"] == last["live"].sum()
        assert row["tumor_auc"] > 0
        assert row["n_division"] >= 0 and row["kills"] == 0
    assert df["seed"].nunique() == 4
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}

    res = invoke("sweep", sf, "--workers", "1", "--out", out, "--no-progress")
    assert res.exit_code == 0 and "4 runs: done 0, skipped 4, failed 0" in res.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == mtimes
    assert pd.read_csv(out / "summary.csv")["final_tumor"].tolist() == df["final_tumor"].tolist()

    res = invoke("analyze", out)
    assert res.exit_code == 0, (res.output, res.exception)
    assert (out / "analysis" / "response_final_tumor.png").is_file()
    assert (out / "analysis" / "response.csv").is_file()


def test_analyze_missing_folder(tmp_path):
    res = invoke("analyze", tmp_path / "nothing")
    assert isinstance(res.exception, TMEError)
