"""Fast CPU inference paths (tme_sim.intracellular.neural.inference) against the torch modules they replace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from signaling_nets import random_signaling_net

torch = pytest.importorskip("torch")
numba = pytest.importorskip("numba")

from tme_sim.intracellular.neural.artifact import load_artifact  # noqa: E402
from tme_sim.intracellular.neural.inference import (  # noqa: E402
    GROUP,
    FastMLP,
    FastSignaling,
    signaling_solve,
    solve_columns_parallel,
    solve_columns_serial,
)
from tme_sim.intracellular.neural.networks import DenseMLP, SignalingNetwork, activation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT / "tme_sim" / "scenarios" / "models" / "macrophage_ligand_screen.pt"
TNF = ROOT / "tme_sim" / "scenarios" / "models" / "tnf_fate_surrogate.pt"


def small_net(seed: int = 1, n: int = 40, e: int = 120, **kw) -> SignalingNetwork:
    # inputs 0 and 1 share node 0 (index_add semantics: drives add up)
    net, rng = random_signaling_net(seed, n, e, [0, 0, 3], [5, 6, 7, 20], prescale=kw.pop("prescale", 0.8), **kw)
    with torch.no_grad():
        net.node_bias.add_(torch.as_tensor(rng.normal(0, 0.3, n), dtype=torch.float32))
        net.output_scale.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, 4), dtype=torch.float32))
        net.output_offset.copy_(torch.as_tensor(rng.normal(0, 0.2, 4), dtype=torch.float32))
    return net.eval()


def torch_out(net: torch.nn.Module, u: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(np.asarray(u, dtype=np.float32))).numpy()


# ---------------------------------------------------------------------------- dense MLP
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("head", ["linear", "softmax"])
def test_fast_mlp_matches_module(head, fused):
    torch.manual_seed(0)
    m = DenseMLP(7, 5, hidden=33, layers=3, dropout=0.2, head=head).eval()
    u = np.random.default_rng(0).normal(size=(2500, 7)).astype(np.float32)
    ref = torch_out(m, u)
    fm = FastMLP(m, chunk=256, fused=fused)
    assert fm.fused == fused
    for threads in (1, 2, 3):
        y = fm(u, threads=threads)
        assert y.dtype == np.float32 and y.shape == (2500, 5)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert fm(u[:0]).shape == (0, 5)
    with pytest.raises(ValueError):
        fm(u[:, :6])


def test_fast_mlp_keeps_torch_thread_setting():
    prev = torch.get_num_threads()
    m = DenseMLP(3, 2, hidden=8).eval()
    FastMLP(m, chunk=16, fused=False)(np.ones((100, 3), np.float32), threads=2)
    assert torch.get_num_threads() == prev


# ---------------------------------------------------------------------------- signaling kernel
def test_kernel_without_edges_is_the_activation():
    """No edges: x* = f(c) after one sweep, exactly torch's activation (float32)."""
    n = 6
    crow = np.zeros(n + 1, np.int64)
    col = np.zeros(0, np.int64)
    val = np.zeros(0, np.float32)
    bias = np.array([-2.0, -0.1, 0.0, 0.3, 0.5, 3.0], np.float32)
    nodes = np.array([4, 5, 4], np.int64)
    vals = np.array([[0.0, 0.0, 0.0], [1.0, -4.0, 0.5]], np.float32)
    out, it = signaling_solve(
        crow, col, val, bias, nodes, vals, np.arange(n), np.ones(n, np.float32), np.zeros(n, np.float32),
        leak=0.01, tol=1e-6, max_iter=10,
    )  # fmt: skip
    c = np.tile(bias, (2, 1))
    c[1, 4] += 1.5
    c[1, 5] += -4.0
    expect = activation(torch.from_numpy(c)).numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-6, atol=1e-7)
    assert it.tolist() == [1, 1]  # cold start f(c) is already the fixed point


def test_kernel_chain_fixed_point():
    """0 -> 1 -> 2 chain in the linear range: x0 = b0, x1 = w01 x0 + b1, x2 = w12 x1 + b2."""
    crow = np.array([0, 0, 1, 2], np.int64)  # row = target
    col = np.array([0, 1], np.int64)
    val = np.array([0.5, -0.8], np.float32)
    bias = np.array([0.4, 0.1, 0.45], np.float32)
    out, it = signaling_solve(
        crow, col, val, bias, np.zeros(0, np.int64), np.zeros((3, 0), np.float32), np.array([2, 1]),
        np.array([2.0, 1.0], np.float32), np.array([0.1, 0.0], np.float32), leak=0.01, tol=1e-7, max_iter=50,
    )  # fmt: skip
    x1 = 0.5 * 0.4 + 0.1
    x2 = -0.8 * x1 + 0.45
    np.testing.assert_allclose(out, np.tile([2 * x2 + 0.1, x1], (3, 1)), atol=1e-6)
    assert (it <= 4).all()


def _kernel_args(fs: FastSignaling, u: np.ndarray, slots: int):
    vals = fs.input_drive(u)
    out = np.empty((u.shape[0], fs.out_nodes.size), np.float32)
    iters = np.zeros(u.shape[0], np.int32)
    return (
        fs.crow, fs.col, fs.val, fs.bias, fs.input_nodes, vals, np.empty(0, np.float32), fs.out_nodes,
        fs.scale, fs.offset, np.float32(fs.leak), np.float32(fs.tol), fs.max_iter, slots, out, iters,
    )  # fmt: skip


def test_signaling_serial_parallel_threads_and_batching_bitwise_equal():
    net = small_net(tol=1e-6, max_iter=500)
    fs = FastSignaling(net)
    rng = np.random.default_rng(3)
    u = rng.uniform(0, 1.5, (2 * GROUP + 37, 3)).astype(np.float32)
    a = _kernel_args(fs, u, 16)
    solve_columns_serial(*a)
    ref, ref_it = a[-2].copy(), a[-1].copy()
    assert len(set(ref_it.tolist())) > 1  # cells converge after different numbers of sweeps
    prev = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            for slots in (1, 7, 64):
                b = _kernel_args(fs, u, slots)
                solve_columns_parallel(*b)
                assert np.array_equal(b[-2], ref) and np.array_equal(b[-1], ref_it)
    finally:
        numba.set_num_threads(prev)
    # a cell's result does not depend on the batch it is in
    for i in (0, 5, GROUP + 3):
        assert np.array_equal(fs(u[i : i + 1], parallel=False)[0], ref[i])
    assert np.array_equal(fs(u[::-1].copy())[::-1], ref)


def test_signaling_matches_torch_forward():
    net = small_net(tol=1e-6, max_iter=2000)
    u = np.random.default_rng(5).uniform(0, 2.0, (300, 3)).astype(np.float32)
    ref = torch_out(net, u)
    fs = FastSignaling(net)
    y = fs(u)
    np.testing.assert_allclose(y, ref, atol=1e-4)
    assert fs.info.cells == 300 and fs.info.not_converged == 0
    # warm start from the zero-input steady state: same fixed point
    np.testing.assert_allclose(FastSignaling(net, warm_start=True)(u), ref, atol=1e-4)
    # the model's own (looser) tol: within tol * (amplification) of the torch forward
    net.tol = 1e-4
    np.testing.assert_allclose(FastSignaling(net)(u), torch_out(net, u), atol=5e-3)


def test_signaling_input_map_and_extra_drive_match_torch():
    from tme_sim.intracellular.neural.networks import steady_outputs_with_drugs

    net = small_net(seed=2, tol=1e-6, max_iter=2000)
    rng = np.random.default_rng(7)
    net.set_input_map(rng.uniform(0, 1, (3, 3)))
    u = rng.uniform(0, 1.0, (50, 3)).astype(np.float32)
    fs = FastSignaling(net)
    np.testing.assert_allclose(fs(u), torch_out(net, u), atol=1e-4)
    nodes = np.array([7, 12, 7], np.int64)
    extra = rng.normal(0, 1.0, (50, 3)).astype(np.float32)
    drive = torch.zeros(net.n_nodes, 50).index_add_(0, torch.from_numpy(nodes), torch.from_numpy(extra).T)
    with torch.inference_mode():
        ref = steady_outputs_with_drugs(net, torch.from_numpy(u), drive).numpy()
    np.testing.assert_allclose(fs(u, extra_nodes=nodes, extra_drive=extra), ref, atol=1e-4)
    with pytest.raises(ValueError):
        fs(u, extra_nodes=nodes, extra_drive=extra[:, :2])
    with pytest.raises(ValueError):
        fs(u[:, :2])


# ---------------------------------------------------------------------------- shipped artifacts
@pytest.mark.skipif(not MACRO.is_file(), reason="macrophage artifact not shipped")
def test_macrophage_predict_fast_agrees_with_torch():
    sur = load_artifact(MACRO, device="cpu")
    rng = np.random.default_rng(0)
    k = len(sur.input_names)
    u = (rng.random((40, k)) > 0.8).astype(np.float32) * rng.random((40, k), dtype=np.float32)
    fast = sur.predict(u)
    ref = sur.predict(u, fast=False)
    # both stop at tol 1e-4 on a contraction with rho near 0.95 and |scale| up to ~3
    assert np.abs(fast - ref).max() < 1e-2
    # cached runner; rebuilt when a weight changes in place
    runner = sur.fast_runner()
    assert sur.fast_runner() is runner
    with torch.no_grad():
        sur.model.output_offset.add_(1.0)
    assert sur.fast_runner() is not runner
    np.testing.assert_allclose(sur.predict(u), fast + 1.0, atol=1e-5)


@pytest.mark.skipif(not TNF.is_file(), reason="tnf artifact not shipped")
def test_tnf_predict_fast_agrees_with_torch():
    sur = load_artifact(TNF, device="cpu")
    u = np.random.default_rng(1).random((3000, len(sur.input_names)), dtype=np.float32)
    fast = sur.predict(u)
    np.testing.assert_allclose(fast, sur.predict(u, fast=False), atol=1e-5)
    np.testing.assert_allclose(fast.sum(1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------- adapter grid kernel
@pytest.mark.parametrize("k", [1, 2, 3])
def test_interpolate_grid_kernel_matches_scipy(k):
    from scipy.interpolate import RegularGridInterpolator

    from tme_sim.intracellular.surrogate import _interpolate_nodes

    g = 5
    rng = np.random.default_rng(k)
    vals = rng.normal(size=(*([g] * k), 3)).astype(np.float32)
    t = rng.uniform(0, g - 1, (200, k))
    t[0] = g - 1  # upper edge
    t[1] = 0.0
    out = np.empty((200, 3), np.float32)
    # node idx (C order) stored at row node_row[idx]: here in reverse order, to exercise the lookup
    node_row = np.arange(g**k, dtype=np.int64)[::-1].copy()
    _interpolate_nodes(t, node_row, vals.reshape(g**k, 3)[::-1].copy(), g, out)
    ref = RegularGridInterpolator([np.arange(g)] * k, vals.astype(np.float64))(t)
    np.testing.assert_allclose(out, ref, atol=1e-5)
