"""Checkpoints: everything needed to continue a run bit-identically, written atomically.

A checkpoint (HDF5, next to the output as ``<out>.ckpt``) holds the cell store, the fields and
boundary state, the RNG bit-generator state, intracellular states (inside the store), the
identity of intracellular models (surrogate artifact hashes), clocks, counters, pending events
and the output's snapshot count. It is written to a temporary file, fsynced, then renamed over
the previous one, so a crash leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from tme_sim import __version__
from tme_sim.config import scenario_json
from tme_sim.errors import OutputError

if TYPE_CHECKING:
    from tme_sim.config import Scenario
    from tme_sim.model import TMEModel

CHECKPOINT_SCHEMA = "tme-sim-checkpoint/1"


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


def model_state(model: TMEModel) -> dict[str, Any]:
    """Everything that evolves during a run (the scenario rebuilds the rest)."""
    cl = model.cell_list
    intra_last = {}
    for t, (ids, out) in model._last_intra.items():
        intra_last[str(t)] = {"ids": ids, **{f"b_{k}": v for k, v in out.items()}}
    return {
        "store": model.store.state_dict(),
        "grid": model.micro.state_dict(),
        "events": model.events.state_dict(),
        "clocks": {
            "time": np.array(model.time),
            "n_mech_steps": np.array(model.n_mech_steps),
            "intra_clock": np.array([model._intra_clock.get(t, 0.0) for t in range(len(model.type_names))]),
        },
        "intra_last": intra_last,
        "rules": {str(i): r.state_dict() for i, r in enumerate(model.rules) if r.state_dict()},
        # the neighbour lists decide the order in which contact forces are summed, so a resumed run
        # must continue with the very lists (and rebuild schedule) of the original one
        "cell_list": {
            # the cutoff is widened during a run (_refresh_cutoff); a restored model must not widen it
            # again later than the original did, which would rebuild the bins at another step
            "cutoff": np.array(cl.cutoff),
            "skin": np.array(cl.skin),
            "start": np.asarray(cl.start),
            "order": np.asarray(cl.order),
            "n_built": np.array(cl.n_built),
            "moved": np.array(cl.moved),
            "rebuilds": np.array(cl.rebuilds),
        },
        "verlet_lists": cl.lists_state(),
    }


def write_checkpoint(model: TMEModel, path: Path, output_snapshots: int | None = None) -> Path:
    """Write ``model``'s state to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_file(model, tmp, output_snapshots)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def _write_file(model: TMEModel, tmp: Path, output_snapshots: int | None) -> None:
    with h5py.File(tmp, "w") as fh:
        fh.attrs["schema"] = CHECKPOINT_SCHEMA
        fh.attrs["version"] = __version__
        fh.attrs["scenario_json"] = scenario_json(model.scenario)
        fh.attrs["seed"] = model.seed_value
        fh.attrs["rng_state"] = json.dumps(model.rng.bit_generator.state)
        fh.attrs["intracellular"] = json.dumps({str(t): im.identity() for t, im in model.intracellular.items()})
        if output_snapshots is not None:
            fh.attrs["output_snapshots"] = output_snapshots
        _write_dict(fh.create_group("state"), model_state(model))


def restore_model(model: TMEModel, path: Path) -> None:
    """Load a checkpoint into a freshly built model of the same scenario."""
    path = Path(path)
    if not path.exists():
        raise OutputError(f"{path}: no checkpoint to resume from (set output.checkpoint_interval)")
    try:
        fh = h5py.File(path, "r")
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
        model.rng.bit_generator.state = json.loads(fh.attrs["rng_state"])
        model.seed_value = int(fh.attrs["seed"])
    model.store.load_state_dict(state["store"])
    model.micro.load_state_dict(state["grid"])
    model.events.load_state_dict(state["events"])
    clocks = state["clocks"]
    model.time = float(clocks["time"])
    model.n_mech_steps = int(clocks["n_mech_steps"])
    if getattr(model, "dosing", None) is not None:
        model.dosing.restore(model.n_mech_steps)  # drug values imposed so far (a function of time)
    for t in model._intra_clock:
        model._intra_clock[t] = float(clocks["intra_clock"][t])
    model._last_intra = {}
    for t, d in state.get("intra_last", {}).items():
        ids = d["ids"]
        model._last_intra[int(t)] = (ids, {k[2:]: v for k, v in d.items() if k.startswith("b_")})
    for i, r in enumerate(model.rules):
        if str(i) in state.get("rules", {}):
            r.load_state_dict(state["rules"][str(i)])
    cl = model.cell_list
    if "cell_list" in state:
        c = state["cell_list"]
        if "cutoff" in c:
            cl.set_cutoff(float(c["cutoff"]), float(c["skin"]))
        cl.start = np.asarray(c["start"], dtype=np.int64)
        cl.order = np.asarray(c["order"], dtype=np.int64)
        cl.n_built = int(c["n_built"])
        cl.moved = float(c["moved"])
        cl.rebuilds = int(c["rebuilds"])
        cl.load_lists_state(state.get("verlet_lists", {}))
    else:
        cl.invalidate()
    # the grid state carries the coupling the original run had; the next refresh recomputes it
    model._coupling_dirty = True


def _check_output_not_behind(writer: Any, time: float, interval: float, out: Path) -> None:
    """Refuse to resume when the output lacks snapshots taken before the checkpoint.

    The output is flushed (not fsynced) after each snapshot, the checkpoint is fsynced: after a
    power failure the checkpoint can be ahead of the output, and continuing would leave a gap.
    """
    from tme_sim.io import committed_snapshots

    k = committed_snapshots(writer.fh)
    times = writer.fh["cells/snapshot_time"][:k]
    kept = times[times <= time + 1e-9]
    expected = math.floor(time / interval + 1e-9) * interval if interval > 0 else 0.0
    last = float(kept[-1]) if kept.size else -math.inf
    if last < expected - 1e-6 * max(1.0, interval):
        raise OutputError(
            f"{out}: holds snapshots up to {last:g} min but its checkpoint is at {time:g} min (output lost "
            "data, e.g. in a power failure); run again without --resume"
        )


def resume_run(
    scenario: Scenario,
    out: Path,
    minutes: float,
    *,
    seed: int | None,
    progress: bool,
    extra_observers: list[Any] | None = None,
) -> Path:
    """Continue the run whose output is ``out`` from its checkpoint until ``minutes`` in total."""
    from tme_sim.io import OutputWriter
    from tme_sim.io.observers import CheckpointObserver, OutputObserver
    from tme_sim.model import TMEModel
    from tme_sim.runner import checkpoint_path, execute

    ckpt = checkpoint_path(out)
    if not out.exists():
        raise OutputError(f"{out}: no output to resume (run without --resume first)")
    model = TMEModel(scenario, seed=seed)
    restore_model(model, ckpt)
    if seed is not None and int(seed) != model.seed_value:
        raise OutputError(f"{ckpt}: was written with seed {model.seed_value}, not --seed {seed}")
    # count in whole mechanics steps (as the uninterrupted run does), not in accumulated float time
    remaining = round(minutes / model.dt_mech) - model.n_mech_steps
    if remaining <= 0:
        raise OutputError(f"{out}: already ran {model.time:g} of {minutes:g} min; nothing to resume")
    writer = OutputWriter.reopen(out)
    try:
        _check_output_not_behind(writer, model.time, scenario.output.interval, out)
    except OutputError:
        writer.fh.close()
        raise
    writer.truncate_after(model.time)
    out_obs = OutputObserver(writer, scenario.output.interval, initial=False)
    observers = [out_obs]
    if scenario.output.checkpoint_interval > 0:
        observers.append(CheckpointObserver(ckpt, scenario.output.checkpoint_interval))
    observers += extra_observers or []
    # observers schedule from the absolute simulated time so a resumed run writes the same snapshots
    execute(model, remaining * model.dt_mech, observers, writer, progress, checkpoint=ckpt)
    return out
