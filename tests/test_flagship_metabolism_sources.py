"""The flagship's host-tissue respiration, tumor glucose uptake and Pasteur gain follow from their sources
(issue #20).

The values in ``tumor_immune.toml`` are derived, not chosen (docs/flagship.md, "Host-tissue
respiration and the Warburg ratio"); these tests recompute them from the cited figures and the
scenario's own O2 uptake, cell volume and reference O2, so that changing one (say, the tumor's O2
uptake) without the values derived from it fails here.
"""

from __future__ import annotations

import math

import pytest

from tme_sim.config import load_scenario

O2_SOLUBILITY_UM_PER_MMHG = 1.34  # µM/mmHg (3.0e-5 m³ O2 per m³ per mmHg), as tumor_immune.toml
BODY_O2_MOL_PER_S = 2.5e-4  # human whole-body O2 use (Wagner, Venkataraman & Buettner 2011)
BODY_VOLUME_L = 70.0
GLYCOLYTIC_ATP_SHARE = 0.17  # mean over 31 cancer lines/tumors (Zu & Guppy 2004)
ATP_PER_O2 = 5.0  # P/O 2.5 (Hinkle 2005)
REFERENCE_O2_MMHG = 38.0  # o2_uptake_reference, the metabolism default
PLASMA_GLUCOSE_MM = 5.0


@pytest.fixture(scope="module")
def flagship():
    return load_scenario("tumor_immune")


def _tumor_volume_um3(sc) -> float:
    return 4.0 / 3.0 * math.pi * sc.cell_types["tumor"].volume.radius ** 3


def test_host_tissue_decay_is_the_body_mean_respiration(flagship):
    per_s_mmhg = BODY_O2_MOL_PER_S / BODY_VOLUME_L * 1e6 / O2_SOLUBILITY_UM_PER_MMHG  # mmHg/s
    expected = per_s_mmhg * 60.0 / REFERENCE_O2_MMHG  # 1/min, linear at the reference O2
    assert flagship.substrates["oxygen"].decay == pytest.approx(expected, rel=0.02)


def test_tumor_glucose_uptake_follows_the_o2_rate_by_the_warburg_ratio(flagship):
    tumor = flagship.cell_types["tumor"]
    vol_l = _tumor_volume_um3(flagship) * 1e-15
    # O2 use per cell at the reference O2 (Michaelis–Menten scale 1 there), mol/min
    q_o2 = tumor.secretion["oxygen"].uptake_rate * REFERENCE_O2_MMHG * O2_SOLUBILITY_UM_PER_MMHG * 1e-6 * vol_l
    lactate_per_o2 = GLYCOLYTIC_ATP_SHARE / (1.0 - GLYCOLYTIC_ATP_SHARE) * ATP_PER_O2  # 1 ATP per lactate
    glucose_per_o2 = lactate_per_o2 / 2.0 + 1.0 / 6.0  # to lactate + oxidized (respiration all on glucose)
    uptake = glucose_per_o2 * q_o2 / (PLASMA_GLUCOSE_MM * 1e-3 * vol_l)  # 1/min
    assert tumor.secretion["glucose"].uptake_rate == pytest.approx(uptake, rel=0.03)
    fraction = (lactate_per_o2 / 2.0) / glucose_per_o2
    assert tumor.params["glycolytic_fraction"] == pytest.approx(fraction, abs=0.01)
    # 191 fmol/cell/h: inside the 100-1000 fmol/cell/h of cancer lines (Jain et al. 2012)
    fmol_per_h = glucose_per_o2 * q_o2 * 60.0 * 1e15
    assert 100.0 < fmol_per_h < 1000.0


def test_pasteur_factor_is_full_atp_compensation(flagship):
    """Anoxic glucose uptake keeps the normoxic ATP supply by glycolysis alone (2 ATP per glucose)."""
    tumor = flagship.cell_types["tumor"]
    lactate_per_o2 = GLYCOLYTIC_ATP_SHARE / (1.0 - GLYCOLYTIC_ATP_SHARE) * ATP_PER_O2
    glucose_per_o2 = lactate_per_o2 / 2.0 + 1.0 / 6.0  # normoxic, as the uptake test above
    atp_per_o2 = ATP_PER_O2 + lactate_per_o2  # oxidative + glycolytic (1 ATP per lactate)
    anoxic_glucose_per_o2 = atp_per_o2 / 2.0
    assert tumor.params["pasteur_factor"] == pytest.approx(anoxic_glucose_per_o2 / glucose_per_o2, rel=0.01)
    # all of it to lactate when hypoxic: the glycolytic fraction reaches 1 at h = 1 (metabolism.py)
    assert tumor.params["glycolytic_fraction"] < 1.0


@pytest.mark.parametrize("name", ["drug_combo", "tumor_immune_3d_large", "liver_hcc"])
def test_derived_scenarios_that_keep_the_earlier_values(name):
    sc = load_scenario(name)
    assert sc.substrates["oxygen"].decay == pytest.approx(0.1)
    assert sc.cell_types["tumor"].secretion["glucose"].uptake_rate == pytest.approx(0.5)
    assert sc.cell_types["tumor"].params["pasteur_factor"] == pytest.approx(3.0)
