"""HDF5 output (schema ``tme-sim/1``) and one-line readers.

Layout of one run's file::

    /                 attrs: schema, version, git_hash, seed, created, scenario, dim,
                             cell_types (JSON), substrates (JSON), complete (True on clean close),
                             last_snapshot, last_time
    /meta             scenario_json (resolved config), scenario_toml (original text)
    /fields           concentration[time, species, (z,) y, x] + coordinates time, species, (z,) y, x
                      and unit[species]; netCDF-style dimension scales (xarray/h5netcdf read it)
    /cells            one long table over snapshots: snapshot, time, id, type, x, y, z, volume,
                      radius, phase, dead, behaviour columns …; offset[snapshot], count[snapshot],
                      snapshot_time[snapshot]; state/<type>: values[rows, k], id[rows], snapshot[rows]
                      with attr ``columns`` (node or TF names)
    /population       time[t], counts[t, type, state] with state = live, apoptotic, necrotic, lysed
    /events           time, kind, id, other_id, type, x, y, z (kind names in attr ``kinds``)

Every dataset is chunked and resizable; the file is flushed after each snapshot so a run killed
at any moment leaves a readable file holding every committed snapshot. Readers derive the
number of snapshots from the datasets themselves (:func:`committed_snapshots`), not from the
root attributes, so a file killed in the middle of a snapshot still reads consistently.

Live files: the writer works in HDF5's SWMR mode (single writer, multiple readers; file format
``libver="latest"``), so :func:`open_output` and every reader built on it can read a file while
a run writes it and sees the snapshots committed at its last flush. A version-3 superblock
carries "open for write" flags that a killed writer never clears; plain readers refuse such a
file, so :func:`open_output` falls back to SWMR reading (which accepts it), and ``--resume``
clears the flags (:mod:`tme_sim.io.superblock`, like ``h5clear -s``) after all its checks.
Exclusive writing is the lock file of :mod:`tme_sim.io.lock`; HDF5's own file locking is off so
readers never get ``BlockingIOError``. The skeleton is laid out under a per-process temporary
name (``<out>.part-<pid>``) and renamed when complete.

A failed write (disk full, I/O error, read-only file system) raises :class:`OutputWriteError`
naming the errno. HDF5 cannot close such a file safely (it retries the failed flush and can
crash the process), so the handle is parked, never closed (:func:`hdf5_poisoned`); the file on
disk keeps every snapshot flushed before the error and ``--resume`` continues from the last
checkpoint once there is space.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from tme_sim import __version__
from tme_sim.cells import CORE_COLUMNS, DEATH_NAMES, PHASE_NAMES, CellStore
from tme_sim.errors import OutputError, OutputWriteError
from tme_sim.events import EVENT_DTYPE, EVENT_KINDS
from tme_sim.io.lock import holder
from tme_sim.io.superblock import clear_status_flags, status_flags

if TYPE_CHECKING:
    import xarray as xr

    from tme_sim.model import TMEModel

SCHEMA = "tme-sim/1"
POPULATION_STATES = ("live", "apoptotic", "necrotic", "lysed")
#: per-cell datasets of every snapshot besides the store's declared output columns
SNAPSHOT_COLUMNS = (("snapshot", "i4"), ("time", "f8"))
#: the per-cell datasets of a file written with the core columns only (their order in readers)
CELL_COLUMNS = (
    *SNAPSHOT_COLUMNS,
    *((name, c.output) for c in CORE_COLUMNS for name in c.written_as()),
)
#: datasets of the cells group that are not per cell
_CELL_INDEX = ("offset", "count", "snapshot_time")


def cell_columns(store: CellStore) -> list[tuple[str, str]]:
    """``(dataset, dtype)`` of every per-cell dataset a snapshot of ``store`` writes."""
    return [*SNAPSHOT_COLUMNS, *((name, c.output) for c in store.output_columns() for name in c.written_as())]


def _column_values(store: CellStore) -> dict[str, np.ndarray]:
    """Live values of every declared output column under its dataset name(s)."""
    n = store.n
    out = {}
    for c in store.output_columns():
        arr = getattr(store, c.name)[:n]
        names = c.written_as()
        if len(names) == 1:
            out[names[0]] = arr
        else:
            for k, name in enumerate(names):
                out[name] = arr[:, k]
    return out


_STR = h5py.string_dtype("utf-8")

#: CF-style ``units`` of each cell column (UDUNITS spelling; "1" = dimensionless, "" = a label)
CELL_UNITS = {
    "snapshot": "",
    "time": "min",
    "id": "",
    "type": "",
    "x": "um",
    "y": "um",
    "z": "um",
    "volume": "um3",
    "radius": "um",
    "phase": "",
    "dead": "",
    "generation": "1",
    "clone": "",
    "kills": "1",
    "exhaustion": "1",
    "cycle_rate": "1/min",
    "apoptosis_rate": "1/min",
    "necrosis_rate": "1/min",
    "migration_speed": "um/min",
    "chemotaxis_bias": "1",
    "kill_rate": "1/min",
    "phagocytosis_rate": "1/min",
    "polarization": "1",
    "pdl1": "1",
}


def git_hash() -> str:
    """The source tree's git commit, or "" where unknown."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _append(ds: h5py.Dataset, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + values.shape[0], axis=0)
    ds[n:] = values


def _make_scale(ds: h5py.Dataset, name: str) -> None:
    ds.make_scale(name)


#: HDF5 handles whose last write failed: never closed or garbage-collected (see the module docstring)
_POISONED: list[Any] = []


def hdf5_poisoned() -> bool:
    """Whether a write failed in this process; the CLI then exits without HDF5's atexit close."""
    return bool(_POISONED)


def write_failure(path: str | Path, what: str, exc: BaseException, handle: Any = None) -> OutputWriteError:
    """The one-line error of a failed write (errno named when HDF5 reports one); parks ``handle``."""
    if handle is not None:
        _POISONED.append(handle)
        silence_hdf5_dealloc()
    code = getattr(exc, "errno", None)
    if not code:
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    reason = f"{os.strerror(code)} (errno {code})" if code else " ".join(str(exc).split())[:160]
    return OutputWriteError(f"{path}: {what} failed: {reason}")


def silence_hdf5_dealloc() -> None:
    """After a failed write, h5py objects freed while the error unwinds report the same failure
    from ``__dealloc__`` ("Exception ignored …" tracebacks on stderr): drop those, keep others."""
    previous = sys.unraisablehook
    if getattr(previous, "_tme_hdf5", False):
        return

    def hook(unraisable: Any) -> None:
        text = f"{unraisable.err_msg or ''} {unraisable.exc_value!r} {unraisable.object!r}"
        if "h5py" in text or "id ref count" in text or "ObjectID" in text:
            return
        previous(unraisable)

    hook._tme_hdf5 = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _open_live(path: Path) -> h5py.File:
    """Open an output for appending; in SWMR mode when its format allows (version-3 superblock)."""
    fh = h5py.File(path, "r+", libver="latest", locking=False)
    if status_flags(path) is not None:
        fh.swmr_mode = True
    return fh


class OutputWriter:
    """Writes one run's HDF5 file. Create with :meth:`create`, call :meth:`snapshot`, then :meth:`close`."""

    def __init__(self, path: Path, fh: h5py.File) -> None:
        self.path = path
        self.fh = fh
        self.n_snapshots = committed_snapshots(fh)
        #: a write failed: the handle is parked and nothing more is written (module docstring)
        self.broken = False

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        path: str | Path,
        model: TMEModel,
        *,
        write_fields: bool = True,
        write_cells: bool = True,
        scenario_toml: str = "",
        scenario_json: str = "",
    ) -> OutputWriter:
        path = Path(path)
        # the skeleton is built under a per-process temporary name and renamed when complete: a run
        # killed while the file is being laid out leaves no output (rather than an unreadable one)
        part = path.with_name(f"{path.name}.part-{os.getpid()}")
        silence_hdf5_dealloc()
        try:
            fh = h5py.File(part, "w-", libver="latest", locking=False)
        except (OSError, RuntimeError) as exc:
            raise write_failure(part, "creating the output", exc) from None
        try:
            cls._lay_out(fh, model, write_fields, write_cells, scenario_toml, scenario_json)
            fh.close()
            os.replace(part, path)
            return cls(path, _open_live(path))
        except (OSError, RuntimeError) as exc:
            err = write_failure(path, "creating the output", exc, fh)
            part.unlink(missing_ok=True)
            raise err from None

    @classmethod
    def _lay_out(
        cls,
        fh: h5py.File,
        model: TMEModel,
        write_fields: bool,
        write_cells: bool,
        scenario_toml: str,
        scenario_json: str,
    ) -> None:
        a = fh.attrs
        a["schema"] = SCHEMA
        a["version"] = __version__
        a["git_hash"] = git_hash()
        a["seed"] = model.seed_value
        a["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        a["scenario"] = model.scenario.name
        a["dim"] = model.dim
        a["cell_types"] = json.dumps(model.type_names)
        a["substrates"] = json.dumps(model.substrate_names)
        a["complete"] = False
        a["committed"] = 0  # the commit mark: written after each snapshot's data is flushed
        a["last_snapshot"] = -1
        a["last_time"] = np.nan
        a["write_fields"] = write_fields
        a["write_cells"] = write_cells
        a["planned_minutes"] = np.nan  # set when the run starts; attributes cannot be added in SWMR mode
        a["data_sha256"] = np.zeros(32, dtype=np.uint8)  # set on a clean close (see data_sha256)
        a["wall_seconds"] = np.nan
        meta = fh.create_group("meta")
        meta.create_dataset("scenario_json", data=scenario_json, dtype=_STR)
        meta.create_dataset("scenario_toml", data=scenario_toml, dtype=_STR)
        cls._create_fields(fh, model)
        cls._create_cells(fh, model)
        cls._create_population(fh, model)
        cls._create_events(fh)

    @staticmethod
    def _create_fields(fh: h5py.File, model: TMEModel) -> None:
        g = fh.create_group("fields")
        micro = model.micro
        nz, ny, nx = micro.shape
        dx = micro.dx
        t = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
        t.attrs["units"] = "min"
        _make_scale(t, "time")
        sp = g.create_dataset("species", data=np.array(model.substrate_names, dtype=object), dtype=_STR)
        _make_scale(sp, "species")
        g.create_dataset("unit", data=np.array(model.substrate_units, dtype=object), dtype=_STR)
        g["unit"].dims[0].attach_scale(sp)
        axes = [("x", nx), ("y", ny)] + ([("z", nz)] if model.dim == 3 else [])
        for name, size in axes:
            c = g.create_dataset(name, data=(np.arange(size) + 0.5) * dx)
            c.attrs["units"] = "um"
            _make_scale(c, name)
        spatial = [nz, ny, nx] if model.dim == 3 else [ny, nx]
        dims = ["time", "species"] + (["z", "y", "x"] if model.dim == 3 else ["y", "x"])
        s = len(model.substrate_names)
        conc = g.create_dataset(
            "concentration",
            shape=(0, s, *spatial),
            maxshape=(None, s, *spatial),
            dtype=np.float32 if micro.dtype == np.float32 else np.float64,
            chunks=(1, 1, *spatial),
            compression="gzip",
            compression_opts=1,
        )
        for i, d in enumerate(dims):
            conc.dims[i].attach_scale(g[d])
        # CF: one ``units`` string per variable. Species differ in units, so the per-species units
        # are the ``unit[species]`` variable and ``species_units``; ``units`` is set only when they agree.
        units = dict(zip(model.substrate_names, model.substrate_units, strict=True))
        conc.attrs["species_units"] = json.dumps(units)
        if len(set(units.values())) == 1:
            conc.attrs["units"] = next(iter(units.values()))

    @staticmethod
    def _create_cells(fh: h5py.File, model: TMEModel) -> None:
        g = fh.create_group("cells")
        # Tables appended snapshot by snapshot are NOT compressed: a partly filled chunk is
        # rewritten at every snapshot, and a compressed chunk changes size, moves, and its old
        # place is freed and reused before the next flush, so a run killed mid-snapshot lost
        # already committed rows ("filter returned failure during read"; benchmarks/kill_test.py
        # measured 3 of 4 randomly killed files corrupted). Uncompressed chunks are rewritten in
        # place with identical old bytes. Field frames (one chunk each, written once) stay gzip.
        for name, dt in cell_columns(model.store):
            ds = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(8192,))
            if CELL_UNITS.get(name):
                ds.attrs["units"] = CELL_UNITS[name]
        for name, dt in (("offset", "i8"), ("count", "i8"), ("snapshot_time", "f8")):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(256,))
        g["snapshot_time"].attrs["units"] = "min"
        g.attrs["cell_types"] = json.dumps(model.type_names)
        g.attrs["death_states"] = json.dumps(DEATH_NAMES)
        g.attrs["phase_names"] = json.dumps(PHASE_NAMES)
        sg = g.create_group("state")
        for t, im in model.intracellular.items():
            tg = sg.create_group(model.type_names[t])
            k = im.n_state
            tg.create_dataset(
                "values",
                shape=(0, k),
                maxshape=(None, k),
                dtype="f4",
                chunks=(4096, max(k, 1)),  # uncompressed: see the cell columns above
            )
            tg.create_dataset("id", shape=(0,), maxshape=(None,), dtype="i8", chunks=(4096,))
            tg.create_dataset("snapshot", shape=(0,), maxshape=(None,), dtype="i4", chunks=(4096,))
            tg.attrs["columns"] = json.dumps(im.state_names)
            tg.attrs["kind"] = im.kind

    @staticmethod
    def _create_population(fh: h5py.File, model: TMEModel) -> None:
        g = fh.create_group("population")
        t = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
        t.attrs["units"] = "min"
        k = len(model.type_names)
        g.create_dataset("counts", shape=(0, k, 4), maxshape=(None, k, 4), dtype="i8", chunks=(256, k, 4))
        g["counts"].attrs["units"] = "1"
        g.attrs["cell_types"] = json.dumps(model.type_names)
        g.attrs["states"] = json.dumps(POPULATION_STATES)

    @staticmethod
    def _create_events(fh: h5py.File) -> None:
        g = fh.create_group("events")
        for name in EVENT_DTYPE.names:
            ds = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE[name], chunks=(4096,))
            if name in ("time", "x", "y", "z"):
                ds.attrs["units"] = "min" if name == "time" else "um"
        g.attrs["kinds"] = json.dumps(EVENT_KINDS)

    @classmethod
    def reopen(cls, path: str | Path) -> OutputWriter:
        """Open an existing output for appending (resume; the caller checked it with :func:`open_output`).

        Clears the "open for write" flags a killed writer left; not yet in SWMR mode, so that
        :meth:`truncate_after` may shrink datasets (then call :meth:`go_live`).
        """
        silence_hdf5_dealloc()
        try:
            clear_status_flags(path)
            fh = h5py.File(path, "r+", libver="latest", locking=False)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{path}: cannot be reopened for appending ({exc})") from None
        for name in ("planned_minutes", "wall_seconds"):  # files written before live outputs
            if name not in fh.attrs:
                fh.attrs[name] = np.nan
        if "data_sha256" not in fh.attrs:
            fh.attrs["data_sha256"] = np.zeros(32, dtype=np.uint8)
        if "committed" not in fh.attrs:
            fh.attrs["committed"] = committed_snapshots(fh)
        fh.attrs["complete"] = False
        fh.flush()
        return cls(Path(path), fh)

    def go_live(self) -> None:
        """Switch to SWMR mode so readers can open the file while it is written."""
        if status_flags(self.path) is not None and not self.fh.swmr_mode:
            self.fh.swmr_mode = True

    def set_attr(self, name: str, value: Any) -> None:
        """Overwrite an existing root attribute in place (the only way in SWMR mode)."""
        self.fh.attrs.modify(name, value)

    def truncate_after(self, time: float) -> None:
        """Drop everything recorded after ``time`` (min), and any half-written snapshot.

        Used when resuming from a checkpoint taken at ``time``: snapshots up to it stay; events
        of the last kept snapshot and before stay (later ones come back from the checkpoint's
        pending buffer).
        """
        fh = self.fh
        eps = 1e-9
        c = fh["cells"]
        k = committed_snapshots(fh)
        st = c["snapshot_time"][:k]
        ks = int(np.sum(st <= time + eps))
        g = fh["fields"]
        if fh.attrs["write_fields"]:
            g["time"].resize(ks, axis=0)
            g["concentration"].resize(ks, axis=0)
        if fh.attrs["write_cells"]:
            end = int(c["offset"][ks - 1] + c["count"][ks - 1]) if ks else 0
            for name in stored_cell_columns(c):
                c[name].resize(end, axis=0)
            for name in ("offset", "count"):
                c[name].resize(ks, axis=0)
            for tg in c["state"].values():
                m = min(tg[name].shape[0] for name in ("values", "id", "snapshot"))
                keep_rows = int(np.sum(tg["snapshot"][:m] < ks))
                for name in ("values", "id", "snapshot"):
                    tg[name].resize(keep_rows, axis=0)
        c["snapshot_time"].resize(ks, axis=0)
        p = fh["population"]
        p["time"].resize(ks, axis=0)
        p["counts"].resize(ks, axis=0)
        last_kept = float(st[ks - 1]) if ks else -np.inf
        e = fh["events"]
        m = min(e[name].shape[0] for name in EVENT_DTYPE.names)
        ke = int(np.sum(e["time"][:m] <= last_kept + eps))
        for name in EVENT_DTYPE.names:
            e[name].resize(ke, axis=0)
        self.n_snapshots = ks
        fh.attrs.modify("committed", ks)
        fh.attrs.modify("last_snapshot", ks - 1)
        fh.attrs.modify("last_time", last_kept if ks else np.nan)
        fh.flush()

    # ------------------------------------------------------------------ writing
    def snapshot(self, model: TMEModel) -> None:
        """Append one snapshot (fields, cells, population, pending events) and flush.

        A failed write raises :class:`OutputWriteError`; the file keeps the earlier snapshots."""
        if self.broken:
            raise OutputWriteError(f"{self.path}: an earlier write failed")
        try:
            self._snapshot(model)
        except (OSError, RuntimeError) as exc:
            self.broken = True
            raise write_failure(self.path, f"writing the snapshot at t = {model.time:g} min", exc, self.fh) from None

    def _snapshot(self, model: TMEModel) -> None:
        fh = self.fh
        k = self.n_snapshots
        t = model.time
        if fh.attrs["write_fields"]:
            g = fh["fields"]
            data = model.micro.species_first()
            if model.dim == 2:
                data = data[:, 0]
            _append(g["time"], np.array([t]))
            _append(g["concentration"], data[None].astype(g["concentration"].dtype, copy=False))
        c = fh["cells"]
        st = model.store
        n = st.n
        if fh.attrs["write_cells"]:
            start = c["id"].shape[0]
            cols = {"snapshot": np.full(n, k, dtype=np.int32), "time": np.full(n, t), **_column_values(st)}
            for name, dt in cell_columns(st):
                _append(c[name], np.asarray(cols[name], dtype=dt))
            _append(c["offset"], np.array([start]))
            _append(c["count"], np.array([n]))
            for ti, _im in model.intracellular.items():
                tg = c["state"][model.type_names[ti]]
                rows = st.istate_of(ti)
                _append(tg["values"], rows)
                _append(tg["id"], st.id[st.istate_slots(ti)])
                _append(tg["snapshot"], np.full(rows.shape[0], k, dtype=np.int32))
        # events, then the snapshot's time and population last: their presence marks a committed
        # snapshot (see committed_snapshots); events of an uncommitted one are later than it
        self.write_events(model)
        _append(c["snapshot_time"], np.array([t]))
        p = fh["population"]
        _append(p["time"], np.array([t]))
        _append(p["counts"], model.population_counts()[None])
        fh.attrs.modify("last_snapshot", k)
        fh.attrs.modify("last_time", t)
        fh.flush()
        # two-phase commit: the mark is written only once the data are. A write that fails (disk
        # full) can leave extents on disk whose data never arrived; the mark then does not count them
        fh.attrs.modify("committed", k + 1)
        fh.flush()
        self.n_snapshots = k + 1

    def write_events(self, model: TMEModel) -> None:
        ev = model.events.drain()
        if ev.size == 0:
            return
        g = self.fh["events"]
        for name in EVENT_DTYPE.names:
            _append(g[name], ev[name])

    def sync(self) -> None:
        """Flush and fsync the output (so a checkpoint taken now is never ahead of it on disk)."""
        if self.broken or not self.fh.id.valid:
            return
        try:
            self.fh.flush()
        except (OSError, RuntimeError) as exc:
            self.broken = True
            raise write_failure(self.path, "flushing the output", exc, self.fh) from None
        try:
            os.fsync(self.fh.id.get_vfd_handle())
        except (OSError, ValueError, TypeError):  # pragma: no cover - non-POSIX drivers
            pass

    def close(self, complete: bool = True) -> None:
        """Mark the file ``complete`` (only on a clean end of the run), flush and close it."""
        if self.broken or not self.fh.id.valid:
            return
        try:
            if complete and "data_sha256" in self.fh.attrs:
                self.fh.flush()
                self.fh.attrs.modify("data_sha256", np.frombuffer(data_sha256(self.fh), dtype=np.uint8))
            self.fh.attrs.modify("complete", bool(complete))
            self.fh.flush()
            self.fh.close()
        except (OSError, RuntimeError) as exc:
            self.broken = True
            raise write_failure(self.path, "closing the output", exc, self.fh) from None


# ---------------------------------------------------------------------------------- readers


def data_sha256(fh: h5py.File) -> bytes:
    """SHA-256 of every dataset of the fields, cells, population and events groups (names, dtypes,
    shapes, values; read in slices of ~16 MB). Stored as ``data_sha256`` when a run closes cleanly."""

    h = hashlib.sha256()
    names: list[str] = []
    for g in ("fields", "cells", "population", "events"):
        if g in fh:
            fh[g].visititems(lambda n, o, g=g: names.append(f"{g}/{n}") if isinstance(o, h5py.Dataset) else None)
    for name in sorted(names):
        ds = fh[name]
        h.update(f"{name}|{ds.dtype.str}|{ds.shape}|".encode())
        if ds.dtype.kind in "OSU":
            h.update(json.dumps([str(v) for v in np.ravel(ds.asstr()[()])]).encode())
            continue
        if ds.ndim == 0 or ds.shape[0] == 0:
            h.update(np.ascontiguousarray(ds[()]).tobytes())
            continue
        row = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
        step = max(1, (16 << 20) // row)
        for a in range(0, ds.shape[0], step):
            h.update(np.ascontiguousarray(ds[a : a + step]).tobytes())
    return h.digest()


def verify_output(path: str | Path) -> bool:
    """Check a complete output against its stored ``data_sha256``; False when it has none (older
    or unfinished files). A mismatch (bytes changed after the run) is an :class:`OutputError`."""
    with _open(path) as fh:
        stored = np.asarray(fh.attrs.get("data_sha256", np.zeros(0, np.uint8)), dtype=np.uint8)
        if not bool(fh.attrs.get("complete", False)) or stored.size != 32 or not stored.any():
            return False
        if data_sha256(fh) != stored.tobytes():
            raise OutputError(f"{path}: data checksum mismatch (the file was corrupted or changed after the run)")
    return True


#: what h5py raises for a damaged or foreign file once it is open (missing groups, bad types, …)
DAMAGED = (KeyError, ValueError, TypeError, IndexError, OSError, RuntimeError, json.JSONDecodeError)


def reading(fn: Any) -> Any:
    """Decorator of readers: a damaged file is a one-line :class:`OutputError`, never a traceback."""

    @functools.wraps(fn)
    def wrapper(path: str | Path, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(path, *args, **kwargs)
        except OutputError:
            raise
        except DAMAGED as exc:
            what = " ".join(str(exc).split())[:120]
            raise OutputError(f"{path}: damaged or not a tme-sim output ({exc.__class__.__name__}: {what})") from None

    return wrapper


def open_output(path: str | Path) -> h5py.File:
    """Open a tme-sim output for reading, also while a run writes it or after its writer died.

    Raises :class:`OutputError` (one line) for a missing, foreign or unfinished file.
    """
    return _open(path)


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise OutputError(f"{path}: no such file")
    if not path.is_file():
        raise OutputError(f"{path}: not a file")
    try:
        fh = _open_h5(path, swmr=False)
    except OSError as first:
        # written now (SWMR) or its writer died: SWMR reading accepts the "open for write" flags.
        # Only then: on a damaged file a SWMR reader retries failed reads with sleeps for minutes.
        if "open for write" not in str(first):
            raise OutputError(f"{path}: not a readable HDF5 file ({_reason(first)})") from None
        try:
            fh = _open_h5(path, swmr=True)
        except OSError as exc:
            raise OutputError(f"{path}: not a readable HDF5 file ({_reason(exc)})") from None
    if fh.attrs.get("schema") != SCHEMA:
        fh.close()
        raise OutputError(f"{path}: not a tme-sim output (schema {SCHEMA!r} expected)")
    missing = [g for g in ("fields", "cells", "population", "events") if g not in fh]
    if missing:
        fh.close()
        raise OutputError(f"{path}: INCOMPLETE — the run stopped while creating the file; no snapshot was committed")
    return fh


def _open_h5(path: Path, *, swmr: bool) -> h5py.File:
    """Open read-only without taking HDF5's file lock (a writer may hold it), or with the lock
    settings of a handle this process already has open on the file (xarray's, say): HDF5 refuses
    a second handle whose locking differs ("file locking flag values don't match")."""
    try:
        return h5py.File(path, "r", swmr=swmr, locking=False)
    except OSError as exc:
        if "locking flag" not in str(exc):
            raise
        return h5py.File(path, "r", swmr=swmr)


def _reason(exc: BaseException) -> str:
    """The short reason in an h5py error ("truncated file", "file signature not found", …)."""
    m = re.search(r"\(([^()]*)\)\s*$", str(exc))
    return m.group(1)[:80] if m else exc.__class__.__name__


def committed_snapshots(fh: h5py.File) -> int:
    """Number of snapshots fully written to ``fh`` (derived from the datasets, not the attributes).

    A snapshot counts when its time and population rows exist, its field frame exists (when
    fields are written), its cell rows exist (when cells are written) and the commit mark (root
    attribute ``committed``, absent in older files) counts it. A run killed in the middle of
    writing a snapshot leaves at most that one snapshot partial; it is not counted.
    """
    c = fh["cells"]
    p = fh["population"]
    k = min(c["snapshot_time"].shape[0], p["time"].shape[0], p["counts"].shape[0])
    if bool(fh.attrs.get("write_fields", True)):
        g = fh["fields"]
        k = min(k, g["time"].shape[0], g["concentration"].shape[0])
    if bool(fh.attrs.get("write_cells", True)):
        k = min(k, c["offset"].shape[0], c["count"].shape[0])
        if k:
            rows = min(c[name].shape[0] for name in stored_cell_columns(c))
            offset = c["offset"][:k]
            count = c["count"][:k]
            while k and offset[k - 1] + count[k - 1] > rows:
                k -= 1
    if "committed" in fh.attrs:
        k = min(k, int(fh.attrs["committed"]))
    return int(k)


@reading
def read_attrs(path: str | Path) -> dict[str, Any]:
    """Root attributes (schema, version, seed, complete, last_snapshot, …) as plain Python."""
    with _open(path) as fh:
        out = {}
        for k, v in fh.attrs.items():
            out[k] = v.item() if isinstance(v, np.generic) else v
        for k in ("cell_types", "substrates"):
            if k in out:
                out[k] = json.loads(out[k])
        if "data_sha256" in out:
            out["data_sha256"] = bytes(np.asarray(out["data_sha256"], dtype=np.uint8)).hex()
        return out


@reading
def read_stored_scenario(path: str | Path) -> dict[str, Any]:
    """The resolved scenario stored in the file."""
    with _open(path) as fh:
        return json.loads(fh["meta/scenario_json"][()].decode())


@reading
def open_fields(path: str | Path) -> xr.Dataset:
    """The fields as an xarray Dataset (same as ``xarray.open_dataset(path, group="fields", engine="h5netcdf")``)."""
    import xarray as xr

    with _open(path) as fh:
        g = fh["fields"]
        n_time, n_conc = g["time"].shape[0], g["concentration"].shape[0]
        if n_time == n_conc:
            consistent = True
        else:  # killed between the two appends of one frame: build the committed part by hand
            consistent = False
            k = min(n_time, n_conc)
            names = list(g["species"].asstr()[:])
            dims = ["time", "species"] + (["z", "y", "x"] if "z" in g else ["y", "x"])
            coords = {"time": ("time", g["time"][:k], {"units": "min"}), "species": names}
            for ax in dims[2:]:
                coords[ax] = (ax, g[ax][:], {"units": "um"})
            ds = xr.Dataset(
                {
                    "concentration": (dims, g["concentration"][:k]),
                    "unit": (("species",), list(g["unit"].asstr()[:])),
                },
                coords=coords,
            )
    if consistent:
        return xr.open_dataset(path, group="fields", engine="h5netcdf", driver_kwds=_h5_read_kwds(path))
    return ds


def _h5_read_kwds(path: str | Path) -> dict[str, bool]:
    """h5py.File keywords that read ``path``: SWMR mode when a writer has it open or died (flags set)."""
    return {"swmr": status_flags(path) not in (None, 0), "locking": False}


@reading
def snapshot_times(path: str | Path) -> np.ndarray:
    """Times (min) of the committed snapshots."""
    with _open(path) as fh:
        return fh["cells/snapshot_time"][: committed_snapshots(fh)]


def stored_cell_columns(cells: h5py.Group) -> list[str]:
    """Names of the per-cell datasets of a file's cells group: the core ones in their usual order,
    then any declared by behaviours (``Column(output=...)``), alphabetically."""
    core = [name for name, _ in CELL_COLUMNS if name in cells]
    extra = sorted(
        name
        for name, ds in cells.items()
        if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and name not in _CELL_INDEX and name not in core
    )
    return core + extra


def pick_snapshot(times: np.ndarray, time: float, *, nearest: bool = False, source: str = "") -> int:
    """Index of the snapshot taken at ``time`` (min).

    Exact (to 1e-6 min) by default: a time between snapshots is an :class:`OutputError` naming the
    nearest ones. With ``nearest=True`` the nearest snapshot is taken, with a :class:`UserWarning`
    when it is not exact.
    """
    import warnings

    if times.size == 0:
        raise OutputError(f"{source}: holds no snapshots")
    k = int(np.argmin(np.abs(times - time)))
    if abs(float(times[k]) - time) <= 1e-6 * max(1.0, abs(time)):
        return k
    if not nearest:
        raise OutputError(
            f"{source}: no snapshot at t = {time:g} min (nearest: {float(times[k]):g} min; snapshots every "
            f"{float(np.median(np.diff(times))) if times.size > 1 else 0:g} min); pass nearest=True to take it"
        )
    warnings.warn(f"{source}: no snapshot at t = {time:g} min; using the nearest, t = {float(times[k]):g} min",
                  UserWarning, stacklevel=3)  # fmt: skip
    return k


def _label_columns(df: pd.DataFrame, c: h5py.Group) -> pd.DataFrame:
    """Categorical names for the coded columns (type, phase, death); keeps ``dead`` as its code."""
    types = json.loads(c.attrs["cell_types"])
    df["type"] = pd.Categorical.from_codes(df["type"].astype(int), categories=types)
    phases = {int(k): v for k, v in json.loads(c.attrs.get("phase_names", json.dumps(PHASE_NAMES))).items()}
    codes = df["phase"].astype(int)
    names = [phases.get(i, f"phase {i}") for i in range(max(max(phases) + 1, int(codes.max()) + 1 if len(df) else 0))]
    df["phase"] = pd.Categorical.from_codes(codes, categories=names)
    df["death"] = pd.Categorical.from_codes(df["dead"].astype(int), categories=list(DEATH_NAMES.values()))
    for name, unit in CELL_UNITS.items():
        if name in df.columns and unit:
            df[name].attrs["units"] = unit
    df.attrs["units"] = {k: v for k, v in CELL_UNITS.items() if v}
    return df


@reading
def read_cells(
    path: str | Path,
    snapshot: int | None = -1,
    time: float | None = None,
    *,
    nearest: bool = False,
) -> pd.DataFrame:
    """Cells as a tidy DataFrame: one row per cell and snapshot.

    ``snapshot`` counts from 0 (negative from the end); ``snapshot=None`` returns every committed
    snapshot in one table (columns ``snapshot`` and ``time`` tell them apart). ``time`` (min)
    selects the snapshot taken at that time — exactly, unless ``nearest=True`` (then the nearest
    one, with a warning when it differs). ``type``, ``phase`` and ``death`` are categoricals of
    names; units of the numeric columns are in ``df.attrs["units"]`` (see :data:`CELL_UNITS`).
    """
    with _open(path) as fh:
        c = fh["cells"]
        n = committed_snapshots(fh)
        times = c["snapshot_time"][:n]
        if n == 0 or not bool(fh.attrs.get("write_cells", True)):
            raise OutputError(f"{path}: holds no cell snapshots")
        if time is not None:
            snapshot = pick_snapshot(times, float(time), nearest=nearest, source=str(path))
        if snapshot is None:
            a, b = 0, int(c["offset"][n - 1] + c["count"][n - 1])
        else:
            k = snapshot if snapshot >= 0 else n + snapshot
            if not 0 <= k < n:
                raise OutputError(f"{path}: no snapshot {snapshot} (it has {n})")
            a = int(c["offset"][k])
            b = a + int(c["count"][k])
        df = pd.DataFrame({name: c[name][a:b] for name in stored_cell_columns(c)})
        return _label_columns(df, c)


@reading
def species_units(path: str | Path) -> dict[str, str]:
    """Unit of each field species (reads the ``species_units`` attribute, or an older file's JSON ``units``)."""
    with _open(path) as fh:
        g = fh["fields"]
        conc = g["concentration"]
        if "species_units" in conc.attrs:
            return json.loads(conc.attrs["species_units"])
        raw = conc.attrs.get("units", "")
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        if raw.startswith("{"):  # files written before per-variable units
            return json.loads(raw)
        names = list(g["species"].asstr()[:])
        if "unit" in g:
            return dict(zip(names, g["unit"].asstr()[:], strict=True))
        return dict.fromkeys(names, raw)


@reading
def read_fields(path: str | Path) -> xr.Dataset:
    """Fields as an xarray Dataset with one variable per species (``oxygen[time, y, x]``…), each
    with its CF ``units`` attribute; coordinates in min and µm."""
    ds = open_fields(path)
    units = species_units(path)
    out = {}
    for name in [str(v) for v in ds["species"].values]:
        da = ds["concentration"].sel(species=name).drop_vars("species")
        da.attrs = {"units": units.get(name, ""), "long_name": f"{name} concentration"}
        out[name] = da
    import xarray as xr

    res = xr.Dataset(out)
    for ax in ("time", "x", "y", "z"):
        if ax in res.coords:
            res[ax].attrs["units"] = "min" if ax == "time" else "um"
    ds.close()
    return res


@reading
def read_states(path: str | Path, cell_type: str, snapshot: int | None = -1) -> pd.DataFrame:
    """Intracellular states of one type: index = cell id, columns = node (or output) names.

    One snapshot (default the last), or every snapshot with ``snapshot=None`` (then with
    ``snapshot`` and ``time`` columns first).
    """
    with _open(path) as fh:
        g = fh["cells/state"]
        if cell_type not in g:
            known = ", ".join(g) or "none"
            raise OutputError(f"{path}: no intracellular states stored for {cell_type!r} (stored: {known})")
        tg = g[cell_type]
        nsnap = committed_snapshots(fh)
        m = min(tg[name].shape[0] for name in ("values", "id", "snapshot"))
        snaps = tg["snapshot"][:m]
        cols = json.loads(tg.attrs["columns"])
        if snapshot is None:
            keep = snaps < nsnap
            times = fh["cells/snapshot_time"][:nsnap]
            df = pd.DataFrame(tg["values"][:m][keep], index=pd.Index(tg["id"][:m][keep], name="id"), columns=cols)
            df.insert(0, "time", times[snaps[keep]])
            df.insert(0, "snapshot", snaps[keep])
            return df
        k = snapshot if snapshot >= 0 else nsnap + snapshot
        if not 0 <= k < nsnap:
            raise OutputError(f"{path}: no snapshot {snapshot} (it has {nsnap})")
        sel = np.flatnonzero(snaps == k)
        vals = tg["values"][sel[0] : sel[-1] + 1] if sel.size else np.zeros((0, len(cols)), np.float32)
        ids = tg["id"][sel[0] : sel[-1] + 1] if sel.size else np.zeros(0, np.int64)
        return pd.DataFrame(vals, index=pd.Index(ids, name="id"), columns=cols)


@reading
def read_population(path: str | Path) -> pd.DataFrame:
    """Long table: time (min), type, live, apoptotic, necrotic, lysed."""
    with _open(path) as fh:
        p = fh["population"]
        k = committed_snapshots(fh)
        t = p["time"][:k]
        counts = p["counts"][:k]
        types = json.loads(p.attrs["cell_types"])
    rows = []
    for i, name in enumerate(types):
        df = pd.DataFrame(counts[:, i, :], columns=list(POPULATION_STATES))
        df.insert(0, "type", name)
        df.insert(0, "time", t)
        rows.append(df)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.sort_values(["time", "type"], kind="stable").reset_index(drop=True)


def _committed_events(fh: h5py.File) -> int:
    """Rows of /events fully written and no later than the last committed snapshot."""
    g = fh["events"]
    m = min(g[name].shape[0] for name in EVENT_DTYPE.names)
    k = committed_snapshots(fh)
    if k == 0:
        return 0
    last = float(fh["cells/snapshot_time"][k - 1])
    return int(np.sum(g["time"][:m] <= last + 1e-9))


@reading
def read_events(path: str | Path) -> pd.DataFrame:
    """Events table: time, kind (name), id, other_id, type (name), x, y, z."""
    with _open(path) as fh:
        g = fh["events"]
        m = _committed_events(fh)
        df = pd.DataFrame({name: g[name][:m] for name in EVENT_DTYPE.names})
        kinds = json.loads(g.attrs["kinds"])
        types = json.loads(fh.attrs["cell_types"])
    df["kind"] = pd.Categorical.from_codes(df["kind"].astype(int), categories=kinds)
    df["type"] = pd.Categorical.from_codes(df["type"].astype(int), categories=types)
    return df


def to_anndata(path: str | Path, cell_type: str, snapshot: int = -1):
    """An AnnData of one type's intracellular states (X) with cell positions and types in ``obs``."""
    try:
        import anndata
    except ImportError:  # pragma: no cover - optional dependency
        raise OutputError("anndata is not installed: pip install anndata") from None
    states = read_states(path, cell_type, snapshot)
    cells = read_cells(path, snapshot).set_index("id")
    obs = cells.loc[states.index].copy()
    obs.index = obs.index.astype(str)
    return anndata.AnnData(X=states.to_numpy(), obs=obs, var=pd.DataFrame(index=list(states.columns)))


@reading
def describe(path: str | Path) -> str:
    """A human summary of an output file (used by ``tme info``)."""
    a = read_attrs(path)
    with _open(path) as fh:
        n_snap = committed_snapshots(fh)
        times = fh["cells/snapshot_time"][:n_snap]
        counts = fh["population/counts"][n_snap - 1] if n_snap else None
        n_events = _committed_events(fh)
        kinds = json.loads(fh["events"].attrs["kinds"])
        ev_kinds = np.bincount(fh["events/kind"][:n_events], minlength=len(kinds)) if n_events else np.zeros(len(kinds))
    lines = [
        f"file:       {path}",
        f"schema:     {a.get('schema')}  tme-sim {a.get('version')}  git {a.get('git_hash') or 'unknown'}",
        f"scenario:   {a.get('scenario')}  ({a.get('dim')}D)  seed {a.get('seed')}  created {a.get('created')}",
        f"substrates: {', '.join(a.get('substrates', []))}",
    ]
    pid = holder(path)
    if pid is not None:
        planned = a.get("planned_minutes")
        now = float(times[-1]) if n_snap else 0.0
        done = f" of {planned:g} min ({100 * now / planned:.0f}%)" if planned and np.isfinite(planned) else ""
        who = f"pid {pid}, " if pid > 0 else ""
        lines.append(f"status:     RUNNING ({who}{n_snap} snapshots so far, t = {now:g} min{done})")
    elif a.get("complete"):
        lines.append(
            f"status:     complete ({n_snap} snapshots, last at {times[-1]:g} min)"
            if n_snap
            else "status:     complete (no snapshots)"
        )
    elif n_snap:
        lines.append(
            f"status:     INCOMPLETE — the run stopped early; last good snapshot {n_snap - 1} at {times[-1]:g} min"
        )
    else:
        lines.append("status:     INCOMPLETE — no snapshot was committed")
    if pid is None and a.get("complete"):
        lines.append(f"checksum:   {'ok (SHA-256 of the data)' if verify_output(path) else 'none stored'}")
    if np.isfinite(a.get("wall_seconds", np.nan)):
        lines.append(f"wall time:  {a['wall_seconds']:.1f} s")
    if counts is not None:
        for name, row in zip(a.get("cell_types", []), counts, strict=False):
            lines.append(
                f"  {name:<14} live {row[0]:>7}  apoptotic {row[1]:>6}  necrotic {row[2]:>6}  lysed {row[3]:>6}"
            )
    ev = ", ".join(f"{k} {int(c)}" for k, c in zip(kinds, ev_kinds, strict=True) if c)
    lines.append(f"events:     {n_events} ({ev or 'none'})")
    return "\n".join(lines)
