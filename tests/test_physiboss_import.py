"""`tme import physicell` on the PhysiBoSS tutorials: the ``maboss`` translator is registered, the
intracellular block and the TNF treatment round-trip into a scenario that validates."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET

import pytest
from conftest import SHARED_DATA

from tme_sim.config import load_scenario
from tme_sim.importers.intracellular import intracellular_kinds
from tme_sim.importers.physicell import import_physicell
from tme_sim.importers.toml_writer import dumps

TUTORIAL = (
    SHARED_DATA.parent / "anchors" / "physicell-1.14.1" / "sample_projects_intracellular" / "boolean" / "tutorial"
)
if not TUTORIAL.is_dir():
    pytest.skip(f"PhysiBoSS tutorial configurations not found at {TUTORIAL}", allow_module_level=True)


def _xml_block(xml: str):
    return (
        ET.parse(TUTORIAL / "config" / xml).getroot().find("cell_definitions/cell_definition/phenotype/intracellular")
    )


def _roundtrip(xml: str, tmp_path) -> dict:
    """Import, write the TOML, read it back and validate it as a scenario."""
    result = import_physicell(TUTORIAL / "config" / xml)
    path = tmp_path / "scenario.toml"
    path.write_text(dumps(result.doc))
    load_scenario(path)  # validates (pydantic + pint), including the intracellular table
    with path.open("rb") as f:
        return tomllib.load(f)


def test_maboss_translator_is_registered():
    assert "maboss" in intracellular_kinds()


@pytest.mark.parametrize("xml", ["simple_tnf/1_Long_TNF.xml", "simple_tnf/2_Short_TNF.xml"])
def test_tnf_tutorial_imports_with_network_and_treatment(xml, tmp_path):
    doc = _roundtrip(xml, tmp_path)
    block = _xml_block(xml)
    intr = doc["cell_types"]["default"]["intracellular"]
    assert intr["kind"] == "boolean"
    # files resolve from the project root (the settings file sits in config/simple_tnf/)
    assert intr["bnd"].endswith(block.findtext("bnd_filename"))
    assert intr["cfg"].endswith(block.findtext("cfg_filename"))
    assert intr["dt"] == f"{float(block.findtext('settings/intracellular_dt')):g} min"
    # PhysiBoSS runs the network for time_to_update / scaling network units per update
    assert intr["time_scale"] == pytest.approx(1 / float(block.findtext("settings/scaling")))
    inp = block.find("mapping/input")
    assert intr["inputs"] == [
        {
            "node": inp.get("intracellular_name"),
            "signal": "TNF_physicell",
            "mode": "threshold",
            "threshold": float(inp.findtext("settings/threshold")),
        }
    ]
    outs = [(o.get("intracellular_name"), float(o.findtext("settings/value"))) for o in block.findall("mapping/output")]
    assert [(o["node"], float(o["value_on"].split()[0])) for o in intr["outputs"]] == outs
    assert [o["behavior"] for o in intr["outputs"]] == ["apoptosis_rate", "necrosis_rate"]
    # the custom code's treatment_function becomes a pulse of the Dirichlet faces
    up = ET.parse(TUTORIAL / "config" / xml).getroot().find("user_parameters")
    tnf = doc["substrates"]["TNF_physicell"]  # tme-sim's own TNF is in ng/mL
    assert tnf["boundary"] == "zero-flux"
    assert tnf["pulse"]["period"] == f"{float(up.findtext('treatment_period')):g} min"
    assert tnf["pulse"]["duration"] == f"{float(up.findtext('treatment_duration')):g} min"
    assert tnf["pulse"]["faces"] == ["xmax", "xmin", "ymax", "ymin"]
    assert float(tnf["pulse"]["value"]) == 10.0


@pytest.mark.parametrize(
    ("xml", "knockout", "knockin"),
    [
        ("cell_cycle/PhysiCell_settings.xml", None, None),
        ("cell_cycle/PhysiCell_settings_foxo3_knockout.xml", ["FoxO3"], None),
        ("cell_cycle/PhysiCell_settings_p110_knockin.xml", None, ["p110_H"]),
    ],
)
def test_cell_cycle_tutorial_imports_mutations_and_scaling(xml, knockout, knockin, tmp_path):
    doc = _roundtrip(xml, tmp_path)
    block = _xml_block(xml)
    tables = [ct["intracellular"] for ct in doc["cell_types"].values() if "intracellular" in ct]
    assert tables, "no cell type carries the network"
    intr = tables[0]
    assert intr["bnd"].endswith(block.findtext("bnd_filename"))
    assert intr["time_scale"] == pytest.approx(1 / float(block.findtext("settings/scaling")))
    assert intr["dt"] == f"{float(block.findtext('settings/intracellular_dt')):g} min"
    assert intr.get("knockout") == knockout
    assert intr.get("knockin") == knockin


def _run(doc: dict, tmp_path, tag: str) -> dict[str, int]:
    """Run an imported scenario for 1500 min (one network update, at 1440 min); event counts."""
    import json
    import os
    import subprocess
    import sys

    import h5py

    toml, h5 = tmp_path / f"{tag}.toml", tmp_path / f"{tag}.h5"
    toml.write_text(dumps(doc))
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "tme_sim", "run", str(toml), "--allow-outside-paths", "--duration", "1500 min"]
    cmd += [
        "--set",
        "time.diffusion_dt=0.5 min",
        "--set",
        "time.mechanics_dt=0.5 min",
        "-o",
        str(h5),
        "-q",
        "--no-plot",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    with h5py.File(h5) as f:
        kinds = json.loads(f["events"].attrs["kinds"])
        kind = f["events/kind"][:]
        live = f["population/counts"][:, :, 0].sum(axis=1)
    return {"live_start": int(live[0]), **{k: int((kind == i).sum()) for i, k in enumerate(kinds)}}


@pytest.mark.slow
def test_imported_tnf_tutorial_runs_and_tnf_kills(tmp_path):
    """TNF on the faces reaches the cells; at the first network update (1440 min) the network
    sends most of them into apoptosis; without TNF none die."""
    doc = import_physicell(TUTORIAL / "config" / "simple_tnf" / "1_Long_TNF.xml").doc
    treated = _run(doc, tmp_path, "tnf")
    doc["substrates"]["TNF_physicell"].pop("pulse")
    control = _run(doc, tmp_path, "control")
    assert control["apoptosis"] == 0 and control["necrosis"] == 0
    alive_then = treated["live_start"] + treated["division"]
    assert treated["apoptosis"] + treated["necrosis"] > 0.5 * alive_then


def test_output_base_value_defaults_to_value_as_in_physiboss(tmp_path):
    """PhysiBoSS reads a missing ``base_value`` as ``value`` (not 0)."""
    from tme_sim.intracellular.boolean.physiboss import translate_maboss

    (tmp_path / "m.bnd").write_text("Node A { logic = A; rate_up = 0; rate_down = 0; }\n")
    (tmp_path / "m.cfg").write_text("A.istate = 1;\n")
    block = ET.fromstring(
        "<intracellular type='maboss'><bnd_filename>m.bnd</bnd_filename><cfg_filename>m.cfg</cfg_filename>"
        "<mapping><output physicell_name='apoptosis' intracellular_name='A'>"
        "<settings><action>activation</action><value>0.5</value></settings></output></mapping></intracellular>"
    )
    table = translate_maboss(block, tmp_path, [], "t")
    assert table["outputs"][0]["value_on"] == table["outputs"][0]["value_off"] == "0.5 1/min"
