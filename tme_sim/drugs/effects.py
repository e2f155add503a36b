"""From local drug concentration to target modulation inside cells.

Every drug–target link has a Hill curve ``p(c) = cʰ / (cʰ + C50ʰ)`` (c and C50 in nM).

Boolean networks (PhysiBoSS pattern): an inhibitor of node ``T`` adds an input node ``anti_T``
ANDed into T's rule (``T = rule & !anti_T``), and ``anti_T`` is switched on in a cell with
probability ``p(c_local)`` each time inputs are refreshed. We apply it as the engine's
*knock-out mask*: a cell whose ``anti_T`` is drawn on gets ``T`` forced off for that step. This
is the same as the rewritten rule once T has relaxed (``rule & !anti_T`` is false whenever
``anti_T`` is on); the only difference is that the mask turns T off at once instead of at T's
next asynchronous update, i.e. a delay of about 1/rate(T↓) — small against a drug's exposure
time. The mask needs no access to the parsed logic, works on any engine that accepts
knock-out/knock-in masks, and is sampled for all cells in one vectorised call. Activators use
``pro_T`` ORed into the rule, i.e. a *knock-in* mask. Several drugs on one node combine as
independent anti-nodes (any one on turns the node off): ``1 − Π(1 − p_i)``. If a node is both
knocked out and knocked in, knock-out wins.

Surrogates (Meimetis et al. 2024): drugs are extra inputs mapped to target nodes through a
masked drug→target matrix; :func:`target_modulation` returns the expected per-node
inhibition/activation ((n, n_nodes) in [0, 1]) that such a matrix consumes, and
:func:`drug_target_mask` the known-interaction mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tme_sim.drugs.library import Drug
from tme_sim.errors import ConfigError


def hill(c: np.ndarray, c50: float | np.ndarray, h: float | np.ndarray) -> np.ndarray:
    """Fractional effect ``cʰ / (cʰ + C50ʰ)`` in [0, 1] (c ≥ 0, C50 > 0, same unit)."""
    c = np.maximum(np.asarray(c, dtype=np.float64), 0.0)
    # written as 1 / (1 + (C50/c)^h) to avoid overflow for large h; c == 0 gives 0.
    with np.errstate(divide="ignore", over="ignore"):
        r = np.power(np.divide(c50, c), h)
    return 1.0 / (1.0 + r)


@dataclass(frozen=True)
class TargetMap:
    """Drug–target links compiled against one model's node list (all arrays shape (n_links,)).

    ``drug``: column of the concentration matrix; ``node``: column of the state; ``inhibit``: True
    for inhibitors; ``c50`` (nM) and ``hill``: the link's Hill curve.
    """

    drug_names: tuple[str, ...]
    node_names: tuple[str, ...]
    drug: np.ndarray
    node: np.ndarray
    inhibit: np.ndarray
    c50: np.ndarray
    hill: np.ndarray

    @property
    def n_links(self) -> int:
        return int(self.drug.size)

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    def link_probability(self, conc: np.ndarray) -> np.ndarray:
        """(n, n_links) probability that each link's anti/pro node is on; ``conc`` (n, n_drugs) nM."""
        conc = np.asarray(conc, dtype=np.float64)
        if conc.ndim != 2 or conc.shape[1] != len(self.drug_names):
            raise ValueError(f"conc must be (n, {len(self.drug_names)}), got {conc.shape}")
        return hill(conc[:, self.drug], self.c50, self.hill)


def compile_targets(
    drugs: Sequence[Drug], node_names: Sequence[str], *, source: str = "drug library", strict: bool = True
) -> TargetMap:
    """Map each drug's targets onto ``node_names``.

    A target that is not a node raises :class:`ConfigError` (``strict``) or is skipped, so one
    library can serve networks that hold only some of its targets.
    """
    index = {n: i for i, n in enumerate(node_names)}
    drug_i, node_i, inhib, c50, hh = [], [], [], [], []
    for j, d in enumerate(drugs):
        for t in d.targets:
            if t.node not in index:
                if strict:
                    raise ConfigError(
                        f"{source}: drugs.{d.name}.targets: node {t.node!r} is not in the network "
                        f"(nodes: {', '.join(node_names)})"
                    )
                continue
            c, h = d.potency(t)
            drug_i.append(j)
            node_i.append(index[t.node])
            inhib.append(t.action == "inhibit")
            c50.append(c)
            hh.append(h)
    return TargetMap(
        drug_names=tuple(d.name for d in drugs),
        node_names=tuple(node_names),
        drug=np.asarray(drug_i, dtype=np.int64),
        node=np.asarray(node_i, dtype=np.int64),
        inhibit=np.asarray(inhib, dtype=bool),
        c50=np.asarray(c50, dtype=np.float64),
        hill=np.asarray(hh, dtype=np.float64),
    )


def sample_masks(
    conc: np.ndarray,
    tmap: TargetMap,
    uniforms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw anti/pro nodes and return (knockout, knockin) bool masks of shape (n, n_nodes).

    ``conc``: (n, n_drugs) local concentrations (nM). ``uniforms``: (n, n_links) U(0,1) draws
    (pass ``rng.random((n, n_links))``; passing the same draws for different doses gives common
    random numbers, so a cell's response is monotone in dose). A link is on where
    ``u < p(c)``.
    """
    n = conc.shape[0]
    ko = np.zeros((n, tmap.n_nodes), dtype=bool)
    ki = np.zeros((n, tmap.n_nodes), dtype=bool)
    if tmap.n_links == 0:
        return ko, ki
    if uniforms.shape != (n, tmap.n_links):
        raise ValueError(f"uniforms must be ({n}, {tmap.n_links}), got {uniforms.shape}")
    on = uniforms < tmap.link_probability(conc)
    for k in range(tmap.n_links):  # loop over links (a handful), vectorised over cells
        target = ko if tmap.inhibit[k] else ki
        target[:, tmap.node[k]] |= on[:, k]
    ki &= ~ko
    return ko, ki


def target_modulation(conc: np.ndarray, tmap: TargetMap) -> tuple[np.ndarray, np.ndarray]:
    """Expected (inhibition, activation), each (n, n_nodes) float64 in [0, 1].

    Per node, ``1 − Π(1 − p_link)`` over the links that inhibit (resp. activate) it: the
    probability that at least one anti (pro) node is on.
    """
    p = tmap.link_probability(conc)
    n = p.shape[0]
    log_off_inh = np.zeros((n, tmap.n_nodes))
    log_off_act = np.zeros((n, tmap.n_nodes))
    with np.errstate(divide="ignore"):
        lq = np.log1p(-np.minimum(p, 1.0))
    for k in range(tmap.n_links):
        (log_off_inh if tmap.inhibit[k] else log_off_act)[:, tmap.node[k]] += lq[:, k]
    return -np.expm1(log_off_inh), -np.expm1(log_off_act)


def drug_target_mask(drugs: Sequence[Drug], node_names: Sequence[str]) -> np.ndarray:
    """Known-interaction mask (n_drugs, n_nodes) int8: −1 inhibits, +1 activates, 0 none.

    This is the mask of the trainable drug→target matrix of a surrogate (Meimetis et al. 2024):
    weights outside the mask are held at zero.
    """
    index = {n: i for i, n in enumerate(node_names)}
    m = np.zeros((len(drugs), len(node_names)), dtype=np.int8)
    for j, d in enumerate(drugs):
        for t in d.targets:
            if t.node in index:
                m[j, index[t.node]] = -1 if t.action == "inhibit" else 1
    return m


class DrugEffects:
    """Drug anti/pro-node masks for one Boolean cell type during the full simulation.

    The local concentration of drug ``d`` is read from the signal column ``signals[d]`` (the
    drug's substrate name, in nM; override with ``signal_names``). Each intracellular step,
    :meth:`masks` draws every link once per cell (PhysiBoSS refreshes ``anti_T`` inputs each
    step) and returns ``(knockout, knockin)`` to be ORed into the cell type's own masks before
    ``network.advance`` (knock-out wins over knock-in).
    """

    def __init__(
        self,
        drugs: Sequence[Drug],
        node_names: Sequence[str],
        *,
        signal_names: dict[str, str] | None = None,
        source: str = "drug library",
        strict: bool = False,
    ) -> None:
        self.drugs = list(drugs)
        self.tmap = compile_targets(self.drugs, node_names, source=source, strict=strict)
        names = signal_names or {}
        self.signals = [names.get(d.name, d.name) for d in self.drugs]

    def required_signals(self) -> list[str]:
        """Signal columns (drug substrates) that :meth:`masks` reads."""
        return list(self.signals)

    def concentrations(self, signals: Any) -> np.ndarray:
        """(n, n_drugs) local concentrations (nM) from a :class:`~tme_sim.intracellular.base.Signals`."""
        return np.stack([np.asarray(signals[s], dtype=np.float64) for s in self.signals], axis=1)

    def masks(self, signals: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(knockout, knockin) bool (n, n_nodes) for this step."""
        conc = self.concentrations(signals)
        u = rng.random((conc.shape[0], self.tmap.n_links))
        return sample_masks(conc, self.tmap, u)
