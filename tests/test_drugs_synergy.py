"""Known-answer tests for the synergy metrics (Bliss, HSA, Loewe, ZIP) and the 4PL fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tme_sim.screening.synergy import METHODS, Curve, bliss, fit_4pl, hsa, loewe, loewe_reference, synergy, zip_

D1 = np.r_[0.0, np.geomspace(1.0, 1000.0, 9)]
D2 = np.r_[0.0, np.geomspace(0.1, 100.0, 9)]
G1, G2 = np.meshgrid(D1, D2, indexing="ij")


def hillc(x, m, h, top=1.0):
    x = np.asarray(x, dtype=float)
    return top * x**h / (x**h + m**h)


def independent():
    e1, e2 = hillc(G1, 30.0, 1.5), hillc(G2, 3.0, 0.8)
    return e1 + e2 - e1 * e2


def test_bliss_independent_is_zero_and_hand_example():
    r = bliss(D1, D2, independent())
    assert np.abs(r.delta).max() < 1e-15
    assert r.score == pytest.approx(0.0, abs=1e-15)
    e = np.array([[0.0, 0.4], [0.5, 0.8]])
    r = bliss([0, 1], [0, 1], e)
    assert r.reference[1, 1] == pytest.approx(0.7)
    assert r.score == pytest.approx(0.1)


def test_bliss_synergistic_and_antagonistic_pairs():
    e = independent()
    syn = e.copy()
    syn[1:, 1:] = np.minimum(1.0, syn[1:, 1:] + 0.1 * (1 - syn[1:, 1:]))
    assert bliss(D1, D2, syn).score > 0.005
    ant = e.copy()
    ant[1:, 1:] = np.maximum(e[1:, :1], e[:1, 1:])  # HSA-like surface is below Bliss
    assert bliss(D1, D2, ant).score < 0


def test_hsa_known_answers():
    e = np.array([[0.0, 0.5, 0.6], [0.3, 0.6, 0.7], [0.7, 0.7, 0.9]])
    r = hsa([0, 1, 2], [0, 1, 2], e)
    np.testing.assert_allclose(r.reference[1:, 1:], [[0.5, 0.6], [0.7, 0.7]])
    np.testing.assert_allclose(r.delta[1:, 1:], [[0.1, 0.1], [0.0, 0.2]])
    assert r.score == pytest.approx(0.1)
    # the combination equal to the better single agent scores 0
    ref = np.maximum(G1 / 2000, G2 / 200)
    assert hsa(D1, D2, ref).score == pytest.approx(0.0, abs=1e-15)


def test_fit_4pl_recovers_parameters():
    y = 0.1 + (0.9 - 0.1) * hillc(D1, 25.0, 2.0)
    c = fit_4pl(D1, y)
    assert (c.bottom, c.top, c.m, c.slope) == pytest.approx((0.1, 0.9, 25.0, 2.0), rel=1e-6, abs=1e-8)
    c = fit_4pl(D1, hillc(D1, 25.0, 2.0) * 0.8 + 0.2, bottom=0.2, top=1.0)
    assert (c.m, c.slope) == pytest.approx((25.0, 2.0), rel=1e-6)
    flat = fit_4pl(D1, np.full(D1.size, 0.3))
    assert flat.flat and float(flat(5.0)) == pytest.approx(0.3)


def test_loewe_reference_closed_form_for_hill_slope_one():
    # y solves d1/D1(y) + d2/D2(y) = 1 with D_i(y) = m_i y/(1-y)  =>  y = u/(1+u), u = d1/m1 + d2/m2
    c1, c2 = Curve(0.0, 1.0, 1.0, 1.0), Curve(0.0, 1.0, 2.0, 1.0)
    for d1, d2 in [(0.5, 0.5), (3.0, 0.1), (0.01, 8.0), (10.0, 10.0)]:
        u = d1 / 1.0 + d2 / 2.0
        assert loewe_reference(c1, c2, d1, d2) == pytest.approx(u / (1 + u), rel=1e-10)


def test_loewe_reference_solves_the_isobole_with_different_slopes():
    c1, c2 = Curve(0.0, 1.0, 10.0, 2.5), Curve(0.0, 0.9, 3.0, 0.7)
    for d1, d2 in [(1.0, 1.0), (20.0, 0.5), (0.3, 30.0)]:
        y = loewe_reference(c1, c2, d1, d2)
        lhs = sum(d / math.exp(c.log_inverse(y)) for c, d in ((c1, d1), (c2, d2)) if c.log_inverse(y) < math.inf)
        assert lhs == pytest.approx(1.0, rel=1e-8)


def test_loewe_partial_agent_cannot_reach_high_effects():
    c1, c2 = Curve(0.0, 1.0, 1.0, 1.0), Curve(0.0, 0.3, 1.0, 1.0)
    # drug 1 alone gives 0.8 > top of drug 2: drug 2 adds nothing under Loewe
    assert loewe_reference(c1, c2, 4.0, 100.0) == pytest.approx(0.8)


def test_loewe_sham_combination_is_additive():
    # a drug combined with itself (drug 2 = drug 1 at a 10x lower potency): exactly Loewe-additive
    sham = hillc(G1 + 10.0 * G2, 30.0, 1.5)
    r = loewe(D1, D2, sham)
    assert np.abs(r.delta).max() < 1e-6
    assert abs(r.score) < 1e-8
    # and not Bliss-independent: Bliss calls the sham combination synergistic (slope > 1)
    assert bliss(D1, D2, sham).score > 1e-3


def test_loewe_synergy_and_antagonism_signs():
    syn = hillc(G1 + 10.0 * G2 + 0.05 * G1 * 10.0 * G2, 30.0, 1.5)  # interaction term raises potency
    assert loewe(D1, D2, syn).score > 0.01
    ant = hillc(G1 + 10.0 * G2, 30.0, 1.5) * 0.9 + 0.1 * np.maximum(hillc(G1, 30.0, 1.5), hillc(10.0 * G2, 30.0, 1.5))
    assert loewe(D1, D2, ant).score < 0


def test_zip_independent_is_zero_and_synergy_positive():
    r = zip_(D1, D2, independent())
    assert np.abs(r.delta).max() < 1e-6
    assert np.all(r.delta[0, :] == 0) and np.all(r.delta[:, 0] == 0)
    # potency of drug 1 doubles whenever drug 2 is present: positive ZIP delta
    e2 = hillc(G2, 3.0, 0.8)
    e1_shift = np.where(G2 > 0, hillc(G1, 15.0, 1.5), hillc(G1, 30.0, 1.5))
    syn = e1_shift + e2 - e1_shift * e2
    assert zip_(D1, D2, syn).score > 0.01
    e1_weak = np.where(G2 > 0, hillc(G1, 60.0, 1.5), hillc(G1, 30.0, 1.5))
    assert zip_(D1, D2, e1_weak + e2 - e1_weak * e2).score < -0.01


def test_zip_percent_scale():
    r_frac = zip_(D1, D2, independent())
    r_pct = zip_(D1, D2, 100 * independent(), top=100.0)
    np.testing.assert_allclose(r_pct.reference, 100 * r_frac.reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_scores_do_not_depend_on_which_drug_is_the_row(method):
    rng = np.random.default_rng(3)
    e = np.clip(independent() + 0.02 * rng.standard_normal(G1.shape), 0, 1)
    e[0, 0] = 0.0
    a = synergy(D1, D2, e, method)
    b = synergy(D2, D1, e.T, method)
    assert a.score == pytest.approx(b.score, abs=2e-3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="start at 0"):
        bliss([1, 2], [0, 1], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="E must be"):
        bliss([0, 1], [0, 1], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        hsa([0, 1], [0, 1], np.array([[0, np.nan], [0, 0]]))
    with pytest.raises(ValueError, match="unknown synergy method"):
        synergy([0, 1], [0, 1], np.zeros((2, 2)), "chou")


def test_bliss_percent_scale():
    a = bliss(D1, D2, independent())
    b = bliss(D1, D2, 100 * independent(), top=100.0)
    np.testing.assert_allclose(b.reference, 100 * a.reference, atol=1e-12)
