"""The struct-of-arrays cell store: ids, swap-remove, births, intracellular rows, reordering."""

import numpy as np
import pytest

from tme_sim.cells import CellStore


def make_store(n=10, types=None, k=(3, 2)):
    st = CellStore(n_substrates=2, type_names=["a", "b"], istate_sizes={0: k[0], 1: k[1]}, capacity=4)
    types = np.array(types if types is not None else [i % 2 for i in range(n)], dtype=np.int16)
    pos = np.zeros((n, 3))
    pos[:, 0] = np.arange(n)
    rows = {
        0: np.arange((types == 0).sum() * k[0], dtype=np.float32).reshape(-1, k[0]),
        1: -np.arange((types == 1).sum() * k[1], dtype=np.float32).reshape(-1, k[1]),
    }
    st.add(types, pos, np.full(n, 1000.0), 0.0, rows)
    return st


def test_add_grows_and_assigns_stable_ids():
    st = make_store(10)
    assert st.n == 10 and st.capacity >= 10
    assert np.array_equal(st.id[:10], np.arange(10))
    assert np.array_equal(st.slot_of_id[:10], np.arange(10))
    st.check_consistency()


def test_remove_swaps_tail_into_holes_and_keeps_every_column_with_its_cell():
    st = make_store(10)
    x_of_id = {int(i): float(x) for i, x in zip(st.id[:10], st.position[:10, 0], strict=True)}
    row_of_id = {int(st.id[s]): st.istate[st.type[s]][st.istate_row[s]].copy() for s in range(10)}
    st.remove(np.array([0, 3, 9, 4]))
    assert st.n == 6
    st.check_consistency()
    assert set(st.id[:6].tolist()) == {1, 2, 5, 6, 7, 8}
    for s in range(st.n):
        cid = int(st.id[s])
        assert st.position[s, 0] == x_of_id[cid]
        assert np.array_equal(st.istate[st.type[s]][st.istate_row[s]], row_of_id[cid])
    for gone in (0, 3, 9, 4):
        assert st.slot_of_id[gone] == -1


def test_remove_everything_and_add_again():
    st = make_store(7)
    st.remove(np.arange(7))
    assert st.n == 0
    st.check_consistency()
    st.add(np.array([1, 1], dtype=np.int16), np.zeros((2, 3)), np.ones(2), 5.0)
    assert st.n == 2 and list(st.id[:2]) == [7, 8]
    st.check_consistency()


@pytest.mark.parametrize("seed", range(5))
def test_random_add_remove_sequences_stay_consistent(seed):
    rng = np.random.default_rng(seed)
    st = make_store(20)
    alive = set(st.id[: st.n].tolist())
    for _ in range(30):
        if st.n and rng.random() < 0.5:
            k = int(rng.integers(1, max(2, st.n // 2)))
            slots = rng.choice(st.n, size=k, replace=False)
            alive -= set(st.id[slots].tolist())
            st.remove(slots)
        else:
            k = int(rng.integers(1, 6))
            types = rng.integers(0, 2, k).astype(np.int16)
            slots = st.add(types, rng.random((k, 3)), np.ones(k), 0.0)
            alive |= set(st.id[slots].tolist())
        st.check_consistency()
        assert set(st.id[: st.n].tolist()) == alive


def test_permute_keeps_ids_and_rows():
    st = make_store(9)
    before = {int(st.id[s]): (st.position[s].copy(), st.istate[st.type[s]][st.istate_row[s]].copy()) for s in range(9)}
    order = np.random.default_rng(1).permutation(9)
    st.permute(order)
    st.check_consistency()
    for s in range(9):
        p, row = before[int(st.id[s])]
        assert np.array_equal(st.position[s], p)
        assert np.array_equal(st.istate[st.type[s]][st.istate_row[s]], row)


def test_state_dict_round_trip():
    st = make_store(8)
    st.remove(np.array([2, 5]))
    d = st.state_dict()
    other = CellStore(n_substrates=2, type_names=["a", "b"], istate_sizes={0: 3, 1: 2})
    other.load_state_dict(d)
    other.check_consistency()
    for c in st.columns:
        assert np.array_equal(getattr(st, c.name)[: st.n], getattr(other, c.name)[: other.n])
    for t in (0, 1):
        assert np.array_equal(st.istate_of(t), other.istate_of(t))


def test_bytes_per_cell_is_small():
    st = CellStore(n_substrates=5, type_names=["a"], istate_sizes={0: 8}, capacity=10_000)
    assert st.nbytes_per_cell() < 1024
