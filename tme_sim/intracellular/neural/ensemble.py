"""An ensemble of prior-knowledge signaling networks: the average of K independently trained ones.

:class:`SignalingEnsemble` holds K :class:`~tme_sim.intracellular.neural.networks.SignalingNetwork`
members on the *same* graph, inputs and outputs, each trained on the same data from its own
initialisation (the signs of the graph's unknown-sign edges are drawn per member; see
:func:`member_seed`). Its output is the mean of the members' outputs, so every member is the
prior-knowledge model (signed graph scaffold, recurrent steady state, ligand in, TF out) and the
ensemble adds no path from inputs to outputs of its own: averaging only reduces the variance of
a recurrent network fitted to ~100 conditions. The spread of the members is a (raw) measure of
their disagreement (:meth:`SignalingEnsemble.member_outputs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tme_sim.intracellular.neural.networks import SignalingNetwork

#: member k of an ensemble with seed s is initialised and trained with seed ``s + k * MEMBER_SEED_STRIDE``
#: (member 0 is the single network of seed s)
MEMBER_SEED_STRIDE = 7919


def member_seed(seed: int, k: int) -> int:
    """The seed of member ``k`` of an ensemble trained with ``seed``."""
    return int(seed) + int(k) * MEMBER_SEED_STRIDE


class SignalingEnsemble(nn.Module):
    """Mean of K :class:`SignalingNetwork` members on one graph (kind ``"signaling_ensemble"``).

    Args:
        members: each member's constructor keyword arguments (its
            :meth:`~SignalingNetwork.config`); all must have the same nodes, inputs and outputs.
    """

    kind = "signaling_ensemble"

    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        if not members:
            raise ValueError("a signaling ensemble needs at least one member")
        self.members = nn.ModuleList([SignalingNetwork(**m) for m in members])
        first = self.members[0]
        for m in self.members[1:]:
            same = (
                m.node_names == first.node_names
                and torch.equal(m.input_nodes, first.input_nodes)
                and torch.equal(m.output_nodes, first.output_nodes)
            )
            if not same:
                raise ValueError("ensemble members must share the graph's nodes, inputs and outputs")

    @classmethod
    def from_networks(cls, nets: list[SignalingNetwork]) -> SignalingEnsemble:
        """An ensemble holding (copies of the weights of) the networks ``nets``."""
        ens = cls([{**n.config(), "prescale": None, "baseline_state": None} for n in nets])
        for m, n in zip(ens.members, nets, strict=True):
            m.load_state_dict(n.state_dict())
        return ens

    @property
    def node_names(self) -> list[str]:
        return self.members[0].node_names

    @property
    def n_inputs(self) -> int:
        return self.members[0].n_inputs

    @property
    def n_outputs(self) -> int:
        return self.members[0].n_outputs

    @property
    def tol(self) -> float:
        return self.members[0].tol

    @property
    def max_iter(self) -> int:
        return self.members[0].max_iter

    def member_outputs(self, u: torch.Tensor) -> torch.Tensor:
        """Every member's outputs (K, B, n_out) for inputs ``u`` (B, n_in)."""
        return torch.stack([m(u) for m in self.members])

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Predicted outputs (B, n_out): the mean of the members' outputs."""
        return self.member_outputs(u).mean(0)

    def impute_unseen_inputs(self, seen: np.ndarray) -> int:
        """:meth:`SignalingNetwork.impute_unseen_inputs` on every member; returns the count of one."""
        return max(m.impute_unseen_inputs(seen) for m in self.members)

    def substitute_unseen_inputs(self, seen: np.ndarray, **kw: Any) -> int:
        """:meth:`SignalingNetwork.substitute_unseen_inputs` on every member; returns the count of one."""
        return max(m.substitute_unseen_inputs(seen, **kw) for m in self.members)

    def set_input_map(self, m: np.ndarray | None) -> None:
        """Set (or clear) every member's input mixing matrix (n_in, n_in)."""
        for net in self.members:
            net.set_input_map(m)

    def config(self) -> dict:
        """Constructor keyword arguments (each member's config)."""
        return {"members": [m.config() for m in self.members]}
