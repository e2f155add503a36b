"""Checkpoints: everything needed to continue a run bit-identically, written atomically.

A checkpoint (HDF5, next to the output as ``<out>.ckpt``) is a file format only: it stores
:meth:`TMEModel.state_dict` (one entry per component: cell store, grid, cell list, events,
intracellular clocks and decisions, rules, dosing, RNG) with the identity of the scenario and of
the intracellular models (surrogate artifact hashes) and the output's snapshot count. It is
written to a temporary file, fsynced, then renamed over the previous one, so a crash leaves
either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from tme_sim import __version__
from tme_sim.config import scenario_json
from tme_sim.errors import OutputError
from tme_sim.io import silence_hdf5_dealloc, write_failure

if TYPE_CHECKING:
    from tme_sim.model import TMEModel

CHECKPOINT_SCHEMA = "tme-sim-checkpoint/2"


_STR_MARK = "__tme_str__"


def _write_dict(g: h5py.Group, d: dict[str, Any]) -> None:
    """Store a nested dict of arrays/scalars/strings (text arrays as UTF-8, marked to decode)."""
    for k, v in d.items():
        if isinstance(v, dict):
            _write_dict(g.create_group(k), v)
        elif isinstance(v, str):
            g.attrs[k] = v
        else:
            arr = np.asarray(v)
            if arr.dtype.kind in "US":
                ds = g.create_dataset(k, data=np.char.encode(arr.astype(str), "utf-8"))
                ds.attrs[_STR_MARK] = True
            elif arr.dtype.kind == "O":
                raise TypeError(f"checkpoint: {g.name}/{k} has dtype object; store arrays or scalars")
            else:
                g.create_dataset(k, data=arr)


def _read_dict(g: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in g.attrs.items()}
    for k, v in g.items():
        if isinstance(v, h5py.Group):
            out[k] = _read_dict(v)
        elif v.attrs.get(_STR_MARK, False):
            out[k] = np.char.decode(v[()], "utf-8")
        else:
            out[k] = v[()]
    return out


def write_checkpoint(model: TMEModel, path: Path, output_snapshots: int | None = None) -> Path:
    """Write ``model``'s state to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")  # per process: never another writer's file
    try:
        _write_file(model, tmp, output_snapshots, path)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:  # disk full, I/O error: the previous checkpoint stays as it was
        tmp.unlink(missing_ok=True)
        raise write_failure(path, "writing the checkpoint", exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_file(model: TMEModel, tmp: Path, output_snapshots: int | None, label: Path) -> None:
    silence_hdf5_dealloc()
    try:
        fh = h5py.File(tmp, "w-", locking=False)
    except (OSError, RuntimeError) as exc:
        raise write_failure(label, "creating the checkpoint", exc) from None
    try:
        _fill(fh, model, output_snapshots)
        fh.close()
    except (OSError, RuntimeError) as exc:
        raise write_failure(label, "writing the checkpoint", exc, fh) from None  # parks the handle
    except BaseException:
        fh.close()
        raise


def _fill(fh: h5py.File, model: TMEModel, output_snapshots: int | None) -> None:
    fh.attrs["schema"] = CHECKPOINT_SCHEMA
    fh.attrs["version"] = __version__
    fh.attrs["scenario_json"] = scenario_json(model.scenario)
    fh.attrs["seed"] = model.seed_value
    fh.attrs["intracellular"] = json.dumps({str(t): im.identity() for t, im in model.intracellular.items()})
    if output_snapshots is not None:
        fh.attrs["output_snapshots"] = output_snapshots
    _write_dict(fh.create_group("state"), model.state_dict(copy=False))  # written now: views, no copy


def restore_model(model: TMEModel, path: Path) -> None:
    """Load a checkpoint into a freshly built model of the same scenario."""
    path = Path(path)
    if not path.exists():
        raise OutputError(
            f"{path}: no checkpoint to resume from (none was written: set output.checkpoint_interval, or the "
            "run stopped before its first checkpoint)"
        )
    try:
        fh = h5py.File(path, "r", locking=False)
    except OSError:
        raise OutputError(f"{path}: checkpoint is not readable") from None
    with fh:
        if fh.attrs.get("schema") != CHECKPOINT_SCHEMA:
            raise OutputError(f"{path}: not a tme-sim checkpoint")
        if fh.attrs["scenario_json"] != scenario_json(model.scenario):
            raise OutputError(f"{path}: checkpoint was written for a different scenario or overrides")
        ident = json.dumps({str(t): im.identity() for t, im in model.intracellular.items()})
        if fh.attrs["intracellular"] != ident:
            raise OutputError(f"{path}: intracellular models differ from the checkpoint's (artifact changed?)")
        state = _read_dict(fh["state"])
        model.seed_value = int(fh.attrs["seed"])
    model.load_state_dict(state)
