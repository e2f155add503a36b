"""Artifacts (save/load/refusal) and the SurrogateIntracellular adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

torch = pytest.importorskip("torch")

from tme_sim.errors import ArtifactError  # noqa: E402
from tme_sim.intracellular.base import Signals  # noqa: E402
from tme_sim.intracellular.neural.artifact import load_artifact, save_artifact  # noqa: E402
from tme_sim.intracellular.neural.networks import DenseMLP, SignalingNetwork  # noqa: E402
from tme_sim.intracellular.surrogate import (  # noqa: E402
    SurrogateIntracellular,
    SurrogateIntracellularConfig,
)

# node codes and symbols of a tiny "macrophage" graph: 3 ligands -> receptors -> 6 TFs
NODES = {
    "P01579": "IFNG",
    "P05112": "IL4",
    "CHEBI16412": "LPS",
    "R1": "IFNGR",
    "R2": "IL4R",
    "R3": "TLR4",
    "P42224": "STAT1",
    "P19838": "NFKB1",
    "P10914": "IRF1",
    "P42226": "STAT6",
    "P40763": "STAT3",
    "P37231": "PPARG",
}
EDGES = [
    ("P01579", "R1", 1),
    ("P05112", "R2", 1),
    ("CHEBI16412", "R3", 1),
    ("R1", "P42224", 1),
    ("R1", "P10914", 1),
    ("R3", "P19838", 1),
    ("R2", "P42226", 1),
    ("R2", "P40763", 1),
    ("R2", "P37231", 1),
    ("P42224", "P42226", -1),
]
INPUTS = ["P01579", "P05112", "CHEBI16412"]
OUTPUTS = ["P42224", "P19838", "P10914", "P42226", "P40763", "P37231"]


@pytest.fixture
def artifact(tmp_path) -> Path:
    names = list(NODES)
    idx = {n: i for i, n in enumerate(names)}
    src = np.array([idx[a] for a, _, _ in EDGES])
    dst = np.array([idx[b] for _, b, _ in EDGES])
    sign = np.array([s for *_, s in EDGES])
    net = SignalingNetwork(
        names,
        src,
        dst,
        sign,
        np.array([idx[n] for n in INPUTS]),
        np.array([idx[n] for n in OUTPUTS]),
        init_weight=0.8,
        prescale=None,
        baseline_state=0.25,
    )
    return save_artifact(
        tmp_path / "models" / "m.pt",
        net,
        input_names=INPUTS,
        output_names=OUTPUTS,
        data_sha256="0" * 64,
        names=NODES,
        training={"note": "test", "arr": np.arange(2)},
    )


def config(**kw) -> SurrogateIntracellularConfig:
    raw = {
        "kind": "surrogate",
        "artifact": "models/m.pt",
        "dt": "30 min",
        "inputs": [{"signal": "ifng", "input": "IFNG", "K": 5.0}, {"signal": "il4", "input": "P05112", "K": 2.0}],
        "outputs": [
            {"behavior": "polarization", "up": ["STAT6", "STAT3", "PPARG"], "down": ["STAT1", "NFKB1", "IRF1"]}
        ],
    }
    raw.update(kw)
    return SurrogateIntracellularConfig.model_validate(raw)


def test_artifact_round_trip(artifact):
    sur = load_artifact(artifact, device="cpu")
    assert sur.kind == "signaling" and sur.input_names == INPUTS
    assert sur.meta["package_version"] and sur.meta["data_sha256"] == "0" * 64
    assert sur.meta["training"]["arr"] == [0, 1]
    assert sur.input_index("IFNG") == 0 and sur.input_index("ifng") == 0 and sur.output_index("PPARG") == 5
    u = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    out = sur.predict(u)
    assert out.shape == (3, 6) and out.dtype == np.float32
    assert out[1, 0] > out[0, 0] + 0.05  # IFNG raises STAT1
    assert out[2, 3] > out[0, 3] + 0.05  # IL4 raises STAT6
    assert np.allclose(sur.predict(u, chunk=1), out, atol=1e-6)


def test_mlp_artifact_round_trip(tmp_path):
    m = DenseMLP(3, 2, hidden=8, head="softmax").eval()
    p = save_artifact(
        tmp_path / "mlp.pt", m, input_names=["a", "b", "c"], output_names=["x", "y"], data_sha256="1" * 64
    )
    sur = load_artifact(p, device="cpu")
    u = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.as_tensor(u)).numpy()
    assert np.allclose(sur.predict(u), ref, atol=1e-6)


def test_artifact_refusals(artifact, tmp_path):
    with pytest.raises(ArtifactError, match=r"not found"):
        load_artifact(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match=r"junk.pt: not a readable surrogate artifact"):
        load_artifact(junk)
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ArtifactError, match=r"not a tme-sim surrogate artifact"):
        load_artifact(tmp_path / "other.pt")
    blob = torch.load(artifact, weights_only=True)
    blob["format_version"] = 99
    torch.save(blob, tmp_path / "v99.pt")
    with pytest.raises(ArtifactError, match=r"format version 99"):
        load_artifact(tmp_path / "v99.pt")
    sur = load_artifact(artifact, device="cpu")
    with pytest.raises(ArtifactError, match=r"model has no input 'TNF'"):
        sur.input_index("TNF")


def test_adapter_polarization(artifact):
    im = SurrogateIntracellular.from_config(config(), artifact.parent.parent)
    assert im.required_signals() == ["ifng", "il4"]
    assert im.state_names[:2] == ["STAT1", "NFKB1"]
    rng = np.random.default_rng(0)
    n = 300
    conc = np.zeros((n, 2))
    conc[100:200, 0] = 50.0  # IFNG-rich cells
    conc[200:, 1] = 50.0  # IL4-rich cells
    st = im.initial_state(n, rng)
    assert st.dtype == np.float32 and st.shape == (n, 6)
    beh = im.update(Signals(["ifng", "il4"], conc), st, 30.0, rng)
    pol = beh["polarization"]
    assert pol.dtype == np.float64 and pol.shape == (n,)
    assert np.allclose(pol[:100], 0.5)  # reference inputs sit at the middle
    assert pol[150] < 0.4 and pol[250] > 0.6  # IFNG -> M1-like, IL4 -> M2-like
    assert im.evaluations == 3  # three distinct input rows, evaluated once each
    ident = im.identity()
    assert ident["kind"] == "surrogate" and len(ident["artifact_sha256"]) == 64


def test_adapter_quantisation_and_relaxation(artifact):
    base = artifact.parent.parent
    exact = SurrogateIntracellular.from_config(config(input_resolution=0.0), base)
    quant = SurrogateIntracellular.from_config(config(), base)
    rng = np.random.default_rng(1)
    conc = rng.random((500, 2)) * 20
    s1, s2 = exact.initial_state(500, rng), quant.initial_state(500, rng)
    exact.update(Signals(["ifng", "il4"], conc), s1, 30.0, rng)
    quant.update(Signals(["ifng", "il4"], conc), s2, 30.0, rng)
    assert np.abs(s1 - s2).max() < 5e-3
    slow = SurrogateIntracellular.from_config(config(tau="60 min"), base)
    s3 = slow.initial_state(500, rng)
    start = s3.copy()
    slow.update(Signals(["ifng", "il4"], conc), s3, 30.0, rng)
    frac = 1 - np.exp(-0.5)
    assert np.allclose(s3, start + (s2 - start) * frac, atol=5e-3)


def test_adapter_linear_outputs_and_fixed_inputs(artifact):
    cfg = config(
        fixed_inputs={"LPS": 1.0},
        outputs=[
            {
                "behavior": "apoptosis_rate",
                "up": ["NFKB1"],
                "formula": "linear",
                "gain": 1.0,
                "low": "0 1/min",
                "high": "0.01 1/min",
            }
        ],
    )
    im = SurrogateIntracellular.from_config(cfg, artifact.parent.parent)
    rng = np.random.default_rng(0)
    st = im.initial_state(4, rng)
    beh = im.update(Signals(["ifng", "il4"], np.zeros((4, 2))), st, 30.0, rng)
    v = beh["apoptosis_rate"]
    assert np.all((v >= 0) & (v <= 0.01))
    assert np.allclose(v, 0.01 * np.clip(st[:, 1], 0, 1))


def test_adapter_config_errors(artifact):
    base = artifact.parent.parent
    with pytest.raises(ValidationError, match=r"extra"):
        config(colour="red")
    with pytest.raises(ValidationError, match=r"mapped twice"):
        config(inputs=[{"signal": "a", "input": "IFNG", "K": 1}, {"signal": "b", "input": "IFNG", "K": 1}])
    with pytest.raises(ValidationError, match=r"unknown behaviour"):
        config(outputs=[{"behavior": "flying", "up": ["STAT1"]}])
    with pytest.raises(ValidationError):
        config(dt="30")  # no unit
    with pytest.raises(ArtifactError, match=r"model has no input 'TNF'"):
        SurrogateIntracellular.from_config(config(inputs=[{"signal": "tnf", "input": "TNF", "K": 1}]), base)
    with pytest.raises(ArtifactError, match=r"model has no output 'HIF1A'"):
        SurrogateIntracellular.from_config(config(outputs=[{"behavior": "pdl1", "up": ["HIF1A"]}]), base)
    with pytest.raises(ArtifactError, match=r"file not found"):
        SurrogateIntracellular.from_config(config(artifact="models/missing.pt"), base)


def test_torch_not_imported_by_tme_sim():
    import subprocess
    import sys

    code = "import sys, tme_sim, tme_sim.intracellular; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_adapter_interpolation_grid_matches_model(artifact):
    base = artifact.parent.parent
    exact = SurrogateIntracellular.from_config(config(input_resolution=0.0), base)
    grid = SurrogateIntracellular.from_config(config(interpolation_grid=33), base)
    assert grid.evaluations == 0  # nodes are evaluated when cells first need them
    rng = np.random.default_rng(2)
    conc = rng.random((400, 2)) * 30
    a = exact.steady_outputs(exact.input_activities(Signals(["ifng", "il4"], conc)))
    b = grid.steady_outputs(grid.input_activities(Signals(["ifng", "il4"], conc)))
    assert np.abs(a - b).max() < 0.02
    used = grid.grid_nodes_evaluated
    assert 0 < used < 33 * 33 and grid.evaluations == used  # c <= 30 only reaches part of the grid
    again = grid.steady_outputs(grid.input_activities(Signals(["ifng", "il4"], conc[::-1])))
    assert grid.grid_nodes_evaluated == used  # nothing new to evaluate
    assert np.array_equal(again, b[::-1])
    at_nodes = np.array([[0.0, 0.0], [0.5, 0.25]], dtype=np.float32)
    assert np.allclose(grid.steady_outputs(at_nodes), exact.steady_outputs(at_nodes), atol=1e-5)
    with pytest.raises(Exception, match="interpolation_grid"):
        SurrogateIntracellular.from_config(config(interpolation_grid=1), base)


def test_adapter_sqrt_spaced_grid(artifact):
    """``interpolation_spacing = "sqrt"``: nodes at amplitude·(i/(G−1))², exact at the nodes, close
    between them (the real macrophage model's error at flagship activities: test_surrogate_flagship)."""
    base = artifact.parent.parent
    exact = SurrogateIntracellular.from_config(config(input_resolution=0.0), base)
    sq = SurrogateIntracellular.from_config(config(interpolation_grid=9, interpolation_spacing="sqrt"), base)
    nodes = sq.grid_node_activities(np.array([0, 1, 9 * 2 + 3, 80]))
    assert np.allclose(nodes, [[0, 0], [0, 1 / 64], [4 / 64, 9 / 64], [1, 1]])
    assert np.allclose(sq.steady_outputs(nodes), exact.steady_outputs(nodes), atol=1e-5)
    act = np.random.default_rng(3).random((300, 2)).astype(np.float32) * 0.2
    assert np.abs(sq.steady_outputs(act) - exact.steady_outputs(act)).max() < 0.03


def test_adapter_drug_inputs(artifact):
    """Drugs on a signaling surrogate: a ligand blocker scales the ligand input (full block = no
    ligand), a node inhibitor drives its target down; no drug keeps the drug-free outputs."""
    from tme_sim.config.drugs import parse_library

    base = artifact.parent.parent
    lib = parse_library(
        {
            "drugs": {
                "ifng_block": {"targets": [{"node": "IFNG"}], "ic50": "1 nM"},
                "stat6_i": {"targets": [{"node": "STAT6"}], "ic50": "10 nM"},
            }
        }
    )
    plain = SurrogateIntracellular.from_config(config(input_resolution=0.0), base)
    im = SurrogateIntracellular.from_config(config(input_resolution=0.0), base)
    eff = im.drug_effects_for(lib.select(["ifng_block", "stat6_i"]))
    assert eff.links.inputs.n_links == 1 and eff.links.nodes.n_links == 1
    im.set_drug_effects(eff)
    assert im.required_signals() == ["ifng", "il4", "ifng_block", "stat6_i"]
    n = 4
    rng = np.random.default_rng(0)
    sig = np.array([[50.0, 50.0, 0.0, 0.0], [50.0, 50.0, 1e9, 0.0], [0.0, 50.0, 0.0, 0.0], [0.0, 50.0, 0.0, 100.0]])
    st = im.initial_state(n, rng)
    im.update(Signals(["ifng", "il4", "ifng_block", "stat6_i"], sig), st, 30.0, rng)
    ref = plain.initial_state(n, rng)
    plain.update(Signals(["ifng", "il4"], sig[:, :2]), ref, 30.0, rng)
    assert np.allclose(st[0], ref[0], atol=1e-5)  # no drug: unchanged
    assert np.allclose(st[1], ref[2], atol=1e-5)  # IFNG fully blocked = no IFNG
    stat6 = 3  # column of STAT6 in OUTPUTS
    assert st[3, stat6] < ref[3, stat6] - 0.05  # STAT6 inhibitor lowers STAT6
    with pytest.raises(ValidationError):
        config(drug_sampling="sometimes")
