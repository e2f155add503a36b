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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator

from tme_sim.cells import BEHAVIORS
from tme_sim.plugins import import_submodules

#: Behaviour names an intracellular model may set (all per cell, float64): the behaviour columns
#: declared in :data:`tme_sim.cells.BEHAVIORS`, name → "unit — description"
BEHAVIOR_NAMES: dict[str, str] = {c.name: f"{c.unit or 'dimensionless'} — {c.description}" for c in BEHAVIORS}


def behavior_unit(name: str) -> str:
    """The unit a behaviour value is expressed in: ``"1/min"``, ``"um/min"`` or ``""``
    (``secretion:<S>`` and ``uptake:<S>`` rates are in 1/min)."""
    for c in BEHAVIORS:
        if c.name == name:
            return c.unit
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
    """A batched intracellular model for one cell type.

    Subclasses register themselves under their :attr:`kind` (the scenario's ``kind = "..."``) just
    by being defined: a new kind is one new module (in this package, or a user module named in the
    scenario's ``plugins``) with a subclass that sets ``kind`` and ``config_class`` and implements
    :meth:`from_config`, :attr:`state_names`, :meth:`initial_state` and :meth:`update`.
    """

    #: Short name used in scenarios (``kind = "boolean"``) and in outputs.
    kind: ClassVar[str] = "abstract"
    #: pydantic model validating the scenario's ``intracellular`` table for this kind
    config_class: ClassVar[type[BaseModel] | None] = None
    #: whether drugs (``drugs = [...]`` in the table) can act on this kind
    accepts_drugs: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            _KINDS[cls.kind] = cls

    @classmethod
    def from_config(cls, cfg: Any, base_dir: Path) -> IntracellularModel:
        """Build the model from its validated table ``cfg`` (paths relative to ``base_dir``)."""
        raise NotImplementedError(f"intracellular kind {cls.kind!r} cannot be built from a scenario")

    @property
    def dt(self) -> float | None:
        """Minutes between :meth:`update` calls; None updates every phenotype step."""
        return None

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

    def drug_effects_for(self, drugs: Sequence[Any], *, source: str = "drug library") -> Any:
        """The effects object of ``drugs`` on this model (only kinds with :attr:`accepts_drugs`)."""
        raise NotImplementedError(f"intracellular kind {self.kind!r} has no drug input")

    def set_drug_effects(self, effects: Any) -> None:
        """Make ``effects`` (from :meth:`drug_effects_for`) act in every :meth:`update`."""
        raise NotImplementedError(f"intracellular kind {self.kind!r} has no drug input")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Model state beyond the per-cell state matrix that evolves during a run; none by default."""
        return {}

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`state_dict` returned."""


#: registered kinds: name → class (filled by :meth:`IntracellularModel.__init_subclass__`)
_KINDS: dict[str, type[IntracellularModel]] = {}


def intracellular_kind(name: str) -> type[IntracellularModel] | None:
    """The registered class of ``kind = name`` (imports the package's own kinds on first use), or None."""
    if name not in _KINDS:
        import_submodules("tme_sim.intracellular")
    return _KINDS.get(name)


def intracellular_kinds() -> list[str]:
    """Names of every registered kind."""
    import_submodules("tme_sim.intracellular")
    return sorted(_KINDS)
