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
:func:`drug_target_mask` the known-interaction mask. In the spatial simulation
:class:`SurrogateDrugEffects` resolves each target on the surrogate (a ``KO_<T>``/``KI_<T>`` flag
input drawn per cell like the Boolean anti/pro node, a ligand input named ``T``, or a node of a
signaling network driven through the drug→target layer) and applies it per step, batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tme_sim.config.drugs import Drug
from tme_sim.errors import ConfigError
from tme_sim.responses import hill


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


# ---------------------------------------------------------------------------------- surrogates


@dataclass(frozen=True)
class SurrogateLinks:
    """Drug–target links of one surrogate, grouped by how they reach the model.

    Each group is a :class:`TargetMap` whose ``node`` indexes a different axis:

    * ``flags``: ``node`` = surrogate input column of a ``KO_<T>`` (inhibitor) / ``KI_<T>``
      (activator) flag (surrogates distilled from a Boolean network with mutation inputs);
    * ``inputs``: ``node`` = input column of the target itself (a ligand input such as ``TNF``):
      an inhibitor scales the input's activity by ``1 − p``, an activator raises it to
      ``1 − (1 − a)(1 − p)``;
    * ``nodes``: ``node`` = network node of a signaling surrogate (drug→target layer drive).
    """

    flags: TargetMap
    inputs: TargetMap
    nodes: TargetMap
    ko_ki_pairs: np.ndarray  # (m, 2) input columns (KO_T, KI_T) of the same node T


def _merge(
    maps: list[tuple[int, int, bool, float, float]], drug_names: tuple[str, ...], axis: Sequence[str]
) -> TargetMap:
    arr = np.array(maps, dtype=np.float64).reshape(-1, 5)
    return TargetMap(
        drug_names=drug_names,
        node_names=tuple(axis),
        drug=arr[:, 0].astype(np.int64),
        node=arr[:, 1].astype(np.int64),
        inhibit=arr[:, 2].astype(bool),
        c50=arr[:, 3].copy(),
        hill=arr[:, 4].copy(),
    )


def compile_surrogate_targets(
    drugs: Sequence[Drug],
    input_names: Sequence[str],
    node_names: Sequence[str] = (),
    *,
    labels: dict[str, str] | None = None,
    source: str = "drug library",
    what: str = "the surrogate",
) -> SurrogateLinks:
    """Resolve every drug target on a surrogate's inputs/nodes (see :class:`SurrogateLinks`).

    Order of resolution per target ``T``: a ``KO_T``/``KI_T`` flag input, an input named ``T``,
    a network node ``T`` (names compare case-insensitively, codes through ``labels``). A target
    found nowhere raises a one-line :class:`ConfigError` naming the drug and the node.
    """
    labels = labels or {}

    def lookup(names: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, n in enumerate(names):
            for key in (n, labels.get(n, n)):
                out.setdefault(key, i)
                out.setdefault(key.upper(), i)
        return out

    inp = lookup(input_names)
    nod = lookup(node_names)

    def find(table: dict[str, int], name: str) -> int | None:
        return table.get(name, table.get(name.upper()))

    flags: list[tuple[int, int, bool, float, float]] = []
    inputs: list[tuple[int, int, bool, float, float]] = []
    nodes: list[tuple[int, int, bool, float, float]] = []
    for j, d in enumerate(drugs):
        for t in d.targets:
            inhibit = t.action == "inhibit"
            c, h = d.potency(t)
            flag = find(inp, ("KO_" if inhibit else "KI_") + t.node)
            if flag is not None:
                flags.append((j, flag, inhibit, c, h))
                continue
            col = find(inp, t.node)
            if col is not None:
                inputs.append((j, col, inhibit, c, h))
                continue
            node = find(nod, t.node)
            if node is not None:
                nodes.append((j, node, inhibit, c, h))
                continue
            prefix = "KO_" if inhibit else "KI_"
            flags_have = sorted(n for n in input_names if n.startswith(prefix))
            hint = f"; its {prefix}* inputs: {', '.join(flags_have)}" if flags_have else ""
            raise ConfigError(
                f"{source}: drugs.{d.name}.targets: node {t.node!r} is not an input ({prefix}{t.node} or "
                f"{t.node}) or node of {what}{hint}"
            )
    names = tuple(d.name for d in drugs)
    names_in = list(input_names)
    pairs = []  # (KO_T, KI_T) columns where a drug knocks T out and the model has a KI_T input
    for col in sorted({f[1] for f in flags if f[2]}):
        ki = f"KI_{names_in[col][3:]}"
        if ki in names_in:
            pairs.append((col, names_in.index(ki)))
    return SurrogateLinks(
        flags=_merge(flags, names, input_names),
        inputs=_merge(inputs, names, input_names),
        nodes=_merge(nodes, names, node_names),
        ko_ki_pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2),
    )


class SurrogateDrugEffects:
    """Drugs acting on one surrogate cell type during the full simulation.

    The counterpart of :class:`DrugEffects` for :class:`~tme_sim.intracellular.surrogate.SurrogateIntracellular`
    (Meimetis et al. 2024: drugs as extra inputs mapped to their targets through a masked
    drug→target matrix). The local concentration of each drug (its substrate, nM) gives each link
    the Hill occupancy ``p(c)``; several links on one target combine as ``1 − Π(1 − p)``
    (:func:`target_modulation`). Then, per cell and per intracellular step, in one vectorised call:

    * **flag inputs** (``KO_T``/``KI_T`` of a surrogate distilled from the Boolean network):
      ``sampling = "sample"`` (default) sets the flag to 1 with probability ``p`` — exactly the
      Boolean path's anti/pro-node draw, so a Boolean cell and its surrogate take a drug the same
      way and the model only sees the 0/1 flags it was trained on; ``sampling = "expected"`` sets
      the flag to ``1 − (1 − flag)(1 − p)`` (deterministic, the mean of the draw). A knock-out
      flag on clears the knock-in flag of the same node (knock-out wins, as in the Boolean path);
    * **ligand inputs** named as the target: activity × ``(1 − p)`` (inhibitor) or
      ``1 − (1 − a)(1 − p)`` (activator);
    * **signaling nodes**: :meth:`node_occupancy` returns ``(n, n_node_links)`` occupancies; the
      adapter adds the drive ``Σ w·p`` (``w = ∓strength``) to the targeted nodes of the steady
      state, as :class:`~tme_sim.screening.surrogate_model.DrugTargetLayer` does in the screen.
    """

    def __init__(
        self,
        drugs: Sequence[Drug],
        input_names: Sequence[str],
        node_names: Sequence[str] = (),
        *,
        labels: dict[str, str] | None = None,
        signal_names: dict[str, str] | None = None,
        sampling: str = "sample",
        strength: float = 5.0,
        source: str = "drug library",
        what: str = "the surrogate",
    ) -> None:
        if sampling not in ("sample", "expected"):
            raise ConfigError(f"{source}: drug sampling must be 'sample' or 'expected', got {sampling!r}")
        self.drugs = list(drugs)
        self.links = compile_surrogate_targets(
            self.drugs, input_names, node_names, labels=labels, source=source, what=what
        )
        names = signal_names or {}
        self.signals = [names.get(d.name, d.name) for d in self.drugs]
        self.sampling = sampling
        self.strength = float(strength)
        self.n_inputs = len(input_names)
        nl = self.links.nodes
        #: drive per unit occupancy of each node link (n_node_links,): −strength inhibits
        self.node_weight = np.where(nl.inhibit, -self.strength, self.strength).astype(np.float32)

    @property
    def touched_inputs(self) -> np.ndarray:
        """Input columns a drug may change (sorted, int64)."""
        cols = np.concatenate([self.links.flags.node, self.links.inputs.node, self.links.ko_ki_pairs.reshape(-1)])
        return np.unique(cols)

    def required_signals(self) -> list[str]:
        """Signal columns (drug substrates) read by :meth:`apply`."""
        return list(self.signals)

    def concentrations(self, signals: Any) -> np.ndarray:
        """(n, n_drugs) local concentrations (nM) from a :class:`~tme_sim.intracellular.base.Signals`."""
        missing = [s for s in self.signals if s not in signals]
        if missing:
            raise ConfigError(f"drug signal(s) {', '.join(missing)} not provided; is the drug given in [drugs]?")
        return np.stack([np.asarray(signals[s], dtype=np.float64) for s in self.signals], axis=1)

    @staticmethod
    def _none_on(val: np.ndarray, tmap: TargetMap, cols: np.ndarray, inhibit: bool | None) -> np.ndarray:
        """(n, len(cols)) ``Π(1 − val)`` over the links (of one action, or all with None) of each column."""
        off = np.ones((val.shape[0], cols.size))
        where = np.searchsorted(cols, tmap.node)
        for k in range(tmap.n_links):  # a handful of links, vectorised over cells
            if inhibit is None or bool(tmap.inhibit[k]) == inhibit:
                off[:, where[k]] *= 1.0 - val[:, k]
        return off

    def apply(self, conc: np.ndarray, u: np.ndarray, rng: np.random.Generator | None) -> np.ndarray | None:
        """Apply the drugs to the model inputs ``u`` (n, n_inputs) float in place.

        ``conc``: (n, n_drugs) nM. Returns the node-link occupancies (n, n_node_links) float32
        for signaling surrogates, or None when no drug acts on a node. ``rng`` is used only by
        ``sampling = "sample"`` (one (n, n_flag_links) draw per step, like the Boolean path).
        """
        n = u.shape[0]
        fl = self.links.flags
        if fl.n_links:
            # one draw per link (as sample_masks): a flag is on if any of its links is drawn on
            p = fl.link_probability(conc)
            if self.sampling == "sample":
                if rng is None:
                    raise ValueError("sampling = 'sample' needs a Generator")
                val = (rng.random((n, fl.n_links)) < p).astype(np.float64)
            else:
                val = p
            cols = np.unique(fl.node)
            u[:, cols] = 1.0 - (1.0 - u[:, cols]) * self._none_on(val, fl, cols, None)
        if self.links.ko_ki_pairs.size:
            ko, ki = self.links.ko_ki_pairs[:, 0], self.links.ko_ki_pairs[:, 1]
            u[:, ki] *= 1.0 - u[:, ko]  # knock-out wins over knock-in (1 − p_KO in expectation)
        il = self.links.inputs
        if il.n_links:
            p = il.link_probability(conc)
            cols = np.unique(il.node)
            a = u[:, cols] * self._none_on(p, il, cols, True)
            u[:, cols] = 1.0 - (1.0 - a) * self._none_on(p, il, cols, False)
        nl = self.links.nodes
        if nl.n_links:
            return nl.link_probability(conc).astype(np.float32)
        return None
