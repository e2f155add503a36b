"""The ``tme`` command line (typer).

Every expected mistake — a :class:`tme_sim.errors.TMEError` or a usage mistake (unknown option,
missing argument, bad value) — prints ``error: <one line>`` on stderr and exits with status 2;
``--debug`` shows the traceback instead. ``--help`` and ``--version`` exit 0; Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tme_sim import __version__

app = typer.Typer(
    name="tme",
    help="tme-sim: agent-based tumor-microenvironment simulations with Boolean and neural intracellular models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = {"on": False}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tme-sim {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    _DEBUG["on"] = debug


def _allow_outside(allow: bool) -> None:
    """``--allow-outside-paths``: lift the confinement of input files (see :mod:`tme_sim.paths`)."""
    if allow:
        os.environ["TME_ALLOW_OUTSIDE_PATHS"] = "1"


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario TOML file, or the name of a shipped one (tumor_immune).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output HDF5 file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the scenario's).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a scenario key: KEY=VALUE.")] = None,
    duration: Annotated[str | None, typer.Option(help="Simulated duration, e.g. 5d, 12h, '90 min'.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run from its checkpoint.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write PNG figures next to the output.")] = False,
    view: Annotated[
        bool, typer.Option("--view", help="Serve the running simulation in the browser (tme view's page, live).")
    ] = False,
    port: Annotated[int, typer.Option(help="Port of --view's page (0 = any free port).", min=0, max=65535)] = 5006,
    show: Annotated[bool, typer.Option("--show/--no-show", help="With --view: open a browser tab.")] = False,
    allow_outside_paths: Annotated[
        bool, typer.Option("--allow-outside-paths", help="Allow input files outside the scenario's folder.")
    ] = False,
) -> None:
    """Run a scenario and write one HDF5 file (and optionally its figures).

    Ctrl-C (or SIGTERM) stops after the current step: the file keeps every snapshot written so
    far and a checkpoint is saved, so ``--resume`` continues the run.
    """
    from tme_sim.config import parse_set_options
    from tme_sim.runner import run_scenario

    _allow_outside(allow_outside_paths)
    extra = []
    live = None
    if view:
        from tme_sim.view.live import LiveObserver, LiveSource
        from tme_sim.view.server import ViewServer

        live = LiveSource()
        extra.append(LiveObserver(live))
        server = ViewServer(live, port=port)
        server.start_background()
        typer.echo(f"view: {server.url}  (live; Ctrl-C stops the run, then again to stop serving)")
        if show:
            server.open_browser()
    from tme_sim.errors import RunInterrupted

    try:
        path = run_scenario(
            scenario,
            out,
            seed=seed,
            overrides=parse_set_options(set_),
            duration=duration,
            force=force,
            progress=not quiet,
            resume=resume,
            extra_observers=extra,
        )
    except BaseException as exc:
        if live is None:
            raise
        state = f"stopped: {exc}" if isinstance(exc, RunInterrupted) else f"failed: {exc.__class__.__name__}"
        live.finish(state)
        if isinstance(exc, RunInterrupted) and getattr(exc, "signal_name", None) == "SIGINT":
            typer.echo(f"run stopped; still serving {server.url} — Ctrl-C to stop", err=True)
            try:
                server.wait()
            except KeyboardInterrupt:
                pass
        server.stop()
        raise
    typer.echo(f"wrote {path}")
    if plot:
        from tme_sim.plotting import plot_run

        for p in plot_run(path, progress=not quiet):
            typer.echo(f"wrote {p}")
    if live is not None:
        typer.echo(f"run finished; still serving {server.url} — Ctrl-C to stop")
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        server.stop()


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="Scenario TOML file, or the name of a shipped one.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a scenario key: KEY=VALUE.")] = None,
    allow_outside_paths: Annotated[
        bool, typer.Option("--allow-outside-paths", help="Allow input files outside the scenario's folder.")
    ] = False,
) -> None:
    """Check a scenario (schema, units, substrates, cell types, networks) without running it.

    Lists every problem found, one per line, with a "did you mean" for misspelt keys and choices.
    """
    _allow_outside(allow_outside_paths)
    from tme_sim.config import load_scenario, parse_set_options
    from tme_sim.errors import TMEError
    from tme_sim.runner import build_scenario_model

    try:
        sc = load_scenario(scenario, parse_set_options(set_))
        model = build_scenario_model(sc)
    except TMEError as exc:
        if len(exc.details) > 1:
            for line in exc.details:
                typer.echo(f"error: {line}", err=True)
            typer.echo(f"{len(exc.details)} errors", err=True)
            raise typer.Exit(2) from None
        raise
    typer.echo(
        f"ok: {sc.name}: {sc.domain.dim}D {' x '.join(f'{s:g}' for s in sc.domain.size)} um, "
        f"{len(model.substrate_names)} substrates, cell types {', '.join(model.type_names)}, "
        f"{model.store.n} initial cells, duration {sc.duration:g} min"
    )


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="An output HDF5 file, a surrogate or a drug-response artifact (.pt).")],
) -> None:
    """Describe an output file (scenario, snapshots, cell counts, completeness) or an artifact (.pt:
    a surrogate's recipe, training command and cross-validation table, or a drug-response model's)."""
    if path.suffix == ".pt":
        from tme_sim.training.viability_train import describe_drug_artifact, is_drug_artifact

        if is_drug_artifact(path):
            typer.echo(describe_drug_artifact(path))
            return
        from tme_sim.intracellular.neural.artifact import describe_artifact

        typer.echo(describe_artifact(path))
        return
    from tme_sim.io import describe

    typer.echo(describe(path))


@app.command()
def plot(
    path: Annotated[Path, typer.Argument(help="An output HDF5 file.")],
    field: Annotated[str | None, typer.Option(help="Field drawn under the cells (default: oxygen).")] = None,
    color_by: Annotated[str, typer.Option(help="Colour cells by 'type' or a cell column (e.g. pdl1).")] = "type",
    snapshot: Annotated[list[int] | None, typer.Option(help="Snapshot index (repeatable; default last).")] = None,
    movie: Annotated[bool, typer.Option("--movie", help="Also write an animated GIF of all snapshots.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder for the figures.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """PNG snapshots of cells over a field, population curves, and optionally a GIF.

    File names carry the field and colouring (``run_snapshot_last_IFNG.png``), so figures of
    different fields never overwrite each other.
    """
    from tme_sim.plotting import plot_run

    for p in plot_run(
        path, field=field, color_by=color_by, snapshots=snapshot, movie=movie, out_dir=out_dir, progress=not quiet
    ):
        typer.echo(f"wrote {p}")


@app.command()
def view(
    path: Annotated[Path, typer.Argument(help="An output HDF5 file.")],
    port: Annotated[int, typer.Option(help="Port to serve on (0 = any free port).", min=0, max=65535)] = 5006,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a browser tab.")] = True,
) -> None:
    """Explore a run in the browser: time slider, cells over any field, curves, click a cell for its history."""
    from tme_sim.view.data import FileSource
    from tme_sim.view.server import ViewServer

    source = FileSource(path)
    server = ViewServer(source, port=port)
    server.start_background()
    typer.echo(f"view: {server.url}  (Ctrl-C to stop)")
    if show:
        server.open_browser()
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    server.stop()


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="An output HDF5 file.")],
    to: Annotated[str, typer.Option("--to", help="Format: anndata (.h5ad), vtk (ParaView .pvd), csv.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output file (anndata) or folder (vtk, csv); default beside FILE."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """Export a run: AnnData time series, VTK for ParaView, or tidy CSV tables."""
    from tme_sim.io.export import export as export_run

    for p in export_run(path, to, out, force=force):
        typer.echo(f"wrote {p}")


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Output files, or LABEL=a.h5,b.h5 for replicate runs of one arm.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Figure file (.png/.pdf/.svg); the table goes beside it as .csv.")
    ],
    cell_type: Annotated[str, typer.Option(help="Type whose polarization is compared.")] = "macrophage",
    tumor_type: Annotated[str, typer.Option(help="Type counted as tumor burden.")] = "tumor",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Compare runs: polarization over time, tumor and immune outcomes (one figure + a CSV table)."""
    from tme_sim.compare import compare as compare_runs

    fig, table = compare_runs(runs, out, cell_type=cell_type, tumor_type=tumor_type, progress=not quiet)
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3g}"))
    typer.echo(f"wrote {fig}\nwrote {fig.with_suffix('.csv')}")


def _mount_subcommands() -> None:
    """Mount the sub-commands that live in their own packages (their heavy imports stay lazy)."""
    from tme_sim.cli.drugs import drugs_app
    from tme_sim.cli.explain import explain_command
    from tme_sim.cli.importers import import_app
    from tme_sim.cli.network import network_app
    from tme_sim.cli.scenarios import scenarios_app
    from tme_sim.cli.sweep import analyze_command, sweep_command
    from tme_sim.cli.train import train_app

    app.add_typer(train_app, name="train", help="Train and cross-validate neural intracellular surrogates.")
    app.command(name="explain")(explain_command)
    app.command(name="sweep")(sweep_command)
    app.command(name="analyze")(analyze_command)
    app.add_typer(drugs_app, name="drugs", help="Drug libraries, dose-matrix screens and toxicity.")
    app.add_typer(scenarios_app, name="scenarios", help="List the shipped scenarios or copy one to edit.")
    app.add_typer(import_app, name="import", help="Translate other simulators' projects (PhysiCell) into scenarios.")
    app.add_typer(network_app, name="network", help="Run a MaBoSS network on its own (state probabilities over time).")


_mount_subcommands()


def _usage_line(exc: Exception) -> str:
    """A click/typer usage error as one line: the message and where to get help."""
    msg = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {msg}{hint}"


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(ClickException, Exit, Abort) classes of typer's bundled click and of click itself."""
    errors: list[type] = []
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    try:  # typer >= 0.17 ships its own copy of click
        from typer._click import exceptions as tce

        errors.append(tce.ClickException)
        exits += [getattr(tce, "Exit", typer.Exit)]
        aborts += [getattr(tce, "Abort", typer.Abort)]
    except ImportError:  # pragma: no cover - older typer
        pass
    try:
        import click

        errors.append(click.exceptions.ClickException)
        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors), tuple(exits), tuple(aborts)


def _exit(code: int) -> None:
    """Exit with ``code``; after a failed HDF5 write without HDF5's atexit close, which would retry
    the failed flush and can crash the process (see :mod:`tme_sim.io`)."""
    io = sys.modules.get("tme_sim.io")
    if io is not None and io.hdf5_poisoned():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors and exit status 2 for expected mistakes."""
    from tme_sim.errors import RunInterrupted, TMEError

    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args or os.environ.get("TME_DEBUG") == "1"
    click_errors, click_exits, click_aborts = _click_exception_types()
    try:
        rc = app(args=args, prog_name="tme", standalone_mode=False)
        if isinstance(rc, int) and rc != 0:  # a typer.Exit(code) inside a command is returned, not raised
            sys.exit(rc)
    except RunInterrupted as exc:
        typer.echo(f"interrupted: {exc}", err=True)
        _exit(130)
    except TMEError as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        _exit(2)
    except click_exits as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except click_aborts:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except click_errors as exc:
        if debug:
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `tme` or `tme drugs`: the help it asked for
            typer.echo(exc.format_message())
            sys.exit(0)
        typer.echo(_usage_line(exc), err=True)
        sys.exit(2)
    except BrokenPipeError:  # `tme info x.h5 | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
