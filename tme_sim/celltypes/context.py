"""What a cell-type behaviour sees of the simulation: a narrow context, not the model.

A behaviour (:class:`~tme_sim.celltypes.base.CellRules` and its subclasses) reads and writes the
cell store, samples the grid, asks contact questions, draws random numbers from the model's one
generator, records events and asks for cells to be added or removed. :class:`BehaviorContext`
holds exactly those things; the model builds one and hands it to every behaviour call, so a
behaviour cannot reach into the model's clocks, observers or kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tme_sim.cells import CellStore
    from tme_sim.config import Scenario
    from tme_sim.contacts import Neighbours
    from tme_sim.events import EventLog
    from tme_sim.grid import Microenvironment
    from tme_sim.vessels import Vessels

#: ``spawn(types, positions, kind)`` adds cells and returns their slots (``kind`` is the event
#: recorded, None for none)
Spawn = Callable[[np.ndarray, np.ndarray, "str | None"], np.ndarray]
#: ``remove(slots, kind)`` removes cells (``kind`` is the event recorded, None for none)
Remove = Callable[[np.ndarray, "str | None"], None]


@dataclass
class Clock:
    """Simulated time (min) and the phenotype step (min); the model advances ``time``."""

    time: float = 0.0
    dt_pheno: float = 6.0


@dataclass
class BehaviorContext:
    """Everything a behaviour may use during a run.

    Attributes
    ----------
    scenario:
        The validated scenario (read-only settings such as ``[immune]``).
    type_names, substrate_names, substrate_units:
        Names of the cell types and of the grid's substrates (internal units per substrate).
    dim, domain:
        2 or 3; domain size ``(3,)`` in µm (0 on unused axes).
    clock:
        Current time and phenotype step (min).
    rng:
        The model's seeded generator: the only source of randomness.
    store:
        The cell store (struct of arrays; slots ``[:n]`` live).
    grid:
        The diffusion grid (``grid.sample(positions)`` gives concentrations at points).
    neighbours:
        Contact queries on the up-to-date cell list.
    events:
        The event log; :meth:`record` fills it from store slots.
    vessels:
        The vessel layout (None without vessels).
    rules_of_type:
        ``rules_name`` of the behaviour of each type (to find e.g. the tumor types).
    spawn, remove:
        Add cells (with their initial intracellular state) or remove cells, keeping the model's
        lists and couplings consistent.
    """

    scenario: Scenario
    type_names: list[str]
    substrate_names: list[str]
    substrate_units: list[str]
    dim: int
    domain: np.ndarray
    clock: Clock
    rng: np.random.Generator
    store: CellStore | None = None
    grid: Microenvironment | None = None
    neighbours: Neighbours | None = None
    events: EventLog | None = None
    vessels: Vessels | None = None
    rules_of_type: list[str] = field(default_factory=list)
    spawn: Spawn | None = None
    remove: Remove | None = None

    @property
    def time(self) -> float:
        """Simulated time (min)."""
        return self.clock.time

    @property
    def dt_pheno(self) -> float:
        """The phenotype step (min)."""
        return self.clock.dt_pheno

    def types_with_rules(self, rules_name: str) -> list[int]:
        """Indices of the cell types whose behaviour is ``rules_name``."""
        return [t for t, name in enumerate(self.rules_of_type) if name == rules_name]

    def record(self, kind: str, slots: np.ndarray, other: np.ndarray | int = -1) -> None:
        """Record one ``kind`` event per cell at ``slots`` (``other``: the other cell's id, or −1)."""
        st = self.store
        self.events.record(kind, self.clock.time, st.id[slots], other, st.type[slots], st.position[slots])

    def sample(self, slots: np.ndarray) -> np.ndarray:
        """``(len(slots), S)`` local concentrations at the cells ``slots`` (substrate units)."""
        return self.grid.sample(self.store.position[slots])
