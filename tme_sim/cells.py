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


@dataclass(frozen=True)
class Column:
    """One per-cell quantity, declared once: the store, division, death, checkpoints and the HDF5
    output all follow this declaration.

    Attributes
    ----------
    name:
        Attribute name on the store (``store.<name>`` is the ``(capacity, *shape)`` array).
    dtype:
        numpy dtype of the array.
    shape:
        Trailing shape: ``()`` scalar, ``(3,)`` a vector, or ``"substrates"`` (one value per substrate).
    fill:
        Value of a new cell (and of unused slots).
    unit:
        Unit of the values (``"um"``, ``"1/min"``; ``""`` dimensionless or a code).
    inherit:
        What a daughter gets at division: ``"copy"`` the mother's value, ``"reset"`` the fill value,
        ``"managed"`` set by the store or the division itself (ids, positions, volumes, clocks).
    zero_on_death:
        Set to 0 when the cell dies (behaviour rates a dead cell no longer has).
    output:
        dtype written to the HDF5 cell snapshots, or None (not written).
    output_names:
        Dataset names in the output (default: ``name``; one per component for vectors).
    description:
        What it is, for docs and readers.
    """

    name: str
    dtype: type
    shape: tuple[int, ...] | str = ()
    fill: float = 0.0
    unit: str = ""
    inherit: str = "reset"
    zero_on_death: bool = False
    output: str | None = None
    output_names: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.inherit not in ("copy", "reset", "managed"):
            raise ValueError(f"column {self.name!r}: inherit must be 'copy', 'reset' or 'managed'")
        if isinstance(self.shape, str) and self.shape != "substrates":
            raise ValueError(f"column {self.name!r}: shape must be a tuple or 'substrates'")

    def trailing_shape(self, n_substrates: int) -> tuple[int, ...]:
        """The array's shape after the cell axis."""
        return (n_substrates,) if self.shape == "substrates" else tuple(self.shape)

    def written_as(self) -> tuple[str, ...]:
        """Output dataset names (empty when not written)."""
        if self.output is None:
            return ()
        return self.output_names or (self.name,)


def behavior_column(name: str, unit: str, description: str, *, zero_on_death: bool = False) -> Column:
    """A float64 behaviour (written by rules and intracellular models, inherited, output as float32)."""
    return Column(
        name, np.float64, unit=unit, inherit="copy", zero_on_death=zero_on_death, output="f4", description=description
    )


#: behaviours every cell carries, written by rules and intracellular models
BEHAVIORS: tuple[Column, ...] = (
    behavior_column("cycle_rate", "1/min", "entry rate into division", zero_on_death=True),
    behavior_column("apoptosis_rate", "1/min", "rate of starting apoptosis"),
    behavior_column("necrosis_rate", "1/min", "rate of starting necrosis"),
    behavior_column("migration_speed", "um/min", "active motility speed", zero_on_death=True),
    behavior_column("chemotaxis_bias", "", "weight of the chemotactic direction in [0, 1]"),
    behavior_column("kill_rate", "1/min", "contact killing rate", zero_on_death=True),
    behavior_column("phagocytosis_rate", "1/min", "rate of engulfing a touching dead cell", zero_on_death=True),
    behavior_column("polarization", "", "macrophage M1 (0) to M2 (1); fibroblast activation"),
    behavior_column("pdl1", "", "PD-L1 level in [0, 1]"),
)
BEHAVIOR_COLUMNS = tuple(c.name for c in BEHAVIORS)

#: the columns every cell carries (behaviours declare more in ``CellRules.columns``)
CORE_COLUMNS: tuple[Column, ...] = (
    Column("id", np.int64, fill=-1, inherit="managed", output="i8", description="stable cell id"),
    Column("type", np.int16, inherit="managed", output="i2", description="cell type index"),
    Column("position", np.float64, (3,), unit="um", inherit="managed", output="f8", output_names=("x", "y", "z")),
    Column("velocity", np.float64, (3,), unit="um/min", description="mechanics velocity"),
    Column("prev_velocity", np.float64, (3,), unit="um/min", description="velocity of the step before (AB2)"),
    Column("motility_dir", np.float64, (3,), description="unit direction of active motion"),
    Column("volume", np.float64, unit="um**3", inherit="managed", output="f8"),
    Column("target_volume", np.float64, unit="um**3", inherit="managed"),
    Column("radius", np.float64, unit="um", inherit="managed", output="f8"),
    Column("phase", np.int8, output="i1", description="cycle phase (0 Ki67-, 1 Ki67+)"),
    Column("phase_clock", np.float64, unit="min", description="time in the current phase"),
    Column(
        "death", np.int8, output="i1", output_names=("dead",), description="0 alive, 1 apoptotic, 2 necrotic, 3 lysed"
    ),
    Column("death_clock", np.float64, unit="min", description="time in the current death state"),
    Column("birth_time", np.float64, unit="min", inherit="managed"),
    Column("generation", np.int32, inherit="copy", output="i4", description="divisions since the first ancestor"),
    Column("kills", np.int32, output="i4", description="tumor cells killed"),
    Column("clone", np.int16, inherit="copy", output="i2", description="clone label (inherited)"),
    Column("exhaustion", np.float64, inherit="copy", output="f4", description="T-cell exhaustion (>= 1 exhausted)"),
    Column("damage", np.float64, inherit="copy", description="damage from attacks (PhysiCell's cell_integrity.damage)"),
    Column("istate_row", np.int64, fill=-1, inherit="managed", description="row in the type's intracellular matrix"),
    # secretion / uptake coupling, per substrate (a dead cell neither secretes nor takes up: PhysiCell)
    Column("secretion_rate", np.float64, "substrates", unit="1/min", inherit="copy", zero_on_death=True),
    Column("saturation", np.float64, "substrates", unit="substrate unit", inherit="copy"),
    Column("uptake_rate", np.float64, "substrates", unit="1/min", inherit="copy", zero_on_death=True),
    Column("net_export", np.float64, "substrates", unit="substrate unit*um**3/min", inherit="copy", zero_on_death=True),
    *BEHAVIORS,
)


def check_columns(columns: tuple[Column, ...] | list[Column]) -> None:
    """Refuse two columns of one name (e.g. a behaviour re-declaring a core column)."""
    seen: set[str] = set()
    for c in columns:
        if c.name in seen:
            raise ValueError(f"per-cell column {c.name!r} is declared twice")
        seen.add(c.name)


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
        extra_columns: tuple[Column, ...] | list[Column] = (),
    ) -> None:
        self.n = 0
        self.capacity = max(int(capacity), 16)
        self.type_names = list(type_names)
        self.n_substrates = int(n_substrates)
        self.columns: list[Column] = [*CORE_COLUMNS, *extra_columns]
        check_columns(self.columns)
        self._shapes = {c.name: c.trailing_shape(self.n_substrates) for c in self.columns}
        for col in self.columns:
            arr = np.full((self.capacity, *self._shapes[col.name]), col.fill, dtype=col.dtype)
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
            arr = np.full((new_cap, *self._shapes[col.name]), col.fill, dtype=col.dtype)
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

    def change_type(self, slots: np.ndarray, new_type: int) -> None:
        """Give the cells at ``slots`` (no duplicates) type ``new_type`` in place (a transformation):
        their intracellular rows leave the old types' matrices and get fresh zero rows in the new one."""
        slots = np.unique(np.asarray(slots, dtype=np.int64))
        if slots.size == 0:
            return
        old = self.type[slots]
        for t in np.unique(old).tolist():
            rows = np.sort(self.istate_row[slots[old == t]])
            self._swap_remove_rows(t, rows, self.istate_count[t])
        t = int(new_type)
        c0 = self.istate_count[t]
        self._grow_istate(t, c0 + slots.size)
        rows = np.arange(c0, c0 + slots.size, dtype=np.int64)
        self.istate[t][rows] = 0.0
        self.istate_owner[t][rows] = slots
        self.istate_row[slots] = rows
        self.istate_count[t] = c0 + slots.size
        self.type[slots] = t

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

    # ------------------------------------------------------------------ declared semantics
    def inherit(self, daughters: np.ndarray, mothers: np.ndarray) -> None:
        """Give each daughter its mother's value of every ``inherit="copy"`` column."""
        for col in self.columns:
            if col.inherit == "copy":
                arr = getattr(self, col.name)
                arr[daughters] = arr[mothers]

    def zero_on_death(self, dead: np.ndarray) -> None:
        """Zero every ``zero_on_death`` column of the cells selected by ``dead`` (slots or a mask over
        the live slots)."""
        for col in self.columns:
            if col.zero_on_death:
                getattr(self, col.name)[: self.n][dead] = 0.0

    def output_columns(self) -> list[Column]:
        """The columns written to HDF5 cell snapshots, in declaration order."""
        return [c for c in self.columns if c.output is not None]

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self, copy: bool = True) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the store exactly (live part only). ``copy=False`` returns
        views of the live columns (no second copy of the state: a checkpoint writer that stores
        them before the next step; 0.6 GB at 10⁶ cells)."""

        def take(a: np.ndarray) -> np.ndarray:
            return a.copy() if copy else a

        d: dict[str, np.ndarray] = {c.name: take(getattr(self, c.name)[: self.n]) for c in self.columns}
        d["_n"] = np.array(self.n)
        d["_next_id"] = np.array(self.next_id)
        d["_slot_of_id"] = take(self.slot_of_id[: self.next_id])
        for t in range(len(self.type_names)):
            cnt = self.istate_count[t]
            d[f"_istate_{t}"] = take(self.istate[t][:cnt])
            d[f"_istate_owner_{t}"] = take(self.istate_owner[t][:cnt])
        return d

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        n = int(d["_n"])
        self.n = 0
        self._grow(max(n, 16))
        for c in self.columns:
            # a column newer than the checkpoint (e.g. ``damage``) starts at its fill value
            getattr(self, c.name)[:n] = d[c.name] if c.name in d else c.fill
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
