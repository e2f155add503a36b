"""``tme drugs``: drug-combination commands (a typer sub-application).

Mounted by the main CLI as ``app.add_typer(drugs_app, name="drugs")``. Expected mistakes raise
:class:`~tme_sim.errors.TMEError` (the main CLI prints ``error: ...`` and exits with status 2);
``python -m tme_sim.cli.drugs`` does the same on its own.

Examples::

    tme drugs screen --drugs birinapant,venetoclax,tpca1
    tme drugs screen screens/tnf_toxicity.toml --drugs birinapant,tpca1 \\
        --doses "0,0.3,1,3,10,30 nM" --out outputs/screens/demo --force
    tme drugs screen --drugs birinapant,tpca1 --doses "birinapant=log:0.03 nM:30 nM:8;tpca1=0,1,10,100 nM"
    tme drugs pk --drugs venetoclax --duration "7 day"
    tme drugs simulate tme_sim/scenarios/drug_combo.toml --scale "birinapant+venetoclax=0,0.05,0.125,0.25,0.5,1" \\
        --out outputs/drug_combo_dose.csv --plot outputs/drug_combo_dose.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from tme_sim.errors import ConfigError, TMEError
from tme_sim.scenarios import packaged
from tme_sim.units import parse_duration, to_unit

DEFAULT_CONFIG = packaged("screens/tnf_toxicity.toml")

drugs_app = typer.Typer(
    name="drugs",
    help="Drug combinations: screens of efficacy, toxicity and synergy; PK curves.",
    no_args_is_help=True,
    add_completion=False,
)


def _grid(text: str, key: str) -> np.ndarray:
    """``"0,1,10 nM"`` (unit at the end, or on each value) or ``"log:<min>:<max>:<n>"``."""
    t = text.strip()
    if t.startswith("log:"):
        parts = t[4:].split(":")
        if len(parts) != 3:
            raise ConfigError(f"{key}: expected log:<min>:<max>:<n>, e.g. log:0.1 nM:1 uM:10, got {text!r}")
        try:
            lo, hi = to_unit(parts[0], "nM"), to_unit(parts[1], "nM")
            n = int(parts[2])
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
        if not (0 < lo < hi) or n < 2:
            raise ConfigError(f"{key}: need 0 < min < max and n >= 2, got {text!r}")
        return np.r_[0.0, np.geomspace(lo, hi, n - 1)]
    items = [s.strip() for s in t.split(",") if s.strip()]
    if not items:
        raise ConfigError(f"{key}: no doses given")
    unit = ""
    last = items[-1].split(None, 1)
    if len(last) == 2:
        unit = last[1]
    values = []
    for s in items:
        v = s if len(s.split(None, 1)) == 2 else f"{s} {unit}".strip()
        try:
            values.append(to_unit(v, "nM"))
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    d = np.array(values)
    if d.size < 2 or d[0] != 0 or np.any(np.diff(d) <= 0):
        raise ConfigError(f"{key}: doses must start at 0 and increase strictly, got {text!r}")
    return d


def parse_doses(spec: str, names: list[str]) -> dict[str, np.ndarray]:
    """Parse ``--doses``: one grid for every drug, or ``name=grid;name=grid`` per drug (nM)."""
    if "=" not in spec:
        g = _grid(spec, "--doses")
        return {n: g for n in names}
    out: dict[str, np.ndarray] = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        name, sep, grid = part.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise ConfigError(f"--doses: {name!r} is not one of --drugs ({', '.join(names)})")
        out[name] = _grid(grid, f"--doses {name}")
    return out


@drugs_app.command("screen")
def screen_command(
    drugs: Annotated[str, typer.Option("--drugs", "-d", help="Comma-separated drugs (2 or more); all pairs.")],
    config_file: Annotated[
        Path | None, typer.Argument(help="Screen config (TOML); same as --config.", show_default=False)
    ] = None,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Screen config (TOML): cell types, exposure, thresholds.")
    ] = DEFAULT_CONFIG,
    doses: Annotated[
        str | None,
        typer.Option(
            help="Dose grid in any concentration unit: '0,1,10,100 nM', 'log:0.1 nM:1 uM:10', "
            "or per drug 'A=...;B=...'. Default: the config's [doses], else 0 + log-spaced IC50/30..30·IC50."
        ),
    ] = None,
    n_doses: Annotated[int | None, typer.Option(help="Doses per drug for default grids (incl. 0).")] = None,
    library: Annotated[Path | None, typer.Option(help="Drug library overriding the config's.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder (screen.h5, heatmaps).")] = Path("outputs/screens/screen"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing screen.h5.")] = False,
    tumor_kill: Annotated[float | None, typer.Option(help="Window: minimal tumor kill (fraction).")] = None,
    healthy_kill: Annotated[float | None, typer.Option(help="Window: maximal kill of each healthy type.")] = None,
    synergy: Annotated[str | None, typer.Option(help="Synergy methods, e.g. 'bliss,zip' (default: config).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: config).")] = None,
    cells_per_dose: Annotated[int | None, typer.Option(help="Cells per dose point (Boolean models).")] = None,
    plots: Annotated[bool, typer.Option(help="Write heatmaps (PNG).")] = True,
) -> None:
    """Efficacy, toxicity, selective efficacy, therapeutic window and synergy of drug pairs.

    Evaluates the dose matrix of every pair of --drugs for every cell type of the config in one
    batched model call per cell type (no spatial simulation), prints a summary table and writes
    screen.h5 plus heatmaps to --out.
    """
    from tme_sim.screening.report import print_summary, write_all
    from tme_sim.screening.screen import load_screen, run_screen

    if config_file is not None:
        if config != DEFAULT_CONFIG and config != config_file:
            raise ConfigError(f"give the screen config once: {config_file} or --config {config}")
        config = config_file
    from tme_sim.scenarios import resolve

    config = resolve(config)
    names = [n.strip() for n in drugs.split(",") if n.strip()]
    scr = load_screen(config, library=library)
    for n in names:
        scr.library.get(n)
    if n_doses is not None:
        if n_doses < 2:
            raise ConfigError("--n-doses: must be >= 2")
        scr.config.n_doses = n_doses
    if cells_per_dose is not None:
        if cells_per_dose < 1:
            raise ConfigError("--cells-per-dose: must be >= 1")
        for m in scr.cell_types:
            if hasattr(m, "cells_per_dose"):
                m.cells_per_dose = cells_per_dose
    for v, key in ((tumor_kill, "--tumor-kill"), (healthy_kill, "--healthy-kill")):
        if v is not None and not 0 <= v <= 1:
            raise ConfigError(f"{key}: must be a fraction in [0, 1], got {v}")
    methods = None
    if synergy is not None:
        from tme_sim.screening.synergy import METHODS

        methods = [m.strip() for m in synergy.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ConfigError(f"--synergy: unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
    grids = parse_doses(doses, names) if doses else None
    out_h5 = out / "screen.h5"
    if out_h5.exists() and not force:
        raise TMEError(f"{out_h5}: exists (use --force to overwrite)")
    result = run_screen(
        scr,
        names,
        grids,
        seed=seed,
        synergy_methods=methods,
        tumor_kill=tumor_kill,
        healthy_kill=healthy_kill,
    )
    print_summary(result)
    timing = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
    typer.echo(f"{result.n_points} distinct dose points x {len(result.cell_types)} cell types; {timing}")
    files = write_all(result, out, force=force, plots=plots, config=str(config))
    for f in files.values():
        typer.echo(f"wrote {f}")


@drugs_app.command("pk")
def pk_command(
    drugs: Annotated[str, typer.Option("--drugs", "-d", help="Comma-separated drugs with a [pk] schedule.")],
    library: Annotated[Path, typer.Option(help="Drug library (TOML).")] = packaged("drugs.toml"),
    duration: Annotated[str, typer.Option(help="Time span, e.g. '7 day'.")] = "7 day",
    points: Annotated[int, typer.Option(help="Rows printed.")] = 15,
    out: Annotated[Path | None, typer.Option(help="Write a PNG of the plasma curves.")] = None,
) -> None:
    """Plasma concentration (nM) over time from each drug's one-compartment PK and schedule."""
    from tme_sim.config.drugs import load_library
    from tme_sim.drugs.pk import plasma_concentrations

    lib = load_library(library)
    sel = lib.select([n.strip() for n in drugs.split(",") if n.strip()])
    for d in sel:
        if d.pk is None or not d.schedule:
            raise ConfigError(f"{lib.path}: drugs.{d.name}: no pk/schedule to plot")
    try:
        t_end = parse_duration(duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from None
    if not t_end > 0 or points < 2:
        raise ConfigError("--duration must be > 0 and --points >= 2")
    t = np.linspace(0.0, t_end, points)
    c = plasma_concentrations(sel, t)
    typer.echo("time (h)  " + "  ".join(f"{d.name:>12}" for d in sel) + "   [nM]")
    for ti, row in zip(t, c, strict=True):
        typer.echo(f"{ti / 60:8.1f}  " + "  ".join(f"{v:12.4g}" for v in row))
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tf = np.linspace(0.0, t_end, 2000)
        cf = plasma_concentrations(sel, tf)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for j, d in enumerate(sel):
            ax.plot(tf / 60 / 24, cf[:, j], label=d.name)
        ax.set_xlabel("time (day)")
        ax.set_ylabel("plasma concentration (nM)")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        typer.echo(f"wrote {out}")


def parse_levels(spec: str, key: str, plasma: bool) -> dict[str, list[float]]:
    """``"A=0,0.1,1;B=0,1"`` → per-drug levels: plain factors (``--scale``) or concentrations
    converted to nM (``--plasma``, any concentration unit, e.g. ``"A=0,1,10 nM"``)."""
    out: dict[str, list[float]] = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        name, sep, values = part.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ConfigError(f"{key}: expected DRUG=v1,v2,...[;DRUG=...], got {part.strip()!r}")
        if name in out:
            raise ConfigError(f"{key}: {name!r} is given twice")
        if plasma:
            out[name] = [float(v) for v in _grid(values, f"{key} {name}")]
            continue
        try:
            levels = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"{key} {name}: dose factors must be numbers, got {values.strip()!r}") from None
        if not levels or any(not (np.isfinite(v) and v >= 0) for v in levels):
            raise ConfigError(f"{key} {name}: dose factors must be finite and >= 0, got {values.strip()!r}")
        out[name] = levels
    if not out:
        raise ConfigError(f"{key}: no drugs given")
    return out


@drugs_app.command("simulate")
def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario with a [drugs] section (e.g. scenarios/drug_combo.toml).")],
    scale: Annotated[
        str | None,
        typer.Option(help="Dose factors of the scenario's schedules per drug: 'birinapant=0,0.01,1;venetoclax=0,1'."),
    ] = None,
    plasma: Annotated[
        str | None,
        typer.Option(help="Constant plasma levels per drug instead of PK: 'birinapant=0,0.1,1 nM' (start at 0)."),
    ] = None,
    duration: Annotated[
        str | None, typer.Option(help="Simulated time per point, e.g. '12 h' (default: scenario).")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Scenario override KEY=VALUE (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: scenario).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the table as CSV.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a figure (PNG): tumor cells over time per dose, loss vs dose.")
    ] = None,
    record_every: Annotated[str, typer.Option(help="Interval of the live-cell timeline (figure, CSV).")] = "6 h",
    reduced: Annotated[
        bool,
        typer.Option(
            help="scenarios/drug_combo.toml on a 500x500 um domain (1/4 of the cells), drugs from 6 h: "
            "a quick variant (~1 min per point and day)."
        ),
    ] = False,
) -> None:
    """Full spatial simulation of each dose point (full factorial over the drugs given): live tumor
    and healthy cells at the end and their loss against the no-drug point.

    Drugs joined by '+' share one axis (the combination scaled as a whole), e.g.
    --scale "birinapant+venetoclax=0,0.05,0.125,0.25,0.5,1".
    """
    from tme_sim.config import parse_set_options
    from tme_sim.screening.simulate import REDUCED_DRUG_COMBO, dose_grid, plot_dose_response, simulate_doses

    if (scale is None) == (plasma is None):
        raise ConfigError("give exactly one of --scale or --plasma")
    levels = (
        parse_levels(scale, "--scale", False) if scale is not None else parse_levels(plasma or "", "--plasma", True)
    )
    minutes = None
    if duration is not None:
        try:
            minutes = parse_duration(duration)
        except ValueError as exc:
            raise ConfigError(f"--duration: {exc}") from None
    try:
        every = parse_duration(record_every)
    except ValueError as exc:
        raise ConfigError(f"--record-every: {exc}") from None
    if not every > 0:
        raise ConfigError("--record-every: must be > 0")
    points = dose_grid(levels)
    overrides = dict(REDUCED_DRUG_COMBO) if reduced else {}
    overrides.update(parse_set_options(set_))

    def progress(k: int, n: int, p: object) -> None:
        typer.echo(f"  point {k}/{n} done", err=True)

    result = simulate_doses(
        scenario,
        points,
        mode="scale" if scale is not None else "plasma",
        duration=minutes,
        overrides=overrides,
        seed=seed,
        progress=progress,
        record_every=every,
    )
    for line in result.table():
        typer.echo(line)
    if plot is not None:
        title = f"{scenario.name}{' (reduced)' if reduced else ''}: {result.duration / 60:g} h"
        typer.echo(f"wrote {plot_dose_response(result, plot, title)}")
    if out is not None:
        import csv

        rows = result.to_rows()
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        typer.echo(f"wrote {out}")


def main() -> None:  # pragma: no cover - thin wrapper
    """Run ``drugs_app`` standalone, turning expected mistakes into ``error: ...`` and status 2."""
    try:
        drugs_app(standalone_mode=False)
    except TMEError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
