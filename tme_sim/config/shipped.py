"""Copies of shipped inputs (``tme scenarios copy``): a scenario, sweep or screen with everything it references."""

from __future__ import annotations

import shutil
from pathlib import Path

from tme_sim.config.suggest import close_match
from tme_sim.errors import ConfigError
from tme_sim.scenarios import SCENARIO_DIR, references, shipped_all


def copy_shipped(name: str, dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the shipped input ``name`` (see :func:`shipped_all`) and everything it references into
    ``dest``, keeping the package's relative layout so relative paths inside the files still work.

    Returns the written files. Refuses (before writing anything) to overwrite a different existing
    file unless ``force``.
    """
    catalogue = shipped_all()
    key = name[:-5] if name.endswith(".toml") else name
    if key not in catalogue:
        hint = close_match(key, list(catalogue))
        raise ConfigError(
            f"no shipped scenario {name!r}"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + "; `tme scenarios list` shows them"
        )
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: exists and is not a folder")
    files = sorted(references(catalogue[key]))
    targets = [(f, dest / f.relative_to(SCENARIO_DIR)) for f in files]
    clash = [t for f, t in targets if t.exists() and t.read_bytes() != f.read_bytes()]
    if clash and not force:
        raise ConfigError(f"{clash[0]}: exists and differs from the shipped file; use --force to overwrite")
    written = []
    for f, t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, t)
        written.append(t)
    return written
