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
at any moment leaves a readable file holding every committed snapshot.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from tme_sim import __version__
from tme_sim.cells import BEHAVIOR_COLUMNS, DEATH_NAMES
from tme_sim.errors import OutputError
from tme_sim.events import EVENT_DTYPE, EVENT_KINDS

if TYPE_CHECKING:
    import xarray as xr

    from tme_sim.model import TMEModel

SCHEMA = "tme-sim/1"
POPULATION_STATES = ("live", "apoptotic", "necrotic", "lysed")
CELL_COLUMNS = (
    ("snapshot", "i4"),
    ("time", "f8"),
    ("id", "i8"),
    ("type", "i2"),
    ("x", "f8"),
    ("y", "f8"),
    ("z", "f8"),
    ("volume", "f8"),
    ("radius", "f8"),
    ("phase", "i1"),
    ("dead", "i1"),
    ("generation", "i4"),
    ("clone", "i2"),
    ("kills", "i4"),
    *((b, "f4") for b in BEHAVIOR_COLUMNS),
)
_STR = h5py.string_dtype("utf-8")


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


class OutputWriter:
    """Writes one run's HDF5 file. Create with :meth:`create`, call :meth:`snapshot`, then :meth:`close`."""

    def __init__(self, path: Path, fh: h5py.File) -> None:
        self.path = path
        self.fh = fh
        self.n_snapshots = int(fh.attrs.get("last_snapshot", -1)) + 1

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path: str | Path, model: TMEModel, *, write_fields: bool = True, write_cells: bool = True,
               scenario_toml: str = "", scenario_json: str = "") -> OutputWriter:
        path = Path(path)
        fh = h5py.File(path, "w", libver="latest")
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
        a["last_snapshot"] = -1
        a["last_time"] = np.nan
        a["write_fields"] = write_fields
        a["write_cells"] = write_cells
        meta = fh.create_group("meta")
        meta.create_dataset("scenario_json", data=scenario_json, dtype=_STR)
        meta.create_dataset("scenario_toml", data=scenario_toml, dtype=_STR)
        cls._create_fields(fh, model)
        cls._create_cells(fh, model)
        cls._create_population(fh, model)
        cls._create_events(fh)
        fh.flush()
        return cls(path, fh)

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
        conc.attrs["units"] = json.dumps(dict(zip(model.substrate_names, model.substrate_units, strict=True)))

    @staticmethod
    def _create_cells(fh: h5py.File, model: TMEModel) -> None:
        g = fh.create_group("cells")
        for name, dt in CELL_COLUMNS:
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(8192,),
                             compression="gzip", compression_opts=1)
        for name, dt in (("offset", "i8"), ("count", "i8"), ("snapshot_time", "f8")):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(256,))
        g.attrs["cell_types"] = json.dumps(model.type_names)
        g.attrs["death_states"] = json.dumps(DEATH_NAMES)
        sg = g.create_group("state")
        for t, im in model.intracellular.items():
            tg = sg.create_group(model.type_names[t])
            k = im.n_state
            tg.create_dataset("values", shape=(0, k), maxshape=(None, k), dtype="f4", chunks=(4096, max(k, 1)),
                              compression="gzip", compression_opts=1)
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
        g.attrs["cell_types"] = json.dumps(model.type_names)
        g.attrs["states"] = json.dumps(POPULATION_STATES)

    @staticmethod
    def _create_events(fh: h5py.File) -> None:
        g = fh.create_group("events")
        for name in EVENT_DTYPE.names:
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE[name], chunks=(4096,))
        g.attrs["kinds"] = json.dumps(EVENT_KINDS)

    @classmethod
    def reopen(cls, path: str | Path) -> OutputWriter:
        """Open an existing output for appending (resume)."""
        fh = h5py.File(path, "a", libver="latest")
        fh.attrs["complete"] = False
        return cls(Path(path), fh)

    def truncate_after(self, time: float) -> None:
        """Drop everything recorded after ``time`` (used when resuming from a checkpoint)."""
        fh = self.fh
        eps = 1e-9
        ft = fh["fields/time"][:]
        keep = int(np.sum(ft <= time + eps))
        g = fh["fields"]
        g["time"].resize(keep, axis=0)
        g["concentration"].resize(keep, axis=0)
        c = fh["cells"]
        st = c["snapshot_time"][:]
        ks = int(np.sum(st <= time + eps))
        end = int(c["offset"][ks - 1] + c["count"][ks - 1]) if ks else 0
        for name, _ in CELL_COLUMNS:
            c[name].resize(end, axis=0)
        for name in ("offset", "count", "snapshot_time"):
            c[name].resize(ks, axis=0)
        for tg in c["state"].values():
            keep_rows = int(np.sum(tg["snapshot"][:] < ks))
            for name in ("values", "id", "snapshot"):
                tg[name].resize(keep_rows, axis=0)
        p = fh["population"]
        kp = int(np.sum(p["time"][:] <= time + eps))
        p["time"].resize(kp, axis=0)
        p["counts"].resize(kp, axis=0)
        e = fh["events"]
        ke = int(np.sum(e["time"][:] <= time + eps))
        for name in EVENT_DTYPE.names:
            e[name].resize(ke, axis=0)
        self.n_snapshots = ks
        fh.attrs["last_snapshot"] = ks - 1
        fh.attrs["last_time"] = float(st[ks - 1]) if ks else np.nan
        fh.flush()

    # ------------------------------------------------------------------ writing
    def snapshot(self, model: TMEModel) -> None:
        """Append one snapshot (fields, cells, population, pending events) and flush."""
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
            cols = {
                "snapshot": np.full(n, k, dtype=np.int32),
                "time": np.full(n, t),
                "id": st.id[:n],
                "type": st.type[:n],
                "x": st.position[:n, 0],
                "y": st.position[:n, 1],
                "z": st.position[:n, 2],
                "volume": st.volume[:n],
                "radius": st.radius[:n],
                "phase": st.phase[:n],
                "dead": st.death[:n],
                "generation": st.generation[:n],
                "clone": st.clone[:n],
                "kills": st.kills[:n],
            }
            for b in BEHAVIOR_COLUMNS:
                cols[b] = getattr(st, b)[:n]
            for name, dt in CELL_COLUMNS:
                _append(c[name], np.asarray(cols[name], dtype=dt))
            _append(c["offset"], np.array([start]))
            _append(c["count"], np.array([n]))
            for ti, _im in model.intracellular.items():
                tg = c["state"][model.type_names[ti]]
                rows = st.istate_of(ti)
                _append(tg["values"], rows)
                _append(tg["id"], st.id[st.istate_slots(ti)])
                _append(tg["snapshot"], np.full(rows.shape[0], k, dtype=np.int32))
        _append(c["snapshot_time"], np.array([t]))
        p = fh["population"]
        _append(p["time"], np.array([t]))
        _append(p["counts"], model.population_counts()[None])
        self.write_events(model)
        fh.attrs["last_snapshot"] = k
        fh.attrs["last_time"] = t
        self.n_snapshots = k + 1
        fh.flush()

    def write_events(self, model: TMEModel) -> None:
        ev = model.events.drain()
        if ev.size == 0:
            return
        g = self.fh["events"]
        for name in EVENT_DTYPE.names:
            _append(g[name], ev[name])

    def close(self, complete: bool = True) -> None:
        if not self.fh.id.valid:
            return
        self.fh.attrs["complete"] = bool(complete)
        self.fh.flush()
        self.fh.close()


# ---------------------------------------------------------------------------------- readers


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise OutputError(f"{path}: no such file")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise OutputError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__})") from None
    if fh.attrs.get("schema") != SCHEMA:
        fh.close()
        raise OutputError(f"{path}: not a tme-sim output (schema {SCHEMA!r} expected)")
    return fh


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Root attributes (schema, version, seed, complete, last_snapshot, …) as plain Python."""
    with _open(path) as fh:
        out = {}
        for k, v in fh.attrs.items():
            out[k] = v.item() if isinstance(v, np.generic) else v
        for k in ("cell_types", "substrates"):
            if k in out:
                out[k] = json.loads(out[k])
        return out


def read_scenario(path: str | Path) -> dict[str, Any]:
    """The resolved scenario stored in the file."""
    with _open(path) as fh:
        return json.loads(fh["meta/scenario_json"][()].decode())


def open_fields(path: str | Path) -> xr.Dataset:
    """The fields as an xarray Dataset (same as ``xarray.open_dataset(path, group="fields", engine="h5netcdf")``)."""
    import xarray as xr

    return xr.open_dataset(path, group="fields", engine="h5netcdf")


def snapshot_times(path: str | Path) -> np.ndarray:
    with _open(path) as fh:
        return fh["cells/snapshot_time"][:]


def read_cells(path: str | Path, snapshot: int = -1, time: float | None = None) -> pd.DataFrame:
    """Cells of one snapshot as a DataFrame (type as a categorical of names).

    ``snapshot`` counts from 0 (negative from the end); ``time`` (min) picks the nearest snapshot.
    """
    with _open(path) as fh:
        c = fh["cells"]
        times = c["snapshot_time"][:]
        if len(times) == 0 or c["offset"].shape[0] == 0:
            raise OutputError(f"{path}: holds no cell snapshots")
        if time is not None:
            snapshot = int(np.argmin(np.abs(times - time)))
        k = snapshot if snapshot >= 0 else len(times) + snapshot
        if not 0 <= k < c["offset"].shape[0]:
            raise OutputError(f"{path}: no snapshot {snapshot} (it has {c['offset'].shape[0]})")
        a = int(c["offset"][k])
        b = a + int(c["count"][k])
        df = pd.DataFrame({name: c[name][a:b] for name, _ in CELL_COLUMNS})
        types = json.loads(c.attrs["cell_types"])
        df["type"] = pd.Categorical.from_codes(df["type"].astype(int), categories=types)
        df["death"] = pd.Categorical.from_codes(df["dead"].astype(int), categories=list(DEATH_NAMES.values()))
        return df


def read_states(path: str | Path, cell_type: str, snapshot: int = -1) -> pd.DataFrame:
    """Intracellular states of one type at one snapshot: index = cell id, columns = node names."""
    with _open(path) as fh:
        g = fh["cells/state"]
        if cell_type not in g:
            raise OutputError(f"{path}: no intracellular states stored for {cell_type!r}")
        tg = g[cell_type]
        nsnap = fh["cells/offset"].shape[0]
        k = snapshot if snapshot >= 0 else nsnap + snapshot
        snaps = tg["snapshot"][:]
        sel = np.flatnonzero(snaps == k)
        cols = json.loads(tg.attrs["columns"])
        vals = tg["values"][sel[0] : sel[-1] + 1] if sel.size else np.zeros((0, len(cols)), np.float32)
        ids = tg["id"][sel[0] : sel[-1] + 1] if sel.size else np.zeros(0, np.int64)
        return pd.DataFrame(vals, index=pd.Index(ids, name="id"), columns=cols)


def read_population(path: str | Path) -> pd.DataFrame:
    """Long table: time (min), type, live, apoptotic, necrotic, lysed."""
    with _open(path) as fh:
        p = fh["population"]
        t = p["time"][:]
        counts = p["counts"][:]
        types = json.loads(p.attrs["cell_types"])
    rows = []
    for i, name in enumerate(types):
        df = pd.DataFrame(counts[:, i, :], columns=list(POPULATION_STATES))
        df.insert(0, "type", name)
        df.insert(0, "time", t)
        rows.append(df)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.sort_values(["time", "type"], kind="stable").reset_index(drop=True)


def read_events(path: str | Path) -> pd.DataFrame:
    """Events table: time, kind (name), id, other_id, type (name), x, y, z."""
    with _open(path) as fh:
        g = fh["events"]
        df = pd.DataFrame({name: g[name][:] for name in EVENT_DTYPE.names})
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
    return anndata.AnnData(
        X=states.to_numpy(), obs=obs, var=pd.DataFrame(index=list(states.columns))
    )


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(path: str | Path) -> str:
    """A human summary of an output file (used by ``tme info``)."""
    a = read_attrs(path)
    with _open(path) as fh:
        n_snap = fh["cells/snapshot_time"].shape[0]
        times = fh["cells/snapshot_time"][:]
        counts = fh["population/counts"][-1] if fh["population/counts"].shape[0] else None
        n_events = fh["events/time"].shape[0]
        kinds = json.loads(fh["events"].attrs["kinds"])
        ev_kinds = np.bincount(fh["events/kind"][:], minlength=len(kinds)) if n_events else np.zeros(len(kinds))
    lines = [
        f"file:       {path}",
        f"schema:     {a.get('schema')}  tme-sim {a.get('version')}  git {a.get('git_hash') or 'unknown'}",
        f"scenario:   {a.get('scenario')}  ({a.get('dim')}D)  seed {a.get('seed')}  created {a.get('created')}",
        f"substrates: {', '.join(a.get('substrates', []))}",
    ]
    if a.get("complete"):
        lines.append(f"status:     complete ({n_snap} snapshots, last at {times[-1]:g} min)"
                     if n_snap else "status:     complete (no snapshots)")
    elif n_snap:
        lines.append(
            f"status:     INCOMPLETE — the run stopped early; last good snapshot {n_snap - 1} at {times[-1]:g} min"
        )
    else:
        lines.append("status:     INCOMPLETE — no snapshot was committed")
    if "wall_seconds" in a:
        lines.append(f"wall time:  {a['wall_seconds']:.1f} s")
    if counts is not None:
        for name, row in zip(a.get("cell_types", []), counts, strict=False):
            lines.append(
                f"  {name:<14} live {row[0]:>7}  apoptotic {row[1]:>6}  necrotic {row[2]:>6}  lysed {row[3]:>6}"
            )
    ev = ", ".join(f"{k} {int(c)}" for k, c in zip(kinds, ev_kinds, strict=True) if c)
    lines.append(f"events:     {n_events} ({ev or 'none'})")
    return "\n".join(lines)
