"""Fast batched inference for trained surrogates (CPU): the paths :meth:`Surrogate.predict` uses.

Training runs the torch modules of :mod:`tme_sim.intracellular.neural.networks`; inference for many cells at once
needs none of autograd's machinery and suffers from torch's per-call and large-temporary costs,
so on CPU the two model kinds get dedicated paths that compute the same function:

* :class:`FastMLP` (dense models): small networks (largest layer ≤ :data:`FUSED_MAX_LAYER_WEIGHTS`
  weights, e.g. the distilled TNF-fate model 16 → 8 → 4) run in one fused numba kernel
  (:func:`mlp_forward_serial`, :func:`mlp_forward_parallel`): per block of :data:`MLP_BLOCK`
  cells, the inputs are transposed to feature-major ``(width, block)`` scratch in cache and every
  layer is a multiply-add over the block's cells (vectorised 8 cells per AVX2 instruction), the
  SiLU a branch-free float32 ``exp`` (Cephes polynomial + exponent bits, :func:`_expf`) and the
  softmax fused at the end — no temporaries beyond the block, no per-layer passes over memory.
  Two things decide its speed (measured): ``error_model="numpy"`` (numba's default puts a
  ZeroDivisionError branch on every division, which stopped the SiLU/softmax loops from
  vectorising: 8× slower) and 2-D indexing instead of row slices (a slice costs reference-count
  updates: 2× on the dense layers). Fast-math is limited to nnan/ninf/nsz/contract (FMA), no
  reassociation; outputs agree with the module to ~1e-7. Wider networks run as torch GEMMs on
  1024-row chunks (every temporary ≤ 0.25 MB, cache-resident) with preallocated buffers and
  ``out=`` kernels, a narrow output layer (≤ 8 outputs) and its softmax in a numba loop. Threads:
  fused kernel — numba ``prange`` over groups of blocks, serial or parallel chosen by timing
  (:class:`tme_sim.parallel.KernelChooser`); torch path — row ranges in Python threads with one
  torch thread each, not torch's intra-op threads (whose per-op barriers cost milliseconds on a
  shared machine: this was the 87 µs/cell at 1e3 cells).
* :class:`FastSignaling` (prior-knowledge recurrent networks): a numba kernel for the steady
  state ``x* = f(W x* + c)`` of :class:`~tme_sim.intracellular.neural.networks.SignalingNetwork`. W is held as CSR
  over target rows; states are laid out node-major ``(n_nodes, slots)`` with a block of cells
  (``slots``, default 64) as the inner contiguous dimension, so each edge is one vectorised
  multiply-add over the block. Every cell (column) carries its own convergence test (max |Δx|
  over nodes < ``tol``, tested every iteration) and leaves the block as soon as it passes —
  its slot is refilled with the next cell, so the block stays full and converged cells cost
  nothing more. Cells start from ``f(c)`` as in torch (a warm start from the zero-input steady
  state is available, ``warm_start=True``, but measured slower on this model). Float32 on
  purpose (the model is trained in float32; the block is half the memory traffic of float64).

Determinism: a cell's result depends only on its own inputs — not on the batch it is in, its
slot or block position, the group size or the thread count (each cell is computed with the same
sequence of float32 operations; no reductions across cells, no reassociation; the signaling
kernel has no FMA contraction, the MLP kernel contracts identically for every cell because each
block is padded to full width and runs the same vector code) — so the serial and the parallel
kernels give bitwise-identical outputs (tested).

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

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from llvmlite import ir
from numba import get_num_threads, njit, prange, set_num_threads, types
from numba.extending import intrinsic

from tme_sim.parallel import KernelChooser

__all__ = [
    "FastMLP",
    "FastSignaling",
    "mlp_forward_parallel",
    "mlp_forward_serial",
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


#: cells per block of the fused small-MLP kernel: activations are held feature-major
#: ``(width, MLP_BLOCK)`` so every layer is a vectorised multiply-add over the block's cells; the
#: last block is zero-padded, so every cell runs through the same (vector) code path
MLP_BLOCK = 128
#: blocks per independently scheduled task of the parallel small-MLP kernel
MLP_GROUP_BLOCKS = 16
#: networks whose largest layer has at most this many weights run in the fused numba kernel on
#: CPU (:func:`mlp_forward_serial`), larger ones in torch GEMMs (see :class:`FastMLP`). Measured
#: (one core, 16 inputs, 4 outputs, ns/cell fused vs torch path): 16×2 55 vs 120, 32×2 121 vs
#: 187, 48×2 211 vs 273, 64×2 331 vs 330-350 (MKL's GEMM catches up), 64×1 106 vs 160, 128×1
#: 202 vs 281 — hence 48·48
FUSED_MAX_LAYER_WEIGHTS = 48 * 48
#: the parallel twin of the fused MLP kernel is tried from this many cells on (below, thread
#: start-up and a descheduled worker on a shared machine cost more than the work)
MLP_PARALLEL_MIN_CELLS = 32768

# float32 constants (a Python float would promote the kernels' arithmetic to float64)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_EXP_LO = np.float32(-87.0)
_EXP_HI = np.float32(88.0)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_P0 = np.float32(1.9875691500e-4)
_P1 = np.float32(1.3981999507e-3)
_P2 = np.float32(8.3334519073e-3)
_P3 = np.float32(4.1665795894e-2)
_P4 = np.float32(1.6666665459e-1)
_P5 = np.float32(5.0000001201e-1)
#: fast-math flags of the small-MLP kernels: no NaN/inf/signed-zero semantics and FMA contraction
#: (lets LLVM vectorise min/max and fuse multiply-adds); no reassociation, so each cell's sums
#: run in the order written
_MLP_FM = {"nnan", "ninf", "nsz", "contract"}


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the low 32 bits of the integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if bits.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        elif bits.bitwidth < 32:
            v = builder.sext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(bits), codegen


@njit(cache=True, fastmath=_MLP_FM, nogil=True, error_model="numpy")
def _expf(v):
    """``exp(v)`` for float32 ``v``, branch-free so that loops calling it vectorise.

    Cephes ``expf``: v = k·ln2 + r, |r| ≤ ln2/2 (two-part ln2), degree-7 polynomial for e^r,
    2^k from the exponent bits; ``v`` clamped to [-87, 88] (no overflow, no denormals).
    Relative error < 1e-7 on [-87, 88] (tested against numpy in float64).
    """
    v = min(max(v, _EXP_LO), _EXP_HI)
    fk = np.floor(v * _LOG2E + _HALF)
    r = v - fk * _LN2_HI
    r = r - fk * _LN2_LO
    p = _P0
    p = p * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    return (p * r * r + r + _F1) * _f32_from_bits((np.int32(fk) + np.int32(127)) << np.int32(23))


@njit(cache=True, fastmath=_MLP_FM, nogil=True, error_model="numpy")
def _dense_fm(w, b, wo, bo, din, dout, cur, nxt):
    """``nxt[o, :] = b[bo + o] + Σ_j w[wo + o·din + j]·cur[j, :]`` for o < dout (feature-major).

    Four inputs per pass over the block (one load/store of the output row per 4 multiply-adds).
    """
    nb = cur.shape[1]
    for o in range(dout):
        bias = b[bo + o]
        for c in range(nb):
            nxt[o, c] = bias
        base = wo + o * din
        j = 0
        while j + 4 <= din:
            w0 = w[base + j]
            w1 = w[base + j + 1]
            w2 = w[base + j + 2]
            w3 = w[base + j + 3]
            for c in range(nb):
                nxt[o, c] = nxt[o, c] + (w0 * cur[j, c] + w1 * cur[j + 1, c] + w2 * cur[j + 2, c] + w3 * cur[j + 3, c])
            j += 4
        while j < din:
            wj = w[base + j]
            for c in range(nb):
                nxt[o, c] = nxt[o, c] + wj * cur[j, c]
            j += 1


@njit(cache=True, fastmath=_MLP_FM, nogil=True, error_model="numpy")
def _silu_rows(h, rows):
    """SiLU in place on ``h[:rows]`` (feature-major): ``x / (1 + e^-x)``.

    ``error_model="numpy"``: no ZeroDivisionError branch (1 + e^-x ≥ 1), which would stop
    the loop from vectorising (measured 8x).
    """
    nb = h.shape[1]
    for o in range(rows):
        for c in range(nb):
            x = h[o, c]
            h[o, c] = x / (_F1 + _expf(-x))


@njit(cache=True, fastmath=_MLP_FM, nogil=True, error_model="numpy")
def _mlp_blocks(u, w, b, woff, boff, dims, acts, softmax, out, blk_lo, blk_hi):
    """Blocks ``blk_lo:blk_hi`` of :func:`mlp_forward_serial` (scratch allocated once here)."""
    n, n_in = u.shape
    n_layers = dims.shape[0] - 1
    width = 0
    for k in range(dims.shape[0]):
        width = max(width, dims[k])
    a = np.zeros((width, MLP_BLOCK), dtype=np.float32)
    z = np.zeros((width, MLP_BLOCK), dtype=np.float32)
    mx = np.empty(MLP_BLOCK, dtype=np.float32)
    tot = np.empty(MLP_BLOCK, dtype=np.float32)
    n_out = dims[n_layers]
    for blk in range(blk_lo, blk_hi):
        lo = blk * MLP_BLOCK
        m = min(MLP_BLOCK, n - lo)
        for c in range(m):  # transpose the block's inputs to feature-major, zero padding
            for j in range(n_in):
                a[j, c] = u[lo + c, j]
        for c in range(m, MLP_BLOCK):
            for j in range(n_in):
                a[j, c] = _F0
        cur, nxt = a, z
        for k in range(n_layers):
            _dense_fm(w, b, woff[k], boff[k], dims[k], dims[k + 1], cur, nxt)
            if acts[k] == 1:
                _silu_rows(nxt, dims[k + 1])
            cur, nxt = nxt, cur
        if softmax:
            for c in range(MLP_BLOCK):
                mx[c] = cur[0, c]
                tot[c] = _F0
            for o in range(1, n_out):
                for c in range(MLP_BLOCK):
                    mx[c] = max(mx[c], cur[o, c])
            for o in range(n_out):
                for c in range(MLP_BLOCK):
                    e = _expf(cur[o, c] - mx[c])
                    cur[o, c] = e
                    tot[c] = tot[c] + e
            for c in range(MLP_BLOCK):
                tot[c] = _F1 / tot[c]
            for o in range(n_out):
                for c in range(MLP_BLOCK):
                    cur[o, c] = cur[o, c] * tot[c]
        for c in range(m):
            for o in range(n_out):
                out[lo + c, o] = cur[o, c]


@njit(cache=True, nogil=True)
def mlp_forward_serial(u, w, b, woff, boff, dims, acts, softmax, out):
    """Fused forward pass of a small dense MLP for every row of ``u``, serially.

    ``u`` (n, dims[0]) float32 C-contiguous; layer k: weights ``w[woff[k]:woff[k+1]]`` — the
    (dims[k+1], dims[k]) matrix of ``torch.nn.Linear`` flattened row-major — and bias
    ``b[boff[k]:boff[k+1]]`` (float32); ``acts[k]``: 1 = SiLU after layer k, 0 = none (int64);
    ``softmax``: row softmax on the outputs. Writes ``out`` (n, dims[-1]) float32.

    All layers run per block of :data:`MLP_BLOCK` cells held feature-major in cache. A cell's
    result depends only on its own inputs (no reductions across cells; padded blocks), so it is
    the same whatever the batch, block position or thread count.
    """
    nblk = (u.shape[0] + MLP_BLOCK - 1) // MLP_BLOCK
    _mlp_blocks(u, w, b, woff, boff, dims, acts, softmax, out, 0, nblk)


@njit(cache=True, nogil=True, parallel=True)
def mlp_forward_parallel(u, w, b, woff, boff, dims, acts, softmax, out):
    """Parallel twin of :func:`mlp_forward_serial` (tasks of :data:`MLP_GROUP_BLOCKS` blocks);
    bitwise-identical results."""
    nblk = (u.shape[0] + MLP_BLOCK - 1) // MLP_BLOCK
    ng = (nblk + MLP_GROUP_BLOCKS - 1) // MLP_GROUP_BLOCKS
    for g in prange(ng):
        lo = g * MLP_GROUP_BLOCKS
        _mlp_blocks(u, w, b, woff, boff, dims, acts, softmax, out, lo, min(nblk, lo + MLP_GROUP_BLOCKS))


class FastMLP:
    """CPU inference for a :class:`~.networks.DenseMLP`: fused numba kernel or chunked torch.

    Networks whose largest layer has ≤ :data:`FUSED_MAX_LAYER_WEIGHTS` weights run in the fused
    kernel (:func:`mlp_forward_serial` / :func:`mlp_forward_parallel`: every layer, the SiLUs
    and the softmax per block of :data:`MLP_BLOCK` cells, float32; outputs agree with the module
    to ~1e-7); the serial or parallel twin is chosen by timing the calls
    (:class:`tme_sim.parallel.KernelChooser`, cells ≥ :data:`MLP_PARALLEL_MIN_CELLS` only).
    Larger networks run as torch GEMMs on 1024-row chunks (see the module docstring).

    Args:
        model: the trained module (eval mode; dropout is the identity at inference).
        chunk: rows per chunk of the torch path (cache-sized temporaries).
        fused: force (True) or forbid (False) the fused kernel; None: by the largest layer.
    """

    def __init__(self, model: torch.nn.Module, chunk: int = 1024, fused: bool | None = None) -> None:
        from tme_sim.intracellular.neural.networks import DenseMLP

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
        self.logit_eps = float(getattr(model, "logit_eps", 0.0))
        self.n_in = int(model.n_in)
        self.n_out = int(model.n_out)
        self.chunk = int(chunk)
        dims = [self.n_in] + [int(wt.shape[1]) for wt, _, _ in layers]
        largest = max(a * b for a, b in itertools.pairwise(dims))
        self.fused = largest <= FUSED_MAX_LAYER_WEIGHTS if fused is None else bool(fused)
        # fused kernel: weights of all layers flattened (row-major (out, in) as in torch.nn.Linear)
        self._w = np.concatenate([wt.t().contiguous().numpy().ravel() for wt, _, _ in layers]).astype(np.float32)
        self._b = np.concatenate([b.numpy() for _, b, _ in layers]).astype(np.float32)
        self._woff = np.cumsum([0] + [wt.numel() for wt, _, _ in layers]).astype(np.int64)
        self._boff = np.cumsum([0] + [b.numel() for _, b, _ in layers]).astype(np.int64)
        self._dims = np.asarray(dims, dtype=np.int64)
        self._acts = np.asarray([1 if act == "silu" else 0 for _, _, act in layers], dtype=np.int64)
        self.chooser = KernelChooser(MLP_PARALLEL_MIN_CELLS)
        # torch path: a GEMM with a handful of output columns and a row-wise softmax over them
        # are slow in torch (measured: ~160 ns/cell for 64 -> 4 + softmax); a numba loop ~45
        wt, b, _ = layers[-1]
        narrow = self.n_out <= HEAD_MAX_OUT and len(layers) > 1
        self._head_rows = np.ascontiguousarray(wt.t().numpy()) if narrow else None  # (n_out, hidden)
        self._head_bias = b.numpy().copy()

    def __call__(self, u: np.ndarray, *, threads: int | None = None, parallel: bool | None = None) -> np.ndarray:
        """Outputs (B, n_out) float32 for inputs ``u`` (B, n_in) (converted to float32).

        Fused kernel: ``threads`` = numba threads for this call (default: numba's setting);
        ``parallel`` forces the serial (False) or parallel (True) twin (default: chosen by
        timing, :attr:`chooser`). Torch path: see :meth:`_torch_call`.
        """
        out = self._raw_call(u, threads, parallel)
        if self.logit_eps > 0:  # the network computes log-odds (DenseMLP.logit_eps)
            from tme_sim.intracellular.neural.networks import from_logit

            out = from_logit(out, np.float32(self.logit_eps)).astype(np.float32, copy=False)
        return out

    def _raw_call(self, u: np.ndarray, threads: int | None, parallel: bool | None) -> np.ndarray:
        """:meth:`__call__` before the output transform."""
        u = np.ascontiguousarray(u, dtype=np.float32)
        if u.ndim != 2 or u.shape[1] != self.n_in:
            raise ValueError(f"inputs must be (B, {self.n_in}), got {u.shape}")
        n = u.shape[0]
        out = np.empty((n, self.n_out), dtype=np.float32)
        if n == 0:
            return out
        if not self.fused:
            return self._torch_call(u, out, threads)
        prev = None
        if threads is not None and threads != get_num_threads():
            prev = get_num_threads()
            set_num_threads(max(1, min(int(threads), _max_threads())))
        try:
            par = self.chooser.use_parallel(n) if parallel is None else bool(parallel)
            args = (u, self._w, self._b, self._woff, self._boff, self._dims, self._acts, self.softmax, out)
            t0 = time.perf_counter()
            (mlp_forward_parallel if par else mlp_forward_serial)(*args)
            if parallel is None:
                self.chooser.record(par, time.perf_counter() - t0, n)
        finally:
            if prev is not None:
                set_num_threads(prev)
        return out

    def _torch_call(self, u: np.ndarray, out: np.ndarray, threads: int | None) -> np.ndarray:
        """Torch path of :meth:`__call__` (wide networks); ``u`` checked, ``out`` allocated.

        ``threads`` (default: ``torch.get_num_threads()``): row ranges run in that many Python
        threads, each with one torch thread (torch releases the GIL inside its kernels). This
        replaces torch's intra-op threading, whose per-operation barriers cost milliseconds
        when the cores are shared with other work (measured: 2 intra-op threads were 30-100x
        slower than 1 at 1e3-1e4 cells on a busy 2-core machine).
        """
        n = u.shape[0]
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
    """Numba steady-state inference for a :class:`~tme_sim.intracellular.neural.networks.SignalingNetwork`.

    Reads the module's parameters and buffers once (``edge_weight``, ``node_bias``,
    ``input_weight``, ``input_map``, ``output_scale``/``offset`` or the graph readout, ``src``/``dst``,
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
        from tme_sim.intracellular.neural.networks import SignalingNetwork

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
        #: graph readout (SignalingNetwork.set_readout): the kernel returns the states of
        #: ``out_nodes`` = the readout's nodes, then ``y = x @ readout.T + offset``
        self.readout: np.ndarray | None = None
        if getattr(m, "readout_weight", None) is not None:
            self.readout = m.readout_weight.detach().cpu().numpy().astype(np.float32)
            self.out_nodes = m.readout_nodes.detach().cpu().numpy().astype(np.int64)
            self.readout_offset = m.readout_offset.detach().cpu().numpy().astype(np.float32)
            self.scale = np.ones(len(self.out_nodes), dtype=np.float32)
            self.offset = np.zeros(len(self.out_nodes), dtype=np.float32)
        self.leak = np.float32(m.leak)
        self.logit_link = getattr(m, "output_link", "affine") == "logit"
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
        :func:`tme_sim.intracellular.neural.networks.steady_outputs_with_drugs`.
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
        if self.readout is not None:  # the module's output_map with a graph readout
            out = (out @ self.readout.T + self.readout_offset).astype(np.float32)
        if self.logit_link:  # the module's output_map: sigmoid of the affine output
            out = (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
        return out


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS) or (os.cpu_count() or 1)
