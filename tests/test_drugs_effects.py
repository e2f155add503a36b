"""Drug effects: Hill curves, anti-node masks, target modulation for surrogates."""

from __future__ import annotations

import numpy as np
import pytest

from tme_sim.config.drugs import parse_library
from tme_sim.drugs.effects import compile_targets, drug_target_mask, hill, sample_masks, target_modulation
from tme_sim.errors import ConfigError

NODES = ["A", "B", "C", "D"]


def _lib():
    return parse_library(
        {
            "drugs": {
                "inh": {
                    "targets": [{"node": "A"}, {"node": "B", "ic50": "100 nM", "hill": 2}],
                    "ic50": "10 nM",
                },
                "inh2": {"targets": [{"node": "A"}], "ic50": "1 nM"},
                "act": {"targets": [{"node": "C", "action": "activate"}], "ec50": "5 nM"},
                "other": {"targets": [{"node": "Z"}], "ic50": "5 nM"},
            }
        }
    )


def test_hill_values():
    np.testing.assert_allclose(hill(np.array([0.0, 10.0, 30.0, 1e12]), 10.0, 1.0), [0.0, 0.5, 0.75, 1.0])
    assert hill(np.array([20.0]), 10.0, 2.0)[0] == pytest.approx(0.8)
    assert hill(np.array([5.0]), 10.0, 50.0)[0] == pytest.approx(0.0, abs=1e-12)  # no overflow


def test_compile_unknown_node():
    lib = _lib()
    with pytest.raises(ConfigError, match=r"drugs.other.targets: node 'Z' is not in the network"):
        compile_targets(lib.select(["other"]), NODES, source="lib.toml")
    tm = compile_targets(lib.select(["inh", "other"]), NODES, strict=False)
    assert tm.n_links == 2


def test_masks_follow_hill_probability_and_knockout_wins():
    lib = _lib()
    drugs = lib.select(["inh", "act"])
    tm = compile_targets(drugs, NODES)
    n = 40_000
    conc = np.tile([[10.0, 5.0]], (n, 1))  # p(A) = 0.5, p(B) = 0.01/(1.01)... , p(C) = 0.5
    rng = np.random.default_rng(1)
    ko, ki = sample_masks(conc, tm, rng.random((n, tm.n_links)))
    assert ko.dtype == bool and ko.shape == (n, 4)
    assert ko[:, 0].mean() == pytest.approx(0.5, abs=0.01)
    assert ko[:, 1].mean() == pytest.approx(hill(np.array([10.0]), 100.0, 2.0)[0], abs=0.003)
    assert ki[:, 2].mean() == pytest.approx(0.5, abs=0.01)
    assert not ko[:, 2:].any() and not ki[:, [0, 1, 3]].any()
    # one node inhibited and activated by different drugs: knock-out wins
    both = parse_library(
        {
            "drugs": {
                "i": {"targets": [{"node": "A"}], "ic50": "1 nM"},
                "a": {"targets": [{"node": "A", "action": "activate"}], "ec50": "1 nM"},
            }
        }
    )
    tm2 = compile_targets(both.select(["i", "a"]), NODES)
    ko, ki = sample_masks(np.full((100, 2), 1e6), tm2, rng.random((100, 2)))
    assert ko[:, 0].all() and not ki.any()


def test_common_random_numbers_make_response_monotone_in_dose():
    lib = _lib()
    tm = compile_targets(lib.select(["inh"]), NODES)
    u = np.random.default_rng(0).random((500, tm.n_links))
    prev = np.zeros(500, dtype=bool)
    for c in (0.0, 1.0, 10.0, 100.0, 1000.0):
        ko, _ = sample_masks(np.full((500, 1), c), tm, u)
        assert np.all(ko[:, 0] >= prev)
        prev = ko[:, 0]


def test_target_modulation_combines_drugs_as_independent_anti_nodes():
    lib = _lib()
    tm = compile_targets(lib.select(["inh", "inh2", "act"]), NODES)
    inh, act = target_modulation(np.array([[10.0, 1.0, 5.0], [0.0, 0.0, 0.0]]), tm)
    assert inh[0, 0] == pytest.approx(1 - 0.5 * 0.5)  # two drugs at their IC50 on A
    assert act[0, 2] == pytest.approx(0.5)
    assert np.all(inh[1] == 0) and np.all(act[1] == 0)
    m = drug_target_mask(lib.select(["inh", "inh2", "act"]), NODES)
    np.testing.assert_array_equal(m, [[-1, -1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0]])


BND_TRANSFORMED = """
Node S { rate_up = 0; rate_down = 0; }
Node anti_T { rate_up = 0; rate_down = 0; }
Node T { logic = S AND NOT anti_T; rate_up = @logic ? 1 : 0; rate_down = @logic ? 0 : 0.5; }
Node D { logic = NOT T; rate_up = @logic ? 0.2 : 0; rate_down = 0; }
"""
BND_PLAIN = """
Node S { rate_up = 0; rate_down = 0; }
Node T { logic = S; rate_up = @logic ? 1 : 0; rate_down = @logic ? 0 : 0.5; }
Node D { logic = NOT T; rate_up = @logic ? 0.2 : 0; rate_down = 0; }
"""


def test_knockout_mask_equals_anti_node_rule_after_relaxation():
    """PhysiBoSS's ``T = rule AND NOT anti_T`` vs our knock-out of T, for the same cells."""
    boolean = pytest.importorskip("tme_sim.intracellular.boolean")
    cfg_t = "S.istate = 1; anti_T.istate = 0; T.istate = 1; D.istate = 0;"
    cfg_p = "S.istate = 1; T.istate = 1; D.istate = 0;"
    net_t = boolean.BooleanNetwork.from_text(BND_TRANSFORMED, cfg_t)
    net_p = boolean.BooleanNetwork.from_text(BND_PLAIN, cfg_p)
    n, p = 20_000, 0.4
    rng = np.random.default_rng(5)
    anti = rng.random(n) < p
    ki = np.zeros((n, 4), dtype=bool)
    ki[:, 1] = anti  # anti_T held on in the drugged cells
    ko = np.zeros((n, 4), dtype=bool)
    ko[:, 1] = ~anti
    st = net_t.initial_state(n, rng)
    sp = net_p.initial_state(n, rng)
    kop = np.zeros((n, 3), dtype=bool)
    kop[:, 1] = anti  # same cells: T knocked out
    dead_t, dead_p = [], []
    for _ in range(3):
        net_t.advance(st, 10.0, rng, knockout=ko, knockin=ki)
        net_p.advance(sp, 10.0, rng, knockout=kop)
        dead_t.append(st[:, 3].mean())
        dead_p.append(sp[:, 2].mean())
    # the mask acts at once, the rule after T's own relaxation (mean 1/0.5 = 2 time units)
    assert dead_p[0] > dead_t[0] + 0.01
    # once relaxed, both give the same outcome: exactly the drugged cells die
    assert dead_t[-1] == pytest.approx(dead_p[-1], abs=0.01)
    assert dead_p[-1] == pytest.approx(anti.mean(), abs=0.01)


def test_drug_effects_read_signals():
    from tme_sim.drugs.effects import DrugEffects
    from tme_sim.intracellular.base import Signals

    lib = _lib()
    eff = DrugEffects(lib.select(["inh", "act", "other"]), NODES, signal_names={"act": "act_substrate"})
    assert eff.required_signals() == ["inh", "act_substrate", "other"]
    n = 20_000
    sig = Signals(
        ["inh", "act_substrate", "other", "oxygen"],
        np.column_stack([np.full(n, 10.0), np.zeros(n), np.full(n, 1e6), np.ones(n)]),
    )
    ko, ki = eff.masks(sig, np.random.default_rng(2))
    assert ko[:, 0].mean() == pytest.approx(0.5, abs=0.015)
    assert not ki.any()  # activator at 0 nM
    assert ko.shape == (n, len(NODES)) and not ko[:, 3].any()  # 'other' targets no node here
