"""Drugs in signaling surrogates: masked drug→target layer and the screen cell-type model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
networks = pytest.importorskip("tme_sim.intracellular.neural.networks")
artifact = pytest.importorskip("tme_sim.intracellular.neural.artifact")

from tme_sim.config.drugs import parse_library  # noqa: E402
from tme_sim.errors import ArtifactError, ConfigError  # noqa: E402
from tme_sim.screening.screen import build_screen, run_screen  # noqa: E402
from tme_sim.screening.surrogate_model import DrugTargetLayer, SurrogateModel  # noqa: E402

NODES = ["LIG", "REC", "KIN", "SURV_TF", "STRESS_TF"]


def tiny_surrogate(tmp_path: Path):
    """LIG -> REC -> KIN -> SURV_TF, KIN -| STRESS_TF (untrained weights, fixed seed)."""
    src = np.array([0, 1, 2, 2])
    dst = np.array([1, 2, 3, 4])
    sign = np.array([1, 1, 1, -1])
    model = networks.SignalingNetwork(
        NODES, src, dst, sign, np.array([0]), np.array([3, 4]), init_weight=0.8, prescale=None
    )
    path = artifact.save_artifact(
        tmp_path / "tiny.pt",
        model,
        input_names=["LIG"],
        output_names=["SURV_TF", "STRESS_TF"],
        data_sha256="test",
        names={"KIN": "IKBKB"},
    )
    blob = torch.load(path, weights_only=False)  # our own file, written just above
    if type(blob["torch_version"]) is not str:
        # save_artifact stores torch.__version__ (a TorchVersion object), which the
        # weights_only loader refuses; store it as a plain string
        blob["torch_version"] = str(blob["torch_version"])
        torch.save(blob, path)
    return path, artifact.load_artifact(path, device="cpu")


def lib():
    return parse_library(
        {
            "drugs": {
                "kin_inh": {"targets": [{"node": "IKBKB"}], "ic50": "10 nM"},
                "rec_inh": {"targets": [{"node": "REC"}], "ic50": "100 nM", "hill": 2},
                "off_target": {"targets": [{"node": "NOT_IN_MODEL"}], "ic50": "1 nM"},
            }
        }
    )


def test_layer_mask_blocks_unknown_interactions():
    mask = np.array([[-1, 0, 0], [0, 1, 0]])
    layer = DrugTargetLayer(mask, np.full((2, 3), 10.0), np.ones((2, 3)), strength=4.0)
    conc = torch.tensor([[10.0, 1e9], [0.0, 0.0]])
    drive = layer(conc)
    np.testing.assert_allclose(drive.detach().numpy(), [[-2.0, 0.0], [4.0, 0.0], [0.0, 0.0]], atol=1e-5)
    drive.sum().backward()
    g = layer.weight.grad.numpy()
    assert g[0, 0] != 0 and g[1, 1] != 0
    assert np.all(g[mask == 0] == 0)  # masked entries get no gradient
    with torch.no_grad():
        layer.weight += 1.0  # even if unmasked weights drift, they are never used
    assert layer(conc)[2].abs().max() == 0


def test_surrogate_model_drug_response(tmp_path):
    _, sur = tiny_surrogate(tmp_path)
    m = SurrogateModel("tumor", "tumor", sur, {"SURV_TF": -2.0}, inputs={"LIG": 1.0}, aliases={"REC": "REC"})
    drugs = lib().select(["kin_inh", "rec_inh", "off_target"])
    conc = np.array([[0, 0, 0], [10, 0, 0], [1e4, 0, 0], [0, 1e4, 0], [0, 0, 1e4]], dtype=float)
    y = m.outputs(drugs, conc)
    assert y[1, 0] < y[0, 0] and y[2, 0] < y[1, 0]  # KIN inhibited (found by symbol IKBKB)
    assert y[2, 1] > y[0, 1]  # its inhibitory edge onto STRESS_TF released
    assert y[3, 0] < y[0, 0]  # upstream receptor inhibitor acts too
    np.testing.assert_allclose(y[4], y[0], atol=1e-6)  # target missing from the model: no effect
    death = m.death_fraction(drugs, conc, 1440.0, np.random.default_rng(0))
    assert death[0] == pytest.approx(0.0, abs=1e-6) and death[2] > death[1] > 0
    # a knocked-in kinase (constitutive) makes the cell less sensitive to the receptor inhibitor
    mk = SurrogateModel("h", "healthy", sur, {"SURV_TF": -2.0}, inputs={"LIG": 1.0}, knockin=["KIN"])
    assert mk.death_fraction(drugs, conc, 1.0, None)[3] < death[3]
    with pytest.raises(ConfigError, match="model has no node 'XYZ'"):
        SurrogateModel("h", "healthy", sur, {"SURV_TF": 1.0}, knockout=["XYZ"])
    with pytest.raises(ArtifactError, match="no output"):
        SurrogateModel("h", "healthy", sur, {"NOPE": 1.0})


def test_surrogate_cell_types_in_a_screen(tmp_path):
    path, _ = tiny_surrogate(tmp_path)
    data = {
        "library": "unused.toml",
        "cell_types": [
            {
                "name": "tumor",
                "role": "tumor",
                "model": "surrogate",
                "artifact": path.name,
                "inputs": {"LIG": 1.0},
                "death_outputs": {"SURV_TF": -3.0},
            },
            {
                "name": "healthy",
                "role": "healthy",
                "model": "surrogate",
                "artifact": path.name,
                "inputs": {"LIG": 1.0},
                "knockin": ["KIN"],
                "death_outputs": {"SURV_TF": -3.0},
            },
        ],
    }
    scr = build_screen(data, source="s.toml", base=tmp_path, library=lib())
    res = run_screen(scr, ["kin_inh", "rec_inh"], synergy_methods=["bliss", "hsa"])
    (p,) = res.pairs
    assert p.efficacy.max() > 0.2
    # the healthy type's constitutive kinase protects it from the receptor inhibitor only
    assert p.toxicity["healthy"][0, -1] < p.efficacy[0, -1]
    bad = dict(data, cell_types=[dict(data["cell_types"][0], artifact="missing.pt")])
    with pytest.raises(ConfigError, match="artifact: file not found"):
        build_screen(bad, source="s.toml", base=tmp_path, library=lib())
