"""``tme scenarios``: list the shipped scenarios, sweeps and screens, or copy one to edit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

scenarios_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@scenarios_app.command("list")
def list_command(
    paths: Annotated[bool, typer.Option("--paths", help="Also print where each file is installed.")] = False,
) -> None:
    """The shipped scenarios, sweeps and drug screens, with their one-line descriptions."""
    from tme_sim.scenarios import KINDS, SCENARIO_DIR, description, shipped_all

    items = shipped_all()
    width = max(len(n) for n in items)
    for sub, title in KINDS.items():
        names = [n for n, p in items.items() if p.parent == SCENARIO_DIR / sub if sub or p.parent == SCENARIO_DIR]
        if not sub:
            names = [n for n in names if n != "drugs"]
        typer.echo(f"{title}:")
        for n in names:
            typer.echo(f"  {n:<{width}}  {description(items[n])}")
            if paths:
                typer.echo(f"  {'':<{width}}  {items[n]}")
    typer.echo(f"drug library:\n  {'drugs':<{width}}  {description(items['drugs'])}")
    typer.echo("copy one to edit it: tme scenarios copy NAME DIR")


@scenarios_app.command("copy")
def copy_command(
    name: Annotated[str, typer.Argument(help="A name from `tme scenarios list` (e.g. tumor_immune).")],
    dest: Annotated[Path, typer.Argument(help="Folder to copy into (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that differ.")] = False,
) -> None:
    """Copy a shipped scenario and everything it references (extends chain, networks, models, drug library)."""
    from tme_sim.config.shipped import copy_shipped

    written = copy_shipped(name, dest, force=force)
    for p in written:
        typer.echo(f"wrote {p}")
    main = written[0].parent if written else dest
    stem = name.split("/")[-1].removesuffix(".toml")
    first = next((p for p in written if p.stem == stem and p.suffix == ".toml"), None)
    command = {"sweeps": "tme sweep", "screens": "tme drugs screen -c"}.get(name.split("/")[0], "tme run")
    typer.echo(f"{len(written)} files; run it with: {command} {first or main}")
