"""Asynchronous (Gillespie) and synchronous kernels: semantics, mutations, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np
import pytest

from tme_sim.intracellular.boolean import BooleanNetwork, load_network
from tme_sim.intracellular.boolean.network import cell_seeds

NETWORKS = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "networks"

RING = """
Node A { logic = !C; }
Node B { logic = A; }
Node C { logic = B; }
"""

# X switches on when Y is on, and off only when Z is on (cIAP-like custom rates)
CHAIN = "Node A { rate_up = 1; rate_down = 0; }\nNode B { logic = A; }"

CUSTOM = """
Node Y { logic = !Y; }
Node Z { logic = Y AND NOT Z; }
Node X { logic = Y; rate_up = @logic ? 1 : 0; rate_down = Z ? 1 : 0; }
"""


def state(rows) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


@pytest.fixture(params=["states", "bits", "clauses", "generic", "table"])
def engine(request):
    """Every semantic test runs on every engine (state tables, bit-packed, clause-driven, generated
    generic, table-driven)."""
    return request.param


def make(engine: str, bnd: str, cfg: str | None = None, *, name: str) -> BooleanNetwork:
    net = BooleanNetwork.from_text(bnd, cfg, name=name)
    if engine == "states":  # "auto" on a small network: the state tables (frozen nodes shared by all cells)
        assert net._states_apply(1)
    else:
        net.engine = engine
        if engine == "bits":
            assert net.uses_bit_engine and not net._states_apply(1)
        if engine == "clauses":
            assert type(net.kernels()).__name__ == "ClauseKernels"
    return net


# --------------------------------------------------------------------------- synchronous


def test_synchronous_ring_matches_hand_trajectory(engine):
    net = make(engine, RING, name="ring")
    # x(t+1) = (!C, A, B), from 000: period-6 oscillation
    expected = [[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 0, 0]]
    s = state([[0, 0, 0]])
    for row in expected:
        net.step_synchronous(s, 1)
        assert s[0].tolist() == row
    s = state([[0, 0, 0], [1, 1, 1]])
    net.step_synchronous(s, 4)
    assert s.tolist() == [[0, 1, 1], [1, 0, 0]]


def test_synchronous_custom_rates_hand_trajectory(engine):
    net = make(engine, CUSTOM, name="custom")
    # order Y, Z, X. Y toggles every step; Z' = Y & !Z; X on if Y, off only if Z
    s = state([[0, 0, 0]])
    trace = []
    for _ in range(5):
        net.step_synchronous(s, 1)
        trace.append(s[0].tolist())
    assert trace == [
        [1, 0, 0],  # Y: 0->1; Z: Y=0 -> stays 0; X: logic Y=0 -> stays 0
        [0, 1, 1],  # Y->0; Z: Y&!Z -> 1; X: Y=1 -> on
        [1, 0, 0],  # Y->1; Z: Y=0 -> off; X on and Z=1 -> off
        [0, 1, 1],
        [1, 0, 0],
    ]


def test_synchronous_knockout_knockin(engine):
    net = make(engine, RING, name="ring")
    s = state([[0, 0, 1], [0, 0, 0]])
    net.step_synchronous(s, 5, knockout=net.node_mask(["C"]))
    assert s.tolist() == [[1, 1, 0], [1, 1, 0]]  # C forced 0 -> A on -> B on, fixed point
    s = state([[0, 0, 0], [0, 0, 0]])
    ki = np.zeros((2, 3), dtype=bool)
    ki[1, 0] = True  # knock-in A in the second cell only
    net.step_synchronous(s, 3, knockin=ki)
    assert s[1].tolist() == [1, 1, 1]
    assert s[0].tolist() == [1, 1, 1]  # free cell: 3 steps from 000 -> 111
    net.step_synchronous(s, 1, knockin=ki)
    assert s.tolist() == [[0, 1, 1], [1, 1, 1]]


# --------------------------------------------------------------------------- asynchronous


def test_single_transition_is_exponential(engine):
    net = make(engine, "Node A { rate_up = $k; rate_down = 0; }", "$k = 2;", name="exp1")
    rng = np.random.default_rng(1)
    s = np.zeros((40000, 1), dtype=np.uint8)
    ev = net.advance(s, 0.3, rng)
    assert s.mean() == pytest.approx(1 - math.exp(-0.6), abs=0.01)
    assert set(np.unique(ev)) <= {0, 1}


def test_two_state_relaxation_and_splitting_steps(engine):
    net = make(engine, "Node A { rate_up = 1; rate_down = 3; }", name="flip")
    rng = np.random.default_rng(2)
    want = 0.25 * (1 - math.exp(-4 * 0.2))
    s = np.zeros((40000, 1), dtype=np.uint8)
    net.advance(s, 0.2, rng)
    assert s.mean() == pytest.approx(want, abs=0.01)
    s = np.zeros((40000, 1), dtype=np.uint8)
    for _ in range(8):  # the process is memoryless: cutting the interval changes nothing
        net.advance(s, 0.025, rng)
    assert s.mean() == pytest.approx(want, abs=0.01)


def test_chain_gives_erlang_time(engine):
    net = make(engine, CHAIN, name="chain")
    rng = np.random.default_rng(3)
    s = np.zeros((40000, 2), dtype=np.uint8)
    net.advance(s, 1.5, rng)
    assert s[:, 1].mean() == pytest.approx(1 - math.exp(-1.5) * 2.5, abs=0.01)
    assert (s[:, 1] <= s[:, 0]).all()  # B can only follow A


def test_huge_rates_do_not_bias_later_transitions(engine):
    # MaBoSS encodes "instantaneous" as 1e100; after that transition the running total rate
    # must be recomputed exactly, not left as a cancellation residue
    net = make(engine, "Node A { rate_up = 1e100; rate_down = 0; }\nNode B { logic = A; rate_down = 0; }", name="huge")
    s = np.zeros((40000, 2), dtype=np.uint8)
    ev = net.advance(s, 1.0, np.random.default_rng(9))
    assert (s[:, 0] == 1).all()
    assert s[:, 1].mean() == pytest.approx(1 - math.exp(-1.0), abs=0.01)
    assert ev.max() == 2


def test_fixed_point_has_no_events(engine):
    net = make(engine, RING, name="ring")
    s = state([[1, 1, 0]])
    ko = net.node_mask(["C"])
    ev = net.advance(s, 100.0, np.random.default_rng(0), knockout=ko)
    assert ev.tolist() == [0] and s.tolist() == [[1, 1, 0]]


def test_async_knockout_and_knockin_per_cell(engine):
    net = make(engine, CHAIN, name="chain")
    n = 20000
    s = np.zeros((n, 2), dtype=np.uint8)
    s[: n // 2, 0] = 1  # these cells start with A on but have A knocked out
    ko = np.zeros((n, 2), dtype=bool)
    ko[: n // 2, 0] = True
    ki = np.zeros((n, 2), dtype=bool)
    ki[n // 2 :, 0] = True
    net.advance(s, 1.0, np.random.default_rng(4), knockout=ko, knockin=ki)
    assert (s[: n // 2] == 0).all()
    assert (s[n // 2 :, 0] == 1).all()
    assert s[n // 2 :, 1].mean() == pytest.approx(1 - math.exp(-1.0), abs=0.015)
    with pytest.raises(Exception, match="both knocked out and knocked in"):
        a = net.node_mask(["A"])
        net.advance(s, 1.0, np.random.default_rng(0), knockout=a, knockin=a)
    with pytest.raises(ValueError, match="mask must have shape"):
        net.advance(s, 1.0, np.random.default_rng(0), knockout=np.zeros((3, 2), dtype=bool))


def test_clamp_holds_current_values_per_cell(engine):
    net = make(engine, CHAIN, name="chain")
    n = 4000
    s = np.zeros((n, 2), dtype=np.uint8)
    s[: n // 2, 0] = 1
    net.advance(s, 3.0, np.random.default_rng(8), clamp=net.node_mask(["A"]))
    assert (s[: n // 2, 0] == 1).all() and (s[n // 2 :] == 0).all()
    assert s[: n // 2, 1].mean() == pytest.approx(1 - math.exp(-3.0), abs=0.02)
    s2 = np.zeros((2, 2), dtype=np.uint8)
    net.step_synchronous(s2, 3, clamp=net.node_mask(["A"]))
    assert s2.tolist() == [[0, 0], [0, 0]]


def test_bad_state_arguments(engine):
    net = make(engine, RING, name="ring")
    with pytest.raises(TypeError):
        net.advance(np.zeros((2, 3), dtype=np.float32), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="columns"):
        net.advance(np.zeros((2, 4), dtype=np.uint8), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="duration"):
        net.advance(np.zeros((2, 3), dtype=np.uint8), -1.0, np.random.default_rng(0))


def test_ziggurat_exponential_sampler():
    from scipy import stats

    from tme_sim.intracellular.boolean.bitengine import exponential_samples

    x = exponential_samples(np.uint64(2024), 2_000_000)
    assert x.min() > 0
    assert x.mean() == pytest.approx(1.0, abs=0.003)
    assert x.var() == pytest.approx(1.0, abs=0.01)
    # tail probabilities, including beyond the ziggurat's base strip (r = 7.697)
    for t in (0.05, 0.5, 2.0, 5.0, 7.0, 9.0):
        p = math.exp(-t)
        assert abs((x > t).mean() - p) < 5 * math.sqrt(p * (1 - p) / x.size) + 1e-7
    assert stats.kstest(x[:200_000], "expon").pvalue > 1e-4
    y = exponential_samples(np.uint64(2024), 1000)
    np.testing.assert_array_equal(y, x[:1000])  # a pure function of the seed


# --------------------------------------------------------------------------- determinism


@pytest.fixture(scope="module")
def tnf():
    return load_network(NETWORKS / "tnf_cellfate.bnd", NETWORKS / "tnf_cellfate.cfg")


def _tnf_run(net, n, seed, **kw):
    rng = np.random.default_rng(seed)
    s = net.initial_state(n, rng)
    s[:, net.index("TNF")] = 1
    for _ in range(3):
        net.advance(s, 6.0, rng, **kw)
    return s


def test_same_seed_same_states_and_different_seed_differs(tnf):
    a = _tnf_run(tnf, 3000, 7)
    b = _tnf_run(tnf, 3000, 7)
    c = _tnf_run(tnf, 3000, 8)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


@pytest.mark.parametrize("engine", ["bits", "generic"])
def test_results_independent_of_threads_and_kernel(tnf, engine):
    tnf = tnf.with_variables()
    tnf.engine = "auto" if engine == "bits" else "generic"
    assert tnf.uses_bit_engine == (engine == "bits")
    n = 3000  # > several chunks of 256 cells
    seq = _tnf_run(tnf, n, 11, parallel=False)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        par1 = _tnf_run(tnf, n, 11, parallel=True)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        par2 = _tnf_run(tnf, n, 11, parallel=True)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(seq, par1)
    np.testing.assert_array_equal(seq, par2)
    # a cell's trajectory does not depend on which other cells are simulated with it
    rng = np.random.default_rng(11)
    s = tnf.initial_state(n, rng)
    s[:, tnf.index("TNF")] = 1
    seeds_rng = np.random.default_rng(5)
    full = s.copy()
    tnf.advance(full, 6.0, seeds_rng)
    seeds = cell_seeds(np.random.default_rng(5), n)
    part = s[100:101].copy()
    if engine == "bits":
        none = np.zeros(1, dtype=np.uint64)
        ev = tnf.run_bits(part, 6.0, 0, seeds[100:101], none, none, none, parallel=False)
    else:
        err = np.zeros(1, dtype=np.int32)
        ev = np.zeros(1, dtype=np.int64)
        frozen = np.zeros((1, tnf.n_nodes), dtype=np.uint8)
        tnf.kernels().advance_seq(part, 6.0, seeds[100:101], frozen, tnf._variable_vector(), err, ev, 0.0)
    np.testing.assert_array_equal(part[0], full[100])
    assert ev[0] > 0


def test_synchronous_parallel_equals_sequential(tnf):
    rng = np.random.default_rng(0)
    s = tnf.initial_state(2000, rng)
    s[::2, tnf.index("TNF")] = 1
    a = s.copy()
    b = s.copy()
    tnf.step_synchronous(a, 7, parallel=False)
    tnf.step_synchronous(b, 7, parallel=True)
    np.testing.assert_array_equal(a, b)
    # TNF on, synchronous: hand-checked start of the cascade (step 1: TNFR and mROS switch on)
    c = tnf.initial_state(1, rng)
    c[0, tnf.index("TNF")] = 1
    tnf.step_synchronous(c, 1)
    on = {nm for nm in tnf.node_names if c[0, tnf.index(nm)]}
    assert on == {"TNF", "FADD", "ATP", "cIAP", "TNFR", "mROS"}
    tnf.step_synchronous(c, 1)
    on = {nm for nm in tnf.node_names if c[0, tnf.index(nm)]}
    assert on == {"TNF", "FADD", "ATP", "cIAP", "TNFR", "mROS", "DISC_TNF", "RIP1"}


# --------------------------------------------------------------------------- state tables and rate classes


def test_state_table_holds_every_states_flip_rates():
    bnd = (
        "Node A { rate_up = $k; rate_down = B ? 2 : 0; }\n"
        "Node B { logic = A AND NOT C; }\n"
        "Node C { rate_up = A ? 1e100 : 0; rate_down = 0.5; }\n"
    )
    net = BooleanNetwork.from_text(bnd, "$k = 3;", name="tab")
    from tme_sim.intracellular.boolean.statetable import all_states

    states = all_states(3)
    rates = net.flip_rates(states)
    frozen = np.array([False, False, True])
    table = net.state_table(frozen)
    assert net.state_table(frozen) is table  # cached per frozen mask and variables
    for w in range(8):
        r = np.where(frozen, 0.0, rates[w])
        pos = np.flatnonzero(r > 0)
        assert table.count[w] == len(pos)
        assert table.node[w, : len(pos)].tolist() == pos.tolist()
        np.testing.assert_allclose(table.cum[w, : len(pos)], np.cumsum(r[pos]))
        assert table.total[w] == pytest.approx(r.sum())
        # what the kernel reads: the next state of each candidate, and 63-bit thresholds between them
        assert table.nxt[w, : len(pos)].tolist() == [w ^ (1 << int(j)) for j in pos]
        cut = np.cumsum(r[pos])[:-1] / r.sum() * 2.0**63
        np.testing.assert_allclose(table.thr[w, : len(pos) - 1].astype(float), cut, rtol=1e-12)
        assert (table.thr[w, max(len(pos) - 1, 0) :] == np.uint64(2**63)).all()
    unfrozen = net.state_table(np.zeros(3, dtype=bool))
    w = 0b001  # A on, B and C off: B (rate 1) and C (1e100, not infinite) can flip, A cannot
    assert unfrozen.count[w] == 2 and unfrozen.node[w, :2].tolist() == [1, 2]
    assert unfrozen.total[w] == 1e100
    net.variables["k"] = -1.0  # a negative rate is an error when a cell is in such a state
    s = np.zeros((5, 3), dtype=np.uint8)
    with pytest.raises(Exception, match="negative or NaN transition rate of node A"):
        net.advance(s, 1.0, np.random.default_rng(0))
    net.variables["k"] = np.inf  # instantaneous: A flips at once in every cell
    s = np.zeros((5, 3), dtype=np.uint8)
    net.advance(s, 1e-9, np.random.default_rng(0))
    assert (s[:, 0] == 1).all()


def test_state_tables_match_bits_in_distribution_and_are_thread_independent():
    net = BooleanNetwork.from_text(CUSTOM, name="custom")
    bits = net.with_variables()
    bits.engine = "bits"
    n = 40000
    a = np.zeros((n, 3), dtype=np.uint8)
    b = np.zeros((n, 3), dtype=np.uint8)
    net.advance(a, 2.0, np.random.default_rng(1))
    bits.advance(b, 2.0, np.random.default_rng(2))
    np.testing.assert_allclose(a.mean(axis=0), b.mean(axis=0), atol=0.015)
    seq = np.zeros((3000, 3), dtype=np.uint8)
    par = seq.copy()
    net.advance(seq, 2.0, np.random.default_rng(3), parallel=False)
    net.advance(par, 2.0, np.random.default_rng(3), parallel=True)
    np.testing.assert_array_equal(seq, par)


def test_boolean_valued_rate_is_one_bit_term():
    # MaBoSS's rateTr model uses long Boolean expressions as rates; expanding each node would give
    # 2^k terms, past the bit engine's limit
    terms = " | ".join(f"(N{i} & !N{i + 1})" for i in range(20))
    nodes = "".join(f"Node N{i} {{ logic = N{(i + 1) % 21}; }}\n" for i in range(21))
    net = BooleanNetwork.from_text(nodes + f"Node X {{ rate_up = {terms}; rate_down = !({terms}); }}\n", name="big")
    net.engine = "bits"
    assert net.uses_bit_engine
    s = np.random.default_rng(0).integers(0, 2, (200, net.n_nodes)).astype(np.uint8)
    np.testing.assert_array_equal(net.flip_rates(s, engine="bits"), net.flip_rates(s, engine="table"))


def test_negative_rate_reached_by_a_transition_is_an_error(engine):
    net = make(
        engine,
        "Node A { rate_up = 1; rate_down = 0; }\nNode B { rate_up = A ? $k : 0; rate_down = 0; }",
        "$k = -1;",
        name="neg",
    )
    s = np.zeros((50, 2), dtype=np.uint8)
    with pytest.raises(Exception, match="negative or NaN transition rate of node B"):
        net.advance(s, 10.0, np.random.default_rng(0))


def test_clause_rates_equal_the_rate_programs_on_every_state():
    # XOR, nested negations, a Boolean conditional, a product of sums (its negation is the
    # smaller normal form), @logic in both rates, a variable leaf and a constant-zero branch
    bnd = (
        "Node A { logic = (B | C) & (D | E) & (!B | !E); rate_up = @logic ? $ka : 0; rate_down = @logic ? 0 : 2; }\n"
        "Node B { logic = A ^ (C & !D); }\n"
        "Node C { rate_up = A ? (B ? 3 : D) : 0; rate_down = !(A | !E) ? $ka * 2 : 0.5; }\n"
        "Node D { logic = !(!A & !(B ^ E)); }\n"
        "Node E { rate_up = B & C | D; rate_down = 0; }\n"
    )
    net = BooleanNetwork.from_text(bnd, "$ka = 1.5;", name="clauses")
    from tme_sim.intracellular.boolean.statetable import all_states

    s = all_states(5)
    np.testing.assert_array_equal(net.flip_rates(s, engine="clauses"), net.flip_rates(s, engine="table"))
    net.variables["ka"] = 0.25  # leaf values follow the variables
    np.testing.assert_array_equal(net.flip_rates(s, engine="clauses"), net.flip_rates(s, engine="table"))


def test_clause_kernels_reuse_start_rates_without_changing_results():
    # cells that start in the state the previous cell started in reuse its rates: a cell's result
    # must be the same as when it is simulated alone, and the same on any number of threads
    nodes = "".join(f"Node N{i} {{ logic = N{(i + 1) % 70} | !N{(i + 3) % 70}; }}\n" for i in range(70))
    net = BooleanNetwork.from_text(nodes, name="ring70")
    k = net.kernels()
    assert type(k).__name__ == "ClauseKernels"
    n = 600
    start = np.zeros((n, 70), dtype=np.uint8)
    start[::3, 5] = 1  # runs of equal start states, interrupted
    seeds = cell_seeds(np.random.default_rng(7), n)
    v = net._variable_vector()
    frozen = np.zeros((1, 70), dtype=np.uint8)
    runs = []
    for fn in (k.advance_seq, k.advance_par):
        s = start.copy()
        err = np.zeros(n, dtype=np.int32)
        ev = np.zeros(n, dtype=np.int64)
        fn(s, 2.0, seeds, frozen, v, err, ev, 0.0)
        runs.append((s, ev))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for i in (0, 1, 2, 299, 300, 599):
        s = start[i : i + 1].copy()
        err = np.zeros(1, dtype=np.int32)
        ev = np.zeros(1, dtype=np.int64)
        k.advance_seq(s, 2.0, seeds[i : i + 1], frozen, v, err, ev, 0.0)
        np.testing.assert_array_equal(s[0], runs[0][0][i])
        assert ev[0] == runs[0][1][i] > 0


@pytest.mark.parametrize("istates", ["Y.istate = 1; Z.istate = 0; X.istate = 1;", "Y.istate = 1; Z.istate = 0;"])
def test_initial_state_skips_draws_only_where_they_cannot_matter(istates):
    # all istates 0/1: the generator is advanced past the draws; same states and same generator
    # afterwards as drawing them (also after an odd 32-bit draw, which leaves a buffered half)
    net = BooleanNetwork.from_text(CUSTOM, istates, name="istate")
    for prime in (None, "uint32"):
        a, b = np.random.default_rng(4), np.random.default_rng(4)
        if prime:
            a.integers(0, 10, dtype=np.uint32)
            b.integers(0, 10, dtype=np.uint32)
        got = net.initial_state(333, a)
        want = (b.random((333, 3)) < net.istate_prob[None, :]).astype(np.uint8)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
        assert (
            a.integers(0, 2**32, size=5, dtype=np.uint32).tolist()
            == b.integers(0, 2**32, size=5, dtype=np.uint32).tolist()
        )
        assert a.random() == b.random()


# --------------------------------------------------------------------------- sample (MaBoSS's run)

# Y and Z start on with probability 1/2 and 0.3 (one-node joint istates), X on
ISTATES = "[Y].istate = 0.5 [1], 0.5 [0]; [Z].istate = 0.3 [1], 0.7 [0]; X.istate = 1;"


def _codes(s: np.ndarray) -> np.ndarray:
    """P(state) over the 2**m states of uint8 rows ``s`` (row w = bits of w)."""
    w = (s.astype(np.int64) << np.arange(s.shape[1])[None, :]).sum(axis=1)
    return np.bincount(w, minlength=2 ** s.shape[1]) / len(s)


def test_sample_start_states_follow_the_istates():
    # duration 0: the start states alone. 2e5 cells: |dp| <= 4.5 standard errors (<= 0.005)
    net = BooleanNetwork.from_text(CUSTOM, ISTATES, name="istate")
    n = 200_000
    s, ev = net.sample(n, 0.0, np.random.default_rng(1))
    assert s.dtype == np.uint8 and s.shape == (n, 3) and s.flags.c_contiguous and not ev.any()
    np.testing.assert_allclose(s.mean(axis=0), [0.5, 0.3, 1.0], atol=0.005)
    # independent nodes: P(Y, Z) factorises
    both = ((s[:, 0] == 1) & (s[:, 1] == 1)).mean()
    assert abs(both - 0.15) < 0.004
    # knock-in / knock-out override the istates
    s, _ = net.sample(1000, 0.0, np.random.default_rng(1), knockout=net.node_mask(["X"]), knockin=net.node_mask(["Y"]))
    assert (s[:, 2] == 0).all() and (s[:, 0] == 1).all()
    # probabilities set on the network directly (no joint istates): 1/2, 0.9 and 0
    net = BooleanNetwork.from_text(CUSTOM, name="plain")
    net.istate_prob[:] = [0.5, 0.9, 0.0]
    s, _ = net.sample(n, 0.0, np.random.default_rng(2))
    np.testing.assert_allclose(s.mean(axis=0), [0.5, 0.9, 0.0], atol=0.005)


def test_sample_matches_initial_state_then_advance_in_distribution():
    net = BooleanNetwork.from_text(CUSTOM, ISTATES, name="istate")
    assert net._states_apply(1) and net.joint_istates
    n = 100_000
    a, ea = net.sample(n, 1.5, np.random.default_rng(2))
    b = net.initial_state(n, np.random.default_rng(3))
    eb = net.advance(b, 1.5, np.random.default_rng(4))
    np.testing.assert_allclose(_codes(a), _codes(b), atol=0.01)
    assert abs(ea.mean() - eb.mean()) < 0.03 * eb.mean()
    # and so does a knock-out
    ko = net.node_mask(["Z"])
    a, _ = net.sample(n, 1.5, np.random.default_rng(5), knockout=ko)
    b = net.initial_state(n, np.random.default_rng(6))
    net.advance(b, 1.5, np.random.default_rng(7), knockout=ko)
    np.testing.assert_allclose(_codes(a), _codes(b), atol=0.01)
    assert not a[:, 1].any()


def serial_and_two_threads(call):
    """``call(parallel=False)`` and ``call(parallel=True)`` run on (up to) two numba threads."""
    seq = call(False)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        par = call(True)
    finally:
        numba.set_num_threads(old)
    return seq, par


def test_sample_is_thread_and_chunk_independent_and_seeded():
    net = BooleanNetwork.from_text(CUSTOM, ISTATES, name="istate")
    n = 3000  # several chunks of 256 cells
    seq, par = serial_and_two_threads(lambda parallel: net.sample(n, 2.0, np.random.default_rng(9), parallel=parallel))
    for x, y in zip(seq, par, strict=True):
        np.testing.assert_array_equal(x, y)
    # cell i's trajectory depends on the call's seed and i only: the first cells of a bigger call
    more = net.sample(2 * n, 2.0, np.random.default_rng(9), parallel=False)
    np.testing.assert_array_equal(more[0][:n], seq[0])
    other = net.sample(n, 2.0, np.random.default_rng(10), parallel=False)
    assert (other[0] != seq[0]).any()


def test_sample_on_other_kernels_draws_the_same_start_states(tnf):
    # up to 64 nodes on other kernels: the fused kernels' start states, then advance; the TNF
    # network (31 nodes, bit engine) at duration 0 gives exactly the istates' start states
    assert not tnf._states_apply(1) and tnf.uses_bit_engine
    n = 100_000
    s, ev = tnf.sample(n, 0.0, np.random.default_rng(12))
    assert not ev.any()
    np.testing.assert_allclose(s.mean(axis=0), tnf.istate_prob, atol=0.007)
    # and a run is initial_state + advance in distribution (output node marginals)
    a, _ = tnf.sample(20_000, 10.0, np.random.default_rng(13))
    b = tnf.initial_state(20_000, np.random.default_rng(14))
    tnf.advance(b, 10.0, np.random.default_rng(15))
    np.testing.assert_allclose(a.mean(axis=0), b.mean(axis=0), atol=0.02)
    # thread-independent: the multi-threaded start-state draws and kernels give the same cells
    seq = tnf.sample(3000, 5.0, np.random.default_rng(16), parallel=False)
    par = tnf.sample(3000, 5.0, np.random.default_rng(16), parallel=True)
    for x, y in zip(seq, par, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="duration"):
        tnf.sample(5, -1.0, np.random.default_rng(0))


def test_sample_with_joint_istates_is_initial_state_then_advance():
    net = BooleanNetwork.from_text(CUSTOM, "[Y, Z].istate = 0.5 [0, 1], 0.5 [1, 0];", name="joint")
    assert len(net.joint_istates[0].nodes) == 2
    s, ev = net.sample(500, 1.0, np.random.default_rng(12))
    rng = np.random.default_rng(12)
    want = net.initial_state(500, rng)
    wev = net.advance(want, 1.0, rng)
    np.testing.assert_array_equal(s, want)
    np.testing.assert_array_equal(ev, wev)
