"""BooleanIntracellular: config validation, inputs from signals, outputs to behaviours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest

from tme_sim.errors import ConfigError
from tme_sim.intracellular.base import IntracellularModel, Signals
from tme_sim.intracellular.boolean import (
    BooleanIntracellular,
    BooleanIntracellularConfig,
    BooleanNetwork,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tme_sim" / "scenarios"


def tnf_config(**over) -> dict:
    cfg = {
        "kind": "boolean",
        "bnd": "networks/tnf_cellfate.bnd",
        "cfg": "networks/tnf_cellfate.cfg",
        "dt": "6 min",
        "time_scale": 1.0,
        "inputs": [{"node": "TNF", "signal": "TNF", "mode": "threshold", "threshold": 0.5}],
        "outputs": [
            {"node": "Apoptosis", "behavior": "apoptosis_rate", "value_on": "0.0035 1/min", "value_off": 0},
            {"node": "NonACD", "behavior": "necrosis_rate", "value_on": "0.21 1/hour", "value_off": 0},
            {"node": "Survival", "behavior": "cycle_rate", "value_on": 0.0022, "value_off": "0.0011 1/min"},
        ],
    }
    cfg.update(over)
    return cfg


def build(**over) -> BooleanIntracellular:
    cfg = BooleanIntracellularConfig.model_validate(tnf_config(**over))
    return BooleanIntracellular.from_config(cfg, SCENARIOS)


def signals(tnf: np.ndarray) -> Signals:
    n = tnf.shape[0]
    return Signals(names=["TNF", "oxygen"], values=np.column_stack([tnf, np.full(n, 38.0)]))


# --------------------------------------------------------------------------- config


def test_config_units_and_defaults():
    cfg = BooleanIntracellularConfig.model_validate(tnf_config(dt="0.1 hour"))
    assert cfg.dt == pytest.approx(6.0)
    assert cfg.outputs[0].value_on == pytest.approx(0.0035)
    assert cfg.outputs[1].value_on == pytest.approx(0.0035)
    assert cfg.outputs[2].value_off == pytest.approx(0.0011)
    d = tnf_config()
    del d["dt"]
    assert BooleanIntracellularConfig.model_validate(d).dt == 6.0
    assert BooleanIntracellularConfig.model_validate(d).mode == "stochastic"


@pytest.mark.parametrize(
    ("over", "msg"),
    [
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"dt": "6 um"}, "wrong unit"),
        ({"dt": "0 min"}, "dt must be > 0"),
        ({"time_scale": 0}, "greater than 0"),
        ({"mode": "fast"}, "stochastic"),
        ({"inputs": [{"node": "TNF", "signal": "TNF", "mode": "threshold"}]}, "needs 'threshold'"),
        ({"inputs": [{"node": "TNF", "signal": "TNF", "mode": "hill", "half_max": 0}]}, "half_max' > 0"),
        ({"inputs": [{"node": "TNF", "signal": "TNF", "threshold": 1, "extra": 1}]}, "Extra inputs"),
        (
            {
                "inputs": [
                    {"node": "TNF", "signal": "TNF", "threshold": 1},
                    {"node": "TNF", "signal": "x", "threshold": 1},
                ]
            },
            "mapped twice",
        ),
        ({"outputs": [{"node": "Apoptosis", "behavior": "explode", "value_on": 1}]}, "unknown behaviour"),
        ({"outputs": [{"node": "Apoptosis", "behavior": "cycle_rate", "value_on": "1 um"}]}, "wrong unit"),
        ({"outputs": [{"node": "Apoptosis", "behavior": "apoptosis_rate", "value_on": -1}]}, ">= 0"),
        (
            {
                "outputs": [
                    {"node": "Apoptosis", "behavior": "apoptosis_rate", "value_on": 1},
                    {"node": "NonACD", "behavior": "apoptosis_rate", "value_on": 1},
                ]
            },
            "set twice",
        ),
        (
            {"outputs": [{"node": "NFkB", "behavior": "cycle_rate", "value_on": 2, "action": "scale"}]},
            "earlier 'set'",
        ),
        ({"knockout": ["cIAP"], "knockin": ["cIAP"]}, "both knocked out and knocked in"),
        ({"knockout": ["TNF"]}, "input nodes also mutated"),
        ({"mode": "synchronous", "dt": "0.2 min"}, "synchronous mode needs"),
    ],
)
def test_config_errors(over, msg):
    with pytest.raises(pydantic.ValidationError, match=msg):
        BooleanIntracellularConfig.model_validate(tnf_config(**over))


def test_from_config_errors_are_config_errors(tmp_path):
    cfg = BooleanIntracellularConfig.model_validate(tnf_config(knockout=["CASP9"]))
    with pytest.raises(ConfigError, match=r"intracellular.knockout: unknown node 'CASP9'"):
        BooleanIntracellular.from_config(cfg, SCENARIOS)
    cfg = BooleanIntracellularConfig.model_validate(
        tnf_config(outputs=[{"node": "Death", "behavior": "apoptosis_rate", "value_on": 1}])
    )
    with pytest.raises(ConfigError, match=r"outputs\[0\].node: unknown node 'Death'"):
        BooleanIntracellular.from_config(cfg, SCENARIOS)
    cfg = BooleanIntracellularConfig.model_validate(tnf_config())
    with pytest.raises(ConfigError, match="file not found"):
        BooleanIntracellular.from_config(cfg, tmp_path)


# --------------------------------------------------------------------------- update


def test_interface_basics():
    model = build()
    assert isinstance(model, IntracellularModel)
    assert model.kind == "boolean"
    assert model.n_state == 31 and model.state_names[0] == "TNF"
    assert model.required_signals() == ["TNF"]
    assert model.dt == 6.0
    ident = model.identity()
    assert ident["kind"] == "boolean" and len(ident["network_sha256"]) == 64
    s = model.initial_state(4, np.random.default_rng(0))
    assert s.dtype == np.float32 and s.shape == (4, 31)
    assert s[:, model.state_names.index("ATP")].tolist() == [1, 1, 1, 1]


def test_threshold_input_and_outputs():
    model = build()
    rng = np.random.default_rng(1)
    n = 4000
    state = model.initial_state(n, rng)
    tnf = np.where(np.arange(n) < n // 2, 1.0, 0.1)  # first half above the 0.5 threshold
    sig = signals(tnf)
    names = model.state_names
    for _ in range(20):  # 120 min of TNF exposure, 6-min steps, 1 network unit per minute
        out = model.update(sig, state, 6.0, rng)
    assert state.dtype == np.float32
    assert set(np.unique(state)) <= {0.0, 1.0}
    assert (state[: n // 2, names.index("TNF")] == 1).all()
    assert (state[n // 2 :, names.index("TNF")] == 0).all()
    assert set(out) == {"apoptosis_rate", "necrosis_rate", "cycle_rate"}
    for v in out.values():
        assert v.dtype == np.float64 and v.shape == (n,)
    apo = state[:, names.index("Apoptosis")] == 1
    np.testing.assert_allclose(out["apoptosis_rate"], np.where(apo, 0.0035, 0.0))
    surv = state[:, names.index("Survival")] == 1
    np.testing.assert_allclose(out["cycle_rate"], np.where(surv, 0.0022, 0.0011))
    # TNF kills most exposed cells (MaBoSS: ~95 % apoptosis at steady state); no effect without TNF
    assert apo[: n // 2].mean() > 0.85
    assert not apo[n // 2 :].any()
    assert not (state[n // 2 :, names.index("NonACD")] == 1).any()


def test_time_scale_slows_the_network():
    fast = build()
    slow = build(time_scale=0.01)
    rng = np.random.default_rng(2)
    n = 2000
    sig = signals(np.ones(n))
    s_fast = fast.initial_state(n, rng)
    s_slow = slow.initial_state(n, rng)
    fast.update(sig, s_fast, 60.0, rng)
    slow.update(sig, s_slow, 60.0, rng)
    apo = fast.state_names.index("Apoptosis")
    assert s_fast[:, apo].mean() > 0.5
    assert s_slow[:, apo].mean() == 0.0  # 0.6 network units: far too early for caspase-3


def test_hill_input_probability_and_inverse():
    bnd = "Node S { rate_up = 0; rate_down = 0; }\nNode R { logic = S; }"
    net = BooleanNetwork.from_text(bnd, "S.istate = 0; R.istate = 0;", name="hill")
    cfg = BooleanIntracellularConfig.model_validate(
        {
            "kind": "boolean",
            "bnd": "unused.bnd",
            "cfg": "unused.cfg",
            "inputs": [{"node": "S", "signal": "ligand", "mode": "hill", "half_max": 2.0, "hill_n": 2}],
            "outputs": [{"node": "S", "behavior": "migration_speed", "value_on": "1.5 um/min"}],
        }
    )
    model = BooleanIntracellular(net, cfg)
    rng = np.random.default_rng(3)
    n = 20000
    conc = np.concatenate([np.full(n // 2, 2.0), np.full(n // 2, 6.0)])
    sig = Signals(names=["ligand"], values=conc[:, None])
    state = model.initial_state(n, rng)
    out = model.update(sig, state, 6.0, rng)
    s_on = state[:, 0] == 1
    assert s_on[: n // 2].mean() == pytest.approx(0.5, abs=0.02)  # at half_max
    assert s_on[n // 2 :].mean() == pytest.approx(0.9, abs=0.02)  # 36 / (4 + 36)
    np.testing.assert_allclose(out["migration_speed"], np.where(s_on, 1.5, 0.0))
    cfg_inv = cfg.model_copy(update={"inputs": [cfg.inputs[0].model_copy(update={"inverse": True})]})
    model_inv = BooleanIntracellular(net, cfg_inv)
    state = model_inv.initial_state(n, rng)
    model_inv.update(sig, state, 6.0, rng)
    assert (state[n // 2 :, 0] == 1).mean() == pytest.approx(0.1, abs=0.02)


def test_knockout_from_config_and_scale_action():
    model = build(
        knockout=["cIAP"],
        outputs=[
            {"node": "Survival", "behavior": "cycle_rate", "value_on": 0.002, "value_off": 0.001},
            {"node": "NonACD", "behavior": "cycle_rate", "value_on": 0, "value_off": 1, "action": "scale"},
        ],
    )
    rng = np.random.default_rng(4)
    n = 3000
    state = model.initial_state(n, rng)
    cIAP = model.state_names.index("cIAP")
    assert (state[:, cIAP] == 0).all()
    for _ in range(10):
        out = model.update(signals(np.ones(n)), state, 6.0, rng)
    assert (state[:, cIAP] == 0).all()
    surv = state[:, model.state_names.index("Survival")] == 1
    nonacd = state[:, model.state_names.index("NonACD")] == 1
    assert not surv.any()  # cIAP knocked out: no NF-kB survival (MaBoSS: Survival 0)
    assert nonacd.any()
    np.testing.assert_allclose(out["cycle_rate"], np.where(nonacd, 0.0, 0.001))


def test_synchronous_mode_is_deterministic_and_matches_network():
    model = build(mode="synchronous", dt="3 min")
    rng = np.random.default_rng(5)
    n = 50
    state = model.initial_state(n, rng)
    ref = state.astype(np.uint8)
    ref[:, 0] = 1  # TNF on everywhere
    model.update(signals(np.ones(n)), state, 3.0, rng)
    model.network.step_synchronous(ref, 3)
    np.testing.assert_array_equal(state, ref.astype(np.float32))


def test_update_errors():
    model = build()
    rng = np.random.default_rng(6)
    state = model.initial_state(3, rng)
    with pytest.raises(ConfigError, match="signal 'TNF' is not provided"):
        model.update(Signals(names=["oxygen"], values=np.zeros((3, 1))), state, 6.0, rng)
    with pytest.raises(ValueError, match="rows"):
        model.update(signals(np.ones(4)), state, 6.0, rng)


def test_empty_population():
    model = build()
    rng = np.random.default_rng(7)
    state = model.initial_state(0, rng)
    out = model.update(signals(np.zeros(0)), state, 6.0, rng)
    assert state.shape == (0, 31)
    assert all(v.shape == (0,) for v in out.values())


def test_extra_per_cell_masks_from_the_caller():
    model = build()
    rng = np.random.default_rng(8)
    n = 2000
    state = model.initial_state(n, rng)
    names = model.state_names
    ko = np.zeros((n, len(names)), dtype=bool)
    ko[: n // 2, names.index("CASP3")] = True  # e.g. a caspase inhibitor in half of the cells
    ki = np.zeros_like(ko)
    ki[:, names.index("CASP3")] = True  # conflicting knock-in everywhere: knock-out wins
    ki[:, names.index("FASL")] = True
    for _ in range(5):
        model.update(signals(np.zeros(n)), state, 6.0, rng, knockout=ko, knockin=ki)
    casp3 = state[:, names.index("CASP3")]
    assert (casp3[: n // 2] == 0).all() and (casp3[n // 2 :] == 1).all()
    assert (state[:, names.index("FASL")] == 1).all()
    assert (state[n // 2 :, names.index("Apoptosis")] == 1).mean() > 0.9
    assert (state[: n // 2, names.index("Apoptosis")] == 0).all()
