"""Scenarios, networks, trained models and drug libraries shipped with tme-sim (package data).

A scenario can be named by its file (``scenarios/x.toml``) or, for the shipped ones, by its bare
name (``tme run tumor_immune``); :func:`resolve` does the lookup. :func:`references` lists what a
shipped file needs (``tme scenarios copy`` uses it: :func:`tme_sim.config.shipped.copy_shipped`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

#: the folder of the shipped scenarios (inside the installed package)
SCENARIO_DIR = Path(__file__).resolve().parent

#: sub-folders holding other shipped inputs, listed by ``tme scenarios list``
KINDS = {"": "scenarios", "sweeps": "sweeps (tme sweep)", "screens": "drug screens (tme drugs screen)"}


def shipped() -> dict[str, Path]:
    """Shipped scenario names → files (top-level ``*.toml`` of :data:`SCENARIO_DIR`)."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml")) if p.stem != "drugs"}


def shipped_all() -> dict[str, Path]:
    """Every shipped input file by name: scenarios (``tumor_immune``), sweeps (``sweeps/spheroid_grid``),
    screens (``screens/tnf_toxicity``) and the drug library (``drugs``)."""
    out = {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml"))}
    for sub in KINDS:
        if sub:
            out.update({f"{sub}/{p.stem}": p for p in sorted((SCENARIO_DIR / sub).glob("*.toml"))})
    return out


def packaged(relative: str) -> Path:
    """A shipped file by its path relative to :data:`SCENARIO_DIR` (``"networks/tnf_cellfate.bnd"``)."""
    return SCENARIO_DIR / relative


def resolve(name_or_path: str | Path) -> Path:
    """An existing file as given, else ``NAME.toml`` in the current folder, else a shipped file:
    a scenario by name (``tumor_immune``) or any shipped input by its path inside the package
    (``screens/tnf_toxicity.toml``, ``sweeps/spheroid_grid.toml``).

    So ``tme run tumor_immune`` runs a copy made by ``tme scenarios copy tumor_immune .`` when
    there is one, the shipped file otherwise. Returns the path unchanged when nothing exists, so
    the caller's "not found" error names what the user typed.
    """
    p = Path(name_or_path)
    if p.exists():
        return p
    if p.suffix or len(p.parts) > 1:  # a shipped file by its package path: screens/x.toml, scenarios/x.toml
        parts = p.parts[1:] if p.parts and p.parts[0] == "scenarios" else p.parts
        shipped_file = SCENARIO_DIR.joinpath(*parts) if parts and not p.is_absolute() else None
        return shipped_file if shipped_file is not None and shipped_file.is_file() else p
    local = p.with_suffix(".toml")
    if local.is_file():
        return local
    return shipped().get(p.name, p)


def description(path: Path) -> str:
    """The first comment line of a TOML file (its one-line description), or ""."""
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if s.startswith("#"):
            return s.lstrip("#").strip()
        if s:
            break
    return ""


def _strings(doc: Any) -> list[str]:
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return [doc] if isinstance(doc, str) else []


def references(path: Path) -> list[Path]:
    """Shipped files that ``path`` needs, recursively: ``extends`` bases, networks, models (with
    their same-named sidecars: training config and report), drug libraries, base scenarios of sweeps.

    A string value counts as a reference when it names an existing file, relative to the referring
    file's folder, inside :data:`SCENARIO_DIR`.
    """
    found: dict[Path, None] = {}
    todo = [path.resolve()]
    while todo:
        p = todo.pop()
        if p in found:
            continue
        found[p] = None
        if p.suffix != ".toml":
            continue
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        for s in _strings(doc):
            if "\n" in s or len(s) > 300:
                continue
            q = (p.parent / s).resolve()
            if q.is_file() and q.is_relative_to(SCENARIO_DIR):
                todo.append(q)
                if q.suffix == ".pt":  # a model's training config and report travel with it
                    todo += [r.resolve() for r in q.parent.glob(q.stem + ".*") if r.suffix in (".json", ".toml")]
    return list(found)
