"""The struct-of-arrays cell store: all cell state lives here.

Every per-cell quantity is one numpy array of length ``capacity`` (first axis); the first ``n``
slots are live. Removal is a swap-remove (the last live slot moves into the hole), done in
batches and vectorized; births are appended. Stable ids survive reordering: ``slot_of_id[id]``
gives the current slot (−1 once removed).

Each cell type has its own float32 intracellular-state matrix (``istate[type]``, rows × k); a
cell's row is ``istate_row[slot]`` and ``istate_owner[type][row]`` is the slot back again, so both
sides swap-remove in O(1).

Units: positions µm, velocities µm/min, volumes µm³, clocks minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# death states
ALIVE = 0
APOPTOTIC = 1
NECROTIC_SWELLING = 2
NECROTIC_LYSED = 3
DEATH_NAMES = {ALIVE: "alive", APOPTOTIC: "apoptotic", NECROTIC_SWELLING: "necrotic", NECROTIC_LYSED: "lysed"}

# cycle phases (Ki67 basic)
KI67_NEGATIVE = 0
KI67_POSITIVE = 1
PHASE_NAMES = {KI67_NEGATIVE: "Ki67-", KI67_POSITIVE: "Ki67+"}

#: behaviour columns every cell carries (float64), written by rules and intracellular models
BEHAVIOR_COLUMNS = (
    "cycle_rate",
    "apoptosis_rate",
    "necrosis_rate",
    "migration_speed",
    "chemotaxis_bias",
    "kill_rate",
    "phagocytosis_rate",
    "polarization",
    "pdl1",
)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: type
    shape: tuple[int, ...] = ()  # trailing shape
    fill: float = 0.0


def _columns(n_substrates: int) -> list[Column]:
    s = (n_substrates,)
    cols = [
        Column("id", np.int64, fill=-1),
        Column("type", np.int16),
        Column("position", np.float64, (3,)),
        Column("velocity", np.float64, (3,)),
        Column("prev_velocity", np.float64, (3,)),
        Column("motility_dir", np.float64, (3,)),
        Column("volume", np.float64),
        Column("target_volume", np.float64),
        Column("radius", np.float64),
        Column("phase", np.int8),
        Column("phase_clock", np.float64),
        Column("death", np.int8),
        Column("death_clock", np.float64),
        Column("birth_time", np.float64),
        Column("generation", np.int32),
        Column("kills", np.int32),
        Column("clone", np.int16),
        Column("exhaustion", np.float64),
        Column("istate_row", np.int64, fill=-1),
        # secretion / uptake coupling (substrate units, 1/min)
        Column("secretion_rate", np.float64, s),
        Column("saturation", np.float64, s),
        Column("uptake_rate", np.float64, s),
        Column("net_export", np.float64, s),
    ]
    cols += [Column(b, np.float64) for b in BEHAVIOR_COLUMNS]
    return cols


class CellStore:
    """Struct-of-arrays storage of every cell.

    Attributes are numpy arrays of length ``capacity``; only ``[:n]`` is meaningful. Use
    :meth:`live` views (``store.live("position")``) in kernels.
    """

    def __init__(
        self,
        n_substrates: int,
        type_names: list[str],
        istate_sizes: dict[int, int] | None = None,
        capacity: int = 1024,
    ) -> None:
        self.n = 0
        self.capacity = max(int(capacity), 16)
        self.type_names = list(type_names)
        self.n_substrates = int(n_substrates)
        self.columns = _columns(self.n_substrates)
        for col in self.columns:
            arr = np.full((self.capacity, *col.shape), col.fill, dtype=col.dtype)
            setattr(self, col.name, arr)
        self.next_id = 0
        self.slot_of_id = np.full(self.capacity, -1, dtype=np.int64)
        sizes = istate_sizes or {}
        self.istate: dict[int, np.ndarray] = {
            t: np.zeros((16, sizes.get(t, 0)), dtype=np.float32) for t in range(len(type_names))
        }
        self.istate_owner: dict[int, np.ndarray] = {t: np.full(16, -1, dtype=np.int64) for t in range(len(type_names))}
        self.istate_count = dict.fromkeys(range(len(type_names)), 0)

    # ------------------------------------------------------------------ views and sizes
    def live(self, name: str) -> np.ndarray:
        """View of column ``name`` over the live slots."""
        return getattr(self, name)[: self.n]

    def type_index(self, name: str) -> int:
        return self.type_names.index(name)

    def slots_of_type(self, t: int) -> np.ndarray:
        """Slots of all cells of type ``t`` (int64, ascending)."""
        return np.flatnonzero(self.type[: self.n] == t)

    def istate_of(self, t: int) -> np.ndarray:
        """The live rows of type ``t``'s intracellular matrix (float32, rows × k)."""
        return self.istate[t][: self.istate_count[t]]

    def istate_slots(self, t: int) -> np.ndarray:
        """Slot of each live row of type ``t``'s intracellular matrix."""
        return self.istate_owner[t][: self.istate_count[t]]

    def nbytes_per_cell(self) -> float:
        """Bytes of state per allocated slot (all columns, the id map and intracellular rows)."""
        per = sum(getattr(self, c.name).nbytes for c in self.columns)
        per += self.slot_of_id.nbytes
        per += sum(m.nbytes for m in self.istate.values()) + sum(o.nbytes for o in self.istate_owner.values())
        return per / self.capacity

    # ------------------------------------------------------------------ growth
    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_cap = max(needed, int(self.capacity * 1.5) + 16)
        for col in self.columns:
            old = getattr(self, col.name)
            arr = np.full((new_cap, *col.shape), col.fill, dtype=col.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, col.name, arr)
        self.capacity = new_cap

    def _grow_ids(self, needed: int) -> None:
        if needed <= self.slot_of_id.size:
            return
        new = np.full(max(needed, int(self.slot_of_id.size * 1.5) + 16), -1, dtype=np.int64)
        new[: self.slot_of_id.size] = self.slot_of_id
        self.slot_of_id = new

    def _grow_istate(self, t: int, needed: int) -> None:
        m = self.istate[t]
        if needed <= m.shape[0]:
            return
        cap = max(needed, int(m.shape[0] * 1.5) + 16)
        new = np.zeros((cap, m.shape[1]), dtype=np.float32)
        new[: self.istate_count[t]] = m[: self.istate_count[t]]
        self.istate[t] = new
        own = np.full(cap, -1, dtype=np.int64)
        own[: self.istate_count[t]] = self.istate_owner[t][: self.istate_count[t]]
        self.istate_owner[t] = own

    def reserve(self, capacity: int) -> None:
        """Allocate room for ``capacity`` cells now (avoids regrowth during a run)."""
        self._grow(capacity)

    # ------------------------------------------------------------------ add
    def add(
        self,
        types: np.ndarray,
        positions: np.ndarray,
        volumes: np.ndarray,
        time: float,
        istate_rows: dict[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Append cells; returns their slots. Other columns get defaults (alive, Ki67−).

        ``istate_rows[t]`` optionally gives the initial intracellular rows (float32, m_t × k_t)
        for the new cells of type ``t`` in their order of appearance; otherwise zeros.
        """
        types = np.asarray(types, dtype=np.int16)
        k = types.size
        start = self.n
        self._grow(start + k)
        slots = np.arange(start, start + k, dtype=np.int64)
        ids = np.arange(self.next_id, self.next_id + k, dtype=np.int64)
        self.next_id += k
        self._grow_ids(self.next_id)
        for col in self.columns:
            getattr(self, col.name)[start : start + k] = col.fill
        self.id[slots] = ids
        self.slot_of_id[ids] = slots
        self.type[slots] = types
        self.position[slots] = positions
        self.volume[slots] = volumes
        self.target_volume[slots] = volumes
        self.radius[slots] = np.cbrt(volumes * (3.0 / (4.0 * np.pi)))
        self.birth_time[slots] = time
        self.n = start + k
        for t in np.unique(types).tolist():
            sel = slots[types == t]
            m = sel.size
            c0 = self.istate_count[t]
            self._grow_istate(t, c0 + m)
            rows = np.arange(c0, c0 + m, dtype=np.int64)
            given = None if istate_rows is None else istate_rows.get(t)
            self.istate[t][rows] = 0.0 if given is None else given
            self.istate_owner[t][rows] = sel
            self.istate_row[sel] = rows
            self.istate_count[t] = c0 + m
        return slots

    # ------------------------------------------------------------------ remove
    def remove(self, slots: np.ndarray) -> None:
        """Swap-remove the cells at ``slots`` (any order, no duplicates), vectorized."""
        slots = np.unique(np.asarray(slots, dtype=np.int64))
        k = slots.size
        if k == 0:
            return
        n = self.n
        new_n = n - k
        # intracellular rows first (they need the old slot → row mapping)
        types = self.type[slots]
        for t in np.unique(types).tolist():
            rows = np.sort(self.istate_row[slots[types == t]])
            cnt = self.istate_count[t]
            self._swap_remove_rows(t, rows, cnt)
        self.slot_of_id[self.id[slots]] = -1
        holes = slots[slots < new_n]
        tail = np.arange(new_n, n, dtype=np.int64)
        fillers = tail[~np.isin(tail, slots, assume_unique=True)]
        if holes.size:
            for col in self.columns:
                arr = getattr(self, col.name)
                arr[holes] = arr[fillers]
            self.slot_of_id[self.id[holes]] = holes
            for t in np.unique(self.type[holes]).tolist():
                moved = holes[self.type[holes] == t]
                self.istate_owner[t][self.istate_row[moved]] = moved
        self.n = new_n

    def _swap_remove_rows(self, t: int, rows: np.ndarray, cnt: int) -> None:
        new_cnt = cnt - rows.size
        holes = rows[rows < new_cnt]
        tail = np.arange(new_cnt, cnt, dtype=np.int64)
        fillers = tail[~np.isin(tail, rows, assume_unique=True)]
        m = self.istate[t]
        own = self.istate_owner[t]
        if holes.size:
            m[holes] = m[fillers]
            own[holes] = own[fillers]
            self.istate_row[own[holes]] = holes
        own[new_cnt:cnt] = -1
        self.istate_count[t] = new_cnt

    # ------------------------------------------------------------------ reorder
    def permute(self, order: np.ndarray) -> None:
        """Reorder live slots so that new slot i holds old slot ``order[i]`` (for locality)."""
        n = self.n
        for col in self.columns:
            arr = getattr(self, col.name)
            arr[:n] = arr[order]
        self.slot_of_id[self.id[:n]] = np.arange(n, dtype=np.int64)
        for t in range(len(self.type_names)):
            cnt = self.istate_count[t]
            if cnt:
                own = self.istate_owner[t]
                inv = np.empty(n, dtype=np.int64)
                inv[order] = np.arange(n, dtype=np.int64)
                own[:cnt] = inv[own[:cnt]]

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the store exactly (live part only)."""
        d: dict[str, np.ndarray] = {c.name: getattr(self, c.name)[: self.n].copy() for c in self.columns}
        d["_n"] = np.array(self.n)
        d["_next_id"] = np.array(self.next_id)
        d["_slot_of_id"] = self.slot_of_id[: self.next_id].copy()
        for t in range(len(self.type_names)):
            cnt = self.istate_count[t]
            d[f"_istate_{t}"] = self.istate[t][:cnt].copy()
            d[f"_istate_owner_{t}"] = self.istate_owner[t][:cnt].copy()
        return d

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        n = int(d["_n"])
        self.n = 0
        self._grow(max(n, 16))
        for c in self.columns:
            getattr(self, c.name)[:n] = d[c.name]
        self.n = n
        self.next_id = int(d["_next_id"])
        self._grow_ids(self.next_id)
        self.slot_of_id[:] = -1
        self.slot_of_id[: self.next_id] = d["_slot_of_id"]
        for t in range(len(self.type_names)):
            rows = d[f"_istate_{t}"]
            cnt = rows.shape[0]
            k = self.istate[t].shape[1]
            self.istate[t] = np.zeros((max(cnt, 16), k), dtype=np.float32)
            self.istate[t][:cnt] = rows
            self.istate_owner[t] = np.full(max(cnt, 16), -1, dtype=np.int64)
            self.istate_owner[t][:cnt] = d[f"_istate_owner_{t}"]
            self.istate_count[t] = cnt

    def check_consistency(self) -> None:
        """Assert the id map and intracellular back-pointers agree (for tests)."""
        n = self.n
        assert np.array_equal(self.slot_of_id[self.id[:n]], np.arange(n))
        for t in range(len(self.type_names)):
            cnt = self.istate_count[t]
            own = self.istate_owner[t][:cnt]
            assert np.all(self.type[own] == t)
            assert np.array_equal(self.istate_row[own], np.arange(cnt))
            assert cnt == int(np.sum(self.type[:n] == t))
