"""Writing an imported scenario: validated first, written atomically, never over an existing file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tme_sim.config import validate_scenario
from tme_sim.errors import ConfigError
from tme_sim.importers.physicell import ImportResult, warning_block
from tme_sim.importers.toml_writer import dumps


def scenario_text(result: ImportResult) -> str:
    """The scenario TOML for ``result``: a header naming the sources and the warnings, then the tables."""
    head = [f"# Imported by `tme import physicell` from {result.files[0]}", "# files read:"]
    head += [f"#   {p}" for p in result.files]
    block = warning_block(result)
    if block:
        head += ["#", *(f"# {line}" for line in block.splitlines())]
    return "\n".join(head) + "\n\n" + dumps(result.doc)


def write_scenario(result: ImportResult, out: Path, *, force: bool = False) -> Path:
    """Validate the translated scenario and write it to ``out`` (atomically; an existing file only
    with ``force``). Nothing is written when anything fails."""
    out = Path(out)
    validate_scenario(result.doc, f"{result.files[0]} (translated)")
    if out.exists() and not force:
        raise ConfigError(f"{out}: exists; pass --force to overwrite it")
    if out.exists() and out.is_dir():
        raise ConfigError(f"{out}: is a folder, expected a .toml file name")
    if not out.parent.exists():
        raise ConfigError(f"{out.parent}: no such folder")
    text = scenario_text(result)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
