"""A closed-form graph readout for a trained prior-knowledge network (``[train] readout = "graph"``).

The network's output layer normally reads each output (a transcription factor) from the steady
state of its own TF node, ``y_j = s_j x_j + o_j``. The graph readout reads it instead from the
states of its TF node **and of the nodes upstream of that node in the graph** (its regulators,
their regulators, … up to ``h`` steps; the network's input nodes excluded):

    y_j = Σ_{k ∈ U_h(j)} R_jk x_k + o_j

fitted in closed form by ridge regression on the training conditions' steady states (features
centred and scaled by one common factor, intercept unpenalised). The number of steps ``h`` and
the penalty are chosen **per output by inner cross-validation on the training conditions only**
(whole conditions, ``folds`` folds), so the held-out conditions of an outer CV play no part.
Only graph node states are read: there is no path from the inputs to the outputs outside the
graph (every readout node is reached from the inputs only through the network's edges), and
``h = 0`` is the TF node alone.

The states of the training conditions come from a network trained on those same conditions, so
the inner CV here is optimistic (the states already carry what training fitted); the choice is
still made without the held-out data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: default upstream steps (several are searched per output by inner CV; 0 = the TF node alone) and
#: penalty relative to the number of training conditions (features scaled to unit mean variance):
#: 5 steps at penalty 1, fixed on development seed 9 of the ligand screen (see TrainConfig.readout_hops)
READOUT_HOPS = (5,)
READOUT_ALPHAS = (1.0,)


def upstream_nodes(
    src: np.ndarray, dst: np.ndarray, n_nodes: int, target: int, hops: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Sorted node indices with a path of at most ``hops`` edges to ``target`` (``target`` itself
    included; nodes in ``exclude`` left out, though paths may pass through them)."""
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    seen = np.zeros(n_nodes, dtype=bool)
    seen[target] = True
    frontier = np.zeros(n_nodes, dtype=bool)
    frontier[target] = True
    for _ in range(int(hops)):
        nxt = np.zeros(n_nodes, dtype=bool)
        nxt[src[frontier[dst]]] = True
        frontier = nxt & ~seen
        seen |= nxt
        if not frontier.any():
            break
    if exclude is not None and len(exclude):
        keep = seen.copy()
        keep[np.asarray(exclude, np.int64)] = False
        keep[target] = True
        seen = keep
    return np.flatnonzero(seen)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Column means, one common scale (the root mean variance of the columns) and the scaled,
    centred matrix. One scale for all columns, not one per column: node states share their units,
    and a node that barely varies over the training conditions must stay small — scaled to unit
    variance it would get a full-size weight and blow up on a condition that moves it (an input
    never seen in training)."""
    mu = x.mean(0)
    v = float(x.var(0).mean()) if x.size else 0.0
    scale = float(np.sqrt(v)) if v > 1e-16 else 1.0
    return mu, scale, (x - mu) / scale


def ridge_path(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge predictions for ``x_te`` (n_te, p) at each absolute penalty in ``alphas``: (n_alpha, n_te).
    Features centred and scaled by one common factor on the training rows (:func:`_standardise`),
    intercept unpenalised; solved in the dual (one
    eigendecomposition of the n_tr × n_tr Gram matrix for all penalties: p is often ≫ n_tr)."""
    mu, sd, xs = _standardise(x_tr)
    ym = y_tr.mean()
    evals, u = np.linalg.eigh(xs @ xs.T)
    evals = np.clip(evals, 0.0, None)
    uty = u.T @ (y_tr - ym)
    k_te_u = ((x_te - mu) / sd) @ xs.T @ u  # (n_te, n_tr)
    return ym + (uty[None, :] / (evals[None, :] + alphas[:, None])) @ k_te_u.T


def ridge_coef(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge coefficients in the original units (p,) and intercept (features as in :func:`ridge_path`)."""
    mu, sd, xs = _standardise(x)
    ym = y.mean()
    evals, u = np.linalg.eigh(xs @ xs.T)
    evals = np.clip(evals, 0.0, None)
    w_s = xs.T @ (u @ ((u.T @ (y - ym)) / (evals + alpha)))
    w = w_s / sd
    return w, float(ym - mu @ w)


@dataclass
class GraphReadout:
    """A fitted graph readout: ``y = weight @ x[nodes] + offset`` and what the inner CV chose."""

    nodes: np.ndarray  # (m,) node indices read
    weight: np.ndarray  # (n_out, m)
    offset: np.ndarray  # (n_out,)
    hops: np.ndarray  # (n_out,) chosen hops per output
    alpha: np.ndarray  # (n_out,) chosen relative penalty per output
    inner_mse: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_out,) at the choice

    def summary(self) -> dict[str, object]:
        """What was chosen, for a CV report's fold settings."""
        hv, hc = np.unique(self.hops, return_counts=True)
        return {
            "readout_nodes": len(self.nodes),
            "readout_hops": {int(h): int(c) for h, c in zip(hv, hc, strict=True)},
            "readout_alpha_median": float(np.median(self.alpha)) if self.alpha.size else float("nan"),
        }


def fit_graph_readout(
    states: np.ndarray,
    y: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    output_nodes: np.ndarray,
    input_nodes: np.ndarray,
    *,
    hops: Sequence[int] = READOUT_HOPS,
    alphas: Sequence[float] = READOUT_ALPHAS,
    folds: int = 5,
    seed: int = 0,
) -> GraphReadout:
    """Fit the graph readout (module docstring) of each output on training steady states.

    Args:
        states: (n, n_nodes) steady states of the training conditions.
        y: (n, n_out) their measured outputs.
        src, dst: the graph's edges; output_nodes (n_out,), input_nodes (n_in,): node indices.
        hops: candidate numbers of upstream steps; alphas: candidate penalties relative to the
            number of rows of each fit (absolute penalty = alpha × rows; features scaled to unit
            mean variance).
        folds: inner CV folds over the training conditions (seeded permutation with ``seed``).
    Each output gets the (hops, alpha) of least inner-CV squared error; ties go to fewer hops
    and the larger penalty. The chosen readout is refitted on all ``n`` rows.
    """
    states = np.asarray(states, np.float64)
    y = np.asarray(y, np.float64)
    n, n_nodes = states.shape
    if y.shape[0] != n:
        raise ValueError(f"states ({n} rows) and y ({y.shape[0]} rows) differ")
    if n < 4:
        raise ValueError(f"a graph readout needs at least 4 training conditions, got {n}")
    hops_l = sorted({int(h) for h in hops})
    alphas_l = sorted({float(a) for a in alphas}, reverse=True)  # ties: the larger penalty first
    if not hops_l or not alphas_l or min(hops_l) < 0 or min(alphas_l) <= 0:
        raise ValueError("readout hops must be >= 0 and alphas > 0 (at least one of each)")
    k = max(2, min(int(folds), n))
    fold_of = np.empty(n, dtype=np.int64)
    for f, idx in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), k)):
        fold_of[idx] = f
    n_out = y.shape[1]
    a_rel = np.asarray(alphas_l)
    chosen_nodes: list[np.ndarray] = []
    w_list: list[np.ndarray] = []
    offset = np.zeros(n_out)
    hop_of = np.zeros(n_out, dtype=np.int64)
    alpha_of = np.zeros(n_out)
    mse_of = np.zeros(n_out)
    for j in range(n_out):
        best = (np.inf, 0, 0.0, np.zeros(0, np.int64))
        for h in hops_l:
            feats = upstream_nodes(src, dst, n_nodes, int(output_nodes[j]), h, input_nodes)
            x = states[:, feats]
            sq = np.zeros(len(a_rel))
            for f in range(k):
                te = fold_of == f
                pred = ridge_path(x[~te], y[~te, j], x[te], a_rel * (~te).sum())
                sq += ((pred - y[te, j][None, :]) ** 2).sum(1)
            i = int(np.argmin(sq))
            if not np.isfinite(best[0]) or sq[i] < best[0] * (1.0 - 1e-12):
                best = (float(sq[i]), h, float(a_rel[i]), feats)
        mse_of[j], hop_of[j], alpha_of[j], feats = best[0] / n, best[1], best[2], best[3]
        w, b = ridge_coef(states[:, feats], y[:, j], alpha_of[j] * n)
        chosen_nodes.append(feats)
        w_list.append(w)
        offset[j] = b
    nodes = np.unique(np.concatenate(chosen_nodes)) if chosen_nodes else np.zeros(0, np.int64)
    pos = {int(v): i for i, v in enumerate(nodes)}
    weight = np.zeros((n_out, len(nodes)))
    for j, (feats, w) in enumerate(zip(chosen_nodes, w_list, strict=True)):
        weight[j, [pos[int(v)] for v in feats]] = w
    return GraphReadout(nodes, weight, offset, hop_of, alpha_of, mse_of)
