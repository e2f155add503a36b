"""``tme sweep --backend slurm`` against a real single-node SLURM started on localhost.

The session fixture installs SLURM if needed (``install_slurm.sh``; ``.ci/run`` calls it
beforehand), starts munged/slurmctld/slurmd under a temporary folder and stops them by PID at
the end. Off Debian or without root the test skips, saying why; with ``CI=true`` it fails
instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPHEROID = ROOT / "tme_sim" / "scenarios" / "spheroid.toml"

_spec = importlib.util.spec_from_file_location("tme_slurm_local", HERE / "slurm_local.py")
slurm_local = importlib.util.module_from_spec(_spec)
sys.modules["tme_slurm_local"] = slurm_local
_spec.loader.exec_module(slurm_local)

IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(reason: str) -> None:
    msg = f"local SLURM unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: the SLURM test must run)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory):
    problem = slurm_local.environment_problem()
    if problem:
        _unavailable(problem)
    try:
        slurm_local.ensure_installed()
    except Exception as exc:
        _unavailable(str(exc))
    root = tmp_path_factory.mktemp("slurm")
    try:
        s = slurm_local.start(root, cpus=2)
    except Exception as exc:
        _unavailable(f"daemons did not start: {exc}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(s.conf)
    try:
        yield s
    finally:
        slurm_local.stop(s)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        for pid_file in s.pid_files():
            assert not pid_file.exists()


SWEEP = f"""
scenario = "{SPHEROID.as_posix()}"
design = "list"
replicates = 1
seed = 5
duration = "6 min"
metrics = ["final_cells", "tumor_auc", "events"]

[fixed]
"domain.size" = ["300 um", "300 um"]
"initial_cells.0.center" = ["150 um", "150 um"]
"initial_cells.0.radius" = "40 um"
"time.diffusion_dt" = "0.1 min"
"output.interval" = "6 min"

[[points]]
"cell_types.tumor.cycle.entry_rate" = "0.003 1/min"
[[points]]
"cell_types.tumor.cycle.entry_rate" = "0.03 1/min"
[[points]]
"cell_types.tumor.cycle.entry_rate" = "0.3 1/min"
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_sweep_on_local_slurm(local_slurm, tmp_path, monkeypatch):
    from tme_sim.cli.sweep import sweep_command
    from tme_sim.io import read_attrs

    assert local_slurm.node_state() == "idle"
    monkeypatch.chdir(ROOT)  # workers start in the driver's directory
    sf = tmp_path / "slurm.toml"
    sf.write_text(SWEEP, encoding="utf-8")
    out = tmp_path / "sweep"
    app = typer.Typer()
    app.command("sweep")(sweep_command)
    app.command("other")(lambda: None)
    args = [
        "sweep",
        str(sf),
        "--backend",
        "slurm",
        "--workers",
        "2",
        "--cores",
        "1",
        "--memory",
        "1GiB",
        "--walltime",
        "00:15:00",
        "--out",
        str(out),
        "--no-progress",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception, _logs(local_slurm, out))
    assert "3 runs: done 3, skipped 0, failed 0" in res.output

    df = pd.read_csv(out / "summary.csv", dtype={"job_id": str})
    assert len(df) == 3 and set(df["status"]) == {"done"}
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "p0000_r00.h5",
        "p0001_r00.h5",
        "p0002_r00.h5",
    ]
    for _, row in df.iterrows():
        attrs = read_attrs(out / row["path"])
        assert attrs["complete"] is True and attrs["seed"] == row["seed"]
        assert row["final_tumor"] > 0 and row["tumor_auc"] > 0
    # every run ran inside a SLURM batch job, and the job logs went to the sweep folder
    assert df["job_id"].str.fullmatch(r"\d+").all(), df["job_id"].tolist()
    assert 1 <= df["job_id"].nunique() <= 2
    assert any((out / "logs").iterdir())
    # the cluster's jobs are cancelled when the sweep ends
    import time

    deadline = time.monotonic() + 30
    while local_slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert local_slurm.jobs() == []

    # the same file resumes with nothing to do (on the local backend: the sweep file is portable)
    res = CliRunner().invoke(app, ["sweep", str(sf), "--workers", "1", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0 and "3 runs: done 0, skipped 3, failed 0" in res.output, res.output


def _logs(s, out: Path) -> str:
    parts = [f"jobs: {s.jobs()}", f"node: {s.node_state()}"]
    for f in sorted((out / "logs").glob("*"))[-4:] if (out / "logs").exists() else []:
        parts.append(f"{f.name}: {f.read_text()[-1500:]}")
    log = s.root / "log" / "slurmctld.log"
    if log.exists():
        parts.append("slurmctld: " + log.read_text()[-1500:])
    return "\n".join(parts)
