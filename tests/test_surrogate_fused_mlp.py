"""The fused numba kernel for small dense MLPs (:func:`tme_sim.intracellular.neural.inference.mlp_forward_serial`)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numba import njit  # noqa: E402

from tme_sim.intracellular.neural.inference import (  # noqa: E402
    FUSED_MAX_LAYER_WEIGHTS,
    MLP_BLOCK,
    FastMLP,
    _expf,
    mlp_forward_parallel,
    mlp_forward_serial,
)
from tme_sim.intracellular.neural.networks import DenseMLP  # noqa: E402


@njit(cache=False)
def _exp_array(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _expf(x[i])
    return out


def torch_out(net: torch.nn.Module, u: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(np.asarray(u, dtype=np.float32))).numpy()


def test_expf_matches_numpy():
    x = np.linspace(-87.0, 88.0, 200_001, dtype=np.float32)
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(_exp_array(x) - ref) / ref
    assert rel.max() < 2e-7
    # clamped outside [-87, 88]: finite, no overflow, no denormals
    ext = _exp_array(np.array([-1e4, -200.0, 200.0, 1e4], dtype=np.float32))
    assert np.all(np.isfinite(ext)) and ext[0] > 0 and ext[-1] == ext[-2]


@pytest.mark.parametrize(
    ("n_in", "hidden", "layers", "n_out", "head"),
    [
        (16, 8, 1, 4, "softmax"),  # the shipped TNF-fate architecture
        (16, 16, 2, 4, "softmax"),
        (7, 33, 3, 5, "linear"),  # widths not a multiple of the 4-input unrolling
        (3, 1, 1, 1, "linear"),
        (5, 48, 2, 9, "softmax"),
        (16, 128, 1, 4, "softmax"),
    ],
)
def test_fused_matches_module_any_batch(n_in, hidden, layers, n_out, head):
    torch.manual_seed(1)
    m = DenseMLP(n_in, n_out, hidden=hidden, layers=layers, dropout=0.1, head=head).eval()
    fm = FastMLP(m)
    assert fm.fused
    rng = np.random.default_rng(0)
    u = rng.normal(scale=2.0, size=(2 * MLP_BLOCK + 37, n_in)).astype(np.float32)
    ref = torch_out(m, u)
    for n in (0, 1, 5, MLP_BLOCK - 1, MLP_BLOCK, MLP_BLOCK + 1, len(u)):
        for par in (False, True):
            y = fm(u[:n], parallel=par)
            assert y.shape == (n, n_out) and y.dtype == np.float32
            np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=2e-6)
    if head == "softmax":
        np.testing.assert_allclose(fm(u).sum(1), 1.0, atol=1e-6)


def test_fused_serial_parallel_threads_and_batching_bitwise_equal():
    torch.manual_seed(2)
    m = DenseMLP(16, 4, hidden=12, layers=2, dropout=0.0, head="softmax").eval()
    fm = FastMLP(m)
    u = np.random.default_rng(3).random((40 * MLP_BLOCK + 3, 16), dtype=np.float32)
    base = fm(u, parallel=False)
    np.testing.assert_array_equal(fm(u, parallel=True, threads=2), base)
    np.testing.assert_array_equal(fm(u, parallel=True, threads=1), base)
    # a cell's result does not depend on its batch or its position in a block
    perm = np.random.default_rng(4).permutation(len(u))
    np.testing.assert_array_equal(fm(u[perm])[np.argsort(perm)], base)
    np.testing.assert_array_equal(fm(u[17:18]), base[17:18])


def test_fused_extreme_inputs_stay_finite():
    torch.manual_seed(5)
    m = DenseMLP(4, 3, hidden=8, layers=2, dropout=0.0, head="softmax").eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(20.0)
    u = np.array([[1e3, -1e3, 50.0, -50.0], [0, 0, 0, 0], [-1e4, 1e4, 1e4, -1e4]], dtype=np.float32)
    y = FastMLP(m)(u)
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(y, torch_out(m, u), atol=1e-5)


def test_wide_networks_keep_the_torch_path_and_fused_can_be_forced():
    torch.manual_seed(6)
    m = DenseMLP(6, 4, hidden=49, layers=2, dropout=0.0, head="softmax").eval()
    assert 49 * 49 > FUSED_MAX_LAYER_WEIGHTS
    u = np.random.default_rng(7).normal(size=(300, 6)).astype(np.float32)
    ref = torch_out(m, u)
    wide = FastMLP(m)
    assert not wide.fused
    np.testing.assert_allclose(wide(u), ref, atol=1e-5)
    forced = FastMLP(m, fused=True)
    assert forced.fused
    np.testing.assert_allclose(forced(u), ref, atol=1e-5)


def test_direct_kernel_call_layout():
    """The kernels' packed-weight layout: torch.nn.Linear (out, in) matrices flattened row-major."""
    torch.manual_seed(8)
    m = DenseMLP(3, 2, hidden=5, layers=1, dropout=0.0, head="linear").eval()
    lin = [x for x in m.net if isinstance(x, torch.nn.Linear)]
    w = np.concatenate([x.weight.detach().numpy().ravel() for x in lin]).astype(np.float32)
    b = np.concatenate([x.bias.detach().numpy() for x in lin]).astype(np.float32)
    woff = np.array([0, 15, 25], dtype=np.int64)
    boff = np.array([0, 5, 7], dtype=np.int64)
    dims = np.array([3, 5, 2], dtype=np.int64)
    acts = np.array([1, 0], dtype=np.int64)
    u = np.random.default_rng(9).normal(size=(11, 3)).astype(np.float32)
    for kernel in (mlp_forward_serial, mlp_forward_parallel):
        out = np.full((11, 2), np.nan, dtype=np.float32)
        kernel(u, w, b, woff, boff, dims, acts, False, out)
        np.testing.assert_allclose(out, torch_out(m, u), atol=1e-6)
