"""PhysiCell's simple pressure (tme_sim/contacts.py) and the tumor rule's contact inhibition."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.test_immune_rules import model_of, pts, tiny_doc
from tme_sim.contacts import SIMPLE_PRESSURE_SCALE


def test_simple_pressure_of_overlapping_pairs_and_isolated_cells():
    # two tumor cells 12 µm apart (radii 8.41 µm each), one far away
    m = model_of(tiny_doc([pts("tumor", [(50.0, 50.0), (62.0, 50.0), (150.0, 150.0)])]))
    st = m.store
    r = st.radius[0] + st.radius[1]
    expected = (1.0 - 12.0 / r) ** 2 / SIMPLE_PRESSURE_SCALE
    p = m.neighbours.pressure(np.arange(3))
    np.testing.assert_allclose(p[:2], expected, rtol=1e-12)
    assert p[2] == 0.0


def test_twelve_neighbours_at_close_packing_give_pressure_one():
    """The normalisation: 12 neighbours at the close-packing distance d = R·√(π/(2√3)) → P = 1."""
    doc = tiny_doc([pts("tumor", [(100.0, 100.0)])])
    m = model_of(doc)
    R = 2 * m.store.radius[0]
    d = R * np.sqrt(np.pi / (2 * np.sqrt(3)))
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ring = [(100.0 + d * np.cos(a), 100.0 + d * np.sin(a)) for a in ang]
    m = model_of(tiny_doc([pts("tumor", [(100.0, 100.0), *ring])]))
    assert m.neighbours.pressure(np.array([0]))[0] == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("half_max, expect_arrest", [(0.0, False), (0.5, True)])
def test_pressure_lowers_tumor_cycle_entry(half_max, expect_arrest):
    # a tight cluster: the central cell is compressed by six neighbours 12 µm away
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    cluster = [(100.0, 100.0)] + [(100.0 + 12.0 * np.cos(a), 100.0 + 12.0 * np.sin(a)) for a in ang]
    doc = tiny_doc([pts("tumor", [*cluster, (30.0, 170.0)])])
    doc = copy.deepcopy(doc)
    doc["cell_types"]["tumor"]["params"] = {"pressure_half_max": half_max, "pressure_hill": 4.0}
    m = model_of(doc)
    m.phenotype_step(initial=True)
    centre, alone = m.store.cycle_rate[0], m.store.cycle_rate[7]
    assert alone > 0
    if expect_arrest:
        assert centre < 0.1 * alone
    else:
        assert centre == pytest.approx(alone, rel=0.05)


def test_threaded_pressure_kernel_matches_the_serial_one_bit_for_bit():
    from tme_sim.contacts import _simple_pressure_kernel, _simple_pressure_parallel
    from tme_sim.mechanics import CellList

    rng = np.random.default_rng(4)
    n = 5000
    domain = np.array([150.0, 150.0, 150.0])
    pos = rng.random((n, 3)) * domain
    r = 4.0 + 4.0 * rng.random(n)
    cl = CellList(domain, 3, cutoff=2 * 1.25 * 8.0)
    cl.ensure(pos, n)
    args = (np.arange(n), pos, r, cl.start, cl.order, cl.nbins, cl.bin_size, 3)
    serial = _simple_pressure_kernel(*args)
    assert np.count_nonzero(serial) > n // 2
    assert np.array_equal(_simple_pressure_parallel(*args), serial)
