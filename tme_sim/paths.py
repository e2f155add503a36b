"""File names and paths that come from inputs: names sanitised, paths confined to a folder tree.

A scenario or sweep ``name`` becomes a default output file name: it must be a plain name (no
folder separators, no ``..``, no leading dot). Files a scenario names (``bnd``, ``cfg``,
``artifact``, the drug ``library``) must lie inside the scenario's folder tree (shipped scenarios:
inside the shipped scenarios folder), so that a scenario received from someone else cannot make
tme-sim open arbitrary files. ``--allow-outside-paths`` (environment variable
``TME_ALLOW_OUTSIDE_PATHS=1``, which the CLI flag sets) lifts the confinement explicitly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tme_sim.errors import ConfigError

#: environment variable that allows input paths outside the scenario's folder tree
ALLOW_ENV = "TME_ALLOW_OUTSIDE_PATHS"
#: the shipped scenarios (package data): their files may refer to each other across sub-folders
SHIPPED = Path(__file__).resolve().parent / "scenarios"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}")


def outside_paths_allowed() -> bool:
    """Whether the user allowed paths outside the scenario's folder tree."""
    return os.environ.get(ALLOW_ENV, "") == "1"


def safe_file_name(name: str, key: str = "name") -> str:
    """``name`` when it can be used as a file name as is; else :class:`ConfigError` naming ``key``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{key}: {str(name)[:60]!r} cannot be used as a file name (letters, digits, '.', '_', '-', '+'; "
            "at most 120; no '/', '..' or leading dot); rename it or give the output path explicitly"
        )
    return name


def confined_path(value: str | Path, base: Path, key: str) -> Path:
    """Resolve ``value`` (relative to ``base``) and require it inside ``base``'s tree.

    Symbolic links are resolved first, so a link inside the folder that points out is refused
    too. Raises :class:`ConfigError` naming ``key`` (the file is not opened).
    """
    base = Path(base).resolve()
    p = Path(value)
    full = (p if p.is_absolute() else base / p).resolve()
    if outside_paths_allowed():
        return full
    roots = [base, SHIPPED] if base.is_relative_to(SHIPPED) else [base]
    if any(full.is_relative_to(r) for r in roots):
        return full
    raise ConfigError(
        f"{key}: {str(value)[:80]!r} is outside the scenario's folder {base}; put the file there, or pass "
        f"--allow-outside-paths ({ALLOW_ENV}=1) to allow it"
    )
