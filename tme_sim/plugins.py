"""Extensions without editing the package: module discovery for the self-filling registries.

Registries (cell-type behaviours, intracellular kinds, output observers, sweep backends) fill
themselves when a subclass is defined (``__init_subclass__``). This module makes sure the classes
get defined:

* :func:`import_submodules` imports every module of one of tme-sim's own packages, so a new
  behaviour or kind inside the package is one new file;
* :func:`load_plugins` imports user modules named in a scenario's ``plugins = ["my_types.py"]``
  (paths relative to the scenario's folder, which must contain them) and the modules advertised by
  installed distributions under the ``tme_sim.plugins`` entry-point group.

A plugin module is ordinary Python that is executed: name only files you trust, as you would a
PhysiCell project's ``custom.cpp``.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from tme_sim.errors import ConfigError

#: entry-point group of installed plugin distributions (``[project.entry-points."tme_sim.plugins"]``)
ENTRY_POINT_GROUP = "tme_sim.plugins"

_imported_packages: set[str] = set()
_loaded_files: dict[Path, ModuleType] = {}
_entry_points_loaded = False


def import_submodules(package: str) -> None:
    """Import every direct submodule of ``package`` (once), so that their classes register."""
    if package in _imported_packages:
        return
    _imported_packages.add(package)
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)


def load_module_file(path: Path, key: str = "plugins") -> ModuleType:
    """Import the Python file ``path`` (once per resolved path); errors name ``key`` and the file."""
    path = path.resolve()
    if path in _loaded_files:
        return _loaded_files[path]
    if path.suffix != ".py" or not path.is_file():
        raise ConfigError(f"{key}: {path.name}: not a Python file")
    name = f"tme_sim_plugin_{abs(hash(str(path))):x}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{key}: {path.name}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"{key}: {path.name}: importing it failed: {type(exc).__name__}: {exc}") from None
    _loaded_files[path] = module
    return module


def load_plugins(names: list[str], base_dir: Path) -> list[ModuleType]:
    """Import the scenario's ``plugins`` (files relative to ``base_dir``, inside it) and the
    installed ``tme_sim.plugins`` entry points; returns the user modules in order."""
    load_entry_point_plugins()
    base = base_dir.resolve()
    out = []
    for k, name in enumerate(names):
        key = f"plugins[{k}]"
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise ConfigError(f"{key}: {name!r} is outside the scenario's folder {base}")
        out.append(load_module_file(path, key))
    return out


def load_entry_point_plugins() -> None:
    """Import the modules of the ``tme_sim.plugins`` entry-point group (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise ConfigError(f"plugin {ep.name!r} ({ep.value}): importing it failed: {exc}") from None
