"""Fast batched inference for trained surrogates (CPU): the paths :meth:`Surrogate.predict` uses.

Training runs the torch modules of :mod:`surrogates.networks`; inference for many cells at once
needs none of autograd's machinery and suffers from torch's per-call and large-temporary costs,
so on CPU the two model kinds get dedicated paths that compute the same function:

* :class:`FastMLP` (dense models): the layers of :class:`~surrogates.networks.DenseMLP` run on
  1024-row chunks (every temporary ≤ 0.25 MB, cache-resident) with preallocated buffers and
  ``out=`` kernels (``addmm``, in-place SiLU) — no large temporaries, no numpy↔torch copies; a
  narrow output layer (≤ 8 outputs) and its softmax run in a fused numba loop (torch's GEMM with
  4 output columns plus a row softmax cost ~3× the 64×64 hidden layer). Threads: row ranges in
  Python threads with one torch thread each, not torch's intra-op threads (whose per-op barriers
  cost milliseconds on a shared machine: this was the 87 µs/cell at 1e3 cells). Same float32
  arithmetic up to summation order: outputs agree with the module to ~1e-6.
* :class:`FastSignaling` (prior-knowledge recurrent networks): a numba kernel for the steady
  state ``x* = f(W x* + c)`` of :class:`~surrogates.networks.SignalingNetwork`. W is held as CSR
  over target rows; states are laid out node-major ``(n_nodes, slots)`` with a block of cells
  (``slots``, default 64) as the inner contiguous dimension, so each edge is one vectorised
  multiply-add over the block. Every cell (column) carries its own convergence test (max |Δx|
  over nodes < ``tol``, tested every iteration) and leaves the block as soon as it passes —
  its slot is refilled with the next cell, so the block stays full and converged cells cost
  nothing more. Cells start from ``f(c)`` as in torch (a warm start from the zero-input steady
  state is available, ``warm_start=True``, but measured slower on this model). Float32 on
  purpose (the model is trained in float32; the block is half the memory traffic of float64).

Determinism: a cell's result depends only on its own inputs — not on the batch it is in, its
slot, the group size or the thread count (each column is computed with the same sequence of
float32 operations; no reductions across cells, no reassociation, no FMA contraction) — so the
serial and the parallel kernel give bitwise-identical outputs (tested).

Agreement with the torch forward (the training path): both solve the same fixed point to the
same ``tol`` but stop at different iterates (torch: all cells together, tested every 5 sweeps,
then one more sweep; here: per cell, every sweep), so outputs differ by up to about
``|scale|·tol·ρ/(1-ρ)`` (ρ: contraction factor). Measured on the shipped macrophage model (tol
1e-4, ρ ≈ 0.95, |scale| ≤ 3): max |fast − torch| ≈ 3e-3, while each is ≈ 2-3e-3 from the
fixed point solved to 1e-8 — the paths agree as well as either agrees with the exact answer.
Tested: ≤ 1e-2 on the shipped model; on a small network ≤ 1e-4 at tol 1e-6 (float32 cannot
reliably go below ~1e-7: some cells then run to ``max_iter``) and ≤ 5e-3 at tol 1e-4.

GPU: these paths are CPU-only; on CUDA :meth:`Surrogate.predict` runs the torch modules (large
chunks, no copies besides the host↔device transfer).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numba import get_num_threads, njit, prange, set_num_threads

__all__ = [
    "FastMLP",
    "FastSignaling",
    "signaling_solve",
    "solve_columns_parallel",
    "solve_columns_serial",
]

#: cells per independently scheduled group of the parallel kernel (fixed: results never depend
#: on it, but a fixed value keeps the work split the same on every machine)
GROUP = 512


# ----------------------------------------------------------------------------------------------
# dense MLP
# ----------------------------------------------------------------------------------------------
#: output layers at most this wide run in :func:`_dense_head` instead of torch
HEAD_MAX_OUT = 8


@njit(cache=True, fastmath=True, nogil=True)
def _dense_head(h, w, b, out, softmax):
    """``out[r] = w @ h[r] + b`` (then a softmax over the row when ``softmax``), row by row.

    ``h`` (m, k), ``w`` (n_out, k), ``b`` (n_out,), ``out`` (m, n_out), all float32. Fast-math
    only vectorises the length-``k`` dot products: every row is computed by the same code, so a
    row's result does not depend on the batch or the thread that computes it.
    """
    m, k = h.shape
    n_out = w.shape[0]
    for r in range(m):
        for o in range(n_out):
            acc = np.float32(0.0)
            for j in range(k):
                acc += h[r, j] * w[o, j]
            out[r, o] = acc + b[o]
        if softmax:
            mx = out[r, 0]
            for o in range(1, n_out):
                mx = max(mx, out[r, o])
            s = np.float32(0.0)
            for o in range(n_out):
                e = np.exp(out[r, o] - mx)
                out[r, o] = e
                s += e
            for o in range(n_out):
                out[r, o] = out[r, o] / s


class FastMLP:
    """Chunked, allocation-free CPU inference for a :class:`~surrogates.networks.DenseMLP`.

    Args:
        model: the trained module (eval mode; dropout is the identity at inference).
        chunk: rows per chunk (cache-sized temporaries).
    """

    def __init__(self, model: torch.nn.Module, chunk: int = 1024) -> None:
        from surrogates.networks import DenseMLP

        if not isinstance(model, DenseMLP):
            raise TypeError("FastMLP needs a DenseMLP")
        layers: list[tuple[torch.Tensor, torch.Tensor, str]] = []
        mods = list(model.net)
        for k, m in enumerate(mods):
            if isinstance(m, torch.nn.Linear):
                act = "silu" if k + 1 < len(mods) and isinstance(mods[k + 1], torch.nn.SiLU) else "none"
                wt = m.weight.detach().to("cpu", torch.float32).t().contiguous()  # (in, out)
                layers.append((wt, m.bias.detach().to("cpu", torch.float32).clone(), act))
            elif not isinstance(m, torch.nn.SiLU | torch.nn.Dropout):
                raise TypeError(f"FastMLP: unsupported layer {type(m).__name__}")
        self.layers = layers
        self.softmax = model.head == "softmax"
        self.n_in = int(model.n_in)
        self.n_out = int(model.n_out)
        self.chunk = int(chunk)
        # a GEMM with a handful of output columns and a row-wise softmax over them are slow in
        # torch (measured: ~160 ns/cell for 64 -> 4 + softmax); a fused numba loop takes ~45
        wt, b, _ = layers[-1]
        narrow = self.n_out <= HEAD_MAX_OUT and len(layers) > 1
        self._head_rows = np.ascontiguousarray(wt.t().numpy()) if narrow else None  # (n_out, hidden)
        self._head_bias = b.numpy().copy()

    def __call__(self, u: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """Outputs (B, n_out) float32 for inputs ``u`` (B, n_in) (converted to float32).

        ``threads`` (default: ``torch.get_num_threads()``): row ranges run in that many Python
        threads, each with one torch thread (torch releases the GIL inside its kernels). This
        replaces torch's intra-op threading, whose per-operation barriers cost milliseconds
        when the cores are shared with other work (measured: 2 intra-op threads were 30-100x
        slower than 1 at 1e3-1e4 cells on a busy 2-core machine).
        """
        u = np.ascontiguousarray(u, dtype=np.float32)
        if u.ndim != 2 or u.shape[1] != self.n_in:
            raise ValueError(f"inputs must be (B, {self.n_in}), got {u.shape}")
        n = u.shape[0]
        out = np.empty((n, self.n_out), dtype=np.float32)
        if n == 0:
            return out
        nthreads = max(1, int(torch.get_num_threads() if threads is None else threads))
        nchunks = -(-n // self.chunk)
        parts = min(nthreads, nchunks)
        prev = torch.get_num_threads()
        if parts <= 1:
            try:
                torch.set_num_threads(1)
                with torch.inference_mode():
                    self._run(u, out)
            finally:
                torch.set_num_threads(prev)
            return out
        bounds = [(k * nchunks // parts) * self.chunk for k in range(parts)] + [n]

        def work(k: int) -> None:
            torch.set_num_threads(1)
            with torch.inference_mode():
                self._run(u[bounds[k] : bounds[k + 1]], out[bounds[k] : bounds[k + 1]])

        try:
            with ThreadPoolExecutor(parts) as ex:
                list(ex.map(work, range(parts)))
        finally:
            torch.set_num_threads(prev)
        return out

    def _run(self, u: np.ndarray, out: np.ndarray) -> None:
        """Rows of ``u`` → rows of ``out`` (both C-contiguous float32), chunk by chunk."""
        n = u.shape[0]
        ch = min(self.chunk, n)
        bufs = [torch.empty(ch, wt.shape[1]) for wt, _, _ in self.layers[:-1]]
        ut = torch.from_numpy(u)
        ot = torch.from_numpy(out)
        last_w, last_b, _ = self.layers[-1]
        for a in range(0, n, ch):
            m = min(ch, n - a)
            h = ut[a : a + m]
            for (wt, b, act), buf in zip(self.layers[:-1], bufs, strict=True):
                hb = buf[:m]
                torch.addmm(b, h, wt, out=hb)
                if act == "silu":
                    torch.nn.functional.silu(hb, inplace=True)
                h = hb
            if self._head_rows is not None:  # narrow output layer: fused numba dot + softmax
                _dense_head(h.numpy(), self._head_rows, self._head_bias, out[a : a + m], self.softmax)
                continue
            y = ot[a : a + m]
            torch.addmm(last_b, h, last_w, out=y)
            if self.softmax:
                torch.softmax(y, dim=1, out=y)


# ----------------------------------------------------------------------------------------------
# signaling network: numba steady-state kernel
# ----------------------------------------------------------------------------------------------
@njit(cache=True)
def _load_column(q, s, x, c, bias, nodes, vals, x0, leak):
    """Put cell ``q`` into slot ``s``: drive ``c = bias + Σ_k vals[q, k] at nodes[k]``; start
    state ``x0`` (or ``f(c)`` when ``x0`` is empty, the torch cold start)."""
    n = bias.shape[0]
    for i in range(n):
        c[i, s] = bias[i]
    for k in range(nodes.shape[0]):
        c[nodes[k], s] += vals[q, k]
    if x0.shape[0] == n:
        for i in range(n):
            x[i, s] = x0[i]
    else:
        half = np.float32(0.5)
        quarter = np.float32(0.25)
        one = np.float32(1.0)
        for i in range(n):
            z = c[i, s]
            lz = leak * z
            a = z if z > lz else lz
            m = one - quarter / (z if z > half else half)
            x[i, s] = a if a < m else m


@njit(cache=True)
def _copy_slot(src_s, dst_s, x, c):
    for i in range(x.shape[0]):
        x[i, dst_s] = x[i, src_s]
        c[i, dst_s] = c[i, src_s]


@njit(cache=True, fastmath={"nnan", "ninf", "nsz"})
def _sweep(crow, col, val, c, x, xn, z, diff, w, leak):
    """One Jacobi sweep ``xn = f(W x + c)`` over slots ``0..w-1``; ``diff[b] = max_i |xn - x|``.

    Fast-math flags "no NaN/inf, no signed zeros" only (they let min/max vectorise; measured 1.5x
    on the activation loop, bitwise-identical results for finite states); no reassociation, no
    reciprocal approximation, no FMA contraction.
    """
    half = np.float32(0.5)
    quarter = np.float32(0.25)
    one = np.float32(1.0)
    for b in range(w):
        diff[b] = 0.0
    for i in range(crow.shape[0] - 1):
        ci = c[i]
        xi = x[i]
        xni = xn[i]
        for b in range(w):
            z[b] = ci[b]
        for e in range(crow[i], crow[i + 1]):
            wv = val[e]
            xr = x[col[e]]
            for b in range(w):
                z[b] += wv * xr[b]
        for b in range(w):
            zz = z[b]
            a = max(zz, leak * zz)
            m = one - quarter / max(zz, half)
            y = min(a, m)
            xni[b] = y
            diff[b] = max(diff[b], abs(y - xi[b]))


@njit(cache=True)
def _solve_range(
    crow, col, val, bias, nodes, vals, x0, out_nodes, scale, offset, leak, tol, max_iter, slots, lo, hi, out, iters
):
    """Steady states of cells ``lo:hi`` (see :func:`solve_columns_serial`), ``slots`` at a time."""
    n = bias.shape[0]
    x = np.empty((n, slots), dtype=np.float32)
    xn = np.empty((n, slots), dtype=np.float32)
    c = np.empty((n, slots), dtype=np.float32)
    z = np.empty(slots, dtype=np.float32)
    diff = np.empty(slots, dtype=np.float32)
    it = np.zeros(slots, dtype=np.int32)
    cell = np.empty(slots, dtype=np.int64)
    w = 0
    nxt = lo
    while w < slots and nxt < hi:
        _load_column(nxt, w, x, c, bias, nodes, vals, x0, leak)
        cell[w] = nxt
        it[w] = 0
        w += 1
        nxt += 1
    while w > 0:
        _sweep(crow, col, val, c, x, xn, z, diff, w, leak)
        x, xn = xn, x
        for b in range(w):
            it[b] += 1
        # retire converged cells: write outputs, refill the slot (or compact the block)
        b = 0
        while b < w:
            if diff[b] < tol or it[b] >= max_iter:
                q = cell[b]
                for k in range(out_nodes.shape[0]):
                    out[q, k] = x[out_nodes[k], b] * scale[k] + offset[k]
                iters[q] = it[b]
                if nxt < hi:
                    _load_column(nxt, b, x, c, bias, nodes, vals, x0, leak)
                    cell[b] = nxt
                    it[b] = 0
                    nxt += 1
                    b += 1
                else:
                    w -= 1
                    if b < w:  # move the last active slot here; test it in this same pass
                        _copy_slot(w, b, x, c)
                        cell[b] = cell[w]
                        it[b] = it[w]
                        diff[b] = diff[w]
            else:
                b += 1


@njit(cache=True)
def solve_columns_serial(
    crow, col, val, bias, nodes, vals, x0, out_nodes, scale, offset, leak, tol, max_iter, slots, out, iters
):
    """Steady states ``x* = f(W x* + c)`` for every cell, serially; outputs written in place.

    ``crow``/``col``/``val``: W in CSR over target rows (int64, int64, float32); ``bias`` (n,)
    float32; drive of cell q: ``c = bias`` plus ``vals[q, k]`` (float32 (B, K)) at node
    ``nodes[k]`` (int64 (K,), repeats add up); ``x0`` (n,) float32 warm start, or an empty
    array for the cold start ``f(c)``; a cell stops when max_i |Δx_i| < ``tol`` or after
    ``max_iter`` sweeps. ``out[q, k] = x*[out_nodes[k]]·scale[k] + offset[k]`` (float32 (B, n_out));
    ``iters[q]``: sweeps used (int32 (B,)).
    """
    B = vals.shape[0]
    for g in range((B + GROUP - 1) // GROUP):
        lo = g * GROUP
        hi = min(B, lo + GROUP)
        _solve_range(crow, col, val, bias, nodes, vals, x0, out_nodes, scale, offset, leak, tol, max_iter, slots,
                     lo, hi, out, iters)  # fmt: skip


@njit(cache=True, parallel=True)
def solve_columns_parallel(
    crow, col, val, bias, nodes, vals, x0, out_nodes, scale, offset, leak, tol, max_iter, slots, out, iters
):
    """Parallel twin of :func:`solve_columns_serial` (groups of ``GROUP`` cells per task);
    bitwise-identical results for any thread count."""
    B = vals.shape[0]
    ng = (B + GROUP - 1) // GROUP
    for g in prange(ng):
        lo = g * GROUP
        hi = min(B, lo + GROUP)
        _solve_range(crow, col, val, bias, nodes, vals, x0, out_nodes, scale, offset, leak, tol, max_iter, slots,
                     lo, hi, out, iters)  # fmt: skip


def signaling_solve(
    crow: np.ndarray,
    col: np.ndarray,
    val: np.ndarray,
    bias: np.ndarray,
    nodes: np.ndarray,
    vals: np.ndarray,
    out_nodes: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    *,
    leak: float,
    tol: float,
    max_iter: int,
    x0: np.ndarray | None = None,
    slots: int = 64,
    parallel: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked wrapper of the steady-state kernels: returns (outputs (B, n_out) float32,
    iterations (B,) int32). ``parallel`` None: the parallel kernel when numba has > 1 thread
    and there is more than one group of cells. Arguments as in :func:`solve_columns_serial`."""
    n = int(bias.shape[0])
    vals = np.ascontiguousarray(vals, dtype=np.float32)
    if vals.ndim != 2 or vals.shape[1] != len(nodes):
        raise ValueError(f"vals must be (B, {len(nodes)}), got {vals.shape}")
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    if nodes.size and (nodes.min() < 0 or nodes.max() >= n):
        raise ValueError("drive node index out of range")
    B = vals.shape[0]
    out = np.empty((B, len(out_nodes)), dtype=np.float32)
    iters = np.zeros(B, dtype=np.int32)
    if B == 0:
        return out, iters
    start = np.empty(0, dtype=np.float32) if x0 is None else np.ascontiguousarray(x0, dtype=np.float32)
    if start.size not in (0, n):
        raise ValueError(f"x0 must have {n} entries")
    args = (
        crow,
        col,
        val,
        bias,
        nodes,
        vals,
        start,
        out_nodes,
        scale,
        offset,
        np.float32(leak),
        np.float32(tol),
        int(max_iter),
        int(max(1, slots)),
        out,
        iters,
    )
    if parallel is None:
        parallel = get_num_threads() > 1 and B > GROUP
    (solve_columns_parallel if parallel else solve_columns_serial)(*args)
    return out, iters


@dataclass
class SolveInfo:
    """Diagnostics of the last :meth:`FastSignaling.__call__`: sweeps per cell."""

    cells: int = 0
    mean_iterations: float = 0.0
    max_iterations: int = 0
    not_converged: int = 0


class FastSignaling:
    """Numba steady-state inference for a :class:`~surrogates.networks.SignalingNetwork`.

    Reads the module's parameters and buffers once (``edge_weight``, ``node_bias``,
    ``input_weight``, ``input_map``, ``output_scale``/``offset``, ``src``/``dst``,
    ``input_nodes``/``output_nodes``, ``leak``, ``max_iter``, ``tol``); call :meth:`refresh`
    after changing the module's weights.

    Args:
        model: the module (any device; its tensors are copied to host memory).
        tol, max_iter: override the module's solve settings (default: the module's).
        warm_start: start every cell from the zero-input steady state instead of the torch
            forward's cold start ``f(c)`` (default); the fixed point is the same. Measured on
            the macrophage model it needs *more* sweeps (IFNG/IL4 inputs: 103 vs 59 on
            average; 12 random ligands: 39 vs 38), hence off by default.
        slots: cells per block in the kernel (inner contiguous dimension).
        threads: numba threads for the parallel kernel (None: numba's current setting).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        tol: float | None = None,
        max_iter: int | None = None,
        warm_start: bool = False,
        slots: int = 64,
        threads: int | None = None,
    ) -> None:
        from surrogates.networks import SignalingNetwork

        if not isinstance(model, SignalingNetwork):
            raise TypeError("FastSignaling needs a SignalingNetwork")
        self.model = model
        self.tol = float(model.tol if tol is None else tol)
        self.max_iter = int(model.max_iter if max_iter is None else max_iter)
        self.warm_start = bool(warm_start)
        self.slots = int(slots)
        self.threads = threads
        self.info = SolveInfo()
        self.refresh()

    def refresh(self) -> None:
        """(Re)read the module's weights and recompute the zero-input steady state."""
        m = self.model
        n = int(m.n_nodes)
        src = m.src.detach().cpu().numpy().astype(np.int64)
        dst = m.dst.detach().cpu().numpy().astype(np.int64)
        w = m.edge_weight.detach().cpu().numpy().astype(np.float32)
        order = np.lexsort((src, dst))  # rows = targets (dst), columns = sources (src)
        self.n_nodes = n
        self.crow = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))]).astype(np.int64)
        self.col = np.ascontiguousarray(src[order])
        self.val = np.ascontiguousarray(w[order])
        self.bias = m.node_bias.detach().cpu().numpy().astype(np.float32).copy()
        self.input_nodes = m.input_nodes.detach().cpu().numpy().astype(np.int64)
        self.input_weight = m.input_weight.detach().cpu().numpy().astype(np.float32)
        imap = getattr(m, "input_map", None)
        self.input_map = None if imap is None else imap.detach().cpu().numpy().astype(np.float32)
        self.out_nodes = m.output_nodes.detach().cpu().numpy().astype(np.int64)
        self.scale = m.output_scale.detach().cpu().numpy().astype(np.float32)
        self.offset = m.output_offset.detach().cpu().numpy().astype(np.float32)
        self.leak = np.float32(m.leak)
        self.x_zero: np.ndarray | None = None
        if self.warm_start:
            # zero-input steady state, tighter than tol so the warm start adds no error of its own
            eye_nodes = np.arange(n, dtype=np.int64)
            vals = np.zeros((1, n), dtype=np.float32)
            ident_scale = np.ones(n, dtype=np.float32)
            x, _ = signaling_solve(
                self.crow,
                self.col,
                self.val,
                self.bias,
                eye_nodes[:0],
                vals[:, :0],
                eye_nodes,
                ident_scale,
                np.zeros(n, dtype=np.float32),
                leak=float(self.leak),
                tol=self.tol * 1e-2,
                max_iter=max(10 * self.max_iter, 1000),
                parallel=False,
            )
            self.x_zero = x[0].copy() if np.all(np.isfinite(x)) else None

    def input_drive(self, u: np.ndarray) -> np.ndarray:
        """Per-cell input drive (B, n_in) float32: ``(u @ input_map) * input_weight``, placed on
        :attr:`input_nodes` by the kernel (the module's :meth:`~SignalingNetwork.drive` minus the bias)."""
        u = np.asarray(u, dtype=np.float32)
        if self.input_map is not None:
            u = u @ self.input_map
        return np.ascontiguousarray(u * self.input_weight, dtype=np.float32)

    def __call__(
        self,
        u: np.ndarray,
        *,
        extra_nodes: np.ndarray | None = None,
        extra_drive: np.ndarray | None = None,
        parallel: bool | None = None,
    ) -> np.ndarray:
        """Outputs (B, n_out) float32 for inputs ``u`` (B, n_in).

        ``extra_nodes`` (L,) int and ``extra_drive`` (B, L): an additional drive added to those
        nodes (repeats add up) — e.g. drug occupancy × weight, as in
        :func:`tme_sim.drugs.surrogate_model.steady_outputs_with_drugs`.
        """
        u = np.asarray(u, dtype=np.float32)
        if u.ndim != 2 or u.shape[1] != self.input_nodes.size:
            raise ValueError(f"inputs must be (B, {self.input_nodes.size}), got {u.shape}")
        nodes = self.input_nodes
        vals = self.input_drive(u)
        if extra_nodes is not None:
            ex = np.asarray(extra_drive, dtype=np.float32)
            if ex.shape != (u.shape[0], len(extra_nodes)):
                raise ValueError(f"extra_drive must be ({u.shape[0]}, {len(extra_nodes)}), got {ex.shape}")
            nodes = np.concatenate([nodes, np.asarray(extra_nodes, dtype=np.int64)])
            vals = np.concatenate([vals, ex], axis=1)
        prev = None
        if self.threads is not None and self.threads != get_num_threads():
            prev = get_num_threads()
            set_num_threads(max(1, min(int(self.threads), _max_threads())))
        try:
            out, it = signaling_solve(
                self.crow,
                self.col,
                self.val,
                self.bias,
                nodes,
                vals,
                self.out_nodes,
                self.scale,
                self.offset,
                leak=float(self.leak),
                tol=self.tol,
                max_iter=self.max_iter,
                x0=self.x_zero if self.warm_start else None,
                slots=self.slots,
                parallel=parallel,
            )
        finally:
            if prev is not None:
                set_num_threads(prev)
        self.info = SolveInfo(
            cells=int(it.size),
            mean_iterations=float(it.mean()) if it.size else 0.0,
            max_iterations=int(it.max(initial=0)),
            not_converged=int((it >= self.max_iter).sum()),
        )
        return out


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS) or (os.cpu_count() or 1)
