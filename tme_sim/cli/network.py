"""``tme network run``: run a MaBoSS network on its own and write its state probabilities over time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

network_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@network_app.command("run")
def run_command(
    bnd: Annotated[Path, typer.Argument(help="The MaBoSS network (.bnd).")],
    cfgs: Annotated[
        list[Path] | None, typer.Argument(help="MaBoSS settings (.cfg), several read in order (later ones override).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the time course (CSV, like MaBoSS's probtraj) here.")
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", "-n", help="Trajectories (default: the .cfg's sample_count, else 10000).")
    ] = None,
    max_time: Annotated[float | None, typer.Option("--max-time", help="Override the .cfg's max_time.")] = None,
    time_tick: Annotated[float | None, typer.Option("--time-tick", help="Override the .cfg's time_tick.")] = None,
    knockout: Annotated[list[str] | None, typer.Option("--ko", help="Node held off (repeatable).")] = None,
    knockin: Annotated[list[str] | None, typer.Option("--ki", help="Node held on (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Simulate a .bnd/.cfg like MaBoSS and print the final-state probabilities (and write the time course)."""
    import numpy as np

    from tme_sim.errors import TMEError
    from tme_sim.intracellular.boolean import load_network
    from tme_sim.intracellular.boolean.probtraj import probability_trajectory

    if out is not None and out.is_dir():
        raise TMEError(f"--out {out} is a folder; give a file name such as probtraj.csv")
    if out is not None and not out.parent.is_dir():
        raise TMEError(f"--out {out}: folder {out.parent} does not exist")
    net = load_network(bnd, list(cfgs) if cfgs else None)
    n = samples if samples is not None else int(net.settings.get("sample_count", 10_000))
    traj = probability_trajectory(
        net, n, np.random.default_rng(seed), max_time=max_time, time_tick=time_tick, knockout=knockout, knockin=knockin
    )
    final = sorted(traj.final().items(), key=lambda kv: -kv[1])
    typer.echo(f"{net.name}: {n} trajectories to t = {traj.times[-1]:g}; final states:")
    for state, p in final:
        typer.echo(f"  {p:8.4f}  {state}")
    if out is not None:
        traj.to_csv(out)
        typer.echo(f"wrote {out} ({len(traj.times)} times x {len(traj.states)} states)")
