"""Screen cell type driven by a trained phosphoprotein surrogate (``model = "phospho"``).

drug dose → target inhibition (the library's Hill curves, :func:`~tme_sim.drugs.effects.target_modulation`)
→ inhibitor levels ``u`` of the surrogate (``inhibitor_nodes``: surrogate inhibitor → library node)
→ predicted read-outs of the cell type in its stimulus context (``stimuli``)
→ effect = loss of a read-out signature: ``1 − 2^{Σ_r w_r Δy_r / Σ_r w_r}`` clipped to [0, 1],
``Δy`` the log2 change against the same cell without drug, ``w`` = ``death_outputs``.

The signature as a proxy of cell kill is an ASSUMPTION of the screen config (the data measure
phosphorylation at 30 min, not death); the library potency stands in for the assay inhibitor's
(``u = 1`` is the inhibitor of the training data at its assay dose, taken as full inhibition).
Each ensemble member gives one effect surface: :meth:`replicates` returns them, so the screen
reports intervals of effects, windows and synergy scores over the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tme_sim.config.drugs import Drug
from tme_sim.drugs.effects import compile_targets, target_modulation
from tme_sim.errors import ConfigError
from tme_sim.intracellular.neural.phospho import PhosphoSurrogate, load_phospho
from tme_sim.paths import confined_path
from tme_sim.screening.cell_models import CellTypeModel, Role


class PhosphoCellModel(CellTypeModel):
    """One cell type of a :class:`PhosphoSurrogate` (module docstring)."""

    def __init__(
        self,
        name: str,
        role: Role,
        surrogate: PhosphoSurrogate,
        cell_type: str,
        stimuli: Sequence[str],
        inhibitor_nodes: dict[str, str],
        signature: dict[str, float],
        source: str = "screen config",
    ) -> None:
        super().__init__(name, role)
        key = f"{source}: cell_types.{name}"
        if cell_type not in surrogate.cell_types:
            raise ConfigError(
                f"{key}.cell_type: {cell_type!r} not in the surrogate ({', '.join(surrogate.cell_types)})"
            )
        bad = [s for s in stimuli if s not in surrogate.stimuli]
        if bad:
            raise ConfigError(f"{key}.stimuli: {bad} not in the surrogate ({', '.join(surrogate.stimuli)})")
        bad = [i for i in inhibitor_nodes if i not in surrogate.inhibitors]
        if bad or not inhibitor_nodes:
            raise ConfigError(
                f"{key}.inhibitor_nodes: give surrogate inhibitor → library node ({', '.join(surrogate.inhibitors)})"
            )
        bad = [r for r in signature if r not in surrogate.readouts]
        if bad or not signature:
            raise ConfigError(f"{key}.death_outputs: give read-out weights ({', '.join(surrogate.readouts)})")
        self.surrogate = surrogate
        self.cell_type = cell_type
        self.stimuli = list(stimuli)
        self.inhibitor_nodes = dict(inhibitor_nodes)
        self.nodes = sorted(set(inhibitor_nodes.values()))
        self.weights = np.zeros(len(surrogate.readouts))
        for r, w in signature.items():
            self.weights[surrogate.readouts.index(r)] = float(w)
        self._members: np.ndarray | None = None

    def levels(self, drugs: Sequence[Drug], conc: np.ndarray) -> np.ndarray:
        """(P, I) inhibitor levels from (P, len(drugs)) concentrations (nM)."""
        tmap = compile_targets(drugs, self.nodes, strict=False)
        inh, _ = target_modulation(np.asarray(conc, dtype=np.float64), tmap)
        u = np.zeros((inh.shape[0], len(self.surrogate.inhibitors)))
        for i, node in self.inhibitor_nodes.items():
            u[:, self.surrogate.inhibitors.index(i)] = inh[:, self.nodes.index(node)]
        return u

    def member_effects(self, drugs: Sequence[Drug], conc: np.ndarray) -> np.ndarray:
        """(members, P) signature loss of every ensemble member."""
        u = self.levels(drugs, conc)
        pred = self.surrogate.predict(self.cell_type, self.stimuli, u)
        ref = self.surrogate.predict(self.cell_type, self.stimuli, np.zeros((1, u.shape[1])))
        d = ((pred - ref) * self.weights).sum(-1) / self.weights.sum()
        return np.clip(1.0 - np.exp2(d), 0.0, 1.0)

    def death_fraction(
        self, drugs: Sequence[Drug], conc: np.ndarray, exposure: float, rng: np.random.Generator
    ) -> np.ndarray:
        self._members = self.member_effects(drugs, conc)
        return self._members.mean(0)

    def replicates(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """The ensemble members' effects of the last :meth:`death_fraction` call (``n`` is ignored)."""
        return self._members

    def describe(self) -> str:
        sig = ", ".join(r for r, w in zip(self.surrogate.readouts, self.weights, strict=True) if w)
        return f"{self.name} ({self.role}; {self.cell_type} + {'+'.join(self.stimuli) or 'no ligand'}: loss of {sig})"

    @classmethod
    def from_config(cls, ct: Any, base: Path, source: str) -> PhosphoCellModel:
        path = confined_path(ct.artifact, base, f"{source}: cell_types.{ct.name}.artifact")
        if not path.is_file():
            raise ConfigError(f"{source}: cell_types.{ct.name}.artifact: file not found: {path}")
        return cls(
            ct.name,
            ct.role,
            load_phospho(path),
            ct.cell_type or ct.name,
            ct.stimuli,
            ct.inhibitor_nodes,
            ct.death_outputs,
            source=source,
        )
