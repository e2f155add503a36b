"""The intracellular part of a phenotype step: each type's model on its own clock, one batched call.

A model with ``dt`` longer than the phenotype step runs only when its clock is due; in between,
the behaviours it last decided are written again (by cell id, so cells born since keep the rules'
values). State: the clocks and those last decisions (checkpointed through :meth:`state_dict`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tme_sim.cells import ALIVE

if TYPE_CHECKING:
    from tme_sim.cells import CellStore
    from tme_sim.intracellular.base import IntracellularModel, Signals

#: ``signals(slots, conc, extra)`` gives the :class:`Signals` of the cells at ``slots``
SignalSource = Callable[[np.ndarray, np.ndarray, Sequence[str]], "Signals"]
#: ``conditions(slots)`` gives the ``(len(slots), S)`` concentrations at the cells at ``slots``
ConditionSource = Callable[[np.ndarray], np.ndarray]


class IntracellularStep:
    """Runs the intracellular models of the types that have one (``models``: type index → model)."""

    def __init__(self, models: dict[int, IntracellularModel], substrate_names: list[str]) -> None:
        self.models = models
        self.substrate_names = substrate_names
        self.clock = dict.fromkeys(models, 0.0)
        self.last: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    def run(
        self,
        store: CellStore,
        conditions: ConditionSource,
        dt: float,
        signals: SignalSource,
        rng: np.random.Generator,
        *,
        initial: bool = False,
    ) -> None:
        """Advance every model whose clock is due by the time since its last update (``dt`` is the
        phenotype step, min; ``conditions(slots)`` the concentrations at those cells)."""
        for t, im in self.models.items():
            self.clock[t] += 0.0 if initial else dt
            im_dt = im.dt or dt
            if not initial and self.clock[t] + 1e-9 < im_dt:
                self._repeat_last(store, t)
                continue
            step_dt = self.clock[t] if not initial else 0.0
            self.clock[t] = 0.0
            self._update(store, t, im, conditions, step_dt, signals, rng)

    def _update(
        self,
        store: CellStore,
        t: int,
        im: IntracellularModel,
        conditions: ConditionSource,
        dt: float,
        signals: SignalSource,
        rng: np.random.Generator,
    ) -> None:
        slots = store.istate_slots(t)
        if slots.size == 0:
            return
        sig = signals(slots, conditions(slots), im.required_signals())
        out = im.update(sig, store.istate_of(t), dt, rng)
        self.last[t] = (
            store.id[slots].copy(),
            {k: np.asarray(v, dtype=np.float64) for k, v in out.items()},
        )
        self.write_behaviors(store, slots, out)

    def _repeat_last(self, store: CellStore, t: int) -> None:
        """Between updates, keep the behaviours the model last decided (by cell id)."""
        last = self.last.get(t)
        if not last:
            return
        ids, out = last
        slots = store.slot_of_id[ids]
        ok = slots >= 0
        self.write_behaviors(store, slots[ok], {name: values[ok] for name, values in out.items()})

    def write_behaviors(self, store: CellStore, slots: np.ndarray, out: dict[str, np.ndarray]) -> None:
        """Write behaviour arrays over the live cells at ``slots`` (``secretion:<substrate>`` and
        ``uptake:<substrate>`` name one substrate's column)."""
        alive = store.death[slots] == ALIVE
        for name, values in out.items():
            values = np.asarray(values, dtype=np.float64)
            prefix, _, sub = name.partition(":")
            if prefix in ("secretion", "uptake") and sub:
                j = self.substrate_names.index(sub)
                col = store.secretion_rate if prefix == "secretion" else store.uptake_rate
                col[slots[alive], j] = values[alive]
            else:
                getattr(store, name)[slots[alive]] = values[alive]

    def state_dict(self, n_types: int) -> dict[str, object]:
        """Clocks (one per type, 0 for types without a model) and each model's last decisions."""
        last = {str(t): {"ids": ids, **{f"b_{k}": v for k, v in out.items()}} for t, (ids, out) in self.last.items()}
        return {
            "clock": np.array([self.clock.get(t, 0.0) for t in range(n_types)]),
            "last": last,
            "models": {str(t): im.state_dict() for t, im in self.models.items() if im.state_dict()},
        }

    def load_state_dict(self, d: dict) -> None:
        for t in self.clock:
            self.clock[t] = float(d["clock"][t])
        self.last = {}
        for t, entry in d.get("last", {}).items():
            self.last[int(t)] = (entry["ids"], {k[2:]: v for k, v in entry.items() if k.startswith("b_")})
        for t, sd in d.get("models", {}).items():
            self.models[int(t)].load_state_dict(sd)
