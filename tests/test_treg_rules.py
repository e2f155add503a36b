"""A regulatory T cell defined in TOML alone (docs/rules.md) suppresses CD8 killing as specified:
each CD8 T cell's kill rate is its rate without the rule times 1 − H(IL10), H(c) = c²/(1 + c²)."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tme_sim.config import validate_scenario
from tme_sim.model import TMEModel

DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def treg_doc() -> dict:
    """The scenario of docs/rules.md, exactly as the page shows it."""
    text = DOC.read_text()
    block = re.search(r"<!-- file: treg.toml -->\s*\n```toml\n(.*?)\n```", text, re.S).group(1)
    return tomllib.loads(block)


def build(doc: dict, seed: int = 1) -> TMEModel:
    return TMEModel(validate_scenario(copy.deepcopy(doc), "docs/rules.md treg.toml"), seed=seed)


def cd8_kill_rates(m: TMEModel) -> tuple[np.ndarray, np.ndarray]:
    slots = m.store.slots_of_type(m.type_names.index("cd8_t_cell"))
    il10 = m.micro.sample(m.store.position[slots])[:, m.substrate_names.index("IL10")]
    return m.store.kill_rate[slots].copy(), il10


def test_treg_is_a_type_without_python():
    doc = treg_doc()
    assert doc["cell_types"]["treg"].get("rules", "generic") == "generic"
    assert "plugins" not in doc


@pytest.mark.parametrize("il10", [0.0, 0.5, 1.0, 3.0])
def test_il10_scales_cd8_killing_by_the_hill_factor(il10):
    doc = treg_doc()
    without = copy.deepcopy(doc)
    del without["cell_types"]["cd8_t_cell"]["behavior_rules"]
    rates = {}
    for name, d in (("with", doc), ("without", without)):
        m = build(d)
        m.micro.set_field("IL10", il10)
        m.phenotype_step(initial=True)
        rates[name], sampled = cd8_kill_rates(m)
        assert np.allclose(sampled, il10)
    assert np.all(rates["without"] > 0)
    factor = 1.0 - il10**2 / (1.0 + il10**2)
    assert rates["with"] == pytest.approx(rates["without"] * factor, rel=1e-9)


def test_secreted_il10_lowers_killing_during_a_run():
    doc = treg_doc()
    m = build(doc)
    for _ in range(600):  # one hour of mechanics steps: Tregs build up IL-10
        m.step()
    rates, il10 = cd8_kill_rates(m)
    assert il10.max() > 0.05
    without = copy.deepcopy(doc)
    del without["cell_types"]["cd8_t_cell"]["behavior_rules"]
    ref = build(without)
    for _ in range(600):
        ref.step()
    # the same run without the rule: its CD8 T cells kill faster on average
    ref_rates, _ = cd8_kill_rates(ref)
    assert rates.mean() < ref_rates.mean()
