"""Cluster set-up: jobqueue settings from CLI / dask config, joining a scheduler, example sweeps."""

from __future__ import annotations

import sys
from pathlib import Path

import dask
import pytest

from tme_sim.errors import ConfigError
from tme_sim.sweep.cluster import ClusterOptions, check_options, job_script, jobqueue_kwargs, open_client

ROOT = Path(__file__).resolve().parents[1]


def test_slurm_job_script_uses_cli_then_config():
    with dask.config.set({"jobqueue.slurm.queue": "site-default", "jobqueue.slurm.account": "lab42"}):
        opts = ClusterOptions(backend="slurm", queue="short", walltime="01:40:00", cores=4, memory="8GiB")
        script = job_script(opts)
    assert "#SBATCH -p short" in script  # the CLI wins over the config
    assert "#SBATCH -A lab42" in script  # the config fills what the CLI leaves out
    assert "#SBATCH -t 01:40:00" in script and "#SBATCH --cpus-per-task=4" in script
    assert sys.executable in script  # workers run the driver's (virtualenv) python
    assert "export PYTHONPATH=" in script and "--nworkers 4" in script and "--nthreads 1" in script
    # workers retire before the walltime so that their jobs are replaced without failures
    assert "--lifetime 5400s --lifetime-stagger 150s" in script.replace("\\\n", "")


def test_walltime_parsing():
    from tme_sim.sweep.cluster import lifetime_args, walltime_seconds

    assert walltime_seconds("01:30:00") == 5400 and walltime_seconds("2-00:00:00") == 172800
    assert walltime_seconds("45") == 2700 and walltime_seconds("10:30") == 630
    assert walltime_seconds("soon") is None
    assert lifetime_args("00:05:00") == []  # too short to leave a margin
    assert lifetime_args("04:00:00") == ["--lifetime", "12960s", "--lifetime-stagger", "360s"]


def test_pbs_job_script_and_environment_settings(monkeypatch):
    monkeypatch.setenv("DASK_JOBQUEUE__PBS__QUEUE", "workq")
    dask.config.refresh()
    try:
        script = job_script(ClusterOptions(backend="pbs", account="proj7", cores=2, memory="4GiB"))
    finally:
        monkeypatch.delenv("DASK_JOBQUEUE__PBS__QUEUE")
        dask.config.refresh()
    assert "#PBS -q workq" in script and "#PBS -A proj7" in script
    assert "ncpus=2" in script and sys.executable in script


def test_fallbacks_and_option_checks():
    kw = jobqueue_kwargs(ClusterOptions(backend="slurm"))
    assert kw["cores"] >= 1 and kw["memory"] and kw["processes"] == kw["cores"]
    for bad, where in [
        (ClusterOptions(backend="lsf"), "--backend"),
        (ClusterOptions(workers=0), "--workers"),
        (ClusterOptions(backend="slurm", scheduler="tcp://x:1"), "--scheduler"),
        (ClusterOptions(queue="q"), "--queue"),
        (ClusterOptions(scheduler="tcp://x:1", workers=2), "--workers"),
    ]:
        with pytest.raises(ConfigError, match=where):
            check_options(bad)


def test_join_existing_scheduler():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None, silence_logs=50) as cluster,
        open_client(ClusterOptions(scheduler=cluster.scheduler_address)) as client,
    ):
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert client.scheduler.address == cluster.scheduler_address
    with (
        pytest.raises(ConfigError, match="--scheduler: cannot reach"),
        open_client(ClusterOptions(scheduler="tcp://127.0.0.1:9"), connect_timeout="1s"),
    ):
        pass


@pytest.mark.parametrize(
    "name", ["spheroid_grid.toml", "spheroid_morris.toml", "tumor_immune_lhs.toml", "flagship_morris.toml"]
)
def test_example_sweeps_are_valid(name):
    from tme_sim.sweep.config import load_sweep
    from tme_sim.sweep.design import build_design, plan_runs

    sw = load_sweep(ROOT / "tme_sim" / "scenarios" / "sweeps" / name)
    assert len(plan_runs(sw, build_design(sw))) > 10
