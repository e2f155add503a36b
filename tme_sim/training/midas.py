"""MIDAS phosphoprotein data (CellNOpt format): cell types × stimuli × inhibitors → read-outs.

A MIDAS CSV (Saez-Rodriguez et al., Bioinformatics 2008) has one row per measurement and columns

* ``TR:<cell>:CellLine`` — 1 where the row is that cell type (columns whose values are not
  numbers, e.g. a row label, are ignored);
* ``TR:<name>`` — 1 where the treatment is present. By the CellNOpt convention names ending in
  ``i`` are inhibitors (``PI3Ki``), the others stimuli (ligands); the control flags
  ``NOCYTO``/``NOINHIB`` (and ``NOLIG``) are dropped;
* ``DA:<readout>`` — the time of the measurement; ``DV:<readout>`` — the value.

A data folder holds one ``MD-*.csv`` file, or a ``midas.toml`` that names it and may set
``healthy`` (cell types of the healthy role), ``time`` (the time point to model) and
``inhibitor_suffix``. Without ``healthy``, cell types whose name starts with ``pri`` (primary
cells) are healthy.

Normalisation (:func:`condition_table`): ``log2`` of the value (floored at 1) minus the mean
``log2`` of the cell type's untreated rows at time 0 (or, without time-0 rows, its untreated rows
at the modelled time), per read-out: a log2 fold change against the cell type's own baseline.
Replicate rows of one condition are averaged.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from tme_sim.errors import DataError

CONTROL_FLAGS = ("NOCYTO", "NOINHIB", "NOLIG")


class MidasSpec(BaseModel):
    """``midas.toml`` of a data folder (all optional but ``file`` when the folder has several CSVs)."""

    model_config = ConfigDict(extra="forbid")
    file: str = ""
    healthy: list[str] | None = None
    time: float | None = None
    inhibitor_suffix: str = "i"


@dataclass
class MidasData:
    """One MIDAS table: ``n`` rows, ``S`` stimuli, ``I`` inhibitors, ``R`` read-outs."""

    cell_types: list[str]
    stimuli: list[str]
    inhibitors: list[str]
    readouts: list[str]
    healthy: list[str]
    cell: np.ndarray  # (n,) int index into cell_types
    stim: np.ndarray  # (n, S) bool
    inhib: np.ndarray  # (n, I) bool
    time: np.ndarray  # (n,) float, time of the measurement (the DA: column of the first read-out)
    values: np.ndarray  # (n, R) float, raw signal
    path: str
    sha256: str


def is_midas_folder(path: str | Path) -> bool:
    """True for a folder with a ``midas.toml`` or exactly one ``MD-*.csv``."""
    p = Path(path)
    return p.is_dir() and ((p / "midas.toml").is_file() or len(list(p.glob("MD-*.csv"))) == 1)


def _spec(folder: Path) -> tuple[Path, MidasSpec]:
    spec = MidasSpec()
    tp = folder / "midas.toml"
    if tp.is_file():
        try:
            spec = MidasSpec.model_validate(tomllib.loads(tp.read_text()))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise DataError(f"{tp}: {str(exc).splitlines()[-1].strip()}") from None
    if spec.file:
        csv = folder / spec.file
    else:
        found = sorted(folder.glob("MD-*.csv"))
        if len(found) != 1:
            raise DataError(f"{folder}: expected one MD-*.csv (or 'file' in midas.toml), found {len(found)}")
        csv = found[0]
    return csv, spec


def load_midas(path: str | Path, healthy: list[str] | None = None) -> MidasData:
    """Read a MIDAS folder (or CSV file); raises :class:`DataError` on a malformed table."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: not found")
    csv, spec = _spec(p) if p.is_dir() else (p, MidasSpec())
    if not csv.is_file():
        raise DataError(f"{csv}: not found")
    raw = csv.read_bytes()
    try:
        df = pd.read_csv(csv)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv}: not a CSV table ({exc})") from None
    cols = list(df.columns)
    cell_cols = []
    for c in cols:
        if c.startswith("TR:") and c.endswith(":CellLine"):
            v = pd.to_numeric(df[c], errors="coerce")
            if v.notna().any() and v.fillna(0).isin([0, 1]).all():
                cell_cols.append(c)
    tr = [c for c in cols if c.startswith("TR:") and not c.endswith(":CellLine")]
    treat = [c for c in tr if c[3:] not in CONTROL_FLAGS]
    da = [c for c in cols if c.startswith("DA:")]
    dv = [c for c in cols if c.startswith("DV:")]
    if not dv or not da:
        raise DataError(f"{csv}: no DA:/DV: columns (not a MIDAS table)")
    suffix = spec.inhibitor_suffix
    inhibitors = [c[3:] for c in treat if c[3:].endswith(suffix)]
    stimuli = [c[3:] for c in treat if not c[3:].endswith(suffix)]
    if not inhibitors:
        raise DataError(f"{csv}: no inhibitor columns (TR:<name>{suffix})")
    num = df[treat + da + dv].apply(pd.to_numeric, errors="coerce")
    if num[dv].isna().all(axis=None):
        raise DataError(f"{csv}: DV: columns hold no numbers")
    if cell_cols:
        onehot = df[cell_cols].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
        if not (onehot.sum(1) == 1).all():
            bad = int(np.flatnonzero(onehot.sum(1) != 1)[0])
            raise DataError(f"{csv}: row {bad + 2}: not exactly one TR:<cell>:CellLine set")
        cell = onehot.argmax(1)
        cell_types = [c[3 : -len(":CellLine")] for c in cell_cols]
    else:
        cell = np.zeros(len(df), dtype=int)
        cell_types = [csv.stem]
    if healthy is None:
        healthy = spec.healthy if spec.healthy is not None else [c for c in cell_types if c.lower().startswith("pri")]
    unknown = [h for h in healthy if h not in cell_types]
    if unknown:
        raise DataError(f"{csv}: healthy cell type(s) {unknown} not in the table (known: {cell_types})")
    values = num[dv].to_numpy(float)
    keep = np.isfinite(values).all(1)
    return MidasData(
        cell_types=cell_types,
        stimuli=stimuli,
        inhibitors=inhibitors,
        readouts=[c[3:].split(" (")[0] for c in dv],
        healthy=list(healthy),
        cell=cell[keep],
        stim=num[[f"TR:{s}" for s in stimuli]].fillna(0).to_numpy()[keep] > 0,
        inhib=num[[f"TR:{s}" for s in inhibitors]].fillna(0).to_numpy()[keep] > 0,
        time=num[da[0]].fillna(0).to_numpy(float)[keep],
        values=values[keep],
        path=str(csv),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


@dataclass
class ConditionTable:
    """Averaged, normalised conditions of one time point: ``m`` conditions × ``R`` read-outs."""

    cell: np.ndarray  # (m,) int
    stim: np.ndarray  # (m, S) bool
    inhib: np.ndarray  # (m, I) bool
    y: np.ndarray  # (m, R) log2 fold change against the cell type's untreated baseline
    time: float

    @property
    def stim_key(self) -> np.ndarray:
        """(m,) int id of each condition's stimulus set (bit mask)."""
        return (self.stim * (1 << np.arange(self.stim.shape[1]))).sum(1)

    @property
    def inhib_key(self) -> np.ndarray:
        """(m,) int id of each condition's inhibitor set (bit mask)."""
        return (self.inhib * (1 << np.arange(self.inhib.shape[1]))).sum(1)


def condition_table(data: MidasData, time: float | None = None) -> ConditionTable:
    """Normalised (log2 fold change, see the module docstring), replicate-averaged conditions."""
    t = float(data.time.max()) if time is None else float(time)
    logv = np.log2(np.maximum(data.values, 1.0))
    untreated = ~data.stim.any(1) & ~data.inhib.any(1)
    rows: dict[tuple, list[int]] = {}
    at = np.flatnonzero(np.isclose(data.time, t))
    if len(at) == 0:
        raise DataError(f"{data.path}: no rows at time {t:g}")
    for i in at:
        rows.setdefault((int(data.cell[i]), *data.stim[i].tolist(), *data.inhib[i].tolist()), []).append(int(i))
    keys = sorted(rows)
    idx = [rows[k] for k in keys]
    y = np.stack([logv[ix].mean(0) for ix in idx])
    cell = np.array([k[0] for k in keys])
    for c in np.unique(cell):
        base = (data.cell == c) & untreated & np.isclose(data.time, 0.0)
        if not base.any():
            base = (data.cell == c) & untreated & np.isclose(data.time, t)
        if not base.any():
            raise DataError(f"{data.path}: cell type {data.cell_types[c]}: no untreated rows to normalise against")
        y[cell == c] -= logv[base].mean(0)
    s = len(data.stimuli)
    return ConditionTable(
        cell=cell,
        stim=np.array([k[1 : 1 + s] for k in keys], dtype=bool),
        inhib=np.array([k[1 + s :] for k in keys], dtype=bool),
        y=y,
        time=t,
    )
