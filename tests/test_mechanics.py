"""Mechanics kernels alone: potentials, walls, cell list versus brute force, serial = parallel."""

import numpy as np
import pytest

from tme_sim.mechanics import (
    CellList,
    _neighbor_lists_parallel,
    ab2_update,
    build_cell_list,
    direct_velocities,
    interaction_velocities,
    listed_velocities,
    neighbor_lists,
    reverse_lists,
)

DOMAIN = np.array([200.0, 200.0, 0.0])
REP = np.array([10.0])
ADH = np.array([0.4])
AREL = np.array([1.25])


def velocities(pos, radius, dim=2, domain=DOMAIN, parallel=None, dead=None):
    n = len(pos)
    cl = CellList(domain, dim, cutoff=2 * 1.25 * radius.max())
    vel = np.zeros((n, 3))
    interaction_velocities(
        pos,
        radius,
        np.zeros(n, np.int16),
        np.zeros(n, np.int8) if dead is None else dead,
        n,
        REP,
        ADH,
        AREL,
        *cl.neighbors(pos, n, radius, np.zeros(n, np.int16), AREL)[:2],
        domain,
        dim,
        vel,
        parallel=parallel,
    )
    return vel


def brute_force(pos, radius, dim=2):
    n = len(pos)
    vel = np.zeros((n, 3))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d_vec = pos[i] - pos[j]
            d = np.linalg.norm(d_vec)
            big_r = radius[i] + radius[j]
            ra = 1.25 * big_r
            if d >= ra:
                continue
            f = (1 - d / big_r) ** 2 * 10.0 if d < big_r else 0.0
            f -= (1 - d / ra) ** 2 * 0.4
            vel[i] += f * d_vec / d
    return vel


def test_overlapping_pair_repels_symmetrically_with_physicell_magnitude():
    pos = np.array([[100.0, 100.0, 0.0], [110.0, 100.0, 0.0]])
    r = np.array([8.0, 8.0])
    v = velocities(pos, r)
    expected = (1 - 10 / 16) ** 2 * 10 - (1 - 10 / 20) ** 2 * 0.4
    assert v[0, 0] == pytest.approx(-expected)
    assert v[1, 0] == pytest.approx(expected)
    assert v[:, 1:] == pytest.approx(0)


def test_adhesion_attracts_between_contact_and_max_adhesion_distance():
    pos = np.array([[100.0, 100.0, 0.0], [118.0, 100.0, 0.0]])  # R = 16 < d = 18 < 20
    v = velocities(pos, np.array([8.0, 8.0]))
    assert v[0, 0] > 0 and v[1, 0] < 0
    dead = np.array([0, 1], np.int8)
    assert velocities(pos, np.array([8.0, 8.0]), dead=dead) == pytest.approx(0)


def test_walls_push_cells_inwards():
    pos = np.array([[2.0, 100.0, 0.0], [198.0, 100.0, 0.0], [100.0, 1.0, 0.0]])
    v = velocities(pos, np.array([8.0, 8.0, 8.0]))
    assert v[0, 0] > 0 and v[1, 0] < 0 and v[2, 1] > 0


@pytest.mark.parametrize("dim", [2, 3])
def test_cell_list_matches_brute_force(dim):
    rng = np.random.default_rng(dim)
    n = 300
    domain = np.array([200.0, 200.0, 200.0 if dim == 3 else 0.0])
    pos = np.zeros((n, 3))
    pos[:, :dim] = 20 + rng.random((n, dim)) * 160
    r = 6 + 3 * rng.random(n)
    v = velocities(pos, r, dim, domain)
    assert v == pytest.approx(brute_force(pos, r, dim), rel=1e-12, abs=1e-12)


def test_serial_and_parallel_kernels_are_bit_identical():
    rng = np.random.default_rng(0)
    n = 2000
    pos = np.zeros((n, 3))
    pos[:, :2] = rng.random((n, 2)) * 200
    r = np.full(n, 8.0)
    assert np.array_equal(velocities(pos, r, parallel=False), velocities(pos, r, parallel=True))


def test_cell_list_counting_sort_is_complete_and_ordered():
    rng = np.random.default_rng(3)
    pos = np.zeros((500, 3))
    pos[:, :2] = rng.random((500, 2)) * 200
    nbins = np.array([10, 10, 1])
    start, order = build_cell_list(pos, 500, 20.0, nbins)
    assert sorted(order.tolist()) == list(range(500))
    for b in range(100):
        members = order[start[b] : start[b + 1]]
        assert np.all(np.diff(members) > 0)
        bx = (pos[members, 0] // 20).astype(int)
        by = (pos[members, 1] // 20).astype(int)
        assert np.all(by * 10 + bx == b)


def test_verlet_skin_rebuilds_only_after_enough_motion():
    pos = np.zeros((10, 3))
    pos[:, 0] = np.linspace(10, 190, 10)
    pos[:, 1] = 100
    cl = CellList(DOMAIN, 2, cutoff=20.0, skin=4.0)
    assert cl.ensure(pos, 10)
    cl.note_displacement(1.0)
    assert not cl.ensure(pos, 10)
    cl.note_displacement(1.5)
    assert cl.ensure(pos, 10)
    assert cl.ensure(pos, 9)  # the population changed


def test_ab2_update_uses_both_velocities_and_clamps():
    pos = np.array([[10.0, 10.0, 0.0], [1.0, 50.0, 0.0]])
    vel = np.array([[2.0, 0.0, 0.0], [-100.0, 0.0, 0.0]])
    prev = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    moved = ab2_update(pos, vel, prev, 2, 0.1, DOMAIN, 2)
    assert pos[0, 0] == pytest.approx(10 + 0.1 * (1.5 * 2 - 0.5 * 1))
    assert pos[1, 0] == 0.0
    assert np.array_equal(prev, vel)
    assert moved == pytest.approx(1.0)  # the clamped cell moved 1 µm (to the wall)


@pytest.mark.parametrize("dim", [2, 3])
def test_verlet_lists_hold_every_interacting_pair_in_cell_list_order(dim):
    rng = np.random.default_rng(10 + dim)
    n = 600
    domain = np.array([200.0, 200.0, 200.0 if dim == 3 else 0.0])
    pos = np.zeros((n, 3))
    pos[:, :dim] = rng.random((n, dim)) * 200
    r = 5 + 4 * rng.random(n)
    ctype = rng.integers(0, 2, n).astype(np.int16)
    arel = np.array([1.25, 1.5])
    cl = CellList(domain, dim, cutoff=2 * 1.5 * r.max())
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    reach = 0.5 * (arel[ctype][:, None] + arel[ctype][None]) * (r[:, None] + r[None])
    for _ in range(4):
        lists = cl.neighbors(pos, n, r, ctype, arel)
        nstart, nbr = lists.nstart, lists.nbr
        rank = np.empty(n, np.int64)
        rank[cl.order] = np.arange(n)
        for i in range(n):
            listed = nbr[nstart[i] : nstart[i + 1]]
            assert np.all(np.diff(rank[listed]) > 0)  # summation order = scan of the bins
            assert np.all(rank[listed] > rank[i])  # half lists: each pair in the row of the first in the cell list
            near = np.flatnonzero((d[i] < reach[i]) & (rank > rank[i]))
            assert set(near.tolist()) <= set(listed.tolist())
            # the transpose: every pair (p, i) listed by p once, by ascending p
            src = lists.reverse_row[lists.reverse_start[i] : lists.reverse_start[i + 1]]
            assert np.all(np.diff(src) > 0)
            assert np.all(rank[src] < rank[i])
            assert set(src.tolist()) == {p for p in range(n) if i in nbr[nstart[p] : nstart[p + 1]]}
            rev = reverse_lists(nstart, nbr, n)
            assert np.array_equal(rev.reverse_row[rev.reverse_start[i] : rev.reverse_start[i + 1]], src)
        # move every cell by just under the allowance and check again with the same lists
        step_len = 0.24 * cl.list_skin
        v = rng.normal(size=(n, 3))
        v[:, dim:] = 0
        pos += step_len * v / np.linalg.norm(v, axis=1, keepdims=True)
        cl.note_displacement(step_len)
        d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    builds = cl.list_builds
    r[3] *= 1.01  # a growing cell forces a new list
    cl.neighbors(pos, n, r, ctype, arel)
    assert cl.list_builds == builds + 1


def test_verlet_list_kernels_serial_and_parallel_are_identical():
    rng = np.random.default_rng(1)
    n = 3000
    pos = np.zeros((n, 3))
    pos[:, :2] = rng.random((n, 2)) * 200
    r = np.full(n, 4.0)
    ctype = np.zeros(n, np.int16)
    cl = CellList(DOMAIN, 2, cutoff=10.0)
    cl.ensure(pos, n)
    args = (pos, r, ctype, AREL, n, cl.start, cl.order, cl.nbins, cl.bin_size, 2, 2.0)
    s = neighbor_lists(*args, parallel=False, capacity=10)  # also exercises the buffer growth
    p = neighbor_lists(*args, parallel=True)
    assert np.array_equal(s[0], p[0]) and np.array_equal(s[1], p[1]) and s[1].size > 10 * n
    tight = _neighbor_lists_parallel(*args[:-1], np.full(1, 1.0), 10, 8)  # margin skin/2; 8 chunks, all overflow
    assert np.array_equal(s[0], tight[0]) and np.array_equal(s[1], tight[1])


def test_cached_pair_constants_follow_radius_and_death_changes_bit_for_bit():
    rng = np.random.default_rng(5)
    n = 400
    pos = np.zeros((n, 3))
    pos[:, :2] = rng.random((n, 2)) * 200
    r = 5 + 3 * rng.random(n)
    ctype = rng.integers(0, 2, n).astype(np.int16)
    dead = np.zeros(n, np.int8)
    rep, adh, arel = np.array([10.0, 5.0]), np.array([0.4, 0.8]), np.array([1.25, 1.5])
    cl = CellList(DOMAIN, 2, cutoff=2 * 1.5 * 8.0)
    for change in ("none", "shrink", "die"):
        if change == "shrink":
            r[::7] *= 0.8  # shrinking keeps the lists (only growth forces a rebuild)
        elif change == "die":
            dead[::5] = 1
        builds = cl.list_builds
        lists = cl.neighbors(pos, n, r, ctype, arel)
        coef = cl.coefficients(r, ctype, dead, n, rep, adh, arel)
        cached = np.zeros((n, 3))
        listed_velocities(pos, r, ctype, n, rep, coef, reverse_lists(lists.nstart, lists.nbr, n), DOMAIN, 2, cached)
        fresh = np.zeros((n, 3))
        interaction_velocities(pos, r, ctype, dead, n, rep, adh, arel, lists.nstart, lists.nbr, DOMAIN, 2, fresh)
        assert np.array_equal(cached, fresh), change
        for par in (False, True):  # the model's path: constants computed in the force loop
            direct = np.zeros((n, 3))
            direct_velocities(pos, r, ctype, dead, n, rep, adh, arel, lists, DOMAIN, 2, direct, parallel=par)
            assert np.array_equal(direct, fresh), (change, par)
        if change != "none":
            assert cl.list_builds == builds  # the constants were refreshed without a new list


@pytest.mark.parametrize("dim", [2, 3])
def test_motile_margins_keep_lists_exact_with_fewer_rebuilds(dim):
    """Small motile cells get wider Verlet margins (list_margins): they may move up to their own
    margin, other cells up to skin/2, and every interacting pair is still listed."""
    from tme_sim.mechanics import list_margins

    rng = np.random.default_rng(7)
    n = 500
    domain = np.array([200.0, 200.0, 200.0 if dim == 3 else 0.0])
    pos = np.zeros((n, 3))
    pos[:, :dim] = rng.random((n, dim)) * 200
    ctype = (rng.random(n) < 0.3).astype(np.int16)  # type 1: small and motile
    r = np.where(ctype == 1, 4.0, 8.0 + rng.random(n))
    arel = np.array([1.25, 1.25])
    cl = CellList(domain, dim, cutoff=2 * 1.25 * 9.0)
    cl.motile_types = np.array([False, True])
    lists = cl.neighbors(pos, n, r, ctype, arel)
    m = cl._margins
    assert m[0] == pytest.approx(0.5 * cl.skin)
    assert m[1] == pytest.approx(0.5 * cl.skin + 1.25 * (9.0 - 4.0))  # the reach small cells leave unused
    assert np.allclose(m, list_margins(cl.skin, cl.cutoff, arel, r, ctype, n, cl.motile_types))
    builds = cl.list_builds
    for _ in range(3):  # each cell moves a total of just under its margin, in three steps
        v = rng.normal(size=(n, 3))
        v[:, dim:] = 0
        pos += (0.33 * m[ctype])[:, None] * v / np.linalg.norm(v, axis=1, keepdims=True)
        lists = cl.neighbors(pos, n, r, ctype, arel)
        assert cl.list_builds == builds  # no rebuild: nobody left its margin
        d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
        reach = 1.25 * (r[:, None] + r[None])
        listed = {(min(i, j), max(i, j)) for i in range(n) for j in lists.nbr[lists.nstart[i] : lists.nstart[i + 1]]}
        near = {(i, j) for i, j in zip(*np.nonzero((d < reach) & np.triu(np.ones((n, n), bool), 1)), strict=True)}
        assert near <= listed
    k = np.flatnonzero(ctype == 1)[0]
    pos[k] = cl._x_built[k] + [1.01 * m[1], 0.0, 0.0]  # now one motile cell is just past its margin
    cl.neighbors(pos, n, r, ctype, arel)
    assert cl.list_builds == builds + 1


def test_model_force_loop_equals_the_per_pair_coefficient_path_bit_for_bit_in_3d():
    """The model's force loop (pair constants from the radii, types and death states in the loop,
    branch-free, each force stored once for the partner's pass) gives the bits of the per-pair
    coefficient path, serial and threaded, with several types, dead cells (no adhesion), cells
    pressed against the walls, and a reused work buffer holding stale values."""
    rng = np.random.default_rng(11)
    n = 4000
    domain = np.array([150.0, 150.0, 150.0])
    pos = rng.random((n, 3)) * domain
    pos[:50, 0] = rng.random(50) * 2.0  # against the x = 0 wall
    ctype = rng.integers(0, 3, n).astype(np.int16)
    r = np.array([8.4, 4.0, 6.0])[ctype] * (1 + 0.1 * rng.random(n))
    dead = (rng.random(n) < 0.1).astype(np.int8)
    rep, adh, arel = np.array([10.0, 5.0, 8.0]), np.array([0.4, 0.0, 0.8]), np.array([1.25, 1.5, 1.25])
    cl = CellList(domain, 3, cutoff=2 * 1.5 * r.max())
    lists = cl.neighbors(pos, n, r, ctype, arel)
    assert lists.reverse_row.size == lists.reverse_pair.size == lists.nbr.size
    ref = np.zeros((n, 3))
    interaction_velocities(pos, r, ctype, dead, n, rep, adh, arel, lists.nstart, lists.nbr, domain, 3, ref)
    assert np.count_nonzero(ref) > n  # forces act
    for par in (False, True):
        out = np.full((n, 3), np.nan)
        direct_velocities(pos, r, ctype, dead, n, rep, adh, arel, lists, domain, 3, out, parallel=par)
        assert np.array_equal(out, ref), par
        stale = np.full(lists.nbr.size + 100, 1e30)  # every pair's entry is written before it is read
        out = np.full((n, 3), np.nan)
        direct_velocities(pos, r, ctype, dead, n, rep, adh, arel, lists, domain, 3, out, parallel=par, work=stale)
        assert np.array_equal(out, ref), par


def test_threaded_reverse_lists_and_staleness_test_match_the_serial_ones():
    from tme_sim.mechanics import _lists_stale, _lists_stale_parallel, _reverse_lists_parallel

    rng = np.random.default_rng(12)
    n = 3000
    domain = np.array([120.0, 120.0, 120.0])
    pos = rng.random((n, 3)) * domain
    r = np.full(n, 5.0)
    ctype = np.zeros(n, np.int16)
    cl = CellList(domain, 3, cutoff=12.5)
    lists = cl.neighbors(pos, n, r, ctype, AREL)
    serial = reverse_lists(lists.nstart, lists.nbr, n)
    for j in (0, 17, n - 1):  # each reverse row: the rows that list j, ascending, and their pairs
        rows = serial.reverse_row[serial.reverse_start[j] : serial.reverse_start[j + 1]]
        pairs = serial.reverse_pair[serial.reverse_start[j] : serial.reverse_start[j + 1]]
        assert np.all(np.diff(rows) > 0) and np.all(lists.nbr[pairs] == j)
        assert all(lists.nstart[i] <= k < lists.nstart[i + 1] for i, k in zip(rows, pairs, strict=True))
    for parts in (1, 3, 8):  # any split of the cells fills the same reverse rows
        got = _reverse_lists_parallel(lists.nstart, lists.nbr, n, parts)
        assert all(np.array_equal(a, b) for a, b in zip(got, serial[2:], strict=True))
    x0, r0, margins = pos.copy(), r.copy(), np.array([1.0])
    for moved in (0.99, 1.01):
        p = x0.copy()
        p[1234, 1] += moved
        want = moved > 1.0
        assert _lists_stale(p, r, ctype, x0, r0, margins, n) == want
        assert _lists_stale_parallel(p, r, ctype, x0, r0, margins, n) == want
