"""Scenarios, networks, trained models and drug libraries shipped with tme-sim (package data).

A scenario can be named by its file (``scenarios/x.toml``) or, for the shipped ones, by its bare
name (``tme run tumor_immune``); :func:`resolve` does the lookup.
"""

from __future__ import annotations

from pathlib import Path

#: the folder of the shipped scenarios (inside the installed package)
SCENARIO_DIR = Path(__file__).resolve().parent


def shipped() -> dict[str, Path]:
    """Shipped scenario names → files (top-level ``*.toml`` of :data:`SCENARIO_DIR`)."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml")) if p.stem != "drugs"}


def packaged(relative: str) -> Path:
    """A shipped file by its path relative to :data:`SCENARIO_DIR` (``"networks/tnf_cellfate.bnd"``)."""
    return SCENARIO_DIR / relative


def resolve(name_or_path: str | Path) -> Path:
    """An existing file as given, else a shipped scenario of that name (``tumor_immune``).

    Returns the path unchanged when neither exists, so the caller's "not found" error names
    what the user typed.
    """
    p = Path(name_or_path)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return p
    return shipped().get(p.name, p)
