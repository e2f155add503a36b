"""PhysiBoSS ``<intracellular type="maboss">`` blocks of the PhysiBoSS tutorials -> scenario tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import SHARED_DATA

from tme_sim.intracellular.base import Signals
from tme_sim.intracellular.boolean import BooleanIntracellular, BooleanIntracellularConfig
from tme_sim.intracellular.boolean.physiboss import translate_maboss

TUTORIAL = (
    SHARED_DATA.parent / "anchors" / "physicell-1.14.1" / "sample_projects_intracellular" / "boolean" / "tutorial"
)
if not TUTORIAL.is_dir():
    pytest.skip(f"PhysiBoSS tutorial configurations not found at {TUTORIAL}", allow_module_level=True)


def block(xml_name: str):
    root = ET.parse(TUTORIAL / "config" / xml_name).getroot()
    cell = root.find("cell_definitions/cell_definition")
    return cell.get("name"), cell.find("phenotype/intracellular")


def test_tnf_tutorial_block_translates_and_loads():
    name, element = block("simple_tnf/1_Long_TNF_stochastic_time.xml")
    warnings: list = []
    table = translate_maboss(element, TUTORIAL, warnings, name)
    assert table["dt"] == "1440 min"
    assert table["time_scale"] == pytest.approx(1 / 60)  # one network unit = 60 min
    assert table["inputs"] == [{"node": "TNF", "signal": "TNF", "mode": "threshold", "threshold": 1.0}]
    assert [(o["node"], o["behavior"], o["value_on"]) for o in table["outputs"]] == [
        ("Apoptosis", "apoptosis_rate", "1e+06 1/min"),
        ("NonACD", "necrosis_rate", "1e+06 1/min"),
    ]
    assert [w[0].rsplit(".", 1)[-1] for w in warnings] == ["time_stochasticity"]
    cfg = BooleanIntracellularConfig(**table)
    model = BooleanIntracellular.from_config(cfg, TUTORIAL)
    assert "TNF" in model.network.node_names and model.dt == 1440.0


def test_cell_cycle_knockout_and_unmapped_behaviours():
    name, element = block("cell_cycle/PhysiCell_settings_foxo3_knockout.xml")
    warnings: list = []
    table = translate_maboss(element, TUTORIAL, warnings, name)
    assert table["knockout"] == ["FoxO3"]
    assert table["time_scale"] == pytest.approx(1 / 37.5)
    behaviours = {o["behavior"] for o in table["outputs"]}
    assert behaviours == {"cycle_rate", "apoptosis_rate"}
    # PhysiCell's per-phase exits have no equivalent in tme-sim's one-rate cycle: reported, not dropped silently
    assert sum("exit from cycle phase" in w[1] for w in warnings) == 2
    model = BooleanIntracellular.from_config(BooleanIntracellularConfig(**table), TUTORIAL)
    assert "FoxO3" in model.network.node_names


def test_tnf_pulses_drive_the_translated_network():
    """TNF on for one update then off, against TNF always on: the translated model switches fates
    only while TNF is present (cells that did not commit keep surviving after the pulse)."""
    name, element = block("simple_tnf/1_Long_TNF.xml")
    table = translate_maboss(element, TUTORIAL, [], name)
    table["dt"] = "60 min"  # one network unit per update, to follow the response in time
    model = BooleanIntracellular.from_config(BooleanIntracellularConfig(**table), TUTORIAL)
    net = model.network
    n = 4000
    fates = {}
    for label, pulse in (("continuous", 48), ("one pulse", 1), ("none", 0)):
        rng = np.random.default_rng(0)
        state = model.initial_state(n, rng)
        for step in range(48):
            tnf = np.full((n, 1), 10.0 if step < pulse else 0.0)
            model.update(Signals(["TNF"], tnf), state, 60.0, rng)
        fates[label] = {f: float(state[:, net.index(f)].mean()) for f in ("Apoptosis", "NonACD", "Survival")}
    assert fates["none"]["Apoptosis"] < 0.05 and fates["none"]["NonACD"] < 0.05
    dead = {k: v["Apoptosis"] + v["NonACD"] for k, v in fates.items()}
    assert dead["continuous"] > dead["one pulse"] > dead["none"]
