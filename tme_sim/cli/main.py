"""The ``tme`` command line (typer).

Every expected mistake (a :class:`tme_sim.errors.TMEError`) prints ``error: <one line>`` on
stderr and exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="tme",
    help="tme-sim: agent-based tumor-microenvironment simulations with Boolean and neural intracellular models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = {"on": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _DEBUG["on"] = debug


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output HDF5 file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the scenario's).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a scenario key: KEY=VALUE.")] = None,
    duration: Annotated[str | None, typer.Option(help="Simulated duration, e.g. 5d, 12h, '90 min'.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run from its checkpoint.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write PNG figures next to the output.")] = False,
) -> None:
    """Run a scenario and write one HDF5 file (and optionally its figures)."""
    from tme_sim.config import parse_set_options
    from tme_sim.runner import run_scenario

    path = run_scenario(
        scenario,
        out,
        seed=seed,
        overrides=parse_set_options(set_),
        duration=duration,
        force=force,
        progress=not quiet,
        resume=resume,
    )
    typer.echo(f"wrote {path}")
    if plot:
        from tme_sim.plotting import plot_run

        for p in plot_run(path):
            typer.echo(f"wrote {p}")


@app.command()
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a scenario key: KEY=VALUE.")] = None,
) -> None:
    """Check a scenario (schema, units, substrates, cell types, networks) without running it."""
    from tme_sim.config import load_scenario, parse_set_options
    from tme_sim.runner import build_scenario_model

    sc = load_scenario(scenario, parse_set_options(set_))
    model = build_scenario_model(sc)
    typer.echo(
        f"ok: {sc.name}: {sc.domain.dim}D {' x '.join(f'{s:g}' for s in sc.domain.size)} um, "
        f"{len(model.substrate_names)} substrates, cell types {', '.join(model.type_names)}, "
        f"{model.store.n} initial cells, duration {sc.duration:g} min"
    )


@app.command()
def info(path: Annotated[Path, typer.Argument(help="An output HDF5 file.")]) -> None:
    """Describe an output file: scenario, snapshots, cell counts, completeness."""
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
) -> None:
    """PNG snapshots of cells over a field, population curves, and optionally a GIF."""
    from tme_sim.plotting import plot_run

    for p in plot_run(path, field=field, color_by=color_by, snapshots=snapshot, movie=movie, out_dir=out_dir):
        typer.echo(f"wrote {p}")


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Output files, or LABEL=a.h5,b.h5 for replicate runs of one arm.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Figure file (.png/.pdf/.svg); the table goes beside it as .csv.")
    ],
    cell_type: Annotated[str, typer.Option(help="Type whose polarization is compared.")] = "macrophage",
    tumor_type: Annotated[str, typer.Option(help="Type counted as tumor burden.")] = "tumor",
) -> None:
    """Compare runs: polarization over time, tumor and immune outcomes (one figure + a CSV table)."""
    from tme_sim.compare import compare as compare_runs

    fig, table = compare_runs(runs, out, cell_type=cell_type, tumor_type=tumor_type)
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3g}"))
    typer.echo(f"wrote {fig}\nwrote {fig.with_suffix('.csv')}")


def _mount_subcommands() -> None:
    """Mount the sub-commands that live in their own packages (their heavy imports stay lazy)."""
    from tme_sim.cli.drugs import drugs_app
    from tme_sim.cli.sweep import analyze_command, sweep_command
    from tme_sim.cli.train import train_app

    app.add_typer(train_app, name="train", help="Train and cross-validate neural intracellular surrogates.")
    app.command(name="sweep")(sweep_command)
    app.command(name="analyze")(analyze_command)
    app.add_typer(drugs_app, name="drugs", help="Drug libraries, dose-matrix screens and toxicity.")


_mount_subcommands()


def main() -> None:
    """Console-script entry point with one-line errors and exit status 2 for expected mistakes."""
    from tme_sim.errors import TMEError

    debug = "--debug" in sys.argv[1:] or os.environ.get("TME_DEBUG") == "1"
    try:
        app(standalone_mode=False)
    except TMEError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
