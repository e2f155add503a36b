"""The decision interface shared by rules, Boolean networks and neural surrogates.

Flow, once per intracellular step and per cell type (no per-cell Python):

1. The core gathers :class:`Signals` for the n cells of the type: local field concentrations
   (one column per substrate, in the substrate's unit), contact counts and cell properties.
2. ``model.update(signals, state, dt, rng)`` advances the type's float32 state matrix
   ``state`` (n × n_state, modified in place) and returns behaviour overrides: a dict mapping a
   behaviour name from :data:`BEHAVIOR_NAMES` (or ``"secretion:<substrate>"`` /
   ``"uptake:<substrate>"``) to an ``(n,)`` float64 array in the behaviour's unit.
3. The core writes those arrays over the rule-based values for those cells.

Behaviour units: rates in 1/min, speeds in µm/min, secretion/uptake rates in 1/min (BioFVM
convention: secretion drives the local concentration towards the saturation density at that rate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BeforeValidator

#: Behaviour names an intracellular model may set (all per cell, float64).
BEHAVIOR_NAMES: dict[str, str] = {
    "cycle_rate": "1/min — entry rate into division (rules: O2-dependent)",
    "apoptosis_rate": "1/min — probability per minute of starting apoptosis",
    "necrosis_rate": "1/min — probability per minute of starting necrosis",
    "migration_speed": "µm/min — random-walk/chemotaxis speed",
    "chemotaxis_bias": "dimensionless in [0, 1] — weight of the gradient direction",
    "kill_rate": "1/min — probability per minute of killing a contacted target",
    "phagocytosis_rate": "1/min — probability per minute of engulfing a contacted dead cell",
    "polarization": "dimensionless in [0, 1] — 0 = M1-like, 1 = M2-like (macrophages)",
    "pdl1": "dimensionless in [0, 1] — PD-L1 expression (tumor cells)",
}


_DIMENSIONLESS_BEHAVIORS = {"chemotaxis_bias", "polarization", "pdl1"}


def behavior_unit(name: str) -> str:
    """The unit a behaviour value is expressed in: ``"1/min"``, ``"um/min"`` or ``""``."""
    if name in _DIMENSIONLESS_BEHAVIORS:
        return ""
    if name == "migration_speed":
        return "um/min"
    return "1/min"


def _plain_number(v: Any) -> Any:
    """Accept plain numbers and numeric strings (values already in the signal's unit)."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


#: a float field of intracellular configs that also accepts a numeric string
Number = Annotated[float, BeforeValidator(_plain_number)]


def is_behavior_name(name: str) -> bool:
    """True for a name in :data:`BEHAVIOR_NAMES` or ``secretion:<S>`` / ``uptake:<S>``."""
    if name in BEHAVIOR_NAMES:
        return True
    prefix, _, rest = name.partition(":")
    return prefix in ("secretion", "uptake") and bool(rest)


def _check_behavior_name(v: str) -> str:
    if not is_behavior_name(v):
        raise ValueError(
            f"unknown behaviour {v!r}; expected one of {', '.join(BEHAVIOR_NAMES)}, "
            "'secretion:<substrate>' or 'uptake:<substrate>'"
        )
    return v


#: a config field naming a behaviour (validated against :data:`BEHAVIOR_NAMES`)
BehaviorName = Annotated[str, AfterValidator(_check_behavior_name)]


@dataclass
class Signals:
    """Per-cell inputs for one cell type: ``values[:, j]`` is signal ``names[j]``.

    Substrate signals are the local concentration in the substrate's unit (see the registry).
    Other signals: ``contact_<type>`` (number of touching cells of that type), ``volume`` (µm³),
    ``age`` (min since birth), ``time`` (simulation minutes).
    """

    names: list[str]
    values: np.ndarray  # (n, k) float64
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {n: i for i, n in enumerate(self.names)}

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[:, self._index[name]]
        except KeyError:
            raise KeyError(f"unknown signal {name!r}; known: {', '.join(self.names)}") from None


class IntracellularModel(ABC):
    """A batched intracellular model for one cell type."""

    #: Short name used in scenarios (``kind = "boolean"``) and in outputs.
    kind: str = "abstract"

    @property
    @abstractmethod
    def state_names(self) -> list[str]:
        """Names of the columns of the state matrix (network nodes, TFs, ...)."""

    @property
    def n_state(self) -> int:
        return len(self.state_names)

    @abstractmethod
    def initial_state(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A float32 (n, n_state) matrix for n new cells."""

    @abstractmethod
    def update(self, signals: Signals, state: np.ndarray, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Advance ``state`` (float32, n × n_state, in place) by ``dt`` minutes; return behaviours."""

    def required_signals(self) -> list[str]:
        """Signal names :meth:`update` reads (the core checks them against the scenario)."""
        return []

    def identity(self) -> dict[str, str]:
        """What identifies this model in outputs and checkpoints (file paths, hashes)."""
        return {"kind": self.kind}
