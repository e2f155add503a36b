"""Final-state histograms on the state tables (``BooleanNetwork.final_state_counts``, ``statehist``)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_boolean_engine import serial_and_two_threads
from tme_sim.intracellular.boolean import BooleanNetwork, statehist
from tme_sim.intracellular.boolean.statetable import all_states

CUSTOM = """
Node Y { logic = !Y; }
Node Z { logic = Y AND NOT Z; }
Node X { logic = Y; rate_up = @logic ? 1 : 0; rate_down = Z ? 1 : 0; }
"""
# Y on with probability 1/2, Z with 0.3 (one-node joint istate), X on
ISTATES = "[Y].istate = 0.5 [1], 0.5 [0]; [Z].istate = 0.3 [1], 0.7 [0]; X.istate = 1;"

# a 3-node cycle with an escape (MaBoSS's Four_cycle shape) and a 5-node mix of rates
CYCLE = """
Node T { rate_up = 0; rate_down = (!A & !B) ? 0.3 : 0; }
Node A { rate_up = (T & !B) ? 2 : 0; rate_down = B ? 1.5 : 0; }
Node B { rate_up = A ? 2 : 0; rate_down = A ? 0 : 1.5; }
"""


def _p(codes: np.ndarray, counts: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros(2**m)
    out[codes.astype(np.int64)] = counts
    return out / counts.sum()


def _p_rows(s: np.ndarray) -> np.ndarray:
    w = (s.astype(np.int64) << np.arange(s.shape[1])[None, :]).sum(axis=1)
    return np.bincount(w, minlength=2 ** s.shape[1]) / len(s)


def test_neg_log_is_within_one_ulp_of_numpy():
    rng = np.random.default_rng(0)
    y = np.concatenate(
        [
            rng.random(200_000),
            np.arange(1, 20_000) / 2.0**53,  # the smallest values the kernel passes
            1.0 - np.arange(0, 20_000) / 2.0**53,  # near 1 (the log's cancellation region)
            np.array([1.0, 0.5, np.sqrt(0.5), np.nextafter(np.sqrt(0.5), 1.0), 2.0**-53]),
        ]
    )
    y = y[y > 0]
    got = statehist.neg_log_array(y)
    want = -np.log(y)
    ulp = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), np.finfo(float).tiny))
    assert ulp.max() <= 1.0, ulp.max()
    assert got[y == 1.0].max() == 0.0


def test_block_exponentials_are_standard_exponential():
    x = statehist.exponential_block(7, 400_000)
    assert x.min() > 0 and np.isfinite(x).all()
    assert abs(x.mean() - 1.0) < 0.006 and abs(x.var() - 1.0) < 0.02  # 4 standard errors
    # bins of equal probability: chi-square with 19 degrees of freedom (p ~ 1e-6 at 60)
    edges = -np.log(1.0 - np.arange(1, 20) / 20)
    counts = np.bincount(np.searchsorted(edges, x), minlength=20)
    expect = len(x) / 20
    assert ((counts - expect) ** 2 / expect).sum() < 60
    # a different seed gives different variates
    assert not np.array_equal(x[:10], statehist.exponential_block(8, 10))


@pytest.mark.parametrize(
    ("bnd", "cfg", "duration"),
    [(CUSTOM, ISTATES, 1.5), (CYCLE, None, 3.0), (CUSTOM, "X.istate = 0; discrete_time = 1; time_tick = 0.5;", 4.0)],
    ids=["custom", "cycle", "discrete"],
)
def test_histogram_matches_sample_in_distribution(bnd, cfg, duration):
    # 2e5 trajectories each side: sd of a difference <= sqrt(2 * 0.25 / 2e5) = 0.0016, so
    # |dp| <= 0.008 is 5 sd (a correct engine fails with p < 1e-5 per state; seeds fixed)
    net = BooleanNetwork.from_text(bnd, cfg, name="h")
    assert net._states_apply(1)
    n = 200_000
    codes, counts, ev = net.final_state_counts(n, duration, np.random.default_rng(1))
    assert codes.dtype == np.uint64 and counts.dtype == np.int64 and counts.sum() == n
    assert (np.diff(codes.astype(np.int64)) > 0).all() and (counts > 0).all()
    s, ev_s = net.sample(n, duration, np.random.default_rng(2))
    np.testing.assert_allclose(_p(codes, counts, net.n_nodes), _p_rows(s), atol=0.008)
    assert abs(ev / n - ev_s.mean()) < 0.02 * max(ev_s.mean(), 1.0)


def test_knockout_and_knockin_match_sample():
    net = BooleanNetwork.from_text(CUSTOM, ISTATES, name="ko")
    n = 200_000
    for kw in ({"knockout": net.node_mask(["Z"])}, {"knockin": net.node_mask(["Z"])}):
        codes, counts, _ = net.final_state_counts(n, 1.5, np.random.default_rng(3), **kw)
        s, _ = net.sample(n, 1.5, np.random.default_rng(4), **kw)
        p = _p(codes, counts, 3)
        np.testing.assert_allclose(p, _p_rows(s), atol=0.008)
        z_on = (codes.astype(np.int64) >> 1) & 1
        assert (z_on == ("knockin" in kw)).all()  # Z held off / on in every final state
    wild = _p(*net.final_state_counts(n, 1.5, np.random.default_rng(3))[:2], 3)
    assert np.abs(wild - p).max() > 0.1  # the mutation changes the outcome


def test_histogram_is_seeded_and_thread_and_chunk_independent():
    net = BooleanNetwork.from_text(CYCLE, name="cyc")
    n = 3 * statehist.CHUNK + 17  # several chunks, the last one partial
    seq, par = serial_and_two_threads(
        lambda parallel: net.final_state_counts(n, 3.0, np.random.default_rng(9), parallel=parallel)
    )
    np.testing.assert_array_equal(seq[0], par[0])
    np.testing.assert_array_equal(seq[1], par[1])
    assert seq[2] == par[2]
    other = net.final_state_counts(n, 3.0, np.random.default_rng(10), parallel=False)
    assert not (np.array_equal(other[0], seq[0]) and np.array_equal(other[1], seq[1]))
    # zero cells and zero duration: nothing, and the start states alone
    codes, counts, ev = net.final_state_counts(0, 3.0, np.random.default_rng(0))
    assert codes.size == 0 and counts.size == 0 and ev == 0
    codes, counts, ev = net.final_state_counts(1000, 0.0, np.random.default_rng(0))
    assert ev == 0 and counts.sum() == 1000


def test_variables_and_istates_edited_in_place_are_seen():
    net = BooleanNetwork.from_text("Node A { rate_up = $k; rate_down = 0; }", "$k = 0; A.istate = 0;", name="v")
    codes, _, ev = net.final_state_counts(500, 5.0, np.random.default_rng(0))
    assert codes.tolist() == [0] and ev == 0
    net.variables["k"] = 100.0
    codes, _, ev = net.final_state_counts(500, 5.0, np.random.default_rng(0))
    assert codes.tolist() == [1] and ev == 500
    net.variables["k"] = 0.0
    net.istate_prob[:] = 1.0
    codes, _, _ = net.final_state_counts(500, 5.0, np.random.default_rng(0))
    assert codes.tolist() == [1]


def test_bad_rate_reached_is_an_error_and_bad_arguments_are_refused():
    net = BooleanNetwork.from_text(
        "Node A { rate_up = 1; rate_down = 0; }\nNode B { rate_up = A ? $k : 0; rate_down = 0; }",
        "$k = -1; A.istate = 0; B.istate = 0;",
        name="neg",
    )
    with pytest.raises(Exception, match="negative or NaN transition rate of node B"):
        net.final_state_counts(50, 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="duration"):
        net.final_state_counts(5, -1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n must be"):
        net.final_state_counts(-1, 1.0, np.random.default_rng(0))


def test_other_kernels_count_the_rows_of_sample():
    # above the state tables' size (or with joint istates of several nodes) it is sample + counting
    nodes = "".join(f"Node N{i} {{ logic = N{(i + 1) % 13}; }}\n" for i in range(13))
    net = BooleanNetwork.from_text(nodes, name="ring13")
    assert not net._states_apply(1)
    codes, counts, ev = net.final_state_counts(2000, 1.0, np.random.default_rng(5))
    s, evs = net.sample(2000, 1.0, np.random.default_rng(5))
    w = (s.astype(np.uint64) << np.arange(13, dtype=np.uint64)[None, :]).sum(axis=1, dtype=np.uint64)
    want_codes, want_counts = np.unique(w, return_counts=True)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(counts, want_counts)
    assert ev == int(evs.sum())


def test_alias_rows_give_each_nodes_share_of_the_rate():
    # every state's pick probabilities, read back from the alias rows, equal rate_j / total
    bnd = CUSTOM + "Node W { rate_up = X ? 3 : 0.25; rate_down = Y ? 0.5 : 7; }\nNode V { logic = W & !V; }\n"
    net = BooleanNetwork.from_text(bnd, name="alias")
    table = net.state_table(np.zeros(net.n_nodes, dtype=bool))
    _count, dt, tab, logp, _bad = statehist.kernel_args(table)
    p = 1 << logp
    assert p >= table.count.max() and p // 2 < table.count.max()
    rates = net.flip_rates(all_states(net.n_nodes), engine="table")
    for w in range(2**net.n_nodes):
        total = rates[w].sum()
        if total == 0:
            assert dt[w] == np.inf
            continue
        assert dt[w] == pytest.approx(1.0 / total, rel=1e-15)
        got = np.zeros(net.n_nodes)
        for j in range(p):
            thr, a, b = (int(v) for v in tab[(w * p + j) * 3 : (w * p + j) * 3 + 3])
            got[(a ^ w).bit_length() - 1] += thr / 2.0**53 / p
            if thr < 2**53:
                got[(b ^ w).bit_length() - 1] += (1 - thr / 2.0**53) / p
        np.testing.assert_allclose(got, rates[w] / total, atol=1e-15)
