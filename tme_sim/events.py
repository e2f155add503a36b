"""A buffer of discrete events (divisions, deaths, kills, recruitments), appended in batches."""

from __future__ import annotations

import numpy as np

#: event kinds, stored as small integers in outputs (names in the file's ``kinds`` attribute)
EVENT_KINDS = (
    "division",
    "apoptosis",
    "necrosis",
    "lysis",
    "removal",
    "kill",
    "phagocytosis",
    "recruitment",
    "exhaustion",
    "transformation",
    "vessel_regression",  # id = the vessel's flat voxel index, type = -1, position = the voxel centre
)
EVENT_DTYPE = np.dtype(
    [
        ("time", "f8"),
        ("kind", "i1"),
        ("id", "i8"),
        ("other_id", "i8"),
        ("type", "i2"),
        ("x", "f8"),
        ("y", "f8"),
        ("z", "f8"),
    ]
)


class EventLog:
    """Events recorded since the last :meth:`drain`; ``totals`` counts every kind ever recorded."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.totals = dict.fromkeys(EVENT_KINDS, 0)

    def record(
        self,
        kind: str,
        time: float,
        ids: np.ndarray,
        other: np.ndarray | int,
        types: np.ndarray,
        positions: np.ndarray,
    ) -> None:
        """Record one event per entry of ``ids`` (vectorized)."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        k = ids.size
        if k == 0:
            return
        rec = np.empty(k, dtype=EVENT_DTYPE)
        rec["time"] = time
        rec["kind"] = EVENT_KINDS.index(kind)
        rec["id"] = ids
        rec["other_id"] = other
        rec["type"] = types
        pos = np.asarray(positions, dtype=np.float64).reshape(k, 3)
        rec["x"], rec["y"], rec["z"] = pos[:, 0], pos[:, 1], pos[:, 2]
        self._chunks.append(rec)
        self.totals[kind] += k

    def drain(self) -> np.ndarray:
        """All events since the last drain, in recording order; empties the buffer."""
        if not self._chunks:
            return np.empty(0, dtype=EVENT_DTYPE)
        out = np.concatenate(self._chunks)
        self._chunks = []
        return out

    def pending(self) -> int:
        return sum(c.size for c in self._chunks)

    def state_dict(self) -> dict[str, np.ndarray]:
        pending = np.concatenate(self._chunks) if self._chunks else np.empty(0, dtype=EVENT_DTYPE)
        return {"pending": pending, "totals": np.array([self.totals[k] for k in EVENT_KINDS])}

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        self._chunks = [d["pending"]] if d["pending"].size else []
        totals = np.asarray(d["totals"])
        if totals.size > len(EVENT_KINDS):
            raise ValueError(f"checkpoint has {totals.size} event kinds, this version knows {len(EVENT_KINDS)}")
        # a checkpoint from before a kind was appended counts none of it
        self.totals = dict.fromkeys(EVENT_KINDS, 0) | {k: int(v) for k, v in zip(EVENT_KINDS, totals, strict=False)}
