"""The interface of a screen's cell types: drug exposure in, fraction of cells dead out.

Implementations: :class:`~tme_sim.screening.screen.DependencyModel` (analytic target dependency),
:class:`~tme_sim.screening.screen.BooleanModel` (a Boolean network under drugs) and
:class:`~tme_sim.screening.surrogate_model.SurrogateModel` (a trained signaling surrogate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np

from tme_sim.config.drugs import Drug

Role = Literal["tumor", "healthy"]


class CellTypeModel(ABC):
    """Response of one cell type to drug exposure, batched over dose points."""

    def __init__(self, name: str, role: Role) -> None:
        self.name = name
        self.role = role

    @abstractmethod
    def death_fraction(
        self, drugs: Sequence[Drug], conc: np.ndarray, exposure: float, rng: np.random.Generator
    ) -> np.ndarray:
        """Fraction of cells dead after ``exposure`` minutes at each of P dose points.

        ``conc``: (P, len(drugs)) exposure concentrations in nM. Returns float64 (P,).
        """

    def replicates(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """(B, P) replicate death fractions of the last :meth:`death_fraction` call (a bootstrap over
        cells, or ensemble members) for intervals; None where the model has no uncertainty."""
        return None

    def describe(self) -> str:
        return f"{self.name} ({self.role})"
