"""Mesa agents as thin handles on the cell store.

A handle stores only its cell's stable id; every attribute reads or writes the arrays through
``store.slot_of_id[id]``. Handles are created lazily by :meth:`TMEModel.agents` (never in the
step loop) and dropped when their cell is removed, so ``model.agents.select(...)`` and
``model.agents_by_type`` work for users without slowing simulations down.
"""

from __future__ import annotations

from typing import Any

import mesa
import numpy as np

from tme_sim.cells import DEATH_NAMES, PHASE_NAMES


class CellAgent(mesa.Agent):
    """A handle on one cell. ``unique_id`` is the cell's stable id."""

    def __init__(self, model: Any, cell_id: int) -> None:
        super().__init__(model)
        self.unique_id = int(cell_id)
        self.cell_id = int(cell_id)

    # the slot may change (swap-remove, locality sorting); the id never does
    @property
    def _slot(self) -> int:
        slot = int(self.model.store.slot_of_id[self.cell_id])
        if slot < 0:
            raise LookupError(f"cell {self.cell_id} has been removed")
        return slot

    @property
    def alive_in_store(self) -> bool:
        return int(self.model.store.slot_of_id[self.cell_id]) >= 0

    @property
    def cell_type(self) -> str:
        return self.model.type_names[int(self.model.store.type[self._slot])]

    @property
    def position(self) -> np.ndarray:
        """Position (µm), a view: writing to it moves the cell."""
        return self.model.store.position[self._slot, : self.model.dim]

    @position.setter
    def position(self, value) -> None:
        self.model.store.position[self._slot, : self.model.dim] = value
        self.model.cell_list.invalidate()

    @property
    def pos(self):  # Mesa's conventional name
        return tuple(self.position)

    @pos.setter
    def pos(self, value) -> None:
        if value is not None and getattr(self, "cell_id", None) is not None and self.alive_in_store:
            self.position = value

    @property
    def volume(self) -> float:
        return float(self.model.store.volume[self._slot])

    @volume.setter
    def volume(self, value: float) -> None:
        st = self.model.store
        st.volume[self._slot] = value
        st.radius[self._slot] = (3 * value / (4 * np.pi)) ** (1 / 3)

    @property
    def radius(self) -> float:
        return float(self.model.store.radius[self._slot])

    @property
    def phase(self) -> str:
        return PHASE_NAMES[int(self.model.store.phase[self._slot])]

    @property
    def death_state(self) -> str:
        return DEATH_NAMES[int(self.model.store.death[self._slot])]

    @property
    def is_alive(self) -> bool:
        return int(self.model.store.death[self._slot]) == 0

    @property
    def intracellular_state(self) -> np.ndarray:
        """This cell's row of its type's intracellular matrix (float32 view)."""
        st = self.model.store
        slot = self._slot
        return st.istate[int(st.type[slot])][int(st.istate_row[slot])]

    def behavior(self, name: str) -> float:
        """Current value of a behaviour column (e.g. ``"cycle_rate"``)."""
        return float(getattr(self.model.store, name)[self._slot])

    def set_behavior(self, name: str, value: float) -> None:
        getattr(self.model.store, name)[self._slot] = value

    def local_concentrations(self) -> dict[str, float]:
        """Field values at the cell (the grid's sampling rule)."""
        c = self.model.micro.sample(self.model.store.position[self._slot][None, :])[0]
        return dict(zip(self.model.substrate_names, c.tolist(), strict=True))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.cell_id} type={self.cell_type}>"


class TumorCell(CellAgent):
    """Handle on a tumor cell."""


class ImmuneCell(CellAgent):
    """Base handle for immune cells."""


class CD8TCell(ImmuneCell):
    """Handle on a CD8 T cell."""


class Macrophage(ImmuneCell):
    """Handle on a macrophage."""


class StromalCell(CellAgent):
    """Base handle for stromal cells."""


class Fibroblast(StromalCell):
    """Handle on a (cancer-associated) fibroblast."""


HANDLE_CLASS = {
    "tumor": TumorCell,
    "cd8_t_cell": CD8TCell,
    "macrophage": Macrophage,
    "fibroblast": Fibroblast,
    "generic": CellAgent,
}


def sync_handles(model: Any, handles: dict[int, mesa.Agent]) -> None:
    """Make ``model.agents`` (a :class:`~tme_sim.model.TMEModel`) match the live cells: create
    missing handles in ``handles`` (cell id → handle), drop removed ones."""
    st = model.store
    live_ids = st.id[: st.n]
    live = set(live_ids.tolist())
    for cid in [c for c in handles if c not in live]:
        handles.pop(cid).remove()
    missing = live_ids[~np.isin(live_ids, np.fromiter(handles.keys(), dtype=np.int64, count=len(handles)))]
    if missing.size == 0:
        return
    types = st.type[st.slot_of_id[missing]]
    classes = [HANDLE_CLASS.get(model.scenario.cell_types[n].rules, CellAgent) for n in model.type_names]
    for cid, t in zip(missing.tolist(), types.tolist(), strict=True):
        handles[cid] = classes[t](model, cid)
