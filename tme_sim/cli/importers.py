"""``tme import``: other simulators' projects → tme-sim scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@import_app.command("physicell")
def physicell_command(
    project: Annotated[Path, typer.Argument(help="PhysiCell_settings.xml, its config/ folder, or the project folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Scenario file to write (default: ./<project>.toml).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing scenario file.")] = False,
    diffusion: Annotated[
        str,
        typer.Option(
            "--diffusion",
            help="'physicell' (default): PhysiCell's diffusion numerics, BioFVM LOD at dt_diffusion; 'adi' (2D):"
            " tme-sim's ADI at the mechanics step (exact steady state, faster, not PhysiCell's fields).",
        ),
    ] = "physicell",
) -> None:
    """Translate a PhysiCell project (settings, cells.csv, cell_rules.csv) into a scenario; settings
    without a tme-sim counterpart are listed in one warning block."""
    from tme_sim.importers.physicell import import_physicell, warning_block
    from tme_sim.importers.scenario_file import write_scenario

    result = import_physicell(project, diffusion=diffusion)
    path = write_scenario(result, out or Path(f"{result.doc['name']}.toml"), force=force)
    block = warning_block(result)
    if block:
        typer.echo(block, err=True)
    n_rules = sum(len(ct.get("behavior_rules", [])) for ct in result.doc["cell_types"].values())
    n_cells = sum(len(p.get("points", [])) + p.get("count", 0) for p in result.doc.get("initial_cells", []))
    typer.echo(
        f"wrote {path}: {len(result.doc['cell_types'])} cell types, {n_rules} rules, {n_cells} initial cells,"
        f" {len(result.doc['substrates'])} substrates; run it with: tme run {path}"
    )
