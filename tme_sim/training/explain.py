"""Explain a prior-knowledge signaling model: which nodes and edges carry the response to each output.

For inputs ``u`` against a baseline ``u0`` (default: no input), a :class:`SignalingNetwork` at
steady state ``x* = f(W x* + c(u))`` answers with the output change ``Δy = y(u) − y(u0)``. How
the change travels through the graph is read from the model itself:

* **edge flow** (linearised, averaged over the two ends as in the trapezoid rule of integrated
  gradients): edge ``e: j → i`` changes the pre-activation of ``i`` by ``w_e Δx_j``; that reaches
  output ``m`` with the sensitivity ``g_m[i] = ∂y_m/∂z_i`` (one adjoint solve per output,
  ``h = s_m e_m + Wᵀ D h``, ``g = D h``, ``D = diag f'(z*)``). ``flow_e = ḡ_m[i] · w_e · Δx_j``;
* **node flow**: the part of ``Δy_m`` that passes *through* node ``k`` (the first-order effect of
  holding ``k`` at its baseline state): the sum of the flows of ``k``'s outgoing edges, plus
  ``s_m Δx_k`` when ``k`` is output ``m`` itself, divided by the amplification of the feedback
  loops through ``k`` (``M_kk``, ``M = (I − D W)⁻¹``; a signal that turns round a loop is
  otherwise counted once per turn); edge flows likewise (``1 + w_e (M D)_ji``). Networks over
  :data:`DENSE_LOOP_LIMIT` nodes skip this correction;
* **main path**: from each input that changed to the output, the path whose weakest edge carries
  the most flow (a widest path on ``|flow|``, Dijkstra-like), with the share of ``Δy_m`` its
  weakest edge carries;
* **knock-outs** (exact, not linearised): :func:`knockout_effect` removes a node (its state held
  at 0: its outgoing edges cut and, if it is an output, its read-out zeroed) and re-solves the
  steady state; the table gives each output with and without the knock-out.

A ``hybrid`` model is explained through its prior-knowledge network part (its linear and MLP
paths have no graph). ``tme explain ARTIFACT --input IFNG=1`` prints the tables.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tme_sim.errors import ConfigError
from tme_sim.intracellular.neural.networks import (
    HybridSignaling,
    SignalingNetwork,
    activation_grad,
    solve_steady_state,
)


def signaling_part(model: torch.nn.Module) -> SignalingNetwork:
    """The prior-knowledge network of ``model`` (a signaling model, or a hybrid's network part)."""
    if isinstance(model, SignalingNetwork):
        return model
    if isinstance(model, HybridSignaling):
        return model.rnn
    if hasattr(model, "members"):
        raise ConfigError(
            f"explain needs one network; this model is an ensemble of {len(model.members)} networks "
            "(train it with members = 1 to explain it)"
        )
    raise ConfigError(f"explain needs a signaling or hybrid model, not {type(model).__name__} (it has no network)")


@torch.no_grad()
def _state(net: SignalingNetwork, u: np.ndarray, weight: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Steady states x (n_nodes, B) and pre-activations z for inputs ``u`` (B, n_in)."""
    ut = torch.as_tensor(np.atleast_2d(u), dtype=torch.float32)
    c = net.drive(ut)
    W, _ = net.graph().matrices(net.edge_weight if weight is None else weight)
    x, z, _, _ = solve_steady_state(W, c, max(net.max_iter, 2000), min(net.tol, 1e-7), net.leak)
    return x.numpy().astype(np.float64), z.numpy().astype(np.float64)


def _sensitivity(net: SignalingNetwork, z: np.ndarray, iters: int = 5000, tol: float = 1e-10) -> np.ndarray:
    """``g[:, m] = ∂y_m/∂z`` (n_nodes, n_out) at pre-activations ``z`` (n_nodes,)."""
    d = activation_grad(torch.as_tensor(z), net.leak).numpy()
    src, dst = net.src.numpy(), net.dst.numpy()
    w = net.edge_weight.detach().numpy().astype(np.float64)
    e = net.output_matrix()  # (n_nodes, n_out): y = xᵀ e + offset
    h = e.copy()
    for _ in range(iters):  # h = e + Wᵀ D h  (converges: ρ(D|W|) < 1 at a stable steady state)
        dh = d[:, None] * h
        new = e.copy()
        np.add.at(new, src, w[:, None] * dh[dst])
        if np.abs(new - h).max() < tol:
            h = new
            break
        h = new
    return d[:, None] * h


#: networks up to this many nodes get the loop correction (one dense n x n inverse per end)
DENSE_LOOP_LIMIT = 4000


def _loop_matrix(net: SignalingNetwork, z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``M = (I - D W)^-1`` (dense, n x n) and ``D = f'(z)`` at pre-activations ``z``."""
    d = activation_grad(torch.as_tensor(z), net.leak).numpy()
    A = np.eye(net.n_nodes)
    np.add.at(A, (net.dst.numpy(), net.src.numpy()), -d[net.dst.numpy()] * w)
    return np.linalg.inv(A), d


@dataclass
class Explanation:
    """What carries the response to each output (see the module docstring). Arrays by output m."""

    node_names: list[str]
    output_names: list[str]
    input_names: list[str]
    delta_y: np.ndarray  # (n_out,) y(u) - y(u0)
    y: np.ndarray  # (n_out,) y(u)
    node_flow: np.ndarray  # (n_nodes, n_out)
    edge_flow: np.ndarray  # (n_edges, n_out)
    src: np.ndarray
    dst: np.ndarray
    input_nodes: np.ndarray
    output_nodes: np.ndarray
    changed_inputs: list[int] = field(default_factory=list)

    def top_nodes(self, m: int, k: int = 10, exclude_ends: bool = True) -> list[tuple[int, float]]:
        """The ``k`` nodes carrying most of output ``m``'s response: (node index, flow)."""
        skip = set(self.input_nodes.tolist()) | {int(self.output_nodes[m])} if exclude_ends else set()
        order = np.argsort(-np.abs(self.node_flow[:, m]), kind="stable")
        return [(int(i), float(self.node_flow[i, m])) for i in order if int(i) not in skip][:k]

    def top_edges(self, m: int, k: int = 10) -> list[tuple[int, float]]:
        order = np.argsort(-np.abs(self.edge_flow[:, m]), kind="stable")
        return [(int(e), float(self.edge_flow[e, m])) for e in order[:k]]

    def main_path(self, m: int) -> tuple[list[int], float]:
        """Widest path on |edge flow| from a changed input's node to output ``m``'s node: (nodes, weakest flow)."""
        cap = np.abs(self.edge_flow[:, m])
        n = len(self.node_names)
        adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        for e in np.flatnonzero(cap > 0):
            adj[int(self.src[e])].append((int(self.dst[e]), float(cap[e])))
        best = np.zeros(n)
        prev = np.full(n, -1)
        heap: list[tuple[float, int]] = []
        for i in self.changed_inputs:
            s = int(self.input_nodes[i])
            best[s] = np.inf
            heap.append((-np.inf, s))
        heapq.heapify(heap)
        done = np.zeros(n, dtype=bool)
        while heap:
            negw, v = heapq.heappop(heap)
            if done[v]:
                continue
            done[v] = True
            for t, c in adj[v]:
                w = min(-negw, c)
                if w > best[t] and not done[t]:
                    best[t], prev[t] = w, v
                    heapq.heappush(heap, (-w, t))
        target = int(self.output_nodes[m])
        if best[target] <= 0 or prev[target] < 0:
            return [], 0.0
        path = [target]
        while prev[path[-1]] >= 0:
            path.append(int(prev[path[-1]]))
        return path[::-1], float(best[target])


def explain(model: torch.nn.Module, u: np.ndarray, u0: np.ndarray | None = None) -> Explanation:
    """Edge and node flows of the response to inputs ``u`` (n_in,) against ``u0`` (default zeros)."""
    net = signaling_part(model)
    u = np.asarray(u, dtype=np.float64).ravel()
    u0 = np.zeros_like(u) if u0 is None else np.asarray(u0, dtype=np.float64).ravel()
    if u.shape != (net.n_inputs,) or u0.shape != u.shape:
        raise ConfigError(f"explain: expected {net.n_inputs} inputs, got {u.shape[0]}")
    x, z = _state(net, np.stack([u, u0]))
    g = 0.5 * (_sensitivity(net, z[:, 0]) + _sensitivity(net, z[:, 1]))  # trapezoid over the two ends
    dx = x[:, 0] - x[:, 1]
    src, dst = net.src.numpy(), net.dst.numpy()
    w = net.edge_weight.detach().numpy().astype(np.float64)
    edge_flow = g[dst] * (w * dx[src])[:, None]
    node_flow = np.zeros((net.n_nodes, net.n_outputs))
    np.add.at(node_flow, src, edge_flow)
    out = net.output_nodes.numpy()
    e = net.output_matrix()
    node_flow += e * dx[:, None]  # the output layer's own share (an output's TF node, or its readout nodes)
    if net.n_nodes <= DENSE_LOOP_LIMIT:
        # feedback loops through a node (edge) count its flow once per turn; dividing by the loop
        # amplification gives the first-order effect of holding that node (edge) at its baseline
        m_kk, md_ji = 0.0, 0.0
        for col in (0, 1):
            M, d = _loop_matrix(net, z[:, col], w)
            m_kk = m_kk + 0.5 * np.diag(M)
            md_ji = md_ji + 0.5 * M[src, dst] * d[dst]
        node_flow /= m_kk[:, None]
        edge_flow /= (1.0 + w * md_ji)[:, None]
    y = x.T @ e + net.output_bias()
    inp = net.input_nodes.numpy()
    return Explanation(
        node_names=list(net.node_names),
        output_names=[],
        input_names=[],
        delta_y=y[0] - y[1],
        y=y[0],
        node_flow=node_flow,
        edge_flow=edge_flow,
        src=src,
        dst=dst,
        input_nodes=inp,
        output_nodes=out,
        changed_inputs=[int(i) for i in np.flatnonzero(u != u0)],
    )


def knockout_effect(model: torch.nn.Module, u: np.ndarray, nodes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Outputs (n_out,) at inputs ``u`` without and with ``nodes`` knocked out (state held at 0)."""
    net = signaling_part(model)
    ko = np.zeros(net.n_nodes, dtype=bool)
    ko[np.asarray(nodes, dtype=np.int64)] = True
    w = net.edge_weight.detach().clone()
    w[torch.as_tensor(ko)[net.src]] = 0.0
    e = net.output_matrix()
    off = net.output_bias()
    x, _ = _state(net, u)
    xk, _ = _state(net, u, w)
    xk[ko] = 0.0
    return x[:, 0] @ e + off, xk[:, 0] @ e + off


def parse_assignments(items: list[str], what: str) -> dict[str, float]:
    """``["IFNG=1", "TNF=0.5"]`` → ``{"IFNG": 1.0, "TNF": 0.5}`` (one-line errors)."""
    out: dict[str, float] = {}
    for it in items:
        name, sep, val = it.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{what}: expected NAME=VALUE, got {it!r}")
        try:
            v = float(val)
        except ValueError:
            raise ConfigError(f"{what}: {name.strip()}: not a number ({val!r})") from None
        if not np.isfinite(v):
            raise ConfigError(f"{what}: {name.strip()}: not a finite number ({val!r})")
        out[name.strip()] = v
    return out


def node_lookup(node_names: list[str], labels: dict[str, str]) -> Any:
    """A function name → node index that accepts a node code or its label (case-insensitive)."""
    idx = {n: i for i, n in enumerate(node_names)}
    by_label: dict[str, list[int]] = {}
    for i, n in enumerate(node_names):
        by_label.setdefault(labels.get(n, n).upper(), []).append(i)

    def find(name: str) -> int:
        if name in idx:
            return idx[name]
        hits = by_label.get(name.upper(), [])
        if len(hits) == 1:
            return hits[0]
        raise ConfigError(f"--knockout: {name!r} is not a node of the model's network")

    return find
