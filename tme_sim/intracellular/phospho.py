"""Intracellular kind ``phospho``: a cell type's drug response from the trained phospho surrogate.

Per intracellular step and cell: local drug concentrations (nM, the drug substrates) → target
inhibition (the library's Hill curves, :func:`~tme_sim.drugs.effects.target_modulation`) → the
surrogate's inhibitor levels ``u`` (``inhibitor_nodes``: surrogate inhibitor → library node) →
predicted read-outs of ``cell_type`` in its ``stimuli`` context (ensemble mean,
:mod:`tme_sim.intracellular.neural.phospho`) → signature loss
``L = clip(1 − 2^{Σ_r w_r Δy_r / Σ_r w_r}, 0, 1)`` (``signature``: read-out weights; ``Δy`` the log2
change against the same cell without drug) → behaviours::

    apoptosis_rate = apoptosis_base + (apoptosis_max − apoptosis_base) · L
    cycle_rate     = cycle_rate · (1 − L)          (only when ``cycle_rate`` is given)

The state column ``signature_loss`` holds ``L`` (written to the output with the cells). The link
from signature loss to death and cycling is a scenario ASSUMPTION (the surrogate predicts
phosphorylation, not fate); the scenario states its values.

Scenario table::

    [cell_types.tumor.intracellular]
    kind = "phospho"
    artifact = "models/hepatocytes_cno.npz"
    cell_type = "HepG2"
    stimuli = ["TGFa"]
    inhibitor_nodes = { PI3Ki = "PI3K", MEK12i = "MEK12", IKKi = "IKK" }
    signature = { AKT = 1, ERK12 = 1, p70S6 = 1 }
    apoptosis_base = "5.31667e-05 1/min"
    apoptosis_max = "0.002 1/min"
    drugs = ["trametinib", "alpelisib"]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tme_sim.config.drugs import Drug
from tme_sim.drugs.effects import compile_targets, target_modulation
from tme_sim.errors import ConfigError
from tme_sim.intracellular.base import IntracellularModel, Signals
from tme_sim.intracellular.neural.phospho import PhosphoSurrogate, load_phospho
from tme_sim.units import Rate, Time


class PhosphoIntracellularConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["phospho"] = "phospho"
    artifact: str
    cell_type: str
    stimuli: list[str] = Field(default_factory=list)
    inhibitor_nodes: dict[str, str] = Field(min_length=1)
    signature: dict[str, float] = Field(min_length=1)
    dt: Time = 6.0
    apoptosis_base: Rate = 5.31667e-05
    apoptosis_max: Rate = 0.002
    cycle_rate: Rate | None = None


class PhosphoDrugEffects:
    """Drugs compiled against the surrogate's inhibitor nodes (library Hill curves)."""

    def __init__(self, drugs: Sequence[Drug], nodes: list[str], source: str) -> None:
        for d in drugs:
            if not any(t.node in nodes for t in d.targets):
                targets = ", ".join(repr(t.node) for t in d.targets)
                raise ConfigError(f"{source}: drugs.{d.name}.targets: {targets} not among {', '.join(nodes)}")
        self.drugs = list(drugs)
        self.signals = [d.name for d in drugs]
        self.tmap = compile_targets(self.drugs, nodes, strict=False)

    def required_signals(self) -> list[str]:
        return list(self.signals)

    def inhibition(self, signals: Signals) -> np.ndarray:
        """(n, n_nodes) expected inhibition of each node from the local concentrations (nM)."""
        conc = np.stack([np.asarray(signals[s], dtype=np.float64) for s in self.signals], axis=1)
        return target_modulation(conc, self.tmap)[0]


class PhosphoIntracellular(IntracellularModel):
    """See the module docstring."""

    kind = "phospho"
    config_class = PhosphoIntracellularConfig
    accepts_drugs = True

    def __init__(self, surrogate: PhosphoSurrogate, config: PhosphoIntracellularConfig, sha256: str = "") -> None:
        sur = surrogate
        if config.cell_type not in sur.cell_types:
            raise ConfigError(f"cell_type: {config.cell_type!r} not in the surrogate ({', '.join(sur.cell_types)})")
        for key, names, known in (
            ("stimuli", config.stimuli, sur.stimuli),
            ("inhibitor_nodes", list(config.inhibitor_nodes), sur.inhibitors),
            ("signature", list(config.signature), sur.readouts),
        ):
            bad = [n for n in names if n not in known]
            if bad:
                raise ConfigError(f"{key}: {bad} not in the surrogate (known: {', '.join(known)})")
        if not config.apoptosis_max >= config.apoptosis_base >= 0:
            raise ConfigError("apoptosis_max must be >= apoptosis_base >= 0")
        self.surrogate = sur
        self.config = config
        self.sha256 = sha256
        self.nodes = sorted(set(config.inhibitor_nodes.values()))
        self.col = np.array(
            [self.nodes.index(config.inhibitor_nodes[i]) if i in config.inhibitor_nodes else -1 for i in sur.inhibitors]
        )
        self.weights = np.array([float(config.signature.get(r, 0.0)) for r in sur.readouts])
        self.reference = self._readouts(np.zeros((1, len(sur.inhibitors))))[0]
        self.effects: PhosphoDrugEffects | None = None

    @classmethod
    def from_config(cls, cfg: PhosphoIntracellularConfig, base_dir: Path) -> PhosphoIntracellular:
        path = Path(base_dir) / cfg.artifact
        sur = load_phospho(path)
        return cls(sur, cfg, hashlib.sha256(path.read_bytes()).hexdigest())

    @property
    def state_names(self) -> list[str]:
        return ["signature_loss"]

    @property
    def dt(self) -> float:
        return float(self.config.dt)

    def required_signals(self) -> list[str]:
        return self.effects.required_signals() if self.effects is not None else []

    def drug_effects_for(self, drugs: Sequence[Drug], *, source: str = "drug library") -> PhosphoDrugEffects:
        return PhosphoDrugEffects(drugs, self.nodes, source)

    def set_drug_effects(self, effects: PhosphoDrugEffects | None) -> None:
        self.effects = effects

    def identity(self) -> dict[str, str]:
        return {"kind": self.kind, "artifact": self.config.artifact, "artifact_sha256": self.sha256}

    def initial_state(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros((n, 1), dtype=np.float32)

    def _readouts(self, u: np.ndarray) -> np.ndarray:
        """(n, R) ensemble-mean read-outs at inhibitor levels ``u`` (n, I)."""
        return self.surrogate.predict(self.config.cell_type, self.config.stimuli, u).mean(0)

    def signature_loss(self, inhibition: np.ndarray) -> np.ndarray:
        """(n,) loss from node inhibition (n, n_nodes)."""
        u = np.zeros((inhibition.shape[0], len(self.col)))
        for i, j in enumerate(self.col):
            if j >= 0:
                u[:, i] = inhibition[:, j]
        d = ((self._readouts(u) - self.reference) * self.weights).sum(1) / self.weights.sum()
        return np.clip(1.0 - np.exp2(d), 0.0, 1.0)

    def update(self, signals: Signals, state: np.ndarray, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = signals.n
        if self.effects is None or n == 0:
            loss = np.zeros(n)
        else:
            loss = self.signature_loss(self.effects.inhibition(signals))
        state[:, 0] = loss
        c = self.config
        out: dict[str, Any] = {"apoptosis_rate": c.apoptosis_base + (c.apoptosis_max - c.apoptosis_base) * loss}
        if c.cycle_rate is not None:
            out["cycle_rate"] = c.cycle_rate * (1.0 - loss)
        return out
