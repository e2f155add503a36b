"""``tme import physicell``: a PhysiCell project → a tme-sim scenario with units.

Reads ``PhysiCell_settings.xml`` (domain, clocks, substrates, every cell definition), the initial
cells of ``cells.csv`` and the rules of ``cell_rules.csv`` (v1 layout with a base value, v2/v3
layout without) and returns a scenario document. Whatever has no tme-sim counterpart is listed as
``(setting, reason)`` warnings, never dropped silently; a malformed file raises
:class:`~tme_sim.importers.xmltree.ImportFormatError` naming file, line and column.

Translation choices (what a PhysiCell user would expect):

* PhysiCell's domain ``[x_min, x_max] × …`` becomes ``[0, x_max − x_min] × …``; cell positions
  are shifted by ``−(x_min, y_min, z_min)``.
* Names become identifiers: spaces → ``_`` (``"malignant epithelial cell"`` →
  ``malignant_epithelial_cell``) in substrates, types and in the rules that name them.
* Cycle models are lumped into tme-sim's two-phase cycle: the first transition is the cycle-entry
  rate, the rest of the cycle a fixed-length phase ending in division (its length the sum of the
  remaining mean phase durations). O2 dependence comes from the project's rules, as in PhysiCell,
  so the built-in O2 factors are switched off.
* A project without ``oxygen`` gets an inert uniform 38 mmHg field (tme-sim requires one).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tme_sim.errors import ConfigError
from tme_sim.grid import SUBSTRATES, get_substrate
from tme_sim.importers.intracellular import translate_intracellular
from tme_sim.importers.xmltree import ImportFormatError, Node, parse_xml
from tme_sim.rules.vocabulary import parse_behavior, parse_signal

__all__ = ["ImportResult", "find_settings", "import_physicell", "parse_cells_csv", "parse_rules_csv"]

#: PhysiCell cycle model codes → names (PhysiCell_constants.h)
CYCLE_CODES = {
    0: "advanced Ki67",
    1: "basic Ki67",
    2: "flow cytometry",
    5: "live",
    6: "flow cytometry separated",
    7: "cycling quiescent",
}


@dataclass
class ImportResult:
    """A translated project: the scenario document, the warnings and the files read."""

    doc: dict[str, Any]
    warnings: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def ident(name: str) -> str:
    """A PhysiCell name as a tme-sim identifier (spaces → ``_``)."""
    return "_".join(name.split())


def find_settings(path: Path) -> Path:
    """``PhysiCell_settings.xml`` from a file, a ``config/`` folder or a project folder."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for cand in (path / "PhysiCell_settings.xml", path / "config" / "PhysiCell_settings.xml"):
            if cand.is_file():
                return cand
        raise ImportFormatError(f"{path}: no PhysiCell_settings.xml in this folder or its config/")
    raise ImportFormatError(f"{path}: no such file or folder")


def _resolve(settings: Path, folder: str, filename: str) -> Path:
    """A file named in the XML: PhysiCell resolves ``folder`` from the project root (the folder
    ``./project`` runs in, the parent of ``config/``); fall back to the XML's own folder."""
    rel = Path(folder or ".") / filename
    for base in (settings.parent.parent, settings.parent):
        if (base / rel).is_file():
            return base / rel
    if (settings.parent / filename).is_file():
        return settings.parent / filename
    return settings.parent.parent / rel


class _Reader:
    """Typed access to XML values with file:line:column errors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def where(self, node: Node) -> str:
        return f"{self.path}:{node.line}:{node.col}"

    def num(self, node: Node | None, default: float | None = None) -> float:
        if node is None or node.text == "":
            if default is None:
                raise ImportFormatError(f"{self.path}: missing a required value")
            return default
        try:
            value = float(node.text)
        except ValueError:
            raise ImportFormatError(f"{self.where(node)}: <{node.tag}>: expected a number, got {node.text!r}") from None
        if not math.isfinite(value):
            raise ImportFormatError(f"{self.where(node)}: <{node.tag}>: expected a finite number, got {node.text!r}")
        return value

    def req(self, parent: Node, path: str) -> Node:
        node = parent.find(path)
        if node is None:
            raise ImportFormatError(f"{self.where(parent)}: <{parent.tag}>: missing <{path}>")
        return node

    def flag(self, node: Node | None, default: bool = False) -> bool:
        if node is None or node.text == "":
            return default
        text = node.text.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ImportFormatError(f"{self.where(node)}: <{node.tag}>: expected true or false, got {node.text!r}")

    def index(self, node: Node, name: str) -> int:
        """An integer attribute (0 when absent)."""
        value = node.attrs.get(name, "0").strip()
        if not value.lstrip("-").isdigit():
            raise ImportFormatError(f"{self.where(node)}: <{node.tag} {name}=...>: expected an integer, got {value!r}")
        return int(value)

    @staticmethod
    def attr_flag(node: Node, name: str, default: bool = False) -> bool:
        value = node.attrs.get(name)
        if value is None:
            return default
        return value.strip().lower() in ("true", "1", "yes")


def _fmt(value: float, unit: str) -> str:
    """``value`` with ``unit`` as a scenario string (``"0.1 1/min"``)."""
    return f"{value:.10g} {unit}".strip()


# ---------------------------------------------------------------------------------------------
# the settings file


def _domain(r: _Reader, root: Node, warn: list[tuple[str, str]]) -> tuple[dict[str, Any], list[float], bool]:
    dom = r.req(root, "domain")
    lo = [r.num(r.req(dom, f"{a}_min")) for a in "xyz"]
    hi = [r.num(r.req(dom, f"{a}_max")) for a in "xyz"]
    for a, low, high in zip("xyz", lo, hi, strict=True):
        if high <= low:
            node = r.req(dom, f"{a}_max")
            raise ImportFormatError(f"{r.where(node)}: <{a}_max> must exceed <{a}_min>")
    dx = r.num(r.req(dom, "dx"))
    two_d = r.flag(dom.child("use_2D"), default=False)
    for a in ("dy", "dz") if not two_d else ("dy",):
        d = dom.child(a)
        if d is not None and abs(r.num(d) - dx) > 1e-12:
            warn.append((f"domain.{a}", f"tme-sim voxels are cubes; dx = {dx:g} µm is used for every axis"))
    size = [hi[i] - lo[i] for i in range(2 if two_d else 3)]
    return {"size": [_fmt(s, "um") for s in size], "dx": _fmt(dx, "um")}, lo, two_d


#: the mechanics step PhysiCell uses when the settings do not give one (min)
_PHYSICELL_DT_MECHANICS = 0.1
_PHYSICELL_DT_DIFFUSION = 0.01


#: what ``diffusion=`` of :func:`import_physicell` accepts
DIFFUSION_CHOICES = ("physicell", "adi")


def _diffusion_numerics(
    t: dict[str, Any], dt_diff: float, dt_mech: float, two_d: bool, choice: str, warn: list[tuple[str, str]]
) -> None:
    """The diffusion scheme and step of an imported project (PhysiCell's ``dt_diffusion``,
    ``dt_mechanics`` in min), written into ``t`` (``[time]``).

    ``choice = "physicell"`` (the default) keeps PhysiCell's numerics, BioFVM's LOD splitting at
    ``dt_diffusion`` (0.01 min: ten substeps per mechanics step), whose fixed point is off the
    PDE's steady state by O(dt): the populations a PhysiCell user knows depend on that error.
    ``choice = "adi"`` (2D only) takes one Douglas–Rachford ADI step per mechanics step instead:
    exact steady state, the fields of the converged small step at about a third of the grid's
    cost, but not PhysiCell's fields (``benchmarks/physicell_numerics.py``, rules_sample, cells
    frozen on days 1 and 3: ADI at 0.1 min equals ADI at 0.01 min to < 1e-7 of the maximum for
    oxygen and the inflammatory factors, 5e-4 for the debris, while PhysiCell's LOD at 0.01 min is
    4.5-10 % from it; the populations move accordingly, README "PhysiCell projects"). The choice is
    listed in the warning block with the ``--set`` items that restore PhysiCell's numerics.
    """
    if choice not in DIFFUSION_CHOICES:
        raise ConfigError(f"diffusion: {choice!r} is not one of {', '.join(DIFFUSION_CHOICES)}")
    if choice == "physicell":
        t["diffusion_scheme"] = "lod"  # BioFVM's numerics, as in PhysiCell
        return
    if not two_d:
        raise ConfigError("diffusion 'adi': ADI is for 2D projects (this one is 3D); use 'physicell'")
    if dt_diff >= dt_mech:
        t["diffusion_scheme"] = "adi"  # already no finer than mechanics: PhysiCell's step, ADI's scheme
        return
    t["diffusion_scheme"] = "adi"
    t["diffusion_dt"] = _fmt(dt_mech, "min")
    warn.append(
        (
            "overall.dt_diffusion",
            f"BioFVM's LOD at {dt_diff:g} min ({round(dt_mech / dt_diff)} substeps per mechanics step) replaced by"
            f" tme-sim's ADI at dt_mechanics {dt_mech:g} min (--diffusion adi: exact steady state, not PhysiCell's"
            " fields); PhysiCell's numerics: --set time.diffusion_scheme='lod'"
            f" --set time.diffusion_dt='{dt_diff:g} min'",
        )
    )


def _overall(
    r: _Reader, root: Node, doc: dict[str, Any], warn: list[tuple[str, str]], two_d: bool, diffusion: str
) -> None:
    ov = root.child("overall")
    t: dict[str, Any] = {}
    steps: dict[str, float] = {}
    if ov is not None and ov.child("max_time") is not None:
        doc["duration"] = _fmt(r.num(ov.child("max_time")), "min")
    for src, dst in (
        ("dt_diffusion", "diffusion_dt"),
        ("dt_mechanics", "mechanics_dt"),
        ("dt_phenotype", "phenotype_dt"),
    ):
        if ov is not None and ov.child(src) is not None:
            steps[dst] = r.num(ov.child(src))
            t[dst] = _fmt(steps[dst], "min")
    dt_diff = steps.get("diffusion_dt", _PHYSICELL_DT_DIFFUSION)
    _diffusion_numerics(t, dt_diff, steps.get("mechanics_dt", _PHYSICELL_DT_MECHANICS), two_d, diffusion, warn)
    doc["time"] = t
    for tag, want in (("time_units", "min"), ("space_units", "micron")):
        node = ov.child(tag) if ov is not None else None
        if node is not None and node.text and node.text != want:
            warn.append((f"overall.{tag}", f"{node.text!r} read as {want!r} (PhysiCell's units are fixed)"))


def _substrates(
    r: _Reader, root: Node, two_d: bool, warn: list[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``[substrates]`` and the map PhysiCell name → identifier."""
    me = root.child("microenvironment_setup")
    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    if me is None:
        return out, names
    faces = ("xmin", "xmax", "ymin", "ymax") if two_d else ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")
    for var in me.all("variable"):
        pc_name = var.attrs.get("name", "").strip()
        if not pc_name:
            raise ImportFormatError(f"{r.where(var)}: <variable>: missing name attribute")
        name = ident(pc_name)
        unit = "mmHg" if name == "oxygen" else "dimensionless"
        if name != "oxygen" and name in SUBSTRATES and get_substrate(name).unit != unit:
            # tme-sim's own substrate of that name has a physical unit; PhysiCell's is unitless
            warn.append(
                (
                    f"microenvironment_setup.{pc_name}",
                    f"named {name}_physicell: tme-sim's {name} is in {get_substrate(name).unit}, PhysiCell's is {unit}",
                )
            )
            name = f"{name}_physicell"
        names[pc_name] = name
        u = "mmHg" if unit == "mmHg" else ""
        pps = r.req(var, "physical_parameter_set")
        sub: dict[str, Any] = {
            "unit": unit,
            "diffusion": _fmt(r.num(r.req(pps, "diffusion_coefficient")), "um**2/min"),
            "decay": _fmt(r.num(r.req(pps, "decay_rate")), "1/min"),
            "initial": _fmt(r.num(var.child("initial_condition"), 0.0), u),
            "source": f"imported from PhysiCell ({pc_name})",
        }
        if name == "oxygen":
            sub.pop("unit")
        dbc = var.child("Dirichlet_boundary_condition")
        if dbc is not None and r.attr_flag(dbc, "enabled"):
            value = r.num(dbc, 0.0)
            opts = var.child("Dirichlet_options")
            per_face: dict[str, str] = {}
            if opts is not None and opts.all("boundary_value"):
                for bv in opts.all("boundary_value"):
                    face = bv.attrs.get("ID", "")
                    if face in faces and r.attr_flag(bv, "enabled", True):
                        per_face[face] = _fmt(r.num(bv, value), u)
            else:
                per_face = {"all": _fmt(value, u)}
            if per_face:
                sub["boundary"] = per_face
        out[name] = sub
    opts = me.child("options")
    if opts is not None:
        for key in ("initial_condition", "dirichlet_nodes"):
            node = opts.child(key)
            if node is not None and r.attr_flag(node, "enabled"):
                warn.append(
                    (f"microenvironment_setup.options.{key}", "initial/Dirichlet fields from .mat files are not read")
                )
        node = opts.child("track_internalized_substrates_in_each_agent")
        if node is not None and r.flag(node):
            warn.append(("microenvironment_setup.options.track_internalized_substrates_in_each_agent", "not modelled"))
    return out, names


def _cycle(r: _Reader, ph: Node, cell: str, warn: list[tuple[str, str]]) -> dict[str, Any]:
    cyc = ph.child("cycle")
    if cyc is None:
        return {"model": "none", "o2_dependent": False}
    code = int(cyc.attrs.get("code", "-1")) if cyc.attrs.get("code", "").lstrip("-").isdigit() else -1
    rates: dict[tuple[int, int], float] = {}
    ptr = cyc.child("phase_transition_rates")
    pdur = cyc.child("phase_durations")
    if ptr is not None:
        for rate in ptr.all("rate"):
            rates[(r.index(rate, "start_index"), r.index(rate, "end_index"))] = r.num(rate)
    elif pdur is not None:
        durs = pdur.all("duration")
        for i, d in enumerate(durs):
            value = r.num(d)
            rates[(i, (i + 1) % len(durs))] = 1.0 / value if value > 0 else math.inf
    if not rates:
        warn.append((f"cell_definitions.{cell}.cycle", "no transition rates: the type does not divide"))
        return {"model": "none", "o2_dependent": False}
    ordered = [rates[k] for k in sorted(rates)]
    entry = ordered[0]
    rest = sum(1.0 / x for x in ordered[1:] if x > 0 and math.isfinite(x))
    if code not in CYCLE_CODES:
        warn.append((f"cell_definitions.{cell}.cycle", f"unknown cycle code {code}; read as entry rate + fixed rest"))
    elif code not in (1, 5):
        warn.append(
            (
                f"cell_definitions.{cell}.cycle",
                f"'{CYCLE_CODES[code]}' lumped into two phases: entry {entry:g}/min, then {rest:g} min to division",
            )
        )
    return {
        "model": "ki67",
        "entry_rate": _fmt(entry, "1/min"),
        "ki67_positive_duration": _fmt(rest, "min"),
        "o2_dependent": False,
    }


def _death(r: _Reader, ph: Node, cell: str, warn: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    death: dict[str, Any] = {"o2_necrosis": False, "apoptosis_rate": "0 1/min"}
    volume: dict[str, Any] = {}
    d = ph.child("death")
    if d is None:
        return death, volume
    for model in d.all("model"):
        code = model.attrs.get("code", "")
        name = model.attrs.get("name", "").lower()
        rate = r.num(model.child("death_rate"), 0.0)
        durs = [
            r.num(x) for x in (model.find("phase_durations").all("duration") if model.child("phase_durations") else [])
        ]
        params = model.child("parameters")
        if code == "100" or name == "apoptosis":
            death["apoptosis_rate"] = _fmt(rate, "1/min")
            if durs:
                death["apoptosis_duration"] = _fmt(durs[0], "min")
            if params is not None and params.child("cytoplasmic_biomass_change_rate") is not None:
                volume["apoptotic_shrink_rate"] = _fmt(r.num(params.child("cytoplasmic_biomass_change_rate")), "1/min")
        elif code == "101" or name == "necrosis":
            death["necrosis_rate"] = _fmt(rate, "1/min")
            if len(durs) > 1:
                death["lysed_removal_time"] = _fmt(max(durs[1], 1e-9), "min")
            if params is not None:
                if params.child("unlysed_fluid_change_rate") is not None:
                    volume["necrotic_swell_rate"] = _fmt(r.num(params.child("unlysed_fluid_change_rate")), "1/min")
                if params.child("lysed_fluid_change_rate") is not None:
                    volume["lysed_shrink_rate"] = _fmt(r.num(params.child("lysed_fluid_change_rate")), "1/min")
                rup = params.child("relative_rupture_volume")
                if rup is not None and r.num(rup) > 1.0:
                    death["rupture_volume_ratio"] = r.num(rup)
        else:
            warn.append((f"cell_definitions.{cell}.death.{name or code}", "unknown death model, not translated"))
    return death, volume


def _volume(r: _Reader, ph: Node, cell: str, volume: dict[str, Any], warn: list[tuple[str, str]]) -> None:
    v = ph.child("volume")
    if v is None:
        return
    total = r.num(v.child("total"), 2494.0)
    if total <= 0:
        raise ImportFormatError(f"{r.where(v.child('total'))}: <total>: volume must be > 0")
    volume["radius"] = _fmt((3.0 * total / (4.0 * math.pi)) ** (1.0 / 3.0), "um")
    if v.child("cytoplasmic_biomass_change_rate") is not None:
        volume["growth_rate"] = _fmt(r.num(v.child("cytoplasmic_biomass_change_rate")), "1/min")
    calc = v.child("calcification_rate")
    if calc is not None and r.num(calc) > 0:
        warn.append((f"cell_definitions.{cell}.volume.calcification_rate", "calcification is not modelled"))


def _mechanics(r: _Reader, ph: Node, cell: str, subs: dict[str, str], warn: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = ph.child("mechanics")
    if m is not None:
        if m.child("cell_cell_adhesion_strength") is not None:
            out["adhesion"] = _fmt(r.num(m.child("cell_cell_adhesion_strength")), "um/min")
        if m.child("cell_cell_repulsion_strength") is not None:
            out["repulsion"] = _fmt(r.num(m.child("cell_cell_repulsion_strength")), "um/min")
        if m.child("relative_maximum_adhesion_distance") is not None:
            out["max_adhesion_distance"] = max(1.0, r.num(m.child("relative_maximum_adhesion_distance")))
        aff = m.child("cell_adhesion_affinities")
        if aff is not None and any(abs(r.num(a) - 1.0) > 1e-12 for a in aff.all("cell_adhesion_affinity")):
            warn.append(
                (
                    f"cell_definitions.{cell}.mechanics.cell_adhesion_affinities",
                    "per-type affinities ≠ 1 are not modelled (all 1)",
                )
            )
        opts = m.child("options")
        if opts is not None:
            for key in ("set_relative_equilibrium_distance", "set_absolute_equilibrium_distance"):
                node = opts.child(key)
                if node is not None and r.attr_flag(node, "enabled"):
                    warn.append((f"cell_definitions.{cell}.mechanics.{key}", "not modelled"))
        if m.child("attachment_rate") is not None and r.num(m.child("attachment_rate")) > 0:
            warn.append((f"cell_definitions.{cell}.mechanics.attachment_rate", "spring attachments are not modelled"))
    mot = ph.child("motility")
    if mot is None:
        return out
    enabled = r.flag(mot.find("options/enabled"), default=False)
    out["speed"] = _fmt(r.num(mot.child("speed"), 0.0) if enabled else 0.0, "um/min")
    if mot.child("persistence_time") is not None:
        out["persistence"] = _fmt(r.num(mot.child("persistence_time")), "min")
    bias = min(max(r.num(mot.child("migration_bias"), 0.0), 0.0), 1.0)
    chem = mot.find("options/chemotaxis")
    adv = mot.find("options/advanced_chemotaxis")
    if enabled and adv is not None and r.flag(adv.child("enabled")):
        nodes = (
            adv.child("chemotactic_sensitivities").all("chemotactic_sensitivity")
            if adv.child("chemotactic_sensitivities")
            else []
        )
        nonzero: dict[str, float] = {}
        for node in nodes:
            name, value = node.attrs.get("substrate", ""), r.num(node)
            if value == 0.0:
                continue
            if name not in subs:
                raise ImportFormatError(
                    f"{r.where(node)}: <chemotactic_sensitivity substrate>: {name!r} is not a substrate of the project"
                )
            nonzero[subs[name]] = value
        if nonzero:
            out["chemotaxis"] = {"sensitivities": nonzero, "bias": bias}
            if r.flag(adv.child("normalize_each_gradient"), default=False):
                out["chemotaxis"]["normalize_each_gradient"] = True
    elif enabled and chem is not None and r.flag(chem.child("enabled")):
        sub = chem.child("substrate").text if chem.child("substrate") is not None else ""
        if sub not in subs:
            node = chem.child("substrate") or chem
            raise ImportFormatError(f"{r.where(node)}: <substrate>: {sub!r} is not a substrate of the project")
        direction = r.num(chem.child("direction"), 1.0)
        out["chemotaxis"] = {"substrate": subs[sub], "bias": bias, "direction": "up" if direction >= 0 else "down"}
    return out


def _secretion(r: _Reader, ph: Node, cell: str, subs: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sec = ph.child("secretion")
    if sec is None:
        return out
    for s in sec.all("substrate"):
        pc = s.attrs.get("name", "")
        if pc not in subs:
            raise ImportFormatError(f"{r.where(s)}: <substrate name={pc!r}>: not a substrate of the project")
        name = subs[pc]
        u = "mmHg" if name == "oxygen" else ""
        entry = {
            "secretion_rate": _fmt(r.num(s.child("secretion_rate"), 0.0), "1/min"),
            "saturation": _fmt(r.num(s.child("secretion_target"), 0.0), u),
            "uptake_rate": _fmt(r.num(s.child("uptake_rate"), 0.0), "1/min"),
            "net_export": _fmt(r.num(s.child("net_export_rate"), 0.0), f"{u}*um**3/min" if u else "um**3/min"),
        }
        if any(float(v.split()[0]) != 0.0 for v in entry.values()):  # a target alone matters to rules
            out[name] = entry
    return out


def _interactions(
    r: _Reader, ph: Node, cell: str, types: dict[str, str], warn: list[tuple[str, str]]
) -> dict[str, dict[str, str]]:
    """``[cell_types.<name>.interactions]``: non-zero base rates of phagocytosis, attack and
    transformation, and the damage an attack delivers (the rules engine carries them out); fusion and
    spontaneous damage or repair are listed as warnings."""
    out: dict[str, Any] = {}

    def put(group: str, key: str, node: Node) -> None:
        value = r.num(node)
        if value > 0:
            out.setdefault(group, {})[key] = _fmt(value, "1/min")

    ci = ph.child("cell_interactions")
    if ci is not None:
        for tag, key in (("apoptotic_phagocytosis_rate", "apoptotic"), ("necrotic_phagocytosis_rate", "necrotic")):
            if ci.child(tag) is not None:
                put("phagocytosis", key, ci.child(tag))
        node = ci.child("other_dead_phagocytosis_rate")
        if node is not None and r.num(node) > 0:
            warn.append(
                (
                    f"cell_definitions.{cell}.cell_interactions.other_dead_phagocytosis_rate",
                    "every dead cell in tme-sim is apoptotic or necrotic; those rates apply instead",
                )
            )
        for group, item, dest in (
            ("live_phagocytosis_rates", "phagocytosis_rate", "phagocytosis"),
            ("attack_rates", "attack_rate", "attack"),
        ):
            g = ci.child(group)
            for node in g.all(item) if g is not None else []:
                target = node.attrs.get("name", "")
                if target not in types:
                    raise ImportFormatError(f"{r.where(node)}: <{item}>: unknown cell type {target!r}")
                put(dest, types[target], node)
        g = ci.child("fusion_rates")
        for node in g.all("fusion_rate") if g is not None else []:
            if r.num(node) > 0:
                warn.append(
                    (
                        f"cell_definitions.{cell}.cell_interactions.fusion_rates.{node.attrs.get('name', '')}",
                        "fusion is not modelled",
                    )
                )
        if out.get("attack"):
            rate, duration = ci.child("attack_damage_rate"), ci.child("attack_duration")
            if rate is not None and duration is not None and r.num(rate) > 0 and r.num(duration) > 0:
                out["attack_damage_rate"] = _fmt(r.num(rate), "1/min")
                out["attack_duration"] = _fmt(r.num(duration), "min")
            else:
                warn.append(
                    (
                        f"cell_definitions.{cell}.cell_interactions.attack_rates",
                        "no attack_damage_rate/attack_duration > 0: an attack kills at once (apoptosis)",
                    )
                )
    tr = ph.child("cell_transformations")
    g = tr.child("transformation_rates") if tr is not None else None
    for node in g.all("transformation_rate") if g is not None else []:
        target = node.attrs.get("name", "")
        if target not in types:
            raise ImportFormatError(f"{r.where(node)}: <transformation_rate>: unknown cell type {target!r}")
        put("transformation", types[target], node)
    integ = ph.child("cell_integrity")
    if integ is not None:
        for node in integ.children:
            if node.text and r.num(node) > 0:
                key = f"cell_definitions.{cell}.cell_integrity.{node.tag}"
                warn.append((key, "not modelled (damage comes from attacks only)"))
    return out


def _cell_definitions(
    r: _Reader, root: Node, subs: dict[str, str], project: Path, warn: list[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, str], dict[int, str]]:
    cds = r.req(root, "cell_definitions")
    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    ids: dict[int, str] = {}
    defs = cds.all("cell_definition")
    if not defs:
        raise ImportFormatError(f"{r.where(cds)}: <cell_definitions>: no <cell_definition>")
    by_name = {d.attrs.get("name", ""): d for d in defs}
    type_names = {d.attrs.get("name", "").strip(): ident(d.attrs.get("name", "")) for d in defs}
    for d in defs:
        pc = d.attrs.get("name", "").strip()
        if not pc:
            raise ImportFormatError(f"{r.where(d)}: <cell_definition>: missing name attribute")
        name = ident(pc)
        names[pc] = name
        if d.attrs.get("ID", "").isdigit():
            ids[int(d.attrs["ID"])] = name
        ph = d.child("phenotype")
        parent = d.attrs.get("parent_type")
        if ph is None and parent in by_name:
            ph = by_name[parent].child("phenotype")
            warn.append((f"cell_definitions.{pc}", f"inherits {parent!r}: its phenotype is copied"))
        if ph is None:
            raise ImportFormatError(f"{r.where(d)}: <cell_definition name={pc!r}>: missing <phenotype>")
        death, volume = _death(r, ph, pc, warn)
        _volume(r, ph, pc, volume, warn)
        ct: dict[str, Any] = {"rules": "generic", "cycle": _cycle(r, ph, pc, warn), "death": death}
        if volume:
            ct["volume"] = volume
        ct["mechanics"] = _mechanics(r, ph, pc, subs, warn)
        sec = _secretion(r, ph, pc, subs)
        if sec:
            ct["secretion"] = sec
        inter = _interactions(r, ph, pc, type_names, warn)
        if inter:
            ct["interactions"] = inter
        intr = ph.child("intracellular")
        if intr is not None:
            table = translate_intracellular(intr, project, warn, pc)
            if table is not None:
                for inp in table.get("inputs", []):
                    inp["signal"] = subs.get(inp["signal"], inp["signal"])
                ct["intracellular"] = table
        custom = d.child("custom_data")
        if custom is not None and custom.children:
            warn.append(
                (
                    f"cell_definitions.{pc}.custom_data",
                    f"{', '.join(c.tag for c in custom.children)}: custom variables are not modelled yet",
                )
            )
        out[name] = ct
    return out, names, ids


# ---------------------------------------------------------------------------------------------
# CSV files


def _csv_rows(path: Path) -> list[tuple[int, list[str], list[int]]]:
    """Non-comment, non-blank rows of a CSV file: ``(line, fields, 1-based start column of each field)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("//") or stripped.startswith("#"):
            continue
        try:
            fields = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            raise ImportFormatError(f"{path}:{lineno}:1: CSV syntax error: {exc}") from None
        cols, pos = [], 1
        for f in fields:
            cols.append(pos)
            pos += len(f) + 1
        rows.append((lineno, [f.strip() for f in fields], cols))
    return rows


def _csv_num(path: Path, line: int, col: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ImportFormatError(f"{path}:{line}:{col}: {what}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ImportFormatError(f"{path}:{line}:{col}: {what}: expected a finite number, got {text!r}")
    return value


def _rename(text: str, names: dict[str, str]) -> str:
    """Replace PhysiCell names (substrates, types) at the start or end of a signal/behaviour name."""
    for pc in sorted(names, key=len, reverse=True):
        if pc == names[pc]:
            continue
        if text == pc:
            return names[pc]
        if text.endswith(" " + pc):
            text = text[: -len(pc)] + names[pc]
        if text.startswith(pc + " "):
            text = names[pc] + text[len(pc) :]
    return text


def parse_rules_csv(path: Path, types: dict[str, str], subs: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """``cell_rules.csv`` → rules per tme-sim type name.

    Layouts (PhysiCell_rules.cpp): v1 ``type, signal, direction, behavior, base, max response,
    half-max, Hill power, applies to dead`` (9 columns); v2/v3 ``type, signal, direction, behavior,
    max response, half-max, Hill power, applies to dead`` (8 columns). The v1 base value must equal
    the cell definition's (PhysiCell stops otherwise); tme-sim takes the base from the definition.
    """
    names = {**subs, **types}
    out: dict[str, list[dict[str, Any]]] = {}
    for line, f, cols in _csv_rows(path):
        if len(f) not in (8, 9):
            raise ImportFormatError(
                f"{path}:{line}:1: expected 8 columns (v2/v3 layout) or 9 (v1 layout), got {len(f)}"
            )
        for i, value in enumerate(f):
            if value == "":
                raise ImportFormatError(f"{path}:{line}:{cols[i]}: empty field")
        off = 1 if len(f) == 9 else 0
        pc_type, signal, direction, behavior = f[:4]
        if pc_type not in types:
            raise ImportFormatError(f"{path}:{line}:{cols[0]}: unknown cell type {pc_type!r}")
        if direction not in ("increases", "decreases"):
            raise ImportFormatError(
                f"{path}:{line}:{cols[2]}: direction must be 'increases' or 'decreases', got {direction!r}"
            )
        sat = _csv_num(path, line, cols[4 + off], f[4 + off], "max response value")
        half = _csv_num(path, line, cols[5 + off], f[5 + off], "half-max")
        power = _csv_num(path, line, cols[6 + off], f[6 + off], "Hill power")
        dead = _csv_num(path, line, cols[7 + off], f[7 + off], "applies to dead")
        if power <= 0:
            raise ImportFormatError(f"{path}:{line}:{cols[6 + off]}: Hill power must be > 0, got {f[6 + off]!r}")
        if half < 0:
            raise ImportFormatError(f"{path}:{line}:{cols[5 + off]}: half-max must be >= 0, got {f[5 + off]!r}")
        out.setdefault(types[pc_type], []).append(
            {
                "signal": _rename(signal, names),
                "direction": direction,
                "behavior": _rename(behavior, names),
                "saturation": sat,
                "half_max": half,
                "hill_power": power,
                "applies_to_dead": bool(dead),
                "line": line,
            }
        )
    return out


def _supported_rules(
    cell: str,
    rules: list[dict[str, Any]],
    cell_types: dict[str, Any],
    substrates: dict[str, Any],
    path: Path,
    warn: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """The rules the engine can evaluate; each other one becomes a warning naming its line."""
    types = list(cell_types)
    subs = list(substrates)
    units = ["mmHg" if s == "oxygen" else "dimensionless" for s in subs]
    kept = []
    for rule in rules:
        line = rule.pop("line")
        try:
            sig = parse_signal(rule["signal"], types, subs, units, {}, key="signal")
            beh = parse_behavior(rule["behavior"], types, subs, units, {}, key="behavior")
        except ConfigError as exc:
            what = str(exc).split(" (understood")[0].split(": ", 1)[1]
            warn.append(
                (f"{path.name}:{line} ({cell}: {rule['signal']} → {rule['behavior']})", f"{what}; rule dropped")
            )
            continue
        if sig.unit:
            rule["half_max"] = _fmt(rule["half_max"], sig.unit)
        if beh.unit:
            rule["saturation"] = _fmt(rule["saturation"], beh.unit)
        kept.append(rule)
    return kept


def parse_cells_csv(
    path: Path,
    types: dict[str, str],
    ids: dict[int, str],
    origin: list[float],
    two_d: bool,
    warn: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """``cells.csv`` (v1: ``x,y,z,type-id`` rows; v2: a header ``x,y,z,type[,…]``) → one ``points``
    placement per type, positions shifted into ``[0, L]``."""
    rows = _csv_rows(path)
    if not rows:
        return []
    header = None
    if rows[0][1] and rows[0][1][0].lower() == "x":
        header = [h.lower() for h in rows[0][1]]
        if header[:4] != ["x", "y", "z", "type"]:
            raise ImportFormatError(
                f"{path}:{rows[0][0]}:1: header must start with x,y,z,type, got {','.join(rows[0][1][:4])!r}"
            )
        rows = rows[1:]
    points: dict[str, list[list[str]]] = {}
    overridden: set[str] = set()
    for line, f, cols in rows:
        if len(f) < 4:
            raise ImportFormatError(f"{path}:{line}:1: expected x,y,z,type, got {len(f)} fields")
        if header is not None and len(f) > len(header):
            raise ImportFormatError(f"{path}:{line}:{cols[len(header)]}: more fields than the header has")
        xyz = [_csv_num(path, line, cols[i], f[i], "xyz"[i]) - origin[i] for i in range(3)]
        t = f[3]
        if header is None:
            tid = _csv_num(path, line, cols[3], t, "type")
            if int(tid) not in ids:
                raise ImportFormatError(f"{path}:{line}:{cols[3]}: unknown cell type ID {t!r}")
            name = ids[int(tid)]
        else:
            if t not in types:
                raise ImportFormatError(f"{path}:{line}:{cols[3]}: unknown cell type {t!r}")
            name = types[t]
            for i in range(4, len(f)):
                if f[i] not in ("", "skip"):
                    overridden.add(header[i])
        pos = xyz[:2] if two_d else xyz
        points.setdefault(name, []).append([_fmt(p, "um") for p in pos])
    if overridden:
        warn.append(
            (
                "cells.csv",
                f"per-cell settings ({', '.join(sorted(overridden))}) are not applied; cells use their type's",
            )
        )
    return [{"type": name, "shape": "points", "points": pts} for name, pts in points.items()]


# ---------------------------------------------------------------------------------------------
# the whole project


def import_physicell(path: Path | str, diffusion: str = "physicell") -> ImportResult:
    """Translate the PhysiCell project at ``path`` (a settings XML, its ``config/`` or the project folder).

    ``diffusion``: ``"physicell"`` keeps PhysiCell's diffusion numerics (BioFVM LOD at
    ``dt_diffusion``); ``"adi"`` (2D) takes tme-sim's ADI at the mechanics step (see
    :func:`_diffusion_numerics`)."""
    settings = find_settings(Path(path))
    warn: list[tuple[str, str]] = []
    root = parse_xml(settings)
    if root.tag != "PhysiCell_settings":
        raise ImportFormatError(
            f"{settings}:{root.line}:{root.col}: root element is <{root.tag}>, expected <PhysiCell_settings>"
        )
    r = _Reader(settings)
    files = [settings]
    project = settings.parent.parent
    domain, origin, two_d = _domain(r, root, warn)
    doc: dict[str, Any] = {
        "name": ident(project.name if settings.parent.name == "config" else settings.stem),
        "description": f"imported from PhysiCell project {settings}",
    }
    seed = root.find("options/random_seed")
    if seed is not None and seed.text:
        if seed.text.strip().lstrip("-").isdigit():
            doc["seed"] = int(seed.text)
        else:
            warn.append(("options.random_seed", f"{seed.text!r} is not an integer; seed 0 used"))
    _overall(r, root, doc, warn, two_d, diffusion)
    doc["domain"] = domain
    subs_doc, subs = _substrates(r, root, two_d, warn)
    if "oxygen" not in subs_doc:
        subs_doc["oxygen"] = {
            "diffusion": "0 um**2/min",
            "decay": "0 1/min",
            "initial": "38 mmHg",
            "source": "inert field added by the importer (tme-sim requires oxygen)",
        }
        warn.append(
            ("microenvironment_setup", "no oxygen: an inert uniform 38 mmHg field was added (tme-sim requires one)")
        )
    doc["substrates"] = subs_doc
    cell_types, types, ids = _cell_definitions(r, root, subs, project, warn)
    doc["cell_types"] = cell_types
    rules_node = root.find("cell_rules/rulesets")
    for rs in rules_node.all("ruleset") if rules_node is not None else []:
        if not r.attr_flag(rs, "enabled"):
            continue
        fmt = rs.attrs.get("format", "csv").lower()
        if fmt != "csv":
            warn.append(("cell_rules.ruleset", f"format {fmt!r} not read (only CSV)"))
            continue
        folder = rs.child("folder").text if rs.child("folder") is not None else "."
        fname = rs.child("filename").text if rs.child("filename") is not None else "cell_rules.csv"
        rules_path = _resolve(settings, folder, fname)
        if not rules_path.is_file():
            raise ImportFormatError(f"{r.where(rs)}: <ruleset>: rules file {rules_path} not found")
        files.append(rules_path)
        for name, rules in parse_rules_csv(rules_path, types, subs).items():
            kept = _supported_rules(name, rules, cell_types, subs_doc, rules_path, warn)
            if kept:
                cell_types[name].setdefault("behavior_rules", []).extend(kept)
    cp = root.find("initial_conditions/cell_positions")
    if cp is not None and r.attr_flag(cp, "enabled"):
        folder = cp.child("folder").text if cp.child("folder") is not None else "."
        fname = cp.child("filename").text if cp.child("filename") is not None else "cells.csv"
        cells_path = _resolve(settings, folder, fname)
        if not cells_path.is_file():
            raise ImportFormatError(f"{r.where(cp)}: <cell_positions>: cells file {cells_path} not found")
        files.append(cells_path)
        doc["initial_cells"] = parse_cells_csv(cells_path, types, ids, origin, two_d, warn)
    save = root.child("save")
    if save is not None and save.find("full_data/interval") is not None:
        doc["output"] = {"interval": _fmt(r.num(save.find("full_data/interval")), "min")}
    threads = root.find("parallel/omp_num_threads")
    if threads is not None:
        warn.append(("parallel.omp_num_threads", "threads come from NUMBA_NUM_THREADS (results do not depend on them)"))
    up = root.child("user_parameters")
    others = [c.tag for c in up.children if c.tag != "number_of_cells"] if up is not None else []
    n_random = int(r.num(up.child("number_of_cells"), 0.0)) if up is not None else 0
    if n_random > 0:
        # the sample projects' setup_tissue() (custom.cpp) scatters this many cells of every type
        # uniformly over the domain, besides the cells of cells.csv
        doc.setdefault("initial_cells", []).extend(
            {"type": name, "shape": "random", "count": n_random} for name in cell_types
        )
        warn.append(
            (
                "user_parameters.number_of_cells",
                f"read as the sample projects' custom code does: {n_random} random cells per type",
            )
        )
    if up is not None and _treatment_pulse(r, up, subs, subs_doc, warn):
        others = [o for o in others if o not in _TREATMENT_KEYS]
    if others:
        warn.append(("user_parameters", f"{', '.join(others)}: read by PhysiCell custom code only"))
    return ImportResult(doc=doc, warnings=warn, files=files)


_TREATMENT_KEYS = ("treatment", "treatment_substrate", "treatment_period", "treatment_duration")


def _treatment_pulse(
    r: _Reader, up: Node, subs: dict[str, str], subs_doc: dict[str, Any], warn: list[tuple[str, str]]
) -> bool:
    """The PhysiBoSS samples' ``treatment_function`` (custom.cpp): when ``treatment`` is true, the
    Dirichlet faces of ``treatment_substrate`` are on from ``t mod treatment_period == 0`` until
    ``t mod treatment_period == treatment_duration`` and off (zero flux) otherwise. That is a
    ``[substrates.X.pulse]``; True when translated (the four parameters are then used)."""
    if up.child("treatment") is None or up.child("treatment_substrate") is None:
        return False
    if not r.flag(up.child("treatment")):
        return True  # treatment off: the custom code keeps the faces off from the first step
    pc_name = (up.child("treatment_substrate").text or "").strip()
    name = subs.get(pc_name)
    sub = subs_doc.get(name) if name else None
    faces = sub.get("boundary") if sub else None
    if not isinstance(faces, dict) or not faces:
        warn.append(("user_parameters.treatment", f"{pc_name!r} has no Dirichlet faces to pulse; not translated"))
        return False
    values = set(faces.values())
    if len(values) != 1:
        warn.append(("user_parameters.treatment", f"{pc_name!r}: faces with different values; not translated"))
        return False
    period, duration = r.num(up.child("treatment_period")), r.num(up.child("treatment_duration"))
    if not 0 < duration <= period:
        warn.append(("user_parameters.treatment", f"needs 0 < duration <= period, got {duration:g}, {period:g}"))
        return False
    sub["pulse"] = {
        "value": values.pop(),
        "period": _fmt(period, "min"),
        "duration": _fmt(duration, "min"),
        "faces": sorted(faces),
    }
    sub["boundary"] = "zero-flux"
    warn.append(
        (
            "user_parameters.treatment",
            f"read as the sample projects' custom code does: {pc_name} on {duration:g} min every {period:g} min",
        )
    )
    return True


def warning_block(result: ImportResult) -> str:
    """The warnings as one block (empty when there are none)."""
    if not result.warnings:
        return ""
    lines = [f"warning: {len(result.warnings)} PhysiCell settings not translated (setting: reason):"]
    lines += [f"  {k}: {v}" for k, v in result.warnings]
    return "\n".join(lines)
