"""Unit tests of the immune/stromal rule pieces: response curves, kernels, vessels, per-type rules."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pydantic import ValidationError

from tme_sim.cells import ALIVE, APOPTOTIC
from tme_sim.celltypes.macrophage import polarization_target
from tme_sim.celltypes.metabolism import hill, hypoxia_level, inhibition, relax
from tme_sim.celltypes.tcell import kill_probability
from tme_sim.config import VesselConfig, validate_scenario
from tme_sim.errors import ConfigError
from tme_sim.model import TMEModel
from tme_sim.vessels import layout_from_scenario, place_vessel_voxels

# ---------------------------------------------------------------- a tiny scenario built in code


def tiny_doc(cells: list[dict], **extra) -> dict:
    subs = {
        "oxygen": {"initial": "38 mmHg", "boundary": {"all": "38 mmHg"}},
        "glucose": {"initial": "5 mM"},
        "lactate": {"initial": "1 mM"},
    }
    for s in ("IFNG", "TNF", "TGFB1", "IL10", "IL4", "CSF1", "CXCL9", "CCL2", "VEGFA", "CXCL12"):
        subs[s] = {}
    doc = {
        "name": "tiny",
        "seed": 3,
        "domain": {"size": ["200 um", "200 um"], "dx": "20 um"},
        "time": {"diffusion_dt": "0.1 min"},
        "substrates": subs,
        "cell_types": {
            "tumor": {
                "rules": "tumor",
                "secretion": {
                    "oxygen": {"uptake_rate": "10 1/min"},
                    "glucose": {"uptake_rate": "0.1 1/min"},
                    "VEGFA": {"secretion_rate": "0.01 1/min", "saturation": "10 ng/mL"},
                    "CXCL9": {"secretion_rate": "0.01 1/min", "saturation": "10 ng/mL"},
                },
            },
            "cd8_t_cell": {
                "rules": "cd8_t_cell",
                "volume": {"radius": "4.85 um"},
                "cycle": {"model": "none"},
                "mechanics": {"speed": "4 um/min"},
                "secretion": {"IFNG": {"secretion_rate": "1 1/min", "saturation": "10 ng/mL"}},
            },
            "macrophage": {
                "rules": "macrophage",
                "cycle": {"model": "none"},
                "secretion": {
                    "TNF": {"secretion_rate": "1 1/min", "saturation": "10 ng/mL"},
                    "IL10": {"secretion_rate": "1 1/min", "saturation": "10 ng/mL"},
                },
            },
            "fibroblast": {
                "rules": "fibroblast",
                "cycle": {"model": "none"},
                "secretion": {"TGFB1": {"secretion_rate": "1 1/min", "saturation": "10 ng/mL"}},
            },
        },
        "initial_cells": cells,
    }
    doc.update(extra)
    return doc


def pts(name: str, points: list[tuple[float, float]]) -> dict:
    return {"type": name, "shape": "points", "points": [[f"{x} um", f"{y} um"] for x, y in points]}


def model_of(doc: dict, seed: int = 1) -> TMEModel:
    return TMEModel(validate_scenario(doc, "<test>"), seed=seed)


def slots_of(m: TMEModel, name: str) -> np.ndarray:
    return m.store.slots_of_type(m.type_names.index(name))


# ---------------------------------------------------------------- response curves


def test_hill_inhibition_and_hypoxia_curves() -> None:
    x = np.array([0.0, 1.0, 3.0])
    assert np.allclose(hill(x, 1.0), [0.0, 0.5, 0.75])
    assert np.allclose(hill(x, 1.0, 2.0), [0.0, 0.5, 0.9])
    assert np.allclose(inhibition(x, 1.0), [1.0, 0.5, 0.25])
    assert np.allclose(inhibition(x, 0.0), 1.0)  # half-max 0 switches the inhibition off
    assert np.allclose(hypoxia_level(np.array([2.0, 5.0, 10.0, 15.0, 38.0]), 5.0, 15.0), [1, 1, 0.5, 0, 0])
    # relax: exact exponential approach, rate 0 keeps the value
    assert np.allclose(relax(np.array([0.0]), np.array([1.0]), np.log(2) / 10, 10.0), [0.5])
    assert np.allclose(relax(np.array([0.3]), np.array([1.0]), 0.0, 10.0), [0.3])


def test_kill_probability_pdl1_and_blockade() -> None:
    k = np.full(3, 0.1)
    pdl1 = np.array([0.0, 0.5, 1.0])
    p = kill_probability(k, pdl1, 0.0, 0.8, 6.0)
    assert p[0] > p[1] > p[2] > 0
    assert np.isclose(p[0], 1 - np.exp(-0.6))
    blocked = kill_probability(k, pdl1, 1.0, 0.8, 6.0)
    assert np.allclose(blocked, p[0])
    half = kill_probability(k, pdl1, 0.5, 0.8, 6.0)
    assert np.all(half[1:] > p[1:]) and np.all(half[1:] < blocked[1:])


def test_polarization_target() -> None:
    assert np.allclose(
        polarization_target(np.array([1.0, 0.0, 0.0, 3.0]), np.array([1.0, 2.0, 0.0, 1.0])), [0.5, 1.0, 0.5, 0.25]
    )


# ---------------------------------------------------------------- neighbour kernels


def test_pick_and_accumulate_neighbors() -> None:
    # macrophage at (100,100) touching tumor A (115,100); tumor B far away; T cell touching A
    doc = tiny_doc(
        [pts("tumor", [(115, 100), (40, 40)]), pts("macrophage", [(100, 100)]), pts("cd8_t_cell", [(127, 100)])]
    )
    m = model_of(doc)
    st = m.store
    mac = slots_of(m, "macrophage")
    tum = slots_of(m, "tumor")
    a = tum[np.argmin(np.abs(st.position[tum, 0] - 115))]
    nb = m.neighbours
    tm = nb.type_mask([m.type_names.index("tumor")])
    assert nb.pick(mac, tm, m.rng)[0] == a
    assert nb.pick(mac, tm, m.rng, dead=True)[0] == -1
    st.death[a] = APOPTOTIC
    assert nb.pick(mac, tm, m.rng)[0] == -1
    assert nb.pick(mac, nb.type_mask(range(4)), m.rng, dead=True)[0] == a
    st.death[a] = ALIVE
    acc = nb.accumulate(mac, np.array([0.7]), tm)
    assert acc.shape == (st.n,)
    assert np.isclose(acc[a], 0.7) and np.isclose(acc.sum(), 0.7)


# ---------------------------------------------------------------- vessels


def test_place_vessel_voxels_points_lines_density() -> None:
    shape, dx = (1, 10, 10), 20.0
    rng = np.random.default_rng(0)
    cfg = VesselConfig(points=[["10 um", "10 um"], ["199 um", "30 um"]])
    assert place_vessel_voxels(cfg, shape, dx, 2, rng).tolist() == [0, 19]
    line = VesselConfig(lines=[{"start": ["0 um", "10 um"], "end": ["200 um", "10 um"]}])
    assert place_vessel_voxels(line, shape, dx, 2, rng).tolist() == list(range(10))
    diag = VesselConfig(lines=[{"start": ["0 um", "0 um"], "end": ["200 um", "200 um"]}])
    v = place_vessel_voxels(diag, shape, dx, 2, rng)
    assert {0, 11, 99}.issubset(set(v.tolist()))  # connected along the diagonal, no gaps
    dens = VesselConfig(density=0.1, exclude_center=["100 um", "100 um"], exclude_radius="50 um")
    v = place_vessel_voxels(dens, shape, dx, 2, np.random.default_rng(1))
    assert v.size == 10
    c = (np.stack([v % 10, v // 10], 1) + 0.5) * dx
    assert np.all(np.linalg.norm(c - 100.0, axis=1) >= 50.0)
    # "centre" (and unset) is the domain's centre, whatever the domain's size
    off = VesselConfig(density=0.1, exclude_center=["60 um", "60 um"], exclude_radius="50 um")
    for centre in ("centre", "center", None):
        named = VesselConfig(density=0.1, exclude_center=centre, exclude_radius="50 um")
        got = place_vessel_voxels(named, shape, dx, 2, np.random.default_rng(1))
        assert got.tolist() == v.tolist()
        assert got.tolist() != place_vessel_voxels(off, shape, dx, 2, np.random.default_rng(1)).tolist()
    with pytest.raises(ValidationError):
        VesselConfig(density=0.1, exclude_center="middle")
    with pytest.raises(ConfigError, match="outside the domain"):
        place_vessel_voxels(VesselConfig(points=[["300 um", "10 um"]]), shape, dx, 2, rng)
    with pytest.raises(ConfigError, match="expected 2 coordinates"):
        place_vessel_voxels(VesselConfig(points=[["10 um", "10 um", "10 um"]]), shape, dx, 2, rng)


def test_vessels_clamp_supply_and_give_entry_points() -> None:
    doc = tiny_doc(
        [pts("tumor", [(100, 100)])],
        vessels={"points": [["30 um", "30 um"], ["170 um", "170 um"]], "supply": {"oxygen": "30 mmHg"}},
    )
    doc["substrates"]["oxygen"] = {"initial": "5 mmHg"}
    m = model_of(doc)
    mask = m.vessels.mask
    assert mask.sum() == 2
    m.run_for(6)
    o2 = m.micro.field("oxygen")
    assert np.allclose(o2[mask], 30.0) and o2[~mask].max() < 30.0
    # default supply not used when supply is given: glucose stays free
    assert "glucose" not in m.vessels.supply
    pos = m.vessels.entry_positions(np.array([3, 0]), m.rng, m.dim, m.micro.dx)
    assert pos.shape == (3, 3) and np.all(np.abs(pos[:, :2] - 30.0) <= 10.0) and np.all(pos[:, 2] == 0)
    # the layout is a pure function of scenario + seed (plots and drug code rebuild it)
    again = layout_from_scenario(m.scenario, m.seed_value)
    assert again is not None and np.array_equal(again.voxels, m.vessels.voxels)


def test_random_vessels_depend_on_seed_only() -> None:
    doc = tiny_doc([pts("tumor", [(100, 100)])], vessels={"density": 0.1})
    a, b, c = model_of(doc, 1), model_of(doc, 1), model_of(doc, 2)
    assert np.array_equal(a.vessels.voxels, b.vessels.voxels)
    assert not np.array_equal(a.vessels.voxels, c.vessels.voxels)
    # default supply: oxygen, glucose and lactate at plasma values
    assert a.vessels.supply == {"oxygen": 38.0, "glucose": 5.0, "lactate": 1.0}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"vessels": {"supply": {"drugX": "1 nM"}}}, "vessels.supply.drugX: substrate not in"),
        ({"vessels": {"pointz": []}}, "vessels.pointz: unknown key"),
        ({"immune": {"anti_pdl1": 2}}, "immune.anti_pdl1"),
        ({"immune": {"bogus": 1}}, "immune.bogus: unknown key"),
    ],
)
def test_bad_vessel_and_immune_config(extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        model_of(tiny_doc([pts("tumor", [(100, 100)])], **extra))


def test_unknown_rule_parameter_is_a_config_error() -> None:
    doc = tiny_doc([pts("tumor", [(100, 100)])])
    doc["cell_types"]["cd8_t_cell"]["params"] = {"kil_rate": "0.1 1/min"}
    with pytest.raises(ConfigError, match=r"cell_types\.cd8_t_cell\.params\.kil_rate: unknown parameter"):
        model_of(doc)
    doc["cell_types"]["cd8_t_cell"]["params"] = {"kill_rate": "0.1 um"}
    with pytest.raises(ConfigError, match=r"params\.kill_rate"):
        model_of(doc)


# ---------------------------------------------------------------- per-type rules


def test_tumor_pdl1_and_cxcl9_rise_with_ifng() -> None:
    m = model_of(tiny_doc([pts("tumor", [(60, 60), (140, 140)])]))
    st = m.store
    tum = slots_of(m, "tumor")
    assert np.allclose(st.pdl1[tum], 0.1)
    j = m.substrate_names.index("CXCL9")
    assert np.all(st.secretion_rate[tum, j] == 0)
    ifng = m.micro.field("IFNG")
    ifng[...] = 5.0  # saturating IFN-γ everywhere, held for a day
    for _ in range(240):
        ifng[...] = 5.0
        m.phenotype_step()
    tum = slots_of(m, "tumor")
    tum = tum[st.death[tum] == ALIVE]
    assert np.all(st.pdl1[tum] > 0.8)
    assert np.all(st.secretion_rate[tum, j] > 0.005)


def test_tumor_variant_clone_fraction() -> None:
    doc = tiny_doc([{"type": "tumor", "shape": "disc", "center": ["100 um", "100 um"], "radius": "80 um"}])
    doc["cell_types"]["tumor"]["params"] = {"variant_fraction": 0.5, "variant_cycle_factor": 2.0}
    m = model_of(doc)
    tum = slots_of(m, "tumor")
    frac = m.store.clone[tum].mean()
    assert 0.3 < frac < 0.7
    v = tum[m.store.clone[tum] == 1]
    p = tum[m.store.clone[tum] == 0]
    # same O2 → the variant enters the cycle twice as fast (compare cells with equal conditions)
    rate_v = m.store.cycle_rate[v].max()
    rate_p = m.store.cycle_rate[p].max()
    assert np.isclose(rate_v, 2 * rate_p, rtol=0.05)


def test_macrophage_polarization_follows_cytokines() -> None:
    base = tiny_doc([pts("macrophage", [(60, 60), (140, 140)])])
    for cytokine, direction in (("IFNG", -1), ("IL10", +1), ("TGFB1", +1), ("TNF", -1)):
        m = model_of(copy.deepcopy(base))
        st = m.store
        mac = slots_of(m, "macrophage")
        assert np.allclose(st.polarization[mac], 0.5)
        for _ in range(120):  # 12 h at a fixed cytokine level
            m.micro.field(cytokine)[...] = 5.0
            for other in ("IFNG", "IL10", "TGFB1", "TNF"):
                if other != cytokine:
                    m.micro.field(other)[...] = 0.0
            m.phenotype_step()
        mac = slots_of(m, "macrophage")
        shift = st.polarization[mac] - 0.5
        assert np.all(direction * shift > 0.1), (cytokine, shift)
        # polarized secretion: M1 → TNF, M2 → IL10
        tnf, il10 = (m.substrate_names.index(s) for s in ("TNF", "IL10"))
        if direction < 0:
            assert np.all(st.secretion_rate[mac, tnf] > st.secretion_rate[mac, il10])
        else:
            assert np.all(st.secretion_rate[mac, il10] > st.secretion_rate[mac, tnf])


def test_fibroblast_activation_by_tgfb1() -> None:
    m = model_of(tiny_doc([pts("fibroblast", [(60, 60)])]))
    st = m.store
    f = slots_of(m, "fibroblast")
    a0 = st.polarization[f].copy()
    j = m.substrate_names.index("TGFB1")
    s0 = st.secretion_rate[f, j].copy()
    for _ in range(240):
        m.micro.field("TGFB1")[...] = 10.0
        m.phenotype_step()
    assert np.all(st.polarization[f] > a0 + 0.2)
    assert np.all(st.secretion_rate[f, j] > s0)


def test_t_cell_kill_exhaustion_and_events() -> None:
    # one T cell wedged between tumor cells; make killing certain and exhaustion one kill away
    doc = tiny_doc([pts("tumor", [(100, 100), (100, 115), (100, 85)]), pts("cd8_t_cell", [(88, 100)])])
    doc["cell_types"]["cd8_t_cell"]["params"] = {"kill_rate": "10 1/min", "exhaustion_per_kill": 1.0}
    doc["cell_types"]["cd8_t_cell"]["mechanics"] = {"speed": "0 um/min"}
    m = model_of(doc)
    st = m.store
    m.phenotype_step()
    t = slots_of(m, "cd8_t_cell")[0]
    assert m.events.totals["kill"] == 1
    assert st.kills[t] == 1 and st.exhaustion[t] >= 1.0
    assert m.events.totals["exhaustion"] == 1
    ev = m.events.drain()
    kill = ev[ev["kind"] == 5][0]
    assert kill["other_id"] == st.id[t]
    assert st.death[st.slot_of_id[kill["id"]]] == APOPTOTIC
    # exhausted: no more kills, no IFNG
    m.phenotype_step()
    assert m.events.totals["kill"] == 1
    assert st.kill_rate[t] == 0 and st.secretion_rate[t, m.substrate_names.index("IFNG")] == 0


def test_t_cell_slowed_by_tgfb1_and_cafs() -> None:
    doc = tiny_doc([pts("cd8_t_cell", [(40, 40), (150, 150)]), pts("fibroblast", [(150, 163)])])
    m = model_of(doc)
    st = m.store
    t = slots_of(m, "cd8_t_cell")
    free = t[st.position[t, 0] < 100][0]
    caf = t[st.position[t, 0] > 100][0]
    assert np.isclose(st.migration_speed[free], 4.0)
    assert np.isclose(st.migration_speed[caf], 4.0 * 0.2)
    m.micro.field("TGFB1")[...] = 1.0  # = tgfb1_motility_half_max
    m.phenotype_step()
    assert np.isclose(st.migration_speed[free], 2.0)


def test_recruitment_scales_with_chemokine() -> None:
    doc = tiny_doc([pts("tumor", [(100, 100)])], vessels={"density": 0.2})
    doc["cell_types"]["cd8_t_cell"]["params"] = {"recruitment_rate": "0.01 1/min", "recruitment_basal": 0.0}
    counts = []
    for level in (0.0, 5.0):
        m = model_of(copy.deepcopy(doc))
        for _ in range(20):
            m.micro.field("CXCL9")[...] = level
            m.phenotype_step()
        counts.append(m.events.totals["recruitment"])
    assert counts[0] == 0 and counts[1] > 10


def test_same_seed_same_run() -> None:
    """All randomness of the rules comes from the model's Generator: a seed fixes the run."""
    cells = [
        {"type": "tumor", "shape": "disc", "center": ["100 um", "100 um"], "radius": "50 um"},
        {"type": "cd8_t_cell", "shape": "disc", "center": ["100 um", "100 um"], "radius": "60 um", "count": 15},
        {"type": "macrophage", "shape": "random", "count": 6},
        {"type": "fibroblast", "shape": "random", "count": 6},
    ]
    doc = tiny_doc(cells, vessels={"density": 0.05})
    doc["cell_types"]["cd8_t_cell"]["params"] = {"kill_rate": "0.05 1/min", "recruitment_rate": "0.02 1/min"}
    runs = []
    for _ in range(2):
        m = model_of(copy.deepcopy(doc), seed=11)
        m.run_for(60.0)
        n = m.store.n
        runs.append((m.store.id[:n].copy(), m.store.position[:n].copy(), m.store.pdl1[:n].copy(), m.events.totals))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1]) and np.array_equal(runs[0][2], runs[1][2])
    assert runs[0][3] == runs[1][3] and runs[0][3]["kill"] > 0
