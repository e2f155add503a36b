"""`tme import physicell`: every translated number of the shipped PhysiCell samples, and malformed
projects as one-line errors (file:line:column), exit 2, nothing written."""

from __future__ import annotations

import csv
import math
import re
import shutil
import tomllib
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tme_sim.cli.main import main
from tme_sim.config import validate_scenario
from tme_sim.importers.physicell import ident, import_physicell
from tme_sim.importers.scenario_file import scenario_text
from tme_sim.units import to_unit

PC = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "physicell-1.14.1"
SAMPLES = ["rules_sample", "immune_function", "template"]

needs_physicell = pytest.mark.skipif(
    not PC.is_dir(), reason=f"PhysiCell 1.14.1 anchors not found at {PC} (../shared/anchors)"
)


def call(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def num(text: str, unit: str) -> float:
    return to_unit(text, unit, allow_dimensionless=unit in ("", "1"))


def _rules_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.strip().startswith("//"):
            rows.append([f.strip() for f in next(csv.reader([line]))])
    return rows


@needs_physicell
@pytest.mark.parametrize("sample", SAMPLES)
def test_every_translated_number_round_trips(sample, tmp_path):
    config = PC / "sample_projects" / sample / "config"
    result = import_physicell(config)
    # the written file reads back to the same document and validates
    text = scenario_text(result)
    doc = tomllib.loads(text)
    assert doc == result.doc
    validate_scenario(doc, sample)

    root = ET.parse(config / "PhysiCell_settings.xml").getroot()
    dom = root.find("domain")
    lo = [float(dom.find(f"{a}_min").text) for a in "xyz"]
    hi = [float(dom.find(f"{a}_max").text) for a in "xyz"]
    two_d = dom.find("use_2D").text.strip().lower() == "true"
    dim = 2 if two_d else 3
    assert [num(s, "um") for s in doc["domain"]["size"]] == pytest.approx([hi[i] - lo[i] for i in range(dim)])
    assert num(doc["domain"]["dx"], "um") == float(dom.find("dx").text)
    assert num(doc["duration"], "min") == float(root.find("overall/max_time").text)
    assert num(doc["time"]["mechanics_dt"], "min") == float(root.find("overall/dt_mechanics").text)
    assert doc["time"]["diffusion_scheme"] == "lod"  # BioFVM's numerics, as in PhysiCell
    assert num(doc["time"]["diffusion_dt"], "min") == float(root.find("overall/dt_diffusion").text)
    # --diffusion adi: one ADI step per mechanics step (exact steady state), listed in the warnings
    adi = import_physicell(config, diffusion="adi")
    dt_diff = float(root.find("overall/dt_diffusion").text)
    assert two_d and dt_diff < float(root.find("overall/dt_mechanics").text)
    assert adi.doc["time"]["diffusion_scheme"] == "adi"
    assert adi.doc["time"]["diffusion_dt"] == doc["time"]["mechanics_dt"]
    note = dict(adi.warnings)["overall.dt_diffusion"]
    assert f"time.diffusion_dt='{dt_diff:g} min'" in note and "time.diffusion_scheme='lod'" in note
    assert "overall.dt_diffusion" not in dict(result.warnings)

    for var in root.find("microenvironment_setup").findall("variable"):
        sub = doc["substrates"][ident(var.get("name"))]
        unit = "mmHg" if var.get("name") == "oxygen" else ""
        assert num(sub["diffusion"], "um**2/min") == float(
            var.find("physical_parameter_set/diffusion_coefficient").text
        )
        assert num(sub["decay"], "1/min") == float(var.find("physical_parameter_set/decay_rate").text)
        assert num(sub["initial"], unit) == float(var.find("initial_condition").text)
        dbc = var.find("Dirichlet_boundary_condition")
        if dbc.get("enabled", "").lower() == "true":
            for bv in var.findall("Dirichlet_options/boundary_value"):
                face = bv.get("ID")
                if bv.get("enabled", "").lower() == "true" and (face[0] != "z" or not two_d):
                    assert num(sub["boundary"][face], unit) == float(bv.text)
        else:
            assert "boundary" not in sub

    for cd in root.find("cell_definitions").findall("cell_definition"):
        ct = doc["cell_types"][ident(cd.get("name"))]
        ph = cd.find("phenotype")
        rates = [float(r.text) for r in ph.findall("cycle/phase_transition_rates/rate")]
        rates = rates or [1.0 / float(d.text) for d in ph.findall("cycle/phase_durations/duration")]
        assert num(ct["cycle"]["entry_rate"], "1/min") == pytest.approx(rates[0])
        rest = sum(1.0 / r for r in rates[1:] if r > 0)
        assert num(ct["cycle"]["ki67_positive_duration"], "min") == pytest.approx(rest, rel=1e-9)
        for model in ph.findall("death/model"):
            key = {"100": "apoptosis_rate", "101": "necrosis_rate"}[model.get("code")]
            assert num(ct["death"][key], "1/min") == float(model.find("death_rate").text)
        total = float(ph.find("volume/total").text)
        assert 4 / 3 * math.pi * num(ct["volume"]["radius"], "um") ** 3 == pytest.approx(total)
        enabled = ph.find("motility/options/enabled").text.strip().lower() == "true"
        speed = float(ph.find("motility/speed").text) if enabled else 0.0
        assert num(ct["mechanics"]["speed"], "um/min") == speed
        adv = ph.find("motility/options/advanced_chemotaxis")
        if enabled and adv is not None and adv.find("enabled").text.strip().lower() == "true":
            want = {
                ident(n.get("substrate")): float(n.text)
                for n in adv.findall("chemotactic_sensitivities/chemotactic_sensitivity")
                if float(n.text) != 0.0
            }
            got = ct["mechanics"].get("chemotaxis", {}).get("sensitivities", {})
            assert got == want
            assert ct["mechanics"].get("chemotaxis", {}).get("bias", 0.0) == (
                float(ph.find("motility/migration_bias").text) if want else 0.0
            )
        assert num(ct["mechanics"]["repulsion"], "um/min") == float(
            ph.find("mechanics/cell_cell_repulsion_strength").text
        )
        inter = ct.get("interactions", {})
        for tag, key in (("apoptotic_phagocytosis_rate", "apoptotic"), ("necrotic_phagocytosis_rate", "necrotic")):
            value = float(ph.find(f"cell_interactions/{tag}").text)
            assert num(inter.get("phagocytosis", {}).get(key, "0 1/min"), "1/min") == value
        damage = [float(ph.find(f"cell_interactions/{t}").text) for t in ("attack_damage_rate", "attack_duration")]
        if inter.get("attack") and min(damage) > 0:
            assert num(inter["attack_damage_rate"], "1/min") == damage[0]
            assert num(inter["attack_duration"], "min") == damage[1]
        for node in ph.findall("cell_interactions/attack_rates/attack_rate"):
            got_rate = inter.get("attack", {}).get(ident(node.get("name")), "0 1/min")
            assert num(got_rate, "1/min") == float(node.text)
        for node in ph.findall("cell_transformations/transformation_rates/transformation_rate"):
            got_rate = inter.get("transformation", {}).get(ident(node.get("name")), "0 1/min")
            assert num(got_rate, "1/min") == float(node.text)
        for s in ph.findall("secretion/substrate"):
            up = float(s.find("uptake_rate").text)
            sec = float(s.find("secretion_rate").text)
            entry = ct.get("secretion", {}).get(ident(s.get("name")))
            target = float(s.find("secretion_target").text)
            if up == 0 and sec == 0 and float(s.find("net_export_rate").text) == 0 and target == 0:
                assert entry is None
            else:
                assert num(entry["uptake_rate"], "1/min") == up
                assert num(entry["secretion_rate"], "1/min") == sec
                unit = "mmHg" if s.get("name") == "oxygen" else ""
                assert num(entry["saturation"], unit) == target

    rules_file = config / "cell_rules.csv"
    rows = _rules_rows(rules_file)
    got = [(t, r) for t, ct in doc["cell_types"].items() for r in ct.get("behavior_rules", [])]
    dropped = {int(k.split(":")[1].split()[0]) for k, _ in result.warnings if k.startswith("cell_rules.csv:")}
    assert len(got) + len(dropped) == len(rows)
    by_type: dict[str, list[dict]] = {}
    for t, r in got:
        by_type.setdefault(t, []).append(r)
    lines = [
        i
        for i, line in enumerate(rules_file.read_text().splitlines(), 1)
        if line.strip() and not line.strip().startswith("//")
    ]
    for line, row in zip(lines, rows, strict=True):
        if line in dropped:
            continue
        r = by_type[ident(row[0])].pop(0)
        assert r["direction"] == row[2]
        values = [v if isinstance(v, float) else float(v.split()[0]) for v in (r["saturation"], r["half_max"])]
        assert (*values, r["hill_power"]) == (float(row[4]), float(row[5]), float(row[6]))
        assert r["applies_to_dead"] is bool(float(row[7]))
        assert r["signal"] == ident(row[1]) or r["signal"].split()[0] == row[1].split()[0]

    enabled = root.find("initial_conditions/cell_positions").get("enabled", "").lower() == "true"
    cell_rows = _rules_rows(config / "cells.csv") if enabled else []
    if cell_rows and cell_rows[0][0].lower() == "x":
        cell_rows = cell_rows[1:]
    placements = doc.get("initial_cells", [])
    placed = [p for placement in placements if placement["shape"] == "points" for p in placement["points"]]
    n_random = int(root.find("user_parameters/number_of_cells").text)
    randoms = [p for p in placements if p["shape"] == "random"]
    assert [p["count"] for p in randoms] == ([n_random] * len(doc["cell_types"]) if n_random else [])
    assert len(placed) == len(cell_rows)
    if cell_rows:
        first = next(p for p in doc["initial_cells"] if p["type"] == ident(cell_rows[0][3]))["points"][0]
        assert [num(v, "um") for v in first] == pytest.approx([float(cell_rows[0][i]) - lo[i] for i in range(dim)])


@needs_physicell
def test_warnings_list_what_is_not_translated():
    result = import_physicell(PC / "sample_projects" / "immune_function" / "config")
    keys = [k for k, _ in result.warnings]
    assert "microenvironment_setup" in keys  # the added oxygen field
    assert "cells.csv" in keys  # per-cell overrides
    assert all(reason for _, reason in result.warnings)


@needs_physicell
def test_cli_writes_once_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "rs.toml"
    args = ["import", "physicell", str(PC / "sample_projects" / "rules_sample" / "config"), "--out", str(out)]
    code, stdout, err = call(args, capsys)
    assert code == 0 and out.is_file() and "wrote" in stdout and "warning:" in err
    before = out.read_text()
    code, _, err = call(args, capsys)
    assert code == 2 and err.startswith("error:") and "exists" in err and out.read_text() == before


# ---------------------------------------------------------------------------------------------
# malformed projects

GOOD_XML = """<PhysiCell_settings version="devel-version">
  <domain><x_min>-100</x_min><x_max>100</x_max><y_min>-100</y_min><y_max>100</y_max>
    <z_min>-10</z_min><z_max>10</z_max><dx>20</dx><dy>20</dy><dz>20</dz><use_2D>true</use_2D></domain>
  <overall><max_time units="min">60</max_time></overall>
  <microenvironment_setup>
    <variable name="oxygen" units="mmHg" ID="0">
      <physical_parameter_set><diffusion_coefficient>100000</diffusion_coefficient><decay_rate>0.1</decay_rate>
      </physical_parameter_set><initial_condition>38</initial_condition>
      <Dirichlet_boundary_condition enabled="false">38</Dirichlet_boundary_condition></variable>
  </microenvironment_setup>
  <cell_definitions>
    <cell_definition name="tumor" ID="0"><phenotype>
      <cycle code="5" name="live"><phase_transition_rates><rate start_index="0" end_index="0">0.001</rate>
      </phase_transition_rates></cycle>
      <secretion><substrate name="oxygen"><uptake_rate>10</uptake_rate></substrate></secretion>
    </phenotype></cell_definition>
  </cell_definitions>
  <initial_conditions><cell_positions type="csv" enabled="true"><folder>./config</folder>
    <filename>cells.csv</filename></cell_positions></initial_conditions>
  <cell_rules><rulesets><ruleset protocol="CBHG" version="3.0" format="csv" enabled="true">
    <folder>./config</folder><filename>cell_rules.csv</filename></ruleset></rulesets></cell_rules>
</PhysiCell_settings>
"""
GOOD_RULES = "tumor,oxygen,increases,cycle entry,0.003,21.5,4,0\n"
GOOD_CELLS = "x,y,z,type\n0,0,0,tumor\n10,0,0,tumor\n"

#: (name, file to change, new text or (old, new), expected fragment of the error after the file name)
MALFORMED = [
    ("unclosed tag", "xml", ("</overall>", ""), r":\d+:\d+: XML syntax error"),
    ("not xml at all", "xml", "just text\n", r":1:1: XML syntax error"),
    ("empty xml", "xml", "", r":1:1: XML syntax error"),
    ("wrong root", "xml", "<Settings><domain/></Settings>\n", r":1:1: root element is <Settings>"),
    ("dx not a number", "xml", ("<dx>20</dx>", "<dx>twenty</dx>"), r":3:\d+: <dx>: expected a number"),
    ("x_max below x_min", "xml", ("<x_max>100</x_max>", "<x_max>-200</x_max>"), r":2:\d+: <x_max> must exceed"),
    ("no domain", "xml", ("<domain>", "<domainX>"), r"XML syntax error|missing <domain>"),
    (
        "unknown secreted substrate",
        "xml",
        ('substrate name="oxygen"', 'substrate name="ox"'),
        r":\d+:\d+: .*not a substrate",
    ),
    (
        "unknown chemotaxis substrate",
        "xml",
        (
            "<secretion>",
            "<motility><speed>1</speed><options><enabled>true</enabled><advanced_chemotaxis><enabled>true"
            '</enabled><chemotactic_sensitivities><chemotactic_sensitivity substrate="debris">1'
            "</chemotactic_sensitivity></chemotactic_sensitivities></advanced_chemotaxis></options></motility>"
            "<secretion>",
        ),
        r":\d+:\d+: <chemotactic_sensitivity substrate>: 'debris' is not a substrate",
    ),
    ("bad rate", "xml", (">0.001</rate>", ">fast</rate>"), r":\d+:\d+: <rate>: expected a number"),
    (
        "bad rate index",
        "xml",
        ('start_index="0"', 'start_index="first"'),
        r":\d+:\d+: <rate start_index=...>: expected an integer",
    ),
    ("rules: wrong column count", "rules", "tumor,oxygen,increases,cycle entry,0.003\n", r":1:1: expected 8 columns"),
    (
        "rules: half-max not a number",
        "rules",
        "tumor,oxygen,increases,cycle entry,0.003,abc,4,0\n",
        r":1:\d+: half-max",
    ),
    (
        "rules: unknown type",
        "rules",
        "tumour,oxygen,increases,cycle entry,0.003,21.5,4,0\n",
        r":1:1: unknown cell type",
    ),
    ("rules: bad direction", "rules", "tumor,oxygen,rises,cycle entry,0.003,21.5,4,0\n", r":1:\d+: direction"),
    (
        "rules: Hill power 0",
        "rules",
        "// c\ntumor,oxygen,increases,cycle entry,0.003,21.5,0,0\n",
        r":2:\d+: Hill power",
    ),
    ("rules: empty field", "rules", "tumor,,increases,cycle entry,0.003,21.5,4,0\n", r":1:\d+: empty field"),
    ("cells: unknown type", "cells", "x,y,z,type\n0,0,0,blob\n", r":2:\d+: unknown cell type"),
    ("cells: x not a number", "cells", "x,y,z,type\nabc,0,0,tumor\n", r":2:1: x: expected a number"),
    ("cells: unknown type ID", "cells", "0,0,0,7\n", r":1:\d+: unknown cell type ID"),
    ("cells: bad header", "cells", "x,y,type,z\n0,0,0,0\n", r":1:1: header"),
]


def _project(tmp: Path) -> Path:
    cfg = tmp / "proj" / "config"
    cfg.mkdir(parents=True)
    (cfg / "PhysiCell_settings.xml").write_text(GOOD_XML)
    (cfg / "cell_rules.csv").write_text(GOOD_RULES)
    (cfg / "cells.csv").write_text(GOOD_CELLS)
    return cfg


def test_minimal_project_imports(tmp_path, capsys):
    cfg = _project(tmp_path)
    out = tmp_path / "s.toml"
    code, _stdout, err = call(["import", "physicell", str(cfg), "--out", str(out)], capsys)
    assert code == 0, err
    doc = tomllib.loads(out.read_text())
    assert doc["cell_types"]["tumor"]["behavior_rules"][0]["half_max"] == "21.5 mmHg"
    assert doc["initial_cells"][0]["points"] == [["100 um", "100 um"], ["110 um", "100 um"]]


@pytest.mark.parametrize(
    ("use_2d", "overall", "choice", "scheme", "dt"),
    [
        ("true", "", "physicell", "lod", "0.01 min"),  # PhysiCell's numerics, its default steps
        ("true", "", "adi", "adi", "0.1 min"),  # ADI at PhysiCell's default mechanics step
        (
            "true",
            '<dt_diffusion units="min">0.02</dt_diffusion><dt_mechanics units="min">0.2</dt_mechanics>',
            "adi",
            "adi",
            "0.2 min",
        ),
        (
            "true",
            '<dt_diffusion units="min">0.5</dt_diffusion><dt_mechanics units="min">0.1</dt_mechanics>',
            "adi",
            "adi",
            "0.5 min",
        ),  # diffusion no finer than mechanics already: PhysiCell's step
        ("false", '<dt_diffusion units="min">0.01</dt_diffusion>', "physicell", "lod", "0.01 min"),
    ],
)
def test_diffusion_numerics_choice(use_2d, overall, choice, scheme, dt, tmp_path):
    cfg = _project(tmp_path)
    xml = cfg / "PhysiCell_settings.xml"
    text = GOOD_XML.replace("<use_2D>true</use_2D>", f"<use_2D>{use_2d}</use_2D>")
    xml.write_text(text.replace("</max_time>", "</max_time>" + overall))
    result = import_physicell(cfg, diffusion=choice)
    assert result.doc["time"]["diffusion_scheme"] == scheme
    assert result.doc["time"].get("diffusion_dt", "0.01 min") == dt
    assert ("overall.dt_diffusion" in dict(result.warnings)) == (choice == "adi" and dt != "0.5 min")
    validate_scenario(result.doc, "numerics")


@pytest.mark.parametrize(("use_2d", "choice"), [("false", "adi"), ("true", "fast")])
def test_diffusion_choice_refused_with_one_line_exit_2(use_2d, choice, tmp_path, capsys):
    cfg = _project(tmp_path)
    (cfg / "PhysiCell_settings.xml").write_text(GOOD_XML.replace("<use_2D>true", f"<use_2D>{use_2d}"))
    out = tmp_path / "s.toml"
    code, _stdout, err = call(["import", "physicell", str(cfg), "--out", str(out), "--diffusion", choice], capsys)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and "diffusion" in err
    assert not out.exists()


def test_corpus_is_large_enough():
    assert len(MALFORMED) >= 10


@pytest.mark.parametrize(("name", "which", "change", "pattern"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_is_one_line_error_exit_2_nothing_written(name, which, change, pattern, tmp_path, capsys):
    cfg = _project(tmp_path)
    target = cfg / {"xml": "PhysiCell_settings.xml", "rules": "cell_rules.csv", "cells": "cells.csv"}[which]
    if isinstance(change, tuple):
        text = target.read_text()
        assert change[0] in text
        target.write_text(text.replace(change[0], change[1], 1))
    else:
        target.write_text(change)
    out = tmp_path / "out.toml"
    code, _stdout, err = call(["import", "physicell", str(cfg), "--out", str(out)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert target.name in lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()
    assert list(tmp_path.glob("*.toml")) == [] and list(tmp_path.glob(".out.toml*")) == []


def test_missing_project_is_one_line_error(tmp_path, capsys):
    code, _, err = call(["import", "physicell", str(tmp_path / "nope")], capsys)
    assert code == 2 and err.startswith("error:") and "no such file" in err


def test_project_folder_is_found_from_its_root(tmp_path):
    cfg = _project(tmp_path)
    assert import_physicell(cfg.parent).files[0] == cfg / "PhysiCell_settings.xml"
    shutil.rmtree(cfg.parent)


@needs_physicell
@pytest.mark.parametrize("sample", SAMPLES)
def test_imported_sample_runs(sample, tmp_path, capsys):
    scenario = tmp_path / f"{sample}.toml"
    code, _, err = call(
        ["import", "physicell", str(PC / "sample_projects" / sample / "config"), "-o", str(scenario)], capsys
    )
    assert code == 0, err
    out = tmp_path / "run.h5"
    code, _, err = call(["run", str(scenario), "--duration", "12 min", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    from tme_sim.io import read_population

    pop = read_population(out)
    assert pop["live"].sum() > 0


def test_intracellular_blocks_go_through_the_registry(tmp_path):
    from tme_sim.importers import intracellular as reg

    cfg = _project(tmp_path)
    xml = cfg / "PhysiCell_settings.xml"
    block = '<intracellular type="fake_kind"><bnd_filename>x.bnd</bnd_filename></intracellular>'
    xml.write_text(xml.read_text().replace("</secretion>", "</secretion>" + block))
    # no translator: one warning naming the setting, the cells run without it
    result = import_physicell(cfg)
    assert "intracellular" not in result.doc["cell_types"]["tumor"]
    assert any(k == "cell_definitions.tumor.intracellular" and "fake_kind" in v for k, v in result.warnings)

    seen = {}

    def translate(element, project_dir, warnings, cell_type):
        seen["args"] = (element.find("bnd_filename").text, project_dir, cell_type)
        return {"kind": "rules"}

    reg.register_intracellular("fake_kind", translate)
    try:
        result = import_physicell(cfg)
    finally:
        reg._TRANSLATORS.pop("fake_kind")
    assert result.doc["cell_types"]["tumor"]["intracellular"] == {"kind": "rules"}
    assert seen["args"] == ("x.bnd", cfg.parent, "tumor")


def test_toml_writer_round_trips_awkward_names_and_values():
    from tme_sim.importers.toml_writer import dumps

    doc = {
        "name": 'a "quoted" name',
        "n": 3,
        "x": 0.1,
        "flag": True,
        "list": ["1 um", "2 um"],
        "table": {"key with space": {"inner": 1.5e-300}, "empty": {}},
        "rows": [{"a": 1, "b": [[1.0, 2.0]]}, {"a": 2, "b": []}],
    }
    assert tomllib.loads(dumps(doc)) == doc
