"""Typer command functions ``tme sweep`` and ``tme analyze``.

Mounted into the ``tme`` application by the main CLI::

    from tme_sim.cli.sweep import analyze_command, sweep_command
    app.command("sweep")(sweep_command)
    app.command("analyze")(analyze_command)

Expected mistakes raise :class:`~tme_sim.errors.TMEError` (the main CLI prints ``error: ...`` and
exits with status 2); a sweep with failed runs exits with status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tme_sim.sweep.cluster import backend_names  # stdlib only: keeps `tme --help` fast


def sweep_command(
    sweep_file: Annotated[
        Path, typer.Argument(help="Sweep file (TOML), or a shipped one: sweeps/spheroid_grid.toml.", show_default=False)
    ],
    backend: Annotated[str, typer.Option(help=f"Where to run: {' | '.join(backend_names())}.")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Join an existing dask scheduler, e.g. tcp://host:8786.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (local: default = CPU count; slurm/pbs: default = one job)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep folder (default outputs/sweeps/<name>).")] = None,
    queue: Annotated[str | None, typer.Option(help="slurm/pbs: partition or queue.")] = None,
    account: Annotated[str | None, typer.Option(help="slurm/pbs: account / project to charge.")] = None,
    walltime: Annotated[str | None, typer.Option(help="slurm/pbs: walltime of each worker job, e.g. 02:00:00.")] = None,
    cores: Annotated[int | None, typer.Option(help="slurm/pbs: cores per job (one worker process per core).")] = None,
    memory: Annotated[str | None, typer.Option(help="slurm/pbs: memory per job, e.g. 8GiB.")] = None,
    interface: Annotated[
        str | None, typer.Option(help="slurm/pbs: network interface of the workers, e.g. ib0.")
    ] = None,
    job_extra: Annotated[
        list[str] | None, typer.Option("--job-extra", help="slurm/pbs: extra batch directive (repeatable).")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate, print the plan (and the job script); run nothing.")
    ] = False,
) -> None:
    """Run a parameter sweep (one simulation per design point and replicate) on dask."""
    # heavy imports (scipy.stats, SALib, dask) only when a sweep really runs
    from tme_sim.sweep.cluster import ClusterOptions, check_options, describe, job_script, open_client
    from tme_sim.sweep.config import load_sweep
    from tme_sim.sweep.design import build_design, plan_runs
    from tme_sim.sweep.execute import LOGS_DIR, check_out_dir, default_out_dir, run_sweep

    opts = ClusterOptions(
        backend=backend,
        scheduler=scheduler,
        workers=workers,
        queue=queue,
        account=account,
        walltime=walltime,
        cores=cores,
        memory=memory,
        interface=interface,
        job_extra=list(job_extra or []),
    )
    check_options(opts)
    from tme_sim.scenarios import resolve

    sweep = load_sweep(resolve(sweep_file))
    out_dir = out if out is not None else default_out_dir(sweep)
    design = build_design(sweep)
    runs = plan_runs(sweep, design)
    n_done = check_out_dir(sweep, out_dir, runs)
    typer.echo(
        f"sweep {sweep.name}: design {sweep.design}, {design.n_points} points x {sweep.replicates} "
        f"replicates = {len(runs)} runs ({n_done} already complete) -> {out_dir}"
    )
    if dry_run:
        if opts.backend in ("slurm", "pbs"):
            typer.echo(job_script(opts))
        return
    if opts.backend in ("slurm", "pbs") and opts.scheduler is None:
        opts.log_directory = str(Path(out_dir) / LOGS_DIR)  # job stdout/stderr, not the cwd
    with open_client(opts) as client:
        typer.echo(describe(client))
        outcome = run_sweep(sweep, out_dir, client, progress=progress, backend=opts.scheduler or opts.backend)
    c = outcome.counts
    typer.echo(
        f"{outcome.n_runs} runs: done {c.get('done', 0)}, skipped {c.get('skipped', 0)}, "
        f"failed {c.get('failed', 0)} -> {out_dir / 'summary.csv'}"
    )
    if not outcome.ok:
        failed = outcome.summary[outcome.summary["status"] != "done"]
        failed = failed[failed["status"] != "skipped"]
        for _, row in failed.head(5).iterrows():
            typer.echo(f"  {row['run_id']}: {row['status']}: {row['error']}", err=True)
        raise typer.Exit(1)


def analyze_command(
    sweep_dir: Annotated[Path, typer.Argument(help="Sweep folder (with manifest.json and summary.csv).")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write tables and plots (default SWEEP_DIR/analysis).")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Analyse only this summary column (repeatable).")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples for confidence intervals.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Sensitivity indices (Sobol, Morris, RBD-FAST via SALib) and response plots of a sweep."""
    from rich.console import Console

    from tme_sim.sweep.analyze import analyze_sweep

    with Console(stderr=True).status(f"analysing {sweep_dir} (indices, bootstrap, plots)…"):
        res = analyze_sweep(
            sweep_dir, out, metrics=list(metric) if metric else None, num_resamples=resamples, seed=seed
        )
    for note in res.notes:
        typer.echo(f"note: {note}")
    for f in res.files:
        typer.echo(str(f))
