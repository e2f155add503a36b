"""PhysiBoSS ``<intracellular type="maboss">`` blocks translated into a scenario's intracellular table.

PhysiBoSS (Ponce-de-Leon et al., "PhysiBoSS 2.0: a sustainable integration of stochastic Boolean
and agent-based modelling frameworks", npj Syst. Biol. Appl. 9, 54 (2023)) couples a MaBoSS network
to each PhysiCell agent. Its XML block and what it becomes here (``kind = "boolean"``, see
:class:`~tme_sim.intracellular.boolean.coupling.BooleanIntracellularConfig`):

================================  =========================================================
PhysiBoSS                         tme-sim
================================  =========================================================
``bnd_filename``/``cfg_filename``  ``bnd`` / ``cfg`` (resolved against the project folder)
``settings/intracellular_dt``      ``dt`` (minutes between network updates)
``settings/scaling``               ``time_scale = 1 / scaling`` per minute (PhysiBoSS: one
                                   network time unit = ``scaling`` minutes)
``settings/time_stochasticity``    not modelled (updates stay on the clock): a warning
``settings/start_time``            not modelled when > 0: a warning
``settings/inheritance``           daughters inherit the parent's network state (the default)
``mapping/input``                  ``inputs``: ``threshold`` mode; ``action = inhibition``
                                   -> ``inverse``; ``smoothing`` not modelled when > 0
``mapping/output``                 ``outputs``: ``value`` when the node is on, ``base_value``
                                   when off (default ``value``, as PhysiBoSS; ``action =
                                   inhibition`` swaps them); behaviours
                                   by :data:`BEHAVIOURS`
``initial_values/initial_value``   ``initial`` (probability of starting on)
``mutations/mutation``             ``knockout`` (value 0) / ``knockin`` (value 1)
``parameters/parameter``           ``variables`` (``$name = value``)
================================  =========================================================

``scaling``: PhysiBoSS's ``MaBoSSNetwork::run_simulation`` (``addons/PhysiBoSS/src/maboss_network.cpp``
of the PhysiBoSS repository) runs MaBoSS for ``time_to_update / scaling`` network time units per
update, ``time_to_update`` being ``intracellular_dt`` minutes; so ``time_scale = 1 / scaling`` per
minute is exact.

Anything that cannot be translated is left out and reported in ``warnings`` as ``(setting,
reason)`` pairs; the caller (the PhysiCell importer) shows them. The element may be an
:class:`xml.etree.ElementTree.Element` or any node with ``tag``, ``attrs``/``attrib``, ``text`` and
children (``children`` or iteration).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: PhysiCell behaviour names (PhysiBoSS ``physicell_name`` of outputs) -> tme-sim behaviours.
BEHAVIOURS = {
    "cycle entry": "cycle_rate",
    "apoptosis": "apoptosis_rate",
    "necrosis": "necrosis_rate",
    "migration speed": "migration_speed",
    "migration bias": "chemotaxis_bias",
}
#: Units of PhysiCell's values for those behaviours.
UNITS = {
    "cycle_rate": "1/min",
    "apoptosis_rate": "1/min",
    "necrosis_rate": "1/min",
    "migration_speed": "um/min",
    "chemotaxis_bias": "",
}


def _attrs(e) -> dict[str, str]:
    return dict(getattr(e, "attrs", None) or getattr(e, "attrib", {}) or {})


def _kids(e, tag: str) -> list:
    items = e.children if hasattr(e, "children") else list(e)
    return [c for c in items if c.tag == tag]


def _child(e, path: str):
    for part in path.split("/"):
        found = _kids(e, part) if e is not None else []
        e = found[0] if found else None
    return e


def _text(e, path: str, default: str | None = None) -> str | None:
    c = _child(e, path)
    if c is None or c.text is None or not str(c.text).strip():
        return default
    return str(c.text).strip()


def _number(e, path: str, default: float, warnings: list, where: str) -> float:
    raw = _text(e, path)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        warnings.append((f"{where}.{path}", f"not a number ({raw!r}); {default:g} used"))
        return default


def _section(element, tag: str):
    """``tag`` directly under the block or under its ``settings`` (PhysiBoSS accepts both)."""
    found = _child(element, tag)
    return found if found is not None else _child(element, f"settings/{tag}")


def _locate(project_dir: Path, name: str) -> Path | None:
    """``name`` as PhysiCell opens it: relative to the folder the executable runs in (the project
    root). The importer's guess of that root may sit below it (a settings file in
    ``config/<sub>/``), so the guess and up to three of its parents are tried."""
    if Path(name).is_absolute():
        return Path(name) if Path(name).is_file() else None
    for base in (project_dir, *list(project_dir.resolve().parents)[:3]):
        if (base / name).is_file():
            return (base / name).resolve()
    return None


def translate_maboss(
    element, project_dir: Path, warnings: list[tuple[str, str]], cell_type: str
) -> dict[str, Any] | None:
    """The ``[cell_types.<cell_type>.intracellular]`` table for one PhysiBoSS block, or None (with a
    warning) when its network files are not named."""
    where = f"cell_definitions.{cell_type}.intracellular"
    bnd = _text(element, "bnd_filename")
    cfg = _text(element, "cfg_filename")
    if bnd is None or cfg is None:
        warnings.append((where, "bnd_filename and cfg_filename are both needed; the cells run without a network"))
        return None
    files = {}
    for key, name in (("bnd", bnd), ("cfg", cfg)):
        found = _locate(Path(project_dir), name)
        if found is None:
            warnings.append(
                (f"{where}.{key}_filename", f"{name} not found from {project_dir}; the cells run without a network")
            )
            return None
        files[key] = str(found)
    table: dict[str, Any] = {"kind": "boolean", **files}
    settings = _child(element, "settings")
    dt = _number(settings, "intracellular_dt", 6.0, warnings, f"{where}.settings")
    table["dt"] = f"{dt:g} min"
    scaling = _number(settings, "scaling", 1.0, warnings, f"{where}.settings")
    if scaling > 0:
        table["time_scale"] = 1.0 / scaling
    else:
        warnings.append((f"{where}.settings.scaling", f"must be > 0, got {scaling:g}; 1 used"))
    if _number(settings, "time_stochasticity", 0.0, warnings, f"{where}.settings") > 0:
        warnings.append(
            (f"{where}.settings.time_stochasticity", "random update times are not modelled; updates every dt")
        )
    if _number(settings, "start_time", 0.0, warnings, f"{where}.settings") > 0:
        warnings.append(
            (f"{where}.settings.start_time", "a delayed start is not modelled; the network runs from t = 0")
        )

    inputs, outputs = [], []
    mapping = _child(element, "mapping")
    for inp in _kids(mapping, "input") if mapping is not None else []:
        a = _attrs(inp)
        node, signal = a.get("intracellular_name"), a.get("physicell_name")
        s = _child(inp, "settings")
        if not node or not signal:
            warnings.append((f"{where}.mapping.input", "needs physicell_name and intracellular_name; left out"))
            continue
        entry: dict[str, Any] = {
            "node": node,
            "signal": signal,
            "mode": "threshold",
            "threshold": _number(s, "threshold", 1.0, warnings, f"{where}.input.{node}"),
        }
        if (_text(s, "action", "activation") or "").lower() == "inhibition":
            entry["inverse"] = True
        if _number(s, "smoothing", 0.0, warnings, f"{where}.input.{node}") > 0:
            warnings.append((f"{where}.input.{node}.smoothing", "smoothing is not modelled"))
        inputs.append(entry)
    for out in _kids(mapping, "output") if mapping is not None else []:
        a = _attrs(out)
        node, name = a.get("intracellular_name"), a.get("physicell_name", "")
        behaviour = BEHAVIOURS.get(name.strip().lower())
        if not node or behaviour is None:
            warnings.append(
                (f"{where}.output.{node}", f"PhysiCell behaviour {name!r} has no tme-sim equivalent; left out")
            )
            continue
        s = _child(out, "settings")
        on = _number(s, "value", 1.0, warnings, f"{where}.output.{node}")
        # PhysiBoSS (MaBoSSIntracellular::initialize_intracellular_from_pugixml): base_value defaults to value
        off = _number(s, "base_value", on, warnings, f"{where}.output.{node}")
        if (_text(s, "action", "activation") or "").lower() == "inhibition":
            on, off = off, on
        unit = UNITS[behaviour]
        outputs.append(
            {
                "node": node,
                "behavior": behaviour,
                "value_on": f"{on:g} {unit}".strip(),
                "value_off": f"{off:g} {unit}".strip(),
            }
        )
        if _number(s, "smoothing", 0.0, warnings, f"{where}.output.{node}") > 0:
            warnings.append((f"{where}.output.{node}.smoothing", "smoothing is not modelled"))
    table["inputs"] = inputs
    table["outputs"] = outputs

    initial = {}
    sec = _section(element, "initial_values")
    for iv in _kids(sec, "initial_value") if sec is not None else []:
        node = _attrs(iv).get("intracellular_name")
        if node and iv.text and iv.text.strip():
            initial[node] = float(iv.text)
    if initial:
        table["initial"] = initial
    ko, ki = [], []
    sec = _section(element, "mutations")
    for mu in _kids(sec, "mutation") if sec is not None else []:
        node = _attrs(mu).get("intracellular_name")
        value = (mu.text or "").strip() or _text(mu, "value", "")
        if not node:
            continue
        if value.lower() in ("0", "0.0", "false"):
            ko.append(node)
        elif value.lower() in ("1", "1.0", "true"):
            ki.append(node)
        else:
            warnings.append((f"{where}.mutations.{node}", f"value {value!r} is neither 0 nor 1; left out"))
    if ko:
        table["knockout"] = ko
    if ki:
        table["knockin"] = ki
    variables = {}
    sec = _section(element, "parameters")
    for par in _kids(sec, "parameter") if sec is not None else []:
        name = _attrs(par).get("intracellular_name", "").lstrip("$")
        if name and par.text and par.text.strip():
            variables[name] = float(par.text)
    if variables:
        table["variables"] = variables
    return table
