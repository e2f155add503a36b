"""Drugs acting on surrogate cell types inside the spatial simulation (issue 7).

Local drug concentration (a grid substrate) → Hill occupancy of each drug–target link → the
surrogate's ``KO_<T>``/``KI_<T>`` flag inputs, a ligand input named as the target, or a drive on a
node of a signaling surrogate (the screen's masked drug→target layer) → behaviours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
networks = pytest.importorskip("tme_sim.intracellular.neural.networks")
artifact_mod = pytest.importorskip("tme_sim.intracellular.neural.artifact")

from tme_sim.cells import ALIVE  # noqa: E402
from tme_sim.config import load_scenario  # noqa: E402
from tme_sim.config.drugs import parse_library  # noqa: E402
from tme_sim.drugs.effects import SurrogateDrugEffects, compile_surrogate_targets, hill  # noqa: E402
from tme_sim.errors import ConfigError, TMEError  # noqa: E402
from tme_sim.intracellular.base import Signals  # noqa: E402
from tme_sim.intracellular.surrogate import SurrogateIntracellular, SurrogateIntracellularConfig  # noqa: E402
from tme_sim.model import TMEModel  # noqa: E402
from tme_sim.screening.surrogate_model import SurrogateModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "tme_sim" / "scenarios"
LIB = SCEN / "drugs.toml"
TNF_SUR = SCEN / "models" / "tnf_fate_surrogate.pt"
INPUTS = ["TNF", "FASL", "KO_cIAP", "KO_BCL2", "KI_BCL2"]


def library():
    return parse_library(
        {
            "drugs": {
                "bcl2i": {"targets": [{"node": "BCL2"}], "ic50": "10 nM"},
                "ciapi": {"targets": [{"node": "cIAP"}], "ic50": "1 nM", "hill": 2},
                "tnf_blocker": {"targets": [{"node": "TNF"}], "ic50": "4 nM"},
                "tnf_agonist": {"targets": [{"node": "TNF", "action": "activate"}], "ec50": "4 nM"},
                "kin_inh": {"targets": [{"node": "IKBKB"}], "ic50": "10 nM"},
                "off_target": {"targets": [{"node": "RIP1K"}], "ic50": "1 nM"},
            }
        }
    )


# ------------------------------------------------------------------ target resolution


def test_targets_resolve_to_flags_ligand_inputs_or_nodes_and_a_missing_one_is_one_line():
    lib = library()
    links = compile_surrogate_targets(lib.select(["bcl2i", "ciapi", "tnf_blocker"]), INPUTS)
    assert links.flags.node.tolist() == [INPUTS.index("KO_BCL2"), INPUTS.index("KO_cIAP")]
    assert links.inputs.node.tolist() == [0] and links.inputs.inhibit.tolist() == [True]
    assert links.nodes.n_links == 0
    assert links.ko_ki_pairs.tolist() == [[INPUTS.index("KO_BCL2"), INPUTS.index("KI_BCL2")]]
    # a signaling node found through its gene-symbol label
    links = compile_surrogate_targets(lib.select(["kin_inh"]), ["LIG"], ["LIG", "P1", "KIN"], labels={"KIN": "IKBKB"})
    assert links.nodes.node.tolist() == [2] and links.flags.n_links == 0
    with pytest.raises(ConfigError) as err:
        compile_surrogate_targets(lib.select(["off_target"]), INPUTS, source="lib.toml", what="surrogate x.pt")
    msg = str(err.value)
    assert "\n" not in msg and "drugs.off_target.targets: node 'RIP1K'" in msg and "KO_BCL2" in msg


def test_flag_draws_match_the_hill_curve_and_knock_out_wins():
    lib = library()
    eff = SurrogateDrugEffects(lib.select(["bcl2i"]), INPUTS)
    n = 40_000
    conc = np.full((n, 1), 10.0)  # = IC50: p = 0.5
    u = np.zeros((n, len(INPUTS)))
    u[:, INPUTS.index("KI_BCL2")] = 1.0  # the type's own knock-in (fixed input)
    eff.apply(conc, u, np.random.default_rng(0))
    ko = u[:, INPUTS.index("KO_BCL2")]
    assert set(np.unique(ko)) == {0.0, 1.0}  # the model sees 0/1 flags, as in training
    assert abs(ko.mean() - 0.5) < 0.01
    assert np.array_equal(u[:, INPUTS.index("KI_BCL2")], 1.0 - ko)  # knock-out wins over knock-in
    # expected mode: the mean of the draw, deterministic
    eff = SurrogateDrugEffects(lib.select(["bcl2i"]), INPUTS, sampling="expected")
    c = np.array([[0.0], [10.0], [90.0]])
    u = np.zeros((3, len(INPUTS)))
    eff.apply(c, u, np.random.default_rng(0))
    assert np.allclose(u[:, INPUTS.index("KO_BCL2")], hill(c[:, 0], 10.0, 1.0))


def test_ligand_inputs_are_scaled_down_by_inhibitors_and_up_by_activators():
    lib = library()
    u = np.full((2, len(INPUTS)), 0.6)
    SurrogateDrugEffects(lib.select(["tnf_blocker"]), INPUTS).apply(np.array([[0.0], [4.0]]), u, None)
    assert u[:, 0] == pytest.approx([0.6, 0.3])
    u = np.full((2, len(INPUTS)), 0.6)
    SurrogateDrugEffects(lib.select(["tnf_agonist"]), INPUTS).apply(np.array([[0.0], [4.0]]), u, None)
    assert u[:, 0] == pytest.approx([0.6, 0.8])


# ------------------------------------------------------------------ the adapter


def tnf_adapter(**kw) -> SurrogateIntracellular:
    cfg = SurrogateIntracellularConfig.model_validate(
        {
            "kind": "surrogate",
            "artifact": str(TNF_SUR),
            "fixed_inputs": {"TNF": 1.0, "KI_BCL2": 1.0},
            "outputs": [{"behavior": "apoptosis_rate", "up": ["Apoptosis"], "formula": "linear", "gain": 1.0}],
            **kw,
        }
    )
    return SurrogateIntracellular.from_config(cfg, ROOT)


def test_adapter_with_drugs_equals_the_model_on_the_modified_inputs():
    im = tnf_adapter(drug_sampling="expected", input_resolution=0.0)
    lib = parse_library({"drugs": {"ven": {"targets": [{"node": "BCL2"}], "ic50": "5 nM", "hill": 1.2}}})
    im.set_drug_effects(im.drug_effects_for(lib.select(["ven"])))
    assert im.required_signals() == ["ven"]
    conc = np.array([0.0, 1.0, 5.0, 50.0, 1e4])
    out = im.steady_outputs_with_drugs(np.zeros((5, 0), np.float32), conc[:, None], np.random.default_rng(0))
    sur = im.surrogate
    p = hill(conc, 5.0, 1.2)
    u = np.zeros((5, len(sur.input_names)), np.float32)
    u[:, sur.input_index("TNF")] = 1.0
    u[:, sur.input_index("KO_BCL2")] = p
    u[:, sur.input_index("KI_BCL2")] = 1.0 - p
    assert np.allclose(out, sur.predict(u), atol=1e-6)
    apo = out[:, sur.output_index("Apoptosis")]
    assert np.all(np.diff(apo) > 0) and apo[0] < 0.05 and apo[-1] > 0.5  # BCL2-held cells die with the drug
    # no drug: the drug path gives the drug-free outputs
    im0 = tnf_adapter(input_resolution=0.0)
    assert np.allclose(out[0], im0.steady_outputs(np.zeros((1, 0), np.float32))[0], atol=1e-6)


def test_update_reads_the_drug_signal_and_deduplicates_rows():
    im = tnf_adapter()
    lib = parse_library({"drugs": {"ven": {"targets": [{"node": "BCL2"}], "ic50": "5 nM"}}})
    im.set_drug_effects(im.drug_effects_for(lib.select(["ven"])))
    n = 5000
    sig = Signals(["ven"], np.full((n, 1), 5.0))
    state = im.initial_state(n, np.random.default_rng(0))
    before = im.evaluations
    beh = im.update(sig, state, 6.0, np.random.default_rng(1))["apoptosis_rate"]
    assert im.evaluations - before == 2  # flags are 0/1: two distinct rows for 5000 cells
    hi = beh > 0.5
    assert 0.45 < hi.mean() < 0.55  # half of the cells drew the anti-BCL2 flag (c = IC50)
    with pytest.raises(ConfigError, match="drug signal"):
        im.update(Signals(["x"], np.zeros((n, 1))), state, 6.0, np.random.default_rng(1))


def tiny_signaling(tmp_path: Path):
    """LIG -> REC -> KIN -> SURV_TF, KIN -| STRESS_TF (untrained weights)."""
    model = networks.SignalingNetwork(
        ["LIG", "REC", "KIN", "SURV_TF", "STRESS_TF"],
        np.array([0, 1, 2, 2]),
        np.array([1, 2, 3, 4]),
        np.array([1, 1, 1, -1]),
        np.array([0]),
        np.array([3, 4]),
        init_weight=0.8,
        prescale=None,
    )
    path = artifact_mod.save_artifact(
        tmp_path / "tiny.pt", model, input_names=["LIG"], output_names=["SURV_TF", "STRESS_TF"],
        data_sha256="test", names={"KIN": "IKBKB"},
    )  # fmt: skip
    blob = torch.load(path, weights_only=False)  # our own file
    if type(blob["torch_version"]) is not str:
        blob["torch_version"] = str(blob["torch_version"])
        torch.save(blob, path)
    return path


def test_signaling_surrogate_takes_drugs_as_the_screen_layer_does(tmp_path):
    path = tiny_signaling(tmp_path)
    cfg = SurrogateIntracellularConfig.model_validate(
        {
            "kind": "surrogate",
            "artifact": str(path),
            "fixed_inputs": {"LIG": 1.0},
            "input_resolution": 0.0,
            "outputs": [{"behavior": "apoptosis_rate", "up": ["STRESS_TF"], "down": ["SURV_TF"]}],
        }
    )
    im = SurrogateIntracellular.from_config(cfg, tmp_path)
    drugs = library().select(["kin_inh"])
    im.set_drug_effects(im.drug_effects_for(drugs))
    conc = np.array([[0.0], [3.0], [10.0], [100.0]])
    out = im.steady_outputs_with_drugs(np.zeros((4, 0), np.float32), conc, np.random.default_rng(0))
    screen = SurrogateModel("t", "tumor", im.surrogate, {"STRESS_TF": 1.0}, inputs={"LIG": 1.0})
    assert np.allclose(out, screen.outputs(drugs, conc), atol=1e-5)  # same drug→target layer
    assert np.all(np.diff(out[:, 0]) < 0)  # the kinase inhibitor lowers the survival TF, dose-dependently


# ------------------------------------------------------------------ in the simulation


def scenario(tmp_path: Path, drugs_line: str = "") -> Path:
    text = f"""name = "surrogate_drug"
seed = 5
duration = "2 h"
[domain]
size = ["200 um", "200 um"]
dx = "20 um"
[time]
diffusion_dt = "0.5 min"
mechanics_dt = "0.5 min"
phenotype_dt = "6 min"
[output]
interval = "60 min"
[drugs]
library = "{LIB}"
[drugs.given.venetoclax]
plasma = "0 nM"
entry = {{ via = "faces" }}
[drugs.given.necrostatin1]
plasma = "0 nM"
entry = {{ via = "faces" }}
[substrates.oxygen]
initial = "38 mmHg"
boundary = {{ all = "38 mmHg" }}
[cell_types.tumor]
rules = "generic"
cycle = {{ model = "none" }}
[cell_types.tumor.intracellular]
kind = "surrogate"
artifact = "{TNF_SUR}"
dt = "6 min"
fixed_inputs = {{ TNF = 1.0, KI_BCL2 = 1.0 }}   # autocrine TNF, BCL2 held up (overexpressed)
outputs = [
  {{ behavior = "apoptosis_rate", up = ["Apoptosis"], formula = "linear", gain = 1.0, high = "0.01 1/min" }},
]
{drugs_line}
[[initial_cells]]
type = "tumor"
shape = "random"
count = 200
"""
    p = tmp_path / "sur.toml"
    p.write_text(text)
    return p


def test_surrogate_cells_respond_to_a_dosed_drug_in_a_dose_dependent_way(tmp_path):
    """Venetoclax in the tissue (constant plasma level, entering at the faces) kills BCL2-held
    surrogate cells, more at higher doses; the drug substrate is what the cells read."""
    p = scenario(tmp_path)
    alive = []
    for c in (0.0, 1.0, 5.0, 50.0):
        m = TMEModel(load_scenario(p, {"drugs.given.venetoclax.plasma": f'"{c} nM"'}))
        eff = m.attach_drugs("tumor", ["venetoclax"])
        assert isinstance(eff, SurrogateDrugEffects) and "venetoclax" in m.intracellular[0].required_signals()
        m.run_for(120)
        alive.append(int(m.population_counts()[0, ALIVE]))
    assert alive[0] >= 195  # background only
    assert alive[0] > alive[1] > alive[2] > alive[3], alive
    assert alive[3] < 0.6 * alive[0]


def test_unknown_drug_or_missing_target_is_a_one_line_error(tmp_path):
    m = TMEModel(load_scenario(scenario(tmp_path)))
    for names, fragment in (
        (["aspirin"], "'aspirin' is not given in [drugs] and not in the library"),
        (["necrostatin1"], "drugs.necrostatin1.targets: node 'RIP1K' is not an input"),
    ):
        with pytest.raises(TMEError) as err:
            m.attach_drugs("tumor", names)
        assert fragment in str(err.value) and "\n" not in str(err.value)


def test_scenario_drugs_key_wires_surrogate_types(tmp_path):
    p = scenario(tmp_path, 'drugs = ["venetoclax"]')
    m = TMEModel(load_scenario(p, {"drugs.given.venetoclax.plasma": '"50 nM"'}))
    assert isinstance(m.intracellular[0].drug_effects, SurrogateDrugEffects)
    m.run_for(60)
    assert m.population_counts()[0, ALIVE] < 190
    for line, fragment in (('drugs = ["aspirin"]', "aspirin"), ('drugs = ["necrostatin1"]', "RIP1K")):
        with pytest.raises(TMEError) as err:
            TMEModel(load_scenario(scenario(tmp_path, line)))
        assert fragment in str(err.value) and "\n" not in str(err.value)
