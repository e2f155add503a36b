"""Runtime of the trained phosphoprotein surrogate (background-plus-activity ensemble, numpy).

Trained by :mod:`tme_sim.training.phospho` (``tme train --data <MIDAS folder>``) on stimuli ×
inhibitor combinations per cell type; here it answers *inhibitor levels* ``u`` in [0, 1] (the
fraction of each inhibitor's target activity removed, e.g. a drug's Hill occupancy), so drug
doses map onto the read-outs. For cell type ``c`` in stimulus set ``s`` (bit key ``k``)::

    μ   = a[c] + Σ_l s_l α[c,l] + ρ[c,k]                  (R,)   log2 activity, no inhibitor
    β_i = b[c,i] + Σ_l s_l γ[c,l,i] + τ[c,k,i]            (R,)   log2 effect of inhibitor i
    y   = log2(2^f + 2^(μ + Σ_i u_i β_i))                 (R,)   log2 fold change vs untreated t0

``f`` is the assay background (per cell type and read-out, or per read-out when shared). A
stimulus set not seen in training has ``ρ = τ = 0`` (ligand-additive parts only). The artifact is
an ``.npz`` file: arrays ``m<j>__<name>`` per ensemble member and a JSON ``meta`` string.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tme_sim.errors import ConfigError

PARAMS = ("a", "alpha", "rho", "b", "gamma", "tau", "floor")
FORMAT = "tme-sim phospho surrogate"


def stim_key(stim: np.ndarray) -> np.ndarray:
    """Bit key of each stimulus set: ``stim`` (n, S) bool → (n,) int."""
    s = np.atleast_2d(np.asarray(stim, dtype=bool))
    return (s * (1 << np.arange(s.shape[1]))).sum(1)


def forward(
    p: dict[str, np.ndarray],
    cell: np.ndarray,
    stim: np.ndarray,
    kidx: np.ndarray,
    u: np.ndarray,
    shared_floor: bool,
    residual: np.ndarray | None = None,
) -> np.ndarray:
    """(n, R) predicted log2 fold changes; ``cell`` (n,), ``stim`` (n, L), ``kidx`` (n,) index into
    the trained stimulus sets, ``u`` (n, I); ``residual`` (n,) bool: use ρ/τ (default all)."""
    c = np.asarray(cell, dtype=np.int64)
    k = np.asarray(kidx, dtype=np.int64)
    s = np.asarray(stim, dtype=np.float64)
    uu = np.asarray(u, dtype=np.float64)
    w = np.ones(len(c)) if residual is None else np.asarray(residual, dtype=np.float64)
    mu = p["a"][c] + np.einsum("nl,nlr->nr", s, p["alpha"][c]) + w[:, None] * p["rho"][c, k]
    beta = p["b"][c] + np.einsum("nl,nlir->nir", s, p["gamma"][c]) + w[:, None, None] * p["tau"][c, k]
    eta = mu + np.einsum("ni,nir->nr", uu, beta)
    floor = p["floor"][np.zeros_like(c)] if shared_floor else p["floor"][c]
    return np.logaddexp2(floor, eta)


@dataclass
class PhosphoSurrogate:
    """A trained ensemble with the names it was trained on."""

    cell_types: list[str]
    stimuli: list[str]
    inhibitors: list[str]
    readouts: list[str]
    keys: np.ndarray  # (K,) trained stimulus-set keys (sorted)
    seen: set[tuple[int, int]]  # (cell index, stimulus key) pairs seen in training
    members: list[dict[str, np.ndarray]]
    shared_floor: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def kidx(self, keys: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)

    def predict_rows(self, cell: np.ndarray, stim: np.ndarray, u: np.ndarray) -> np.ndarray:
        """(members, n, R) for rows of cell indices (n,), stimulus sets (n, L) and levels (n, I)."""
        keys = stim_key(stim)
        kidx = self.kidx(keys)
        use = np.array(
            [(int(c), int(k)) in self.seen and self.keys[j] == k for c, k, j in zip(cell, keys, kidx, strict=True)]
        )
        return np.stack([forward(p, cell, stim, kidx, u, self.shared_floor, use) for p in self.members])

    def predict(self, cell_type: str, stimuli: Sequence[str], u: np.ndarray) -> np.ndarray:
        """(members, P, R) read-outs of ``cell_type`` in ``stimuli`` at P inhibitor-level rows ``u`` (P, I)."""
        if cell_type not in self.cell_types:
            raise ConfigError(f"cell type {cell_type!r} not in the surrogate (known: {', '.join(self.cell_types)})")
        bad = [s for s in stimuli if s not in self.stimuli]
        if bad:
            raise ConfigError(f"stimuli {bad} not in the surrogate (known: {', '.join(self.stimuli)})")
        uu = np.atleast_2d(np.asarray(u, dtype=np.float64))
        if uu.shape[1] != len(self.inhibitors):
            raise ConfigError(f"inhibitor levels need {len(self.inhibitors)} columns ({', '.join(self.inhibitors)})")
        s = np.array([[x in stimuli for x in self.stimuli]] * len(uu), dtype=bool)
        cell = np.full(len(uu), self.cell_types.index(cell_type))
        return self.predict_rows(cell, s, uu)


def save_phospho(path: str | Path, sur: PhosphoSurrogate) -> Path:
    """Write the ensemble as ``.npz`` (see the module docstring)."""
    arrays = {f"m{j}__{k}": v for j, p in enumerate(sur.members) for k, v in p.items()}
    meta = {
        "format": FORMAT,
        "cell_types": sur.cell_types,
        "stimuli": sur.stimuli,
        "inhibitors": sur.inhibitors,
        "readouts": sur.readouts,
        "keys": [int(k) for k in sur.keys],
        "seen": sorted([int(c), int(k)] for c, k in sur.seen),
        "members": len(sur.members),
        "shared_floor": sur.shared_floor,
        **sur.meta,
    }
    out = Path(path)
    with out.open("wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
    return out


def load_phospho(path: str | Path) -> PhosphoSurrogate:
    """Read an artifact written by :func:`save_phospho`; :class:`ConfigError` if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: phospho surrogate not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ConfigError(f"{p}: not a {FORMAT} (format {meta.get('format')!r})")
            members = [{k: z[f"m{j}__{k}"] for k in PARAMS} for j in range(int(meta["members"]))]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{p}: not a {FORMAT} ({exc})") from None
    known = {"cell_types", "stimuli", "inhibitors", "readouts", "keys", "seen", "members", "shared_floor", "format"}
    return PhosphoSurrogate(
        cell_types=list(meta["cell_types"]),
        stimuli=list(meta["stimuli"]),
        inhibitors=list(meta["inhibitors"]),
        readouts=list(meta["readouts"]),
        keys=np.asarray(meta["keys"], dtype=np.int64),
        seen={(int(c), int(k)) for c, k in meta["seen"]},
        members=members,
        shared_floor=bool(meta["shared_floor"]),
        meta={k: v for k, v in meta.items() if k not in known},
    )
