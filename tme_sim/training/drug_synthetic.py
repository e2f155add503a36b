"""Synthetic drug-response data from a known network with planted off-targets (a check of inference).

:func:`planted_offtarget_data` draws a layered signed network, drugs with known targets and one
planted off-target each, and computes the read-out response with its own code (exact linear
propagation through the layers, independent of :mod:`~tme_sim.training.drug_models`). A model
given only the known targets must find the planted interactions:
:func:`offtarget_recovery` fits a :class:`~tme_sim.training.drug_models.DrugEnsemble` and returns
each planted interaction's rank among that drug's inferred off-target scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tme_sim.training.drug_models import DrugEnsemble, DrugFitConfig, DrugModelSpec, rank_of_planted

#: settings of the off-target check (chosen on generator seeds 0-2; the test uses seeds 3-5)
SYNTHETIC_CONFIG = DrugFitConfig(
    steps=4, epochs=1500, members=1, bootstrap=False, l2_omics=0.0, l1_offtarget=1e-4, offtarget_lr_scale=1.0
)


@dataclass
class SyntheticDrugData:
    """Conditions (``conc`` (n, n_drugs)) → outputs ``y`` (n, n_outputs), the structure ``spec`` given to
    the model (known targets only) and the ``planted`` (drug index, node index) off-targets."""

    conc: np.ndarray
    y: np.ndarray
    spec: DrugModelSpec
    planted: list[tuple[int, int]]


def planted_offtarget_data(
    seed: int = 0,
    n_layers: int = 4,
    width: int = 8,
    n_drugs: int = 8,
    n_doses: int = 6,
    noise: float = 0.01,
) -> SyntheticDrugData:
    """A layered network (``n_layers`` × ``width`` nodes, 2–3 signed edges from each node to the next
    layer, |weight| 0.4–0.9), drugs with 1–2 known targets in the first two layers and one planted
    off-target (efficacy 0.9, same potency) in the first three; outputs = activity changes of every
    node below the first layer (a transcriptomic-like read-out). Conditions: each drug alone at
    ``n_doses`` concentrations (0.01–100) and each neighbouring pair of drugs at three doses;
    Gaussian noise ``noise``."""
    rng = np.random.default_rng(seed)
    n = n_layers * width
    nodes = [f"N{i}" for i in range(n)]
    layer = np.repeat(np.arange(n_layers), width)
    A = np.zeros((n, n))
    edges = []
    for i in range(n - width):
        nxt = np.flatnonzero(layer == layer[i] + 1)
        for j in rng.choice(nxt, size=int(rng.integers(2, 4)), replace=False):
            s = int(rng.choice([-1, 1], p=[0.3, 0.7]))
            A[i, j] = s * rng.uniform(0.4, 0.9)
            edges.append((nodes[i], nodes[j], s))
    early = np.flatnonzero(layer < 2)
    upstream = np.flatnonzero(layer < 3)
    targets, planted = [], []
    eff = np.zeros((n_drugs, n))
    for d in range(n_drugs):
        known = rng.choice(early, size=int(rng.integers(1, 3)), replace=False)
        eff[d, known] = rng.uniform(0.7, 1.0, size=len(known))
        targets += [(f"D{d}", nodes[k]) for k in known]
        off = int(rng.choice(np.setdiff1d(upstream, known)))
        eff[d, off] = 0.9
        planted.append((d, off))
    ic50 = 10 ** rng.uniform(-1, 1, size=n_drugs)
    doses = 10 ** np.linspace(-2, 2, n_doses)
    rows = []
    for d in range(n_drugs):
        for c in doses:
            r = np.zeros(n_drugs)
            r[d] = c
            rows.append(r)
        for c in doses[1::2]:
            r = np.zeros(n_drugs)
            r[d], r[(d + 1) % n_drugs] = c, c
            rows.append(r)
    conc = np.array(rows)
    occ = conc / (conc + ic50)  # (n_cond, n_drugs), Hill slope 1
    keep = np.exp(np.log1p(-(occ[:, :, None] * eff[None]).clip(max=1 - 1e-9)).sum(1))
    delta = -(1.0 - keep)  # activity change at the inhibited nodes
    total = delta.copy()
    step = delta
    for _ in range(n_layers):  # exact propagation through the layers
        step = step @ A
        total = total + step
    out_nodes = np.flatnonzero(layer >= 1)
    y = total[:, out_nodes] + noise * rng.normal(size=(len(conc), len(out_nodes)))
    outputs = [f"out_{nodes[i]}" for i in out_nodes]
    spec = DrugModelSpec(
        drugs=[f"D{d}" for d in range(n_drugs)],
        nodes=nodes,
        targets=targets,
        edges=edges,
        readouts=[(nodes[i], f"out_{nodes[i]}", 1) for i in out_nodes],
        outputs=outputs,
        offtarget_nodes=None,
    )
    return SyntheticDrugData(conc, y, spec, planted)


def offtarget_recovery(data: SyntheticDrugData, cfg: DrugFitConfig | None = None) -> list[int]:
    """Fit an ensemble given the known targets only; the 1-based rank of each planted off-target
    among its drug's inferred off-target efficacies (known targets excluded)."""
    cfg = cfg or SYNTHETIC_CONFIG
    feats = np.zeros((len(data.conc), 0))
    ens = DrugEnsemble(data.spec, cfg).fit(data.conc, feats, data.y)
    return rank_of_planted(ens.offtarget_scores(), data.planted)
