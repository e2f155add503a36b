"""Neural surrogates of intracellular signalling: a prior-knowledge recurrent network and baselines.

:class:`SignalingNetwork` follows the idea of LEMBAS (Nilsson et al. 2022): every node of a signed,
directed prior-knowledge graph is a unit, weights exist only on graph edges, and the network is
iterated to its steady state from the ligand/drug input nodes

    x* = f(W x* + b + P u)

where ``u`` (B × n_in) are the inputs, ``P`` places each input (with a learned weight) on its
input node, ``b`` are node biases and ``f`` is a saturating activation (leaky below 0, linear on
[0, 0.5], Michaelis–Menten ``1 - 0.25/x`` above; range (-inf, 1)). Outputs are the states of the
transcription-factor nodes with a learned per-output scale and offset.

Speed (the point of this module): the graph is held as two CSR matrices (W and Wᵀ) with a fixed
sparsity pattern; the forward pass iterates to a tolerance without building an autograd graph, and
the gradient is the exact implicit (steady-state) gradient, obtained by iterating the adjoint
equation ``v = f'(z) ⊙ (g + Wᵀ v)`` — one sparse matmul per iteration, no stored trajectory.
Convergence is guaranteed for *any* input when the spectral radius of ``|W|`` is below 1 (then
``|x_{k+1} - x*| ≤ |W| |x_k - x*|`` componentwise, since ``|f'| ≤ 1``); training keeps it below a
bound with a differentiable penalty (Perron-vector estimate), see :meth:`spectral_radius`.

States are laid out node-major, ``(n_nodes, batch)``, which is what CSR @ dense wants.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

LEAK = 0.01
#: output links of :class:`SignalingNetwork` (see its ``output_link``)
OUTPUT_LINKS = ("affine", "logit")


def activation(z: torch.Tensor, leak: float = LEAK) -> torch.Tensor:
    """Saturating activation: ``leak*z`` (z<0), ``z`` (0≤z<0.5), ``1 - 0.25/z`` (z≥0.5).

    Written branch-free as ``min(max(z, leak*z), 1 - 0.25/max(z, 0.5))`` (for 0 ≤ leak ≤ 1;
    ``1 - 0.25/z ≤ z`` with equality at 0.5): about 9× faster on CPU than two ``torch.where``,
    and this is the inner loop of every steady-state solve.
    """
    mm = z.clamp(min=0.5).reciprocal_().mul_(-0.25).add_(1.0)
    return torch.minimum(torch.maximum(z, z * leak), mm)


def activation_grad(z: torch.Tensor, leak: float = LEAK) -> torch.Tensor:
    """Derivative of :func:`activation` (in (0, 1])."""
    g = torch.where(z < 0, torch.full_like(z, leak), torch.ones_like(z))
    return torch.where(z >= 0.5, 0.25 / z.clamp(min=0.5) ** 2, g)


@dataclass
class SolveStats:
    """Diagnostics of the last steady-state solve (forward) and adjoint solve (backward)."""

    forward_iterations: int = 0
    forward_residual: float = 0.0
    backward_iterations: int = 0
    backward_residual: float = 0.0


class _Graph:
    """Fixed sparsity pattern of W (rows = targets) and Wᵀ, with value permutations for CSR."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, n: int, device: torch.device) -> None:
        self.n = n
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        order = np.lexsort((src, dst))  # W: row = dst, col = src
        order_t = np.lexsort((dst, src))  # Wᵀ: row = src, col = dst
        self.perm = torch.as_tensor(order, device=device)
        self.perm_t = torch.as_tensor(order_t, device=device)
        self.crow = torch.as_tensor(np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))]), device=device)
        self.col = torch.as_tensor(src[order], device=device)
        self.crow_t = torch.as_tensor(np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]), device=device)
        self.col_t = torch.as_tensor(dst[order_t], device=device)
        self.src = torch.as_tensor(src, device=device)
        self.dst = torch.as_tensor(dst, device=device)

    def matrices(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR matrices W and Wᵀ (no autograd) for edge values ``w`` (in edge order)."""
        w = w.detach()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            W = torch.sparse_csr_tensor(self.crow, self.col, w[self.perm], (self.n, self.n), check_invariants=False)
            Wt = torch.sparse_csr_tensor(
                self.crow_t, self.col_t, w[self.perm_t], (self.n, self.n), check_invariants=False
            )
        return W, Wt


def solve_steady_state(
    W: torch.Tensor,
    c: torch.Tensor,
    max_iter: int,
    tol: float,
    leak: float,
    check: int = 5,
    x0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """Iterate ``x <- f(W x + c)`` from ``x0`` (default ``f(c)``); stop when max|Δx| < ``tol``
    (checked every ``check`` iterations) or after ``max_iter``. Returns (x, z = W x + c,
    iterations, residual). A warm start ``x0`` (e.g. the previous epoch's states) changes only the
    number of iterations, not the fixed point (unique when ρ(diag(f')|W|) < 1)."""
    x = activation(c, leak) if x0 is None else x0
    it = 0
    res = float("inf")
    while it < max_iter:
        x_new = activation(W @ x + c, leak)
        it += 1
        if it % check == 0 or it == max_iter:
            res = float((x_new - x).abs().max()) if x.numel() else 0.0
            x = x_new
            if res < tol:
                break
        else:
            x = x_new
    z = W @ x + c
    return activation(z, leak), z, it, res


class _SteadyState(torch.autograd.Function):
    """x* = f(W x* + c) with the implicit gradient w.r.t. edge values w and drive c."""

    @staticmethod
    def forward(ctx, w, c, graph, max_iter, tol, leak, stats, warm):  # type: ignore[override]
        W, Wt = graph.matrices(w)
        x0 = warm.get("x") if warm is not None else None
        if x0 is not None and x0.shape != c.shape:
            x0 = None
        x, z, it, res = solve_steady_state(W, c, max_iter, tol, leak, x0=x0)
        if warm is not None:
            warm["x"] = x
        stats.forward_iterations = it
        stats.forward_residual = res
        ctx.save_for_backward(x, z)
        ctx.graph = graph
        ctx.Wt = Wt
        ctx.max_iter = max_iter
        ctx.tol = tol
        ctx.leak = leak
        ctx.stats = stats
        ctx.warm = warm
        return x

    @staticmethod
    def backward(ctx, gx):  # type: ignore[override]
        x, z = ctx.saved_tensors
        g = ctx.graph
        fp = activation_grad(z, ctx.leak)
        warm = ctx.warm
        v0 = warm.get("v") if warm is not None else None
        v = fp * gx if v0 is None or v0.shape != gx.shape else v0
        it = 0
        res = float("inf")
        scale = float(gx.abs().max()) + 1e-30
        while it < ctx.max_iter:
            v_new = fp * (gx + ctx.Wt @ v)
            it += 1
            if it % 5 == 0 or it == ctx.max_iter:
                res = float((v_new - v).abs().max()) / scale
                v = v_new
                if res < ctx.tol:
                    break
            else:
                v = v_new
        ctx.stats.backward_iterations = it
        ctx.stats.backward_residual = res
        if warm is not None:
            warm["v"] = v
        grad_w = (v[g.dst] * x[g.src]).sum(dim=1)
        return grad_w, v, None, None, None, None, None, None


class SignalingNetwork(nn.Module):
    """Prior-knowledge recurrent network on a signed directed graph (see module docstring).

    Args:
        node_names: the graph's nodes (n_nodes).
        src, dst: edge endpoints as node indices (n_edges each); an edge means src acts on dst.
        sign: +1 activating, -1 inhibiting, 0 unknown (n_edges); initial weights are
            ``sign * init_weight`` (unknown: ``±init_weight/2`` at random).
        input_nodes: node index of each input (n_in).
        output_nodes: node index of each output (n_out).
        max_iter, tol: steady-state iteration limit and tolerance (max abs change of a state).
        spectral_bound: the bound on ρ(|W|) enforced by :meth:`regularization`.
    """

    kind = "signaling"

    def __init__(
        self,
        node_names: list[str],
        src: np.ndarray,
        dst: np.ndarray,
        sign: np.ndarray,
        input_nodes: np.ndarray,
        output_nodes: np.ndarray,
        *,
        max_iter: int = 150,
        tol: float = 1e-5,
        init_weight: float = 0.1,
        spectral_bound: float = 0.95,
        bias_init: float = 0.0,
        input_amplitude: float = 3.0,
        prescale: float | None = 0.7,
        baseline_state: float | None = 0.25,
        seed: int = 0,
        input_map: list[list[float]] | np.ndarray | None = None,
        output_link: str = "affine",
        readout_nodes: list[int] | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if output_link not in OUTPUT_LINKS:
            raise ValueError(f"output_link must be one of {OUTPUT_LINKS}, got {output_link!r}")
        #: how a TF node's state becomes an output: "affine" (``scale·x + offset``) or "logit"
        #: (``sigmoid(scale·x + offset)``: activities in (0, 1) that saturate as measured ones do)
        self.output_link = output_link
        self.node_names = list(node_names)
        n = len(self.node_names)
        self.n_nodes = n
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.spectral_bound = float(spectral_bound)
        self.leak = LEAK
        self.stats = SolveStats()
        gen = np.random.default_rng(seed)
        sign = np.asarray(sign, dtype=np.float64)
        s0 = sign.copy()
        unknown = s0 == 0
        s0[unknown] = gen.choice([-0.5, 0.5], size=int(unknown.sum()))
        if init_weight > 0:
            w0 = s0 * init_weight
        else:  # row-normalised: each node's incoming |weights| sum to -init_weight (so ρ(|W|) ≤ it)
            indeg = np.bincount(np.asarray(dst), minlength=n).astype(np.float64)
            w0 = s0 * (-init_weight) / np.maximum(indeg[np.asarray(dst)], 1.0)
        self.register_buffer("src", torch.as_tensor(np.asarray(src, dtype=np.int64)))
        self.register_buffer("dst", torch.as_tensor(np.asarray(dst, dtype=np.int64)))
        self.register_buffer("sign", torch.as_tensor(sign, dtype=torch.float32))
        self.register_buffer("input_nodes", torch.as_tensor(np.asarray(input_nodes, dtype=np.int64)))
        self.register_buffer("output_nodes", torch.as_tensor(np.asarray(output_nodes, dtype=np.int64)))
        self.edge_weight = nn.Parameter(torch.as_tensor(w0, dtype=torch.float32))
        self.node_bias = nn.Parameter(torch.full((n,), float(bias_init)))
        self.input_weight = nn.Parameter(torch.full((len(input_nodes),), float(input_amplitude)))
        self.output_scale = nn.Parameter(torch.ones(len(output_nodes)))
        self.output_offset = nn.Parameter(torch.zeros(len(output_nodes)))
        #: (n_in, n_in) or None: inputs are mixed as ``u @ input_map`` (row k: what input k
        #: becomes) before they drive the graph (see :meth:`substitute_unseen_inputs`); None =
        #: identity (every freshly trained model)
        self.input_map: torch.Tensor | None = None
        if input_map is not None:
            self.set_input_map(np.asarray(input_map, dtype=np.float64))
        #: graph readout (see :meth:`set_readout`): the nodes it reads (m,) and its weights
        #: (n_out, m); None = each output reads its own TF node (``output_scale``)
        self.register_buffer("readout_nodes", None)
        self.register_buffer("readout_weight", None)
        self.register_buffer("readout_offset", None)
        if readout_nodes is not None:
            nodes = np.asarray(readout_nodes, dtype=np.int64)
            self.set_readout(nodes, np.zeros((len(output_nodes), len(nodes))), np.zeros(len(output_nodes)))
        self._graph: _Graph | None = None
        self._graph_device: torch.device | None = None
        self._perron: tuple[torch.Tensor, torch.Tensor] | None = None
        self._last_gain: torch.Tensor | None = None
        self.last_rho = float("nan")
        #: warm-start cache for training (see :meth:`warm_start`); None = cold starts
        self._warm: dict[str, torch.Tensor] | None = None
        if prescale is not None:
            with torch.no_grad():
                for _ in range(3):
                    rho = float(self.spectral_radius(iterations=200))
                    if rho > 0:
                        self.edge_weight.mul_(prescale / rho)
                self._perron = None
        if baseline_state is not None:
            # biases that make every node sit at ``baseline_state`` without inputs (linear regime):
            # x0 = W x0 + b  =>  b = x0 (1 - Σ_in w)
            with torch.no_grad():
                rowsum = torch.zeros(n).index_add_(0, self.dst, self.edge_weight.detach())
                self.node_bias.copy_(float(baseline_state) * (1.0 - rowsum))

    # -- structure -------------------------------------------------------------------------
    def graph(self) -> _Graph:
        dev = self.edge_weight.device
        if self._graph is None or self._graph_device != dev:
            self._graph = _Graph(self.src.cpu().numpy(), self.dst.cpu().numpy(), self.n_nodes, dev)
            self._graph_device = dev
            self._perron = None
        return self._graph

    @property
    def n_inputs(self) -> int:
        return int(self.input_nodes.numel())

    @property
    def n_outputs(self) -> int:
        return int(self.output_nodes.numel())

    def drive(self, u: torch.Tensor) -> torch.Tensor:
        """Constant drive ``c = b + P u`` as (n_nodes, B) for inputs ``u`` (B, n_in)
        (``u`` first mixed by :attr:`input_map` when one is set)."""
        if self.input_map is not None:
            m = self.input_map.to(device=u.device, dtype=u.dtype)
            u = u @ m
        c = self.node_bias[:, None].expand(self.n_nodes, u.shape[0])
        placed = torch.zeros(self.n_nodes, u.shape[0], dtype=u.dtype, device=u.device)
        placed = placed.index_add(0, self.input_nodes, (u * self.input_weight).T)
        return c + placed

    def warm_start(self, on: bool = True) -> None:
        """Start each training solve (forward and adjoint) from the previous one's solution.

        For full-batch training the batch is the same every epoch and the weights move little per
        step, so this cuts the iterations several-fold; the solves still stop on the ``tol``
        residual test, and at a tight ``tol`` give the cold-start fixed point and gradient. With
        a loose ``tol`` the stopping test passes after a few iterations while the remaining error
        (up to ``tol/(1-ρ)``) now always lags the weight updates: on the ligand screen at
        ``tol=1e-4`` training stalled (train r 0.71 vs 0.77 cold, fold 0). Hence off by default;
        use it with ``tol`` ≲ 1e-6. A batch of another shape starts cold.
        """
        self._warm = {} if on else None

    def steady_state(self, u: torch.Tensor) -> torch.Tensor:
        """Node states at steady state, (n_nodes, B), for inputs ``u`` (B, n_in).

        With autograd on, the result carries the implicit gradient and ``f'(z*)`` is kept for
        the Jacobian spectral penalty; under ``torch.no_grad``/inference mode it is a plain solve.
        """
        c = self.drive(u)
        if not torch.is_grad_enabled():
            W, _ = self.graph().matrices(self.edge_weight)
            x, _, it, res = solve_steady_state(W, c, self.max_iter, self.tol, self.leak)
            self.stats.forward_iterations, self.stats.forward_residual = it, res
            return x
        x = _SteadyState.apply(
            self.edge_weight, c, self.graph(), self.max_iter, self.tol, self.leak, self.stats, self._warm
        )
        with torch.no_grad():
            self._last_gain = activation_grad(self.stats_z(x, c), self.leak)
        return x

    def stats_z(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Pre-activation ``W x + c`` at states ``x`` (no autograd)."""
        W, _ = self.graph().matrices(self.edge_weight)
        return W @ x.detach() + c.detach()

    def output_map(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs (B, n_out) from node states ``x`` (n_nodes, B) through :attr:`output_link`
        (or through the graph readout, when one is set: :meth:`set_readout`)."""
        if self.readout_weight is not None:
            return x[self.readout_nodes].T @ self.readout_weight.T + self.readout_offset
        z = (x[self.output_nodes].T * self.output_scale) + self.output_offset
        return torch.sigmoid(z) if self.output_link == "logit" else z

    @torch.no_grad()
    def set_readout(self, nodes: np.ndarray, weight: np.ndarray, offset: np.ndarray) -> None:
        """Read every output as a linear combination of node states: ``y = weight @ x[nodes] +
        offset`` (``nodes`` (m,) node indices, ``weight`` (n_out, m), ``offset`` (n_out,)),
        in place of the affine map of each output's own TF node (kept: :meth:`clear_readout`).
        The readout is the network's output layer: it reads only graph node states (see
        :func:`tme_sim.training.readout.fit_graph_readout`, which picks, for each output, its TF
        node and the nodes upstream of it in the graph). Needs the affine output link."""
        if self.output_link != "affine":
            raise ValueError("a graph readout needs output_link = 'affine'")
        nodes = np.asarray(nodes, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != (self.n_outputs, len(nodes)) or np.shape(offset) != (self.n_outputs,):
            raise ValueError(f"readout weight must be ({self.n_outputs}, {len(nodes)}) and offset ({self.n_outputs},)")
        if len(nodes) and (nodes.min() < 0 or nodes.max() >= self.n_nodes):
            raise ValueError(f"readout nodes must lie in [0, {self.n_nodes})")
        dev = self.edge_weight.device
        self.readout_nodes = torch.as_tensor(nodes, device=dev)
        self.readout_weight = torch.as_tensor(weight, dtype=torch.float32, device=dev)
        self.readout_offset = torch.as_tensor(np.asarray(offset), dtype=torch.float32, device=dev)

    def clear_readout(self) -> None:
        """Remove the graph readout: outputs read their TF nodes again (``output_scale``/``offset``)."""
        self.readout_nodes = self.readout_weight = self.readout_offset = None

    def output_bias(self) -> np.ndarray:
        """The output layer's offset (n_out,) float64: the graph readout's, or ``output_offset``."""
        b = self.readout_offset if self.readout_weight is not None else self.output_offset
        return b.detach().cpu().numpy().astype(np.float64)

    def output_matrix(self) -> np.ndarray:
        """The output layer as a dense (n_nodes, n_out) float64 matrix ``E`` with ``y = xᵀ E + offset``
        (affine link): the TF nodes' scales, or the graph readout's weights."""
        e = np.zeros((self.n_nodes, self.n_outputs))
        if self.readout_weight is not None:
            np.add.at(e, self.readout_nodes.cpu().numpy(), self.readout_weight.detach().cpu().numpy().T)
        else:
            out = self.output_nodes.cpu().numpy()
            e[out, np.arange(len(out))] = self.output_scale.detach().cpu().numpy()
        return e

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Predicted outputs (B, n_out) for inputs (B, n_in)."""
        return self.output_map(self.steady_state(u))

    @torch.no_grad()
    def impute_unseen_inputs(self, seen: np.ndarray) -> int:
        """Give inputs never active in training (``seen[k]`` False) typical trained weights.

        Their input weight and the weights of the edges leaving their nodes received no gradient
        (the input was always 0), so they still hold initial values. They are set to the median
        of the seen inputs' input weights and, edge by edge, to ``sign`` × the median magnitude of
        the seen inputs' out-edges (unknown sign: the initial sign). This is the prior-knowledge
        guess "an unseen ligand acts on its receptors as strongly as a typical seen ligand".
        Returns the number of inputs changed.
        """
        seen = np.asarray(seen, dtype=bool)
        if seen.all() or not seen.any():
            return 0
        in_nodes = self.input_nodes.cpu().numpy()
        src = self.src.cpu().numpy()
        w = self.edge_weight
        seen_nodes = np.unique(in_nodes[seen])
        unseen_nodes = np.setdiff1d(np.unique(in_nodes[~seen]), seen_nodes)
        seen_edges = np.isin(src, seen_nodes)
        mag = float(w[torch.as_tensor(seen_edges, device=w.device)].abs().median()) if seen_edges.any() else 0.0
        iw = float(self.input_weight[torch.as_tensor(seen, device=w.device)].median())
        self.input_weight[torch.as_tensor(~seen, device=w.device)] = iw
        e = torch.as_tensor(np.isin(src, unseen_nodes), device=w.device)
        sgn = torch.where(self.sign[e] != 0, self.sign[e], torch.sign(w[e]))
        w[e] = sgn * mag
        return int((~seen).sum())

    def set_input_map(self, m: np.ndarray | None) -> None:
        """Set (or clear, with None or the identity) the input mixing matrix (n_in, n_in)."""
        self.input_map = input_map_tensor(m, self.n_inputs)

    def input_similarity(self, hops: int = 2) -> np.ndarray:
        """Graph similarity of the inputs (n_in, n_in): Jaccard index of the sets of nodes each
        input node reaches in 1..``hops`` steps along the graph's edges (its receptors, their
        targets, ...). 1 = the same receptors and downstream nodes (e.g. IL4 and IL13)."""
        n, k = self.n_nodes, self.n_inputs
        src, dst = self.src.cpu().numpy(), self.dst.cpu().numpy()
        adj = np.zeros((n, n), dtype=bool)
        adj[src, dst] = True
        cur = np.zeros((k, n), dtype=bool)
        cur[np.arange(k), self.input_nodes.cpu().numpy()] = True
        reach = np.zeros((k, n), dtype=bool)
        for _ in range(max(1, int(hops))):
            cur = (cur.astype(np.float32) @ adj.astype(np.float32)) > 0
            reach |= cur
        r = reach.astype(np.float64)
        inter = r @ r.T
        size = r.sum(1)
        union = size[:, None] + size[None, :] - inter
        return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)

    def substitute_unseen_inputs(
        self, seen: np.ndarray, hops: int = 1, weighting: str = "soft", shrink: float = 1.0
    ) -> int:
        """Let each input never active in training (``seen[k]`` False) act like the seen inputs
        that are similar to it in the graph.

        An unseen input's edges and input weight got no signal from the data, so its own path
        through the graph is untrained. Instead, :attr:`input_map` replaces it by seen inputs
        weighted by :meth:`input_similarity` (``hops`` = 1: shared receptors), so that it
        inherits their *learned* paths: held-out IL4 acts like IL13 (the same receptors), IL1RN
        like IL1A/IL1B. See :func:`unseen_input_map` for ``weighting`` and ``shrink``. Seen
        inputs are unchanged. Returns the number substituted.
        """
        seen = np.asarray(seen, dtype=bool)
        self.set_input_map(unseen_input_map(self.input_similarity(hops), seen, weighting, shrink))
        return 0 if self.input_map is None else int((~seen).sum())

    # -- regularisation ----------------------------------------------------------------------
    def spectral_radius(self, gain: torch.Tensor | None = None, iterations: int = 10) -> torch.Tensor:
        """Differentiable estimate of ρ(diag(gain_b)|W|) per column b of ``gain`` (n_nodes, B).

        Without ``gain`` this is ρ(|W|), a bound for every input (|f'| ≤ 1). With ``gain =
        f'(z*)`` of training conditions it bounds the local Jacobian at those steady states (the
        LEMBAS criterion, but on |J|, which bounds ρ(J)). Estimate: ρ_b = v_bᵀ A_b u_b / v_bᵀ u_b
        with u_b, v_b right/left Perron vectors (power iteration, held fixed, warm-started); its
        gradient is the exact eigenvalue derivative. Returns a (B,) tensor (or a scalar).
        """
        g = self.graph()
        a = self.edge_weight.abs()
        W, Wt = g.matrices(a)
        n = self.n_nodes
        b = 1 if gain is None else gain.shape[1]
        gd = torch.ones(n, 1, device=a.device) if gain is None else gain.detach()
        with torch.no_grad():
            if self._perron is None or self._perron[0].shape[1] != b:
                u = torch.ones(n, b, device=a.device)
                v = torch.ones(n, b, device=a.device)
            else:
                u, v = self._perron
            for _ in range(iterations):
                u = gd * (W @ u) + 1e-6
                u = u / u.norm(dim=0)
                v = Wt @ (gd * v) + 1e-6
                v = v / v.norm(dim=0)
            self._perron = (u, v)
        # v_bᵀ diag(g_b)|W| u_b = Σ_e |w_e| g_b[dst] v_b[dst] u_b[src]
        num = (a[:, None] * (gd * v)[g.dst] * u[g.src]).sum(0)
        rho = num / (v * u).sum(0).clamp(min=1e-12)
        return rho[0] if gain is None else rho

    def regularization(
        self,
        *,
        l2: float = 1e-5,
        sign: float = 1e-2,
        spectral: float = 1.0,
        bias_l2: float = 1e-5,
        gain: torch.Tensor | None = None,
        spectral_iterations: int = 10,
    ) -> torch.Tensor:
        """Penalty: L2 on weights/biases, sign violations, spectral radius above ``spectral_bound``.

        ``gain`` (n_nodes, B): f'(z*) at training steady states (see :meth:`spectral_radius`).
        ``spectral_iterations``: power iterations per call (the Perron vectors are warm-started
        from the previous call, so a few suffice once training is under way).
        """
        w = self.edge_weight
        pen = l2 * (w**2).sum() + bias_l2 * (self.node_bias**2).sum()
        pen = pen + sign * torch.relu(-self.sign * w).sum()
        rho = self.spectral_radius(gain, iterations=spectral_iterations)
        self.last_rho = float(rho.detach().max())
        pen = pen + spectral * 100.0 * (torch.relu(rho - self.spectral_bound) ** 2).sum()
        return pen

    def last_gain(self) -> torch.Tensor | None:
        """f'(z*) of the last forward pass (n_nodes, B), for the Jacobian spectral penalty."""
        return self._last_gain

    def config(self) -> dict:
        """Constructor keyword arguments (with arrays as lists) to rebuild the module."""
        return {
            "node_names": self.node_names,
            "src": self.src.cpu().tolist(),
            "dst": self.dst.cpu().tolist(),
            "sign": self.sign.cpu().tolist(),
            "input_nodes": self.input_nodes.cpu().tolist(),
            "output_nodes": self.output_nodes.cpu().tolist(),
            "max_iter": self.max_iter,
            "tol": self.tol,
            "spectral_bound": self.spectral_bound,
            **({"input_map": self.input_map.cpu().tolist()} if self.input_map is not None else {}),
            **({"output_link": self.output_link} if self.output_link != "affine" else {}),
            **({"readout_nodes": self.readout_nodes.cpu().tolist()} if self.readout_nodes is not None else {}),
        }


def state_spread_penalty(x: torch.Tensor, state_max: float = 1 / 1.2) -> torch.Tensor:
    """Penalty that keeps every node's steady state spread over ``[0, state_max]`` across conditions.

    ``x`` (n_nodes, B): node states of a batch of conditions. Per node, the squared gaps between
    its mean and ``state_max/2``, its variance and ``state_max²/12`` (a uniform distribution on
    the interval), its minimum and 0 and its maximum and ``state_max`` are summed over nodes, plus
    ``-max`` for nodes whose maximum is ≤ 0 (never active). This is the "uniform" state loss of
    LEMBAS (Nilsson et al. 2022, ``bionetwork.uniformLossBatch``; ``state_max = 1/1.2``, the
    inverse of its output-projection amplitude). Without it most nodes of the ligand-screen graph
    end in the leaky regime (max state < 0 in every condition) or constant, so no signal passes
    through them and the network cannot fit its training data.
    """
    mean = x.mean(1)
    var = ((x - mean[:, None]) ** 2).mean(1)
    hi = x.max(1).values
    lo = x.min(1).values
    pen = ((mean - state_max / 2) ** 2).sum() + ((var - state_max**2 / 12) ** 2).sum()
    pen = pen + ((hi - state_max) ** 2).sum() + (lo**2).sum()
    return pen - hi[hi.detach() <= 0].sum()


def input_map_tensor(m: np.ndarray | list | None, n_inputs: int) -> torch.Tensor | None:
    """An input mixing matrix (n_in, n_in) as a float32 tensor, or None for None or the identity."""
    if m is None:
        return None
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (n_inputs, n_inputs):
        raise ValueError(f"input_map must be ({n_inputs}, {n_inputs}), got {m.shape}")
    return None if np.array_equal(m, np.eye(n_inputs)) else torch.as_tensor(m, dtype=torch.float32)


def unseen_input_map(
    similarity: np.ndarray, seen: np.ndarray, weighting: str = "soft", shrink: float = 1.0
) -> np.ndarray:
    """Input mixing matrix (n_in, n_in) that replaces each unseen input by similar seen ones.

    Row ``k`` says what input ``k`` becomes (inputs are mixed as ``u @ map``). Seen inputs
    (``seen[k]`` True) keep their identity row. An unseen input's row is ``shrink`` × a weighted
    average of the seen inputs by ``similarity[k]`` (n_in, n_in; ≥ 0, e.g.
    :meth:`SignalingNetwork.input_similarity`): ``weighting = "soft"`` — weights ∝ similarity
    over every seen input with similarity > 0; ``"top"`` — the most similar seen inputs only
    (ties averaged). ``shrink`` < 1 hedges the guess towards "no effect" (a ligand is rarely an
    exact copy of its nearest graph neighbour). An unseen input similar to no seen input gets a
    row of zeros (no known effect). With every input seen, or none, the map is the identity.
    """
    if weighting not in ("soft", "top"):
        raise ValueError(f"weighting must be 'soft' or 'top', got {weighting!r}")
    if not 0.0 <= shrink <= 1.0:
        raise ValueError(f"shrink must be in [0, 1], got {shrink}")
    seen = np.asarray(seen, dtype=bool)
    sim = np.asarray(similarity, dtype=np.float64)
    k = len(sim)
    if sim.shape != (k, k) or seen.shape != (k,):
        raise ValueError(f"similarity {sim.shape} and seen {seen.shape} must be (n_in, n_in) and (n_in,)")
    m = np.eye(k)
    if seen.all() or not seen.any():
        return m
    sim = np.clip(sim, 0.0, None) * seen[None, :]
    for i in np.flatnonzero(~seen):
        s = sim[i]  # s[i] is 0: column i (unseen) was zeroed above
        m[i] = 0.0
        if s.max() > 0:
            w = s if weighting == "soft" else ((s >= s.max() - 1e-12) & (s > 0)).astype(np.float64)
            m[i] = shrink * w / w.sum()
    return m


def to_logit(y: Any, eps: float) -> Any:
    """Squeezed logit ``log(q / (1 - q))`` with ``q = eps + (1 - 2 eps) y`` (torch or numpy).

    Maps activities ``y`` in [0, 1] onto the real line without clipping (``eps`` > 0 keeps 0
    and 1 finite: ±logit(eps)); :func:`from_logit` is its inverse. A model fitted in this space
    predicts additive effects on the log-odds, which saturate near 0 and 1 as activities do.
    """
    q = eps + (1.0 - 2.0 * eps) * y
    if isinstance(q, torch.Tensor):
        return torch.logit(q)
    q = np.asarray(q)
    return np.log(q / (1.0 - q))


def from_logit(z: Any, eps: float) -> Any:
    """Inverse of :func:`to_logit`: ``(sigmoid(z) - eps) / (1 - 2 eps)`` (torch or numpy);
    range (-eps, 1 + eps)/(1 - 2 eps)."""
    if isinstance(z, torch.Tensor):
        q = torch.sigmoid(z)
    else:
        q = 1.0 / (1.0 + np.exp(-np.asarray(z)))
    return (q - eps) / (1.0 - 2.0 * eps)


def in_unit_interval(y: np.ndarray) -> bool:
    """Whether every value of ``y`` is finite and in [0, 1] (True for an empty array)."""
    y = np.asarray(y)
    return not y.size or bool(np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0)


def check_unit_interval(y: np.ndarray, what: str) -> None:
    """Raise ValueError unless :func:`in_unit_interval` (logit targets)."""
    if not in_unit_interval(y):
        y = np.asarray(y)
        raise ValueError(f"{what} needs targets in [0, 1]; got values in [{np.nanmin(y):.3g}, {np.nanmax(y):.3g}]")


class DenseMLP(nn.Module):
    """Dense baseline with the same inputs and outputs: n_in → hidden (×layers, SiLU) → n_out.

    ``head = "linear"``: affine outputs (targets need not lie in [0, 1]); ``"softmax"``: outputs
    are probabilities summing to 1 (fate distributions, see :mod:`tme_sim.training.distill`).
    ``logit_eps`` > 0 (linear head only): the network computes squeezed log-odds (:meth:`raw`,
    fitted to :func:`to_logit` of the targets by :func:`tme_sim.training.train.fit`) and
    :meth:`forward` returns activities (:func:`from_logit`).
    """

    kind = "mlp"

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.1,
        head: str = "linear",
        logit_eps: float = 0.0,
    ) -> None:
        super().__init__()
        if head not in ("linear", "softmax"):
            raise ValueError(f"head must be 'linear' or 'softmax', got {head!r}")
        if not 0.0 <= logit_eps < 0.5 or (logit_eps > 0 and head != "linear"):
            raise ValueError(f"logit_eps must be in [0, 0.5) and needs the linear head, got {logit_eps!r} ({head})")
        self.n_in, self.n_out, self.hidden, self.layers, self.dropout = n_in, n_out, hidden, layers, dropout
        self.head = head
        self.logit_eps = float(logit_eps)
        mods: list[nn.Module] = []
        d = n_in
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.SiLU(), nn.Dropout(dropout)]
            d = hidden
        mods.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(*mods)

    def raw(self, u: torch.Tensor) -> torch.Tensor:
        """The network's own output (B, n_out): what training fits (log-odds when ``logit_eps``)."""
        return self.net(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        y = self.net(u)
        if self.head == "softmax":
            return torch.softmax(y, dim=-1)
        return from_logit(y, self.logit_eps) if self.logit_eps > 0 else y

    def regularization(self, **_: float) -> torch.Tensor:
        return torch.zeros((), device=self.net[0].weight.device)

    @property
    def n_inputs(self) -> int:
        return self.n_in

    @property
    def n_outputs(self) -> int:
        return self.n_out

    def config(self) -> dict:
        return {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "hidden": self.hidden,
            "layers": self.layers,
            "dropout": self.dropout,
            "head": self.head,
            **({"logit_eps": self.logit_eps} if self.logit_eps > 0 else {}),
        }


class HybridSignaling(nn.Module):
    """Prior-knowledge recurrent network + reduced-rank linear path (+ optional dense MLP), kind ``"hybrid"``.

    ``y(u) = linear_weight · (u A + a) + rnn_weight · rnn(u) + mlp_weight · mlp(u)``, where

    * ``rnn`` is a :class:`SignalingNetwork` on the prior-knowledge graph,
    * ``A`` (n_in × n_out, rank ≤ ``rank``) and ``a`` (n_out) are a reduced-rank ridge regression
      of the outputs on the inputs (:func:`reduced_rank_ridge_fit`, set by :meth:`fit_linear`;
      buffers, not trained by gradient) — the additive per-input effects along the few dominant
      output directions (the TF activities of the ligand screen are close to rank 3). With
      ``logit_eps`` > 0 it is fitted to the squeezed log-odds of the targets (:func:`to_logit`)
      and ``linear(u) = from_logit(u A + a)``: effects add on the log-odds and saturate near 0
      and 1, as activities do,
    * ``mlp`` (optional, ``mlp`` = its :class:`DenseMLP` keyword arguments) is a dense network.

    **MLP gate.** ``gated_inputs`` (indices; set by :meth:`set_training_support`) lists the
    inputs never active in training. The MLP has no evidence about them — what it returns for an
    input vector outside its training support is an unchecked extrapolation — so its weight moves
    to the linear path (whose response to such an input is the graph substitution,
    :meth:`substitute_unseen_inputs`) in proportion to their activity:
    ``mlp(u) → s·mlp(u) + (1 − s)·linear(u)`` with ``s = 1 − min(1, Σ_{j unseen} |u_j|)``
    (:meth:`mlp_share`). For a model trained on every input ``s`` = 1.

    The weights are fixed numbers (not learned). With ``linear_weight + rnn_weight + mlp_weight
    = 1`` and every part fitted to the targets this is an averaging ensemble ("blend"); with the
    network fitted to the linear path's residuals, ``linear_weight = 1 - mlp_weight`` and
    ``rnn_weight = (1 - mlp_weight) · w`` it is "linear + w · residual network" ("residual").
    :func:`tme_sim.training.train.fit` fits the parts; :meth:`combine` mixes part outputs (torch or
    numpy), which the fast CPU inference path reuses.

    Args:
        signaling: keyword arguments of the :class:`SignalingNetwork` (its :meth:`~SignalingNetwork.config`).
        rank: rank of ``A`` (None = full ridge).
        rnn_weight, linear_weight, mlp_weight: the mixing weights above.
        mlp: keyword arguments of the :class:`DenseMLP` part (its :meth:`~DenseMLP.config`), or None.
        input_map: the input mixing matrix (:meth:`substitute_unseen_inputs`), or None.
        logit_eps: the linear path's log-odds squeeze (0 = fitted to the targets themselves).
        gated_inputs: indices of the inputs never active in training (the MLP gate), or None.
    """

    kind = "hybrid"

    def __init__(
        self,
        signaling: dict,
        *,
        rank: int | None = 3,
        rnn_weight: float = 1.0,
        linear_weight: float = 1.0,
        mlp_weight: float = 0.0,
        mlp: dict | None = None,
        input_map: list[list[float]] | np.ndarray | None = None,
        logit_eps: float = 0.0,
        gated_inputs: list[int] | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= logit_eps < 0.5:
            raise ValueError(f"logit_eps must be in [0, 0.5), got {logit_eps!r}")
        self.rnn = SignalingNetwork(**signaling)
        self.rank = None if rank is None else int(rank)
        self.rnn_weight = float(rnn_weight)
        self.linear_weight = float(linear_weight)
        self.mlp_weight = float(mlp_weight)
        self.mlp = DenseMLP(**mlp) if mlp is not None else None
        if self.mlp is not None and (self.mlp.n_in, self.mlp.n_out) != (self.rnn.n_inputs, self.rnn.n_outputs):
            raise ValueError("the MLP part must have the network's numbers of inputs and outputs")
        self.register_buffer("lin_coef", torch.zeros(self.rnn.n_inputs, self.rnn.n_outputs))
        self.register_buffer("lin_bias", torch.zeros(self.rnn.n_outputs))
        #: (n_in, n_in) or None: inputs are mixed as ``u @ input_map`` before *every* part (see
        #: :meth:`substitute_unseen_inputs`); None = identity (every freshly trained model)
        self.input_map: torch.Tensor | None = input_map_tensor(input_map, self.rnn.n_inputs)
        self.logit_eps = float(logit_eps)
        #: (k,) int64 indices of the inputs never active in training, or None (no MLP gate)
        self.gated_inputs: np.ndarray | None = None
        self.set_gated_inputs(gated_inputs)

    @property
    def node_names(self) -> list[str]:
        return self.rnn.node_names

    @property
    def n_inputs(self) -> int:
        return self.rnn.n_inputs

    @property
    def n_outputs(self) -> int:
        return self.rnn.n_outputs

    @property
    def tol(self) -> float:
        return self.rnn.tol

    @property
    def max_iter(self) -> int:
        return self.rnn.max_iter

    @torch.no_grad()
    def fit_linear(self, x: np.ndarray, y: np.ndarray, alpha: float) -> None:
        """Fit the linear path: reduced-rank ridge (:func:`reduced_rank_ridge_fit`) of ``y`` (n, n_out)
        on ``x`` (n, n_in)."""
        y = np.asarray(y, float)
        if self.logit_eps > 0:
            check_unit_interval(y, "a hybrid with a log-odds linear path (logit_eps > 0)")
            y = to_logit(y, self.logit_eps)
        coef, icpt = reduced_rank_ridge_fit(np.asarray(x, float), y, alpha, self.rank)
        self.lin_coef.copy_(torch.as_tensor(coef, dtype=self.lin_coef.dtype))
        self.lin_bias.copy_(torch.as_tensor(icpt, dtype=self.lin_bias.dtype))

    def linear(self, u: torch.Tensor) -> torch.Tensor:
        """The linear path ``u A + a`` (B, n_out) (through :func:`from_logit` when ``logit_eps``)."""
        z = u @ self.lin_coef.to(u.dtype) + self.lin_bias.to(u.dtype)
        return from_logit(z, self.logit_eps) if self.logit_eps > 0 else z

    def set_gated_inputs(self, unseen: list[int] | np.ndarray | None) -> None:
        """Set the MLP gate's inputs (indices; None or empty = no gate)."""
        idx = None if unseen is None else np.unique(np.asarray(unseen, dtype=np.int64))
        if idx is not None and idx.size and (idx.min() < 0 or idx.max() >= self.n_inputs):
            raise ValueError(f"gated_inputs: indices must lie in [0, {self.n_inputs})")
        self.gated_inputs = idx if idx is not None and idx.size else None

    def set_training_support(self, x_train: np.ndarray) -> int:
        """Gate the MLP part on the inputs never active in ``x_train`` (n, n_in) (see the class
        docstring); returns how many there are."""
        seen = np.abs(np.asarray(x_train)).max(0) > 0
        self.set_gated_inputs(np.flatnonzero(~seen))
        return int((~seen).sum())

    def mlp_share(self, u: Any) -> Any:
        """The MLP gate's share ``s`` (B, 1) for *unmixed* inputs ``u`` (B, n_in) (torch or numpy),
        or None when there is no gate."""
        if self.gated_inputs is None:
            return None
        if isinstance(u, torch.Tensor):
            idx = torch.as_tensor(self.gated_inputs, device=u.device)
            return 1.0 - u.index_select(1, idx).abs().sum(1, keepdim=True).clamp(max=1.0)
        u = np.asarray(u)
        return 1.0 - np.minimum(np.abs(u[:, self.gated_inputs]).sum(1, keepdims=True), 1.0).astype(u.dtype)

    def combine(self, lin: Any, rnn: Any, mlp: Any = None, share: Any = None) -> Any:
        """The output from the parts' outputs (each (B, n_out), all torch or all numpy) and the
        MLP gate's share (:meth:`mlp_share`; None = 1)."""
        y = self.linear_weight * lin + self.rnn_weight * rnn
        if self.mlp is not None and self.mlp_weight != 0:
            if share is not None:
                mlp = share * mlp + (1.0 - share) * lin
            y = y + self.mlp_weight * mlp
        return y

    def set_input_map(self, m: np.ndarray | None) -> None:
        """Set (or clear, with None or the identity) the input mixing matrix (n_in, n_in)."""
        self.input_map = input_map_tensor(m, self.n_inputs)

    def substitute_unseen_inputs(
        self, seen: np.ndarray, hops: int = 3, weighting: str = "top", shrink: float = 0.5
    ) -> int:
        """Let each input never active in training act like the seen inputs most similar to it in
        the prior-knowledge graph, in *all* parts (linear path, MLP, network).

        The linear path and the MLP know nothing about an input they never saw (its coefficient
        is 0: it is predicted to do nothing); the graph does know which ligands share receptors
        and downstream nodes. :func:`unseen_input_map` on the network's
        :meth:`~SignalingNetwork.input_similarity` (``hops`` steps) builds an :attr:`input_map`
        applied to the inputs before every part; the network's own map is cleared so the
        mixing is not applied twice. Returns the number of inputs substituted.
        """
        seen = np.asarray(seen, dtype=bool)
        self.rnn.set_input_map(None)
        self.set_input_map(unseen_input_map(self.rnn.input_similarity(hops), seen, weighting, shrink))
        return 0 if self.input_map is None else int((~seen).sum())

    def mix_inputs(self, u: Any) -> Any:
        """``u @ input_map`` (torch or numpy (B, n_in)); ``u`` itself without a map."""
        if self.input_map is None:
            return u
        if isinstance(u, torch.Tensor):
            return u @ self.input_map.to(device=u.device, dtype=u.dtype)
        return np.asarray(u) @ self.input_map.cpu().numpy().astype(np.asarray(u).dtype)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Predicted outputs (B, n_out) for inputs (B, n_in)."""
        share = self.mlp_share(u)
        u = self.mix_inputs(u)
        return self.combine(self.linear(u), self.rnn(u), self.mlp(u) if self.mlp is not None else None, share)

    def linear_numpy(self, u: np.ndarray) -> np.ndarray:
        """The linear path in numpy float32 (for the fast CPU inference path)."""
        c = self.lin_coef.detach().cpu().numpy().astype(np.float32)
        b = self.lin_bias.detach().cpu().numpy().astype(np.float32)
        z = np.asarray(u, dtype=np.float32) @ c + b
        return from_logit(z, np.float32(self.logit_eps)).astype(np.float32) if self.logit_eps > 0 else z

    def regularization(self, **kw: float) -> torch.Tensor:
        return self.rnn.regularization(**kw)

    def config(self) -> dict:
        return {
            "signaling": self.rnn.config(),
            "rank": self.rank,
            "rnn_weight": self.rnn_weight,
            "linear_weight": self.linear_weight,
            "mlp_weight": self.mlp_weight,
            "mlp": self.mlp.config() if self.mlp is not None else None,
            **({"input_map": self.input_map.cpu().tolist()} if self.input_map is not None else {}),
            **({"logit_eps": self.logit_eps} if self.logit_eps > 0 else {}),
            **({"gated_inputs": self.gated_inputs.tolist()} if self.gated_inputs is not None else {}),
        }


def reduced_rank_ridge_fit(
    x: np.ndarray, y: np.ndarray, alpha: float, rank: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Reduced-rank ridge regression: the ridge fit (:func:`ridge_fit`) with its fitted values
    projected on their top ``rank`` right singular vectors (the dominant output directions),
    ``coef ← coef V_r V_rᵀ``. ``rank`` None (or ≥ n_out) = plain ridge. Returns (coef (n_in,
    n_out), intercept (n_out,)); the intercept keeps the fit unbiased at the mean input."""
    coef, icpt = ridge_fit(x, y, alpha)
    if rank is None or rank >= min(coef.shape):
        return coef, icpt
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    xm = x.mean(0)
    _, _, vt = np.linalg.svd((x - xm) @ coef, full_matrices=False)
    v = vt[:rank]
    coef = coef @ v.T @ v
    return coef, y.mean(0) - xm @ coef


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept: returns (coef (n_in, n_out), intercept)."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    a = xc.T @ xc + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(a, xc.T @ yc)
    return coef, ym - xm @ coef


@torch.inference_mode()
def steady_outputs_with_drugs(model: Any, u: torch.Tensor, extra_drive: torch.Tensor) -> torch.Tensor:
    """Outputs (B, n_out) of a :class:`~tme_sim.intracellular.neural.networks.SignalingNetwork` whose steady state
    is solved with ``extra_drive`` (n_nodes, B) added to its drive ``b + P u`` (of a
    :class:`~tme_sim.intracellular.neural.ensemble.SignalingEnsemble`: the mean over its members)."""
    members = getattr(model, "members", None)
    if members is not None:
        return torch.stack([steady_outputs_with_drugs(m, u, extra_drive) for m in members]).mean(0)
    c = model.drive(u) + extra_drive
    w_mat, _ = model.graph().matrices(model.edge_weight)
    x, _, _, _ = solve_steady_state(w_mat, c, model.max_iter, model.tol, model.leak)
    return model.output_map(x)
