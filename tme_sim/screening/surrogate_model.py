"""Drugs in neural surrogates: a masked drug→target layer and a screen cell-type model.

Following Meimetis et al. (2024), a drug is an extra input whose effect reaches the network only
through its known targets: a trainable matrix ``W_drug`` (n_drugs × n_nodes) is multiplied by the
known-interaction mask (:func:`tme_sim.drugs.effects.drug_target_mask`), so weights of drug–node
pairs without a known interaction are held at zero (no gradient). The drug's activity on each
link is the library's Hill occupancy ``p(c) = cʰ/(cʰ + C50ʰ)``, and the layer adds the drive

    c_node += Σ_links W_drug[d, node] · p_link(c_d)

to the steady-state equation of the prior-knowledge network ``x* = f(W x* + b + P u + c_drug)``
(:class:`tme_sim.intracellular.neural.networks.SignalingNetwork`). Untrained, an inhibitor's weight is
``-strength`` and an activator's ``+strength`` (default 5: at full occupancy the target is
driven into the leaky, "off" range of the activation, or saturated "on"); training on drug
response data refines them (the layer is an ``nn.Module``).

:class:`SurrogateModel` is the screen's cell-type model on a trained artifact: the cell type's
environment (``inputs``: model input → activity), its mutations (``knockout``/``knockin``: node
drives of ∓``strength``·2) and a death read-out from the outputs (``death_outputs``: output →
weight, ``death = clip(baseline + Σ w·(y − y₀), 0, 1)`` with ``y₀`` the untreated outputs).
Library target names are matched to model nodes by code or gene symbol; ``aliases`` maps names
that differ (``{ NFkB = "NFKB1" }``). These read-outs are illustrative, not fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tme_sim.config.drugs import Drug
from tme_sim.errors import ArtifactError, ConfigError
from tme_sim.intracellular.neural.networks import steady_outputs_with_drugs
from tme_sim.paths import confined_path
from tme_sim.screening.cell_models import CellTypeModel, Role


class DrugTargetLayer(nn.Module):
    """Masked, trainable drug→target drive (Meimetis et al. 2024).

    ``mask`` (n_drugs, n_nodes) int: −1 inhibits, +1 activates, 0 no known interaction.
    ``c50``/``hill`` (n_drugs, n_nodes): Hill curve of each known link (ignored where mask = 0).
    :meth:`forward` maps concentrations (B, n_drugs) in nM to a drive (n_nodes, B).
    """

    def __init__(self, mask: np.ndarray, c50: np.ndarray, hill: np.ndarray, strength: float = 5.0) -> None:
        super().__init__()
        m = torch.as_tensor(np.asarray(mask), dtype=torch.float32)
        self.register_buffer("mask", (m != 0).float())
        self.weight = nn.Parameter(m * float(strength))
        d_idx, n_idx = np.nonzero(np.asarray(mask))
        self.register_buffer("link_drug", torch.as_tensor(d_idx, dtype=torch.int64))
        self.register_buffer("link_node", torch.as_tensor(n_idx, dtype=torch.int64))
        self.register_buffer("link_c50", torch.as_tensor(np.asarray(c50)[d_idx, n_idx], dtype=torch.float32))
        self.register_buffer("link_hill", torch.as_tensor(np.asarray(hill)[d_idx, n_idx], dtype=torch.float32))
        self.n_nodes = int(m.shape[1])

    def occupancy(self, conc: torch.Tensor) -> torch.Tensor:
        """(B, n_links) Hill occupancy of each known link."""
        c = conc[:, self.link_drug].clamp(min=0.0)
        return 1.0 / (1.0 + torch.pow(self.link_c50 / c, self.link_hill))  # c = 0 -> 1/(1+inf) = 0

    def forward(self, conc: torch.Tensor) -> torch.Tensor:
        """Drive (n_nodes, B) added to the target nodes for concentrations ``conc`` (B, n_drugs)."""
        w = (self.weight * self.mask)[self.link_drug, self.link_node]  # (n_links,)
        contrib = self.occupancy(conc) * w  # (B, n_links)
        out = torch.zeros(self.n_nodes, conc.shape[0], dtype=contrib.dtype, device=contrib.device)
        return out.index_add(0, self.link_node, contrib.T)


class SurrogateModel(CellTypeModel):
    """Screen cell type on a trained signaling surrogate (see the module docstring)."""

    def __init__(
        self,
        name: str,
        role: Role,
        surrogate: Any,
        death_outputs: dict[str, float],
        *,
        inputs: dict[str, float] | None = None,
        knockout: Sequence[str] = (),
        knockin: Sequence[str] = (),
        baseline: float = 0.0,
        aliases: dict[str, str] | None = None,
        strength: float = 5.0,
        source: str = "screen config",
    ) -> None:
        super().__init__(name, role)
        if surrogate.kind != "signaling":
            raise ArtifactError(
                f"{surrogate.path}: drug screens need a signaling surrogate (node-level targets), "
                f"got {surrogate.kind!r}"
            )
        self.sur = surrogate
        self.model = surrogate.model
        self.node_names = list(self.model.node_names)
        labels = [surrogate.label(n) for n in self.node_names]
        self._node_lookup = {n: i for i, n in enumerate(self.node_names)}
        for i, lab in enumerate(labels):
            self._node_lookup.setdefault(lab, i)
            self._node_lookup.setdefault(lab.upper(), i)
        self.aliases = dict(aliases or {})
        self.strength = float(strength)
        self.baseline = float(baseline)
        self.source = source
        n_in = len(surrogate.input_names)
        self.u0 = np.zeros(n_in, dtype=np.float32)
        for k, v in (inputs or {}).items():
            self.u0[surrogate.input_index(k)] = float(v)
        self.death_idx = np.array([surrogate.output_index(k) for k in death_outputs], dtype=np.int64)
        self.death_w = np.array(list(death_outputs.values()), dtype=np.float64)
        self.mut = np.zeros(len(self.node_names), dtype=np.float32)
        for n in knockout:
            self.mut[self._node(n, "knockout")] -= 2 * self.strength
        for n in knockin:
            self.mut[self._node(n, "knockin")] += 2 * self.strength

    def _node(self, name: str, key: str) -> int:
        target = self.aliases.get(name, name)
        for cand in (target, target.upper()):
            if cand in self._node_lookup:
                return self._node_lookup[cand]
        raise ConfigError(f"{self.source}: cell_types.{self.name}.{key}: model has no node {name!r}")

    def layer(self, drugs: Sequence[Drug]) -> DrugTargetLayer:
        """The drug→target layer for ``drugs`` on this model's nodes (library names via aliases).

        A target the model does not have contributes nothing in this cell type."""
        shape = (len(drugs), len(self.node_names))
        mask = np.zeros(shape, dtype=np.int8)
        c50 = np.ones(shape)
        hh = np.ones(shape)
        for j, d in enumerate(drugs):
            for t in d.targets:
                try:
                    i = self._node(t.node, "targets")
                except ConfigError:
                    continue
                mask[j, i] = -1 if t.action == "inhibit" else 1
                c50[j, i], hh[j, i] = d.potency(t)
        return DrugTargetLayer(mask, c50, hh, self.strength).to(self.sur.device)

    def outputs(self, drugs: Sequence[Drug], conc: np.ndarray) -> np.ndarray:
        """Model outputs (P, n_out) at concentrations ``conc`` (P, n_drugs) nM, one batched call."""
        dev = self.sur.device
        layer = self.layer(drugs)
        p = conc.shape[0]
        u = torch.from_numpy(np.tile(self.u0, (p, 1))).to(dev)
        c = torch.from_numpy(np.asarray(conc, dtype=np.float32)).to(dev)
        mut = torch.from_numpy(self.mut).to(dev)[:, None]
        with torch.inference_mode():
            y = steady_outputs_with_drugs(self.model, u, layer(c) + mut)
        return y.float().cpu().numpy()

    def death_fraction(
        self, drugs: Sequence[Drug], conc: np.ndarray, exposure: float, rng: np.random.Generator
    ) -> np.ndarray:
        y = self.outputs(drugs, np.vstack([np.zeros((1, conc.shape[1])), conc])).astype(np.float64)
        y0, y = y[:1], y[1:]
        score = (y[:, self.death_idx] - y0[:, self.death_idx]) @ self.death_w
        return np.clip(self.baseline + score, 0.0, 1.0)

    @classmethod
    def from_config(cls, ct: Any, base: Path, source: str) -> SurrogateModel:
        """Build from a screen ``[[cell_types]]`` entry with ``model = "surrogate"``."""
        from tme_sim.intracellular.neural.artifact import load_artifact

        path = confined_path(ct.artifact, base, f"{source}: cell_types.{ct.name}.artifact")
        if not path.is_file():
            raise ConfigError(f"{source}: cell_types.{ct.name}.artifact: file not found: {path}")
        if not ct.death_outputs:
            raise ConfigError(f"{source}: cell_types.{ct.name}.death_outputs: give at least one output")
        sur = load_artifact(path, device="cpu")
        return cls(
            ct.name,
            ct.role,
            sur,
            ct.death_outputs,
            inputs=ct.inputs,
            knockout=ct.knockout,
            knockin=ct.knockin,
            baseline=ct.baseline_death,
            aliases=ct.aliases,
            source=source,
        )
