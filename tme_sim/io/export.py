"""Exports of a run (``tme export FILE --to anndata|vtk|csv``).

* **anndata** — one AnnData time series over every snapshot, the layout of pcdl's
  ``get_anndata``: one observation per cell and snapshot (index ``<id>@<snapshot>``), numeric
  cell variables in ``X`` (units in ``var["units"]``), labels and time in ``obs``, positions in
  ``obsm["spatial"]`` (µm), each type's intracellular states in ``obsm["state_<type>"]`` (NaN for
  cells of other types), the resolved scenario in ``uns``.
* **vtk** — for ParaView: per snapshot the cells as points with their variables (``cells_NNNN.vtu``)
  and the fields on the voxel grid (``fields_NNNN.vti``), plus ``cells.pvd`` / ``fields.pvd``
  collections whose timesteps are the snapshot times in minutes (pyevtk).
* **csv** — tidy tables: ``cells.csv`` (all snapshots), ``population.csv``, ``events.csv``,
  ``fields.csv`` (one row per voxel and snapshot, one column per species), ``states_<type>.csv``
  and ``units.csv`` (the unit of every column).

Outputs are written under a temporary name and renamed when complete; an existing output is
refused unless ``force``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tme_sim.config.suggest import close_match
from tme_sim.errors import OutputError
from tme_sim.io import (
    CELL_UNITS,
    open_fields,
    open_output,
    read_attrs,
    read_cells,
    read_events,
    read_population,
    read_states,
    read_stored_scenario,
    species_units,
)

FORMATS = ("anndata", "vtk", "csv")
#: numeric per-cell variables (the AnnData ``X`` and the VTK point data)
LABELS = ("snapshot", "time", "id", "type", "phase", "dead", "death", "clone", "x", "y", "z")


def _state_types(path: str | Path) -> list[str]:

    with open_output(path) as fh:
        return list(fh["cells/state"]) if "cells/state" in fh else []


def cells_anndata(path: str | Path) -> Any:
    """Every snapshot's cells as one AnnData (see the module docstring)."""
    try:
        import anndata
    except ImportError:
        raise OutputError("anndata is not installed: pip install 'tme-sim[anndata]'") from None
    cells = read_cells(path, snapshot=None)
    attrs = read_attrs(path)
    index = cells["id"].astype(str) + "@" + cells["snapshot"].astype(str)
    var_names = [c for c in cells.columns if c not in LABELS]
    X = cells[var_names].to_numpy(dtype=np.float32)
    obs = cells[["id", "snapshot", "time", "type", "phase", "death", "clone"]].copy()
    obs.index = pd.Index(index.to_numpy(), name="cell")
    dims = ["x", "y", "z"][: int(attrs["dim"])]
    obsm: dict[str, Any] = {"spatial": cells[dims].to_numpy(dtype=np.float64)}
    key = pd.MultiIndex.from_arrays([cells["id"].to_numpy(), cells["snapshot"].to_numpy()])
    for t in _state_types(path):
        st = read_states(path, t, snapshot=None)
        skey = pd.MultiIndex.from_arrays([st.index.to_numpy(), st["snapshot"].to_numpy()])
        values = st.drop(columns=["snapshot", "time"])
        values.index = skey
        aligned = values.reindex(key)
        aligned.index = obs.index
        obsm[f"state_{t}"] = aligned.astype(np.float32)
    var = pd.DataFrame({"units": [CELL_UNITS.get(v, "") for v in var_names]}, index=var_names)
    uns = {
        "scenario": attrs.get("scenario", ""),
        "scenario_json": json.dumps(read_stored_scenario(path)),
        "seed": int(attrs.get("seed", 0)),
        "tme_sim_version": str(attrs.get("version", "")),
        "time_units": "min",
        "spatial_units": "um",
        "snapshot_times": np.unique(cells["time"].to_numpy()),
    }
    return anndata.AnnData(X=X, obs=obs, var=var, obsm=obsm, uns=uns)


def _write_anndata(path: Path, out: Path) -> list[Path]:
    adata = cells_anndata(path)
    part = out.with_name(out.name + ".part")
    adata.write_h5ad(part)
    part.replace(out)
    return [out]


def _write_csv(path: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True)
    cells = read_cells(path, snapshot=None)
    cells.to_csv(out / "cells.csv", index=False)
    read_population(path).to_csv(out / "population.csv", index=False)
    read_events(path).to_csv(out / "events.csv", index=False)
    units = [("cells", c, CELL_UNITS.get(c, "")) for c in cells.columns]
    units += [("population", c, "min" if c == "time" else ("1" if c != "type" else "")) for c in
              read_population(path).columns]  # fmt: skip
    units += [("events", c, {"time": "min", "x": "um", "y": "um", "z": "um"}.get(c, "")) for c in
              ("time", "kind", "id", "other_id", "type", "x", "y", "z")]  # fmt: skip
    ds = open_fields(path)
    try:
        if ds.sizes.get("time", 0):
            frame = ds["concentration"].to_dataset(dim="species").to_dataframe().reset_index()
            frame.to_csv(out / "fields.csv", index=False, float_format="%.6g")
            su = species_units(path)
            units += [("fields", c, su.get(c, {"time": "min"}.get(c, "um"))) for c in frame.columns]
    finally:
        ds.close()
    for t in _state_types(path):
        read_states(path, t, snapshot=None).reset_index().to_csv(out / f"states_{t}.csv", index=False)
    pd.DataFrame(units, columns=["table", "column", "units"]).to_csv(out / "units.csv", index=False)
    return sorted(out.iterdir())


def _write_vtk(path: Path, out: Path) -> list[Path]:
    try:
        from pyevtk.hl import imageToVTK, pointsToVTK
        from pyevtk.vtk import VtkGroup
    except ImportError:
        raise OutputError("pyevtk is not installed: pip install pyevtk") from None
    out.mkdir(parents=True)
    cells = read_cells(path, snapshot=None)
    numeric = [c for c in cells.columns if c not in ("snapshot", "time", "x", "y", "z")]
    cell_group = VtkGroup(str(out / "cells"))
    for k, df in cells.groupby("snapshot", sort=True):
        data = {}
        for c in numeric:
            col = df[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.cat.codes
            data[c] = np.ascontiguousarray(col.to_numpy(dtype=np.float64))
        name = out / f"cells_{int(k):04d}"
        pointsToVTK(str(name), *(np.ascontiguousarray(df[a].to_numpy(dtype=np.float64)) for a in "xyz"), data=data)
        cell_group.addFile(filepath=f"{name.name}.vtu", sim_time=float(df["time"].iloc[0]))
    cell_group.save()
    ds = open_fields(path)
    try:
        if ds.sizes.get("time", 0):
            species = [str(s) for s in ds["species"].values]
            dx = float(ds["x"].values[1] - ds["x"].values[0]) if ds.sizes["x"] > 1 else 1.0
            field_group = VtkGroup(str(out / "fields"))
            for i, t in enumerate(ds["time"].values):
                frame = np.asarray(ds["concentration"].isel(time=i).values, dtype=np.float64)
                if frame.ndim == 3:  # (species, y, x) → one z layer
                    frame = frame[:, None]
                cell_data = {s: np.asfortranarray(frame[j].transpose(2, 1, 0)) for j, s in enumerate(species)}
                name = out / f"fields_{i:04d}"
                imageToVTK(str(name), origin=(0.0, 0.0, 0.0), spacing=(dx, dx, dx), cellData=cell_data)
                field_group.addFile(filepath=f"{name.name}.vti", sim_time=float(t))
            field_group.save()
    finally:
        ds.close()
    return sorted(p for p in out.iterdir() if p.suffix == ".pvd")


def default_output(path: Path, fmt: str) -> Path:
    return path.with_suffix(".h5ad") if fmt == "anndata" else path.with_name(f"{path.stem}_{fmt}")


def export(path: str | Path, fmt: str, out: str | Path | None = None, *, force: bool = False) -> list[Path]:
    """Export ``path`` as ``fmt`` (anndata, vtk or csv) to ``out``; returns the files written
    (for vtk, the ``.pvd`` collections to open in ParaView)."""
    path = Path(path)
    if fmt not in FORMATS:
        hint = close_match(fmt, FORMATS)
        raise OutputError(
            f"--to {fmt!r}: unknown format; choose {', '.join(FORMATS)}"
            + (f" (did you mean {hint!r}?)" if hint else "")
        )
    read_attrs(path)  # a missing or foreign file is a one-line error before anything is written
    out = Path(out) if out is not None else default_output(path, fmt)
    if out.exists() and not force:
        raise OutputError(f"{out}: exists; use --force to overwrite or --out to choose another name")
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    try:
        if fmt == "anndata":
            written = _write_anndata(path, tmp)
        elif fmt == "csv":
            written = _write_csv(path, tmp)
        else:
            written = _write_vtk(path, tmp)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.replace(out)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
        raise
    return [out] if fmt == "anndata" else [out / p.name for p in written]
