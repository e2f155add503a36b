"""The PhysiCell-grammar rules engine: the response against hand-computed Hill values, then each
signal and each behaviour on tiny models (one or two cells)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from tme_sim.cells import ALIVE, APOPTOTIC, NECROTIC_SWELLING
from tme_sim.config import validate_scenario
from tme_sim.errors import ConfigError
from tme_sim.model import TMEModel
from tme_sim.rules import multivariate_hill, rule_response

V0 = 2494.0  # PhysiCell default volume (µm³), the schema's default radius


def h(s: float, half: float, n: float) -> float:
    """Hand-written one-signal Hill response (s/h)^n / (1 + (s/h)^n)."""
    x = (s / half) ** n
    return x / (1 + x)


# ---------------------------------------------------------------- the response itself


def test_response_matches_physicell_formula_by_hand():
    # up: base 0.01 → max 0.1, s=2, h=1, n=2: S=4, H=0.8, U = 0.01 + 0.09·0.8 = 0.082
    # down: min 0, s=3, h=3, n=1: H=0.5 → 0.082 + (0 − 0.082)·0.5 = 0.041
    up = (np.array([[2.0]]), np.array([1.0]), np.array([2.0]))
    down = (np.array([[3.0]]), np.array([3.0]), np.array([1.0]))
    assert rule_response(0.01, 0.1, 0.0, up, down) == pytest.approx([0.041])
    # two up signals add inside the Hill function: (1/1)^1 + (2/1)^2 = 5 → 5/6
    sig = np.array([[1.0, 2.0]])
    assert multivariate_hill(sig, np.array([1.0, 1.0]), np.array([1.0, 2.0])) == pytest.approx([5 / 6])
    # no signal, zero signal, saturating signal
    assert multivariate_hill(np.zeros((1, 0)), np.zeros(0), np.zeros(0)) == pytest.approx([0.0])
    assert multivariate_hill(np.array([[0.0]]), np.array([0.0]), np.array([1.0])) == pytest.approx([0.0])
    assert multivariate_hill(np.array([[1e300]]), np.array([1e-300]), np.array([8.0])) == pytest.approx([1.0])


# ---------------------------------------------------------------- tiny models


def doc_with(rules: list[dict], points_a, points_b=(), interactions: dict | None = None, **a_extra) -> dict:
    a = {
        "cycle": {"entry_rate": "0.001 1/min", "o2_dependent": False},
        "death": {"apoptosis_rate": "0.0001 1/min", "necrosis_rate": "0.0002 1/min", "o2_necrosis": False},
        "mechanics": {"speed": "1 um/min", "chemotaxis": {"substrate": "IL10", "bias": 0.3}},
        "secretion": {
            "IL10": {
                "secretion_rate": "0.5 1/min",
                "saturation": "2 ng/mL",
                "uptake_rate": "0.1 1/min",
                "net_export": "0.01 ng/mL*um**3/min",
            }
        },
        "behavior_rules": rules,
        **a_extra,
    }
    if interactions:
        a["interactions"] = interactions
    cells = [{"type": "a", "shape": "points", "points": [[f"{x} um", f"{y} um"] for x, y in points_a]}]
    if points_b:
        cells.append({"type": "b", "shape": "points", "points": [[f"{x} um", f"{y} um"] for x, y in points_b]})
    return {
        "name": "rules",
        "seed": 2,
        "domain": {"size": ["200 um", "200 um"], "dx": "20 um"},
        "time": {"diffusion_dt": "0.1 min"},
        "substrates": {
            "oxygen": {"initial": "38 mmHg"},
            "IL10": {"initial": "1.5 ng/mL", "decay": "0 1/min", "diffusion": "0 um**2/min"},
        },
        "cell_types": {"a": a, "b": {"cycle": {"model": "none"}, "death": {"o2_necrosis": False}}},
        "initial_cells": cells,
    }


def model(doc: dict) -> TMEModel:
    return TMEModel(validate_scenario(copy.deepcopy(doc), "<test>"), seed=1)


def rule(signal, behavior, direction="increases", saturation="0.01 1/min", half_max=1.0, power=2.0, dead=False):
    return {
        "signal": signal,
        "direction": direction,
        "behavior": behavior,
        "saturation": saturation,
        "half_max": half_max,
        "hill_power": power,
        "applies_to_dead": dead,
    }


def first_a(m: TMEModel) -> int:
    return int(m.store.slots_of_type(0)[0])


# signal name, half-max (with unit), the signal's value in the tiny model (single cell of type a at
# the centre, alone unless noted), how the model is prepared
SIGNALS = [
    ("oxygen", "20 mmHg", 38.0),
    ("IL10", "1 ng/mL", 1.5),
    ("volume", "2000 um**3", V0),
    ("time", "50 min", 120.0),
    ("contact with b", 0.5, 1.0),
    ("contact with live cell", 0.5, 1.0),
    ("custom:chemotaxis_bias", 0.2, 0.3),
]


@pytest.mark.parametrize(("signal", "half", "value"), SIGNALS, ids=[s[0] for s in SIGNALS])
def test_each_signal_drives_cycle_entry_by_hand_computed_hill(signal, half, value):
    touching = signal.startswith("contact")
    m = model(doc_with([rule(signal, "cycle entry", half_max=half)], [(100, 100)], [(112, 100)] if touching else ()))
    if signal == "time":
        m.clock.time = 120.0
    m.phenotype_step(initial=True)
    half_value = {"20 mmHg": 20.0, "1 ng/mL": 1.0, "2000 um**3": 2000.0, "50 min": 50.0}.get(half, half)
    expected = 0.001 + (0.01 - 0.001) * h(value, half_value, 2.0)
    assert m.store.cycle_rate[first_a(m)] == pytest.approx(expected, rel=1e-9)


def test_gradient_signal():
    m = model(doc_with([rule("IL10 gradient", "cycle entry", half_max="0.01 ng/mL/um")], [(100, 100)]))
    x = (np.arange(10) + 0.5) * 20.0
    m.micro.set_field("IL10", np.broadcast_to(0.02 * x, m.micro.field("IL10").shape).copy())
    m.phenotype_step(initial=True)
    expected = 0.001 + 0.009 * h(0.02, 0.01, 2.0)
    assert m.store.cycle_rate[first_a(m)] == pytest.approx(expected, rel=1e-6)


def test_pressure_signal_uses_the_contact_pressure():
    m = model(
        doc_with([rule("pressure", "cycle entry", direction="decreases", saturation=0.0)], [(100, 100), (108, 100)])
    )
    m.phenotype_step(initial=True)
    slots = m.store.slots_of_type(0)
    p = m.neighbours.pressure(slots)
    assert np.all(p > 0)
    expected = 0.001 * (1 - np.array([h(x, 1.0, 2.0) for x in p]))
    assert m.store.cycle_rate[slots] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("signal", "state", "value"),
    [
        ("dead", APOPTOTIC, 1.0),
        ("apoptotic", APOPTOTIC, 1.0),
        ("necrotic", NECROTIC_SWELLING, 1.0),
        ("necrotic", ALIVE, 0.0),
    ],
)
def test_death_state_signals_and_applies_to_dead(signal, state, value):
    # secretion of a dead cell is silenced by the behaviour; a rule that applies to dead cells sets it
    r = rule(signal, "IL10 secretion", saturation="1 1/min", half_max=0.5, power=4.0, dead=True)
    m = model(doc_with([r], [(100, 100)]))
    s = first_a(m)
    m.store.death[s] = state
    m.phenotype_step(initial=True)
    base = 0.0 if state != ALIVE else 0.5
    assert m.store.secretion_rate[s, 1] == pytest.approx(base + (1.0 - base) * h(value, 0.5, 4.0) if value else base)


def test_dead_cells_keep_what_their_rules_set_through_the_fates():
    """Death zeroes a cell's secretion; a rule that applies to dead cells sets it again after the
    fates of every phenotype step (PhysiCell's debris secretion by dead cells), so it reaches the grid."""
    r = rule("apoptotic", "IL10 secretion", saturation="1 1/min", half_max=0.5, power=4.0, dead=True)
    m = model(doc_with([r], [(100, 100)]))
    s = first_a(m)
    m.store.death[s] = APOPTOTIC
    m.phenotype_step()
    s = first_a(m)
    assert m.store.death[s] == APOPTOTIC
    assert m.store.secretion_rate[s, 1] == pytest.approx(h(1.0, 0.5, 4.0))
    assert m.store.uptake_rate[s, 1] == 0.0  # silenced at death, no rule sets it again


def test_rule_not_for_dead_cells_leaves_them_alone():
    m = model(doc_with([rule("oxygen", "apoptosis", saturation="1 1/min", half_max="1 mmHg")], [(100, 100)]))
    s = first_a(m)
    m.store.death[s] = APOPTOTIC
    m.phenotype_step(initial=True)
    assert m.store.apoptosis_rate[s] == pytest.approx(0.0001)  # what the behaviour wrote, untouched


# behaviour, direction, saturation, column getter, base value
BEHAVIORS = [
    ("cycle entry", "increases", "0.01 1/min", lambda st, s: st.cycle_rate[s], 0.001),
    ("apoptosis", "increases", "0.01 1/min", lambda st, s: st.apoptosis_rate[s], 0.0001),
    ("necrosis", "decreases", "0 1/min", lambda st, s: st.necrosis_rate[s], 0.0002),
    ("migration speed", "decreases", "0.1 um/min", lambda st, s: st.migration_speed[s], 1.0),
    ("migration bias", "increases", 0.9, lambda st, s: st.chemotaxis_bias[s], 0.3),
    ("IL10 secretion", "decreases", "0 1/min", lambda st, s: st.secretion_rate[s, 1], 0.5),
    ("IL10 secretion target", "increases", "5 ng/mL", lambda st, s: st.saturation[s, 1], 2.0),
    ("IL10 uptake", "increases", "1 1/min", lambda st, s: st.uptake_rate[s, 1], 0.1),
    ("IL10 export", "increases", "0.05 ng/mL*um**3/min", lambda st, s: st.net_export[s, 1], 0.01),
    ("custom:kill_rate", "increases", "0.2 1/min", lambda st, s: st.kill_rate[s], 0.0),
]


@pytest.mark.parametrize(("behavior", "direction", "sat", "get", "base"), BEHAVIORS, ids=[b[0] for b in BEHAVIORS])
def test_each_behavior_by_hand_computed_hill(behavior, direction, sat, get, base):
    m = model(doc_with([rule("oxygen", behavior, direction, sat, half_max="30 mmHg", power=3.0)], [(100, 100)]))
    target = float(sat.split()[0]) if isinstance(sat, str) else sat
    expected = base + (target - base) * h(38.0, 30.0, 3.0)
    assert get(m.store, first_a(m)) == pytest.approx(expected, rel=1e-9)


def test_up_and_down_rules_combine_as_physicell():
    rules = [
        rule("oxygen", "cycle entry", "increases", "0.01 1/min", "20 mmHg", 2.0),
        rule("IL10", "cycle entry", "decreases", "0 1/min", "1 ng/mL", 1.0),
    ]
    m = model(doc_with(rules, [(100, 100)]))
    u = 0.001 + (0.01 - 0.001) * h(38.0, 20.0, 2.0)
    assert m.store.cycle_rate[first_a(m)] == pytest.approx(u * (1 - h(1.5, 1.0, 1.0)), rel=1e-9)


# ---------------------------------------------------------------- interactions


def step_interactions(m: TMEModel) -> None:
    m.phenotype_step()


def test_attack_kills_a_touching_cell_and_rules_can_switch_it_off():
    on = model(doc_with([], [(100, 100)], [(112, 100)], interactions={"attack": {"b": "100 1/min"}}))
    step_interactions(on)
    b = on.store.slots_of_type(1)
    assert on.store.death[b].tolist() == [APOPTOTIC]
    rules = [rule("contact with b", "attack b", "decreases", "0 1/min", 1e-3, 4.0)]
    off = model(doc_with(rules, [(100, 100)], [(112, 100)], interactions={"attack": {"b": "100 1/min"}}))
    step_interactions(off)
    assert off.store.death[off.store.slots_of_type(1)].tolist() == [ALIVE]


def test_attack_with_damage_adds_damage_and_a_damage_rule_decides():
    """PhysiCell's damage model: each attack adds attack_damage_rate × attack_duration to the target,
    which stays alive; 'damage increases apoptosis' on the target's type reads it (Hill by hand)."""
    inter = {"attack": {"b": "100 1/min"}, "attack_damage_rate": "2 1/min", "attack_duration": "0.25 min"}
    doc = doc_with([], [(100, 100)], [(112, 100)], interactions=inter)
    doc["cell_types"]["b"]["behavior_rules"] = [rule("damage", "apoptosis", saturation="0.1 1/min", half_max=1.0)]
    doc["cell_types"]["b"]["death"]["apoptosis_rate"] = "0 1/min"
    m = model(doc)
    step_interactions(m)
    b = m.store.slots_of_type(1)
    assert m.store.death[b].tolist() == [ALIVE]
    # 6 min at 100/(1 + 100·0.25) ≈ 3.85 attacks/min: Poisson(23), each attack 2 × 0.25
    n_attacks = m.store.damage[b][0] / 0.5
    assert n_attacks == round(n_attacks) and 5 <= n_attacks <= 50
    assert m.store.kills[m.store.slots_of_type(0)].tolist() == [0]
    m.store.damage[b] = 0.5
    m.phenotype_step(initial=True)  # behaviours, then rules, read the damage
    b = m.store.slots_of_type(1)
    assert m.store.apoptosis_rate[b][0] == pytest.approx(0.1 * h(0.5, 1.0, 2.0))


def test_attacks_start_per_touching_target_and_the_attacker_is_busy_meanwhile():
    """As in PhysiCell, a free attacker may start an attack on each touching target at ``rate``, and
    is busy for ``attack_duration`` per attack: attacks/min = r·k / (1 + r·k·D). 225 isolated
    attackers with k = 3 targets each, r = 0.2/min, D = 1 min, 1 damage per attack, one 6-min step:
    the total damage is Poisson with mean 225 · 6 · 0.6 / 1.6 = 506.25 (sd 22.5). One attack per
    target picked at r (the old model) gives 225·(1 − e^−1.2) ≈ 157; no busy time, 810."""
    a_pts, b_pts = [], []
    for i in range(15):
        for j in range(15):
            x, y = 50 + 60 * i, 50 + 60 * j
            a_pts.append((x, y))
            b_pts += [(x + 12, y), (x - 12, y), (x, y + 12)]
    inter = {"attack": {"b": "0.2 1/min"}, "attack_damage_rate": "1 1/min", "attack_duration": "1 min"}
    doc = doc_with(
        [],
        a_pts,
        b_pts,
        interactions=inter,
        cycle={"entry_rate": "0 1/min", "o2_dependent": False},
        death={"apoptosis_rate": "0 1/min", "necrosis_rate": "0 1/min", "o2_necrosis": False},
    )
    doc["domain"]["size"] = ["1000 um", "1000 um"]
    doc["cell_types"]["b"]["death"]["apoptosis_rate"] = "0 1/min"
    m = model(doc)
    step_interactions(m)
    damage = m.store.damage[m.store.slots_of_type(1)]
    assert damage.size == 675 and np.all(damage == np.round(damage))
    assert abs(damage.sum() - 506.25) < 4 * 22.5


def test_attacks_with_damage_reach_the_attackers_max_adhesion_distance():
    """PhysiCell's interaction neighbours lie within the maximum adhesion distance: a target 23 µm
    away (1.37 × the sum of radii, 2 × 8.41 µm) is attacked with max_adhesion_distance = 1.5, not
    with the default 1.25 (21.0 µm)."""
    inter = {"attack": {"b": "100 1/min"}, "attack_damage_rate": "1 1/min", "attack_duration": "0.1 min"}
    damage = []
    for reach in (1.5, 1.25):
        doc = doc_with([], [(100, 100)], [(123, 100)], interactions=inter)
        doc["cell_types"]["a"]["mechanics"]["max_adhesion_distance"] = reach
        m = model(doc)
        step_interactions(m)
        damage.append(float(m.store.damage[m.store.slots_of_type(1)][0]))
    assert damage[0] > 1.0 and damage[1] == 0.0


def test_phagocytosis_of_dead_and_live_cells_removes_them():
    m = model(doc_with([], [(100, 100)], [(112, 100)], interactions={"phagocytosis": {"apoptotic": "100 1/min"}}))
    m.store.death[m.store.slots_of_type(1)] = APOPTOTIC
    m.store.death_clock[m.store.slots_of_type(1)] = 0.0
    step_interactions(m)
    assert m.store.slots_of_type(1).size == 0
    live = model(doc_with([], [(100, 100)], [(112, 100)], interactions={"phagocytosis": {"b": "100 1/min"}}))
    step_interactions(live)
    assert live.store.slots_of_type(1).size == 0
    rules = [rule("volume", "phagocytose b", "decreases", "0 1/min", "1 um**3", 8.0)]
    none = model(doc_with(rules, [(100, 100)], [(112, 100)], interactions={"phagocytosis": {"b": "100 1/min"}}))
    step_interactions(none)
    assert none.store.slots_of_type(1).size == 1


def test_transformation_by_rule_changes_type():
    rules = [rule("IL10", "transform to b", "increases", "100 1/min", "1 ng/mL", 4.0)]
    m = model(doc_with(rules, [(100, 100), (150, 150)]))
    step_interactions(m)
    assert m.store.slots_of_type(0).size == 0 and m.store.slots_of_type(1).size == 2
    m.store.check_consistency()
    assert m.events.totals["transformation"] == 2


def test_transformation_probability_matches_rate():
    # rate from the rule: base 0 + (r − 0)·H; P(transform in one step) = 1 − exp(−rate·6 min)
    rules = [rule("IL10", "transform to b", "increases", "0.05 1/min", "1.5 ng/mL", 1.0)]
    pts = [(10 + 18 * (i % 10), 10 + 18 * (i // 10)) for i in range(100)]
    m = model(doc_with(rules, pts))
    step_interactions(m)
    p = 1 - math.exp(-0.05 * 0.5 * 6.0)
    n_b = m.store.slots_of_type(1).size
    assert abs(n_b - 100 * p) < 4 * math.sqrt(100 * p * (1 - p))


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("signal", "damage delivered", "unsupported signal 'damage delivered'"),
        ("behavior", "fly", "unsupported behaviour 'fly'"),
        ("behavior", "attack nobody", "unsupported behaviour"),
        ("half_max", "3 um", "half_max"),
    ],
)
def test_bad_rules_are_config_errors_naming_the_key(field, value, fragment):
    r = rule("oxygen", "cycle entry", half_max="20 mmHg")
    r[field] = value
    with pytest.raises(ConfigError, match=fragment) as exc:
        model(doc_with([r], [(100, 100)]))
    assert "cell_types.a.behavior_rules[0]" in str(exc.value)
