"""Run a scenario end to end: load, build, observe, write one HDF5 file."""

from __future__ import annotations

import math
import os
import time as wallclock
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tme_sim.config import Scenario, load_scenario, scenario_json
from tme_sim.errors import ConfigError, OutputError, RunInterrupted, TMEError
from tme_sim.io import OutputWriter, committed_snapshots, open_output
from tme_sim.io.checkpoint import restore_model, write_checkpoint
from tme_sim.io.interrupt import StopObserver, graceful_stop
from tme_sim.io.lock import OutputLock
from tme_sim.io.observers import (
    CheckpointObserver,
    Observer,
    OutputObserver,
    ProgressObserver,
    scenario_observers,
)
from tme_sim.model import TMEModel
from tme_sim.paths import safe_file_name
from tme_sim.units import parse_duration

DEFAULT_OUTPUT_DIR = Path("outputs")


def default_output_path(scenario: Scenario) -> Path:
    if scenario.output.path:
        return Path(scenario.output.path)
    return DEFAULT_OUTPUT_DIR / f"{safe_file_name(scenario.name, 'name')}.h5"


def checkpoint_path(out: Path) -> Path:
    return out.with_suffix(out.suffix + ".ckpt")


def prepare(
    scenario: str | Path | Scenario,
    *,
    overrides: Mapping[str, Any] | None = None,
    duration: str | None = None,
) -> tuple[Scenario, float]:
    """Load and validate a scenario; returns it and the duration to run (minutes)."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, dict(overrides or {}))
    if duration is not None:
        try:
            minutes = parse_duration(duration)
        except ValueError as exc:
            raise ConfigError(f"--duration {duration!r}: {exc}") from None
        if minutes <= 0:
            raise ConfigError(f"--duration {duration!r}: must be > 0")
    else:
        minutes = sc.duration
    return sc, minutes


def build_scenario_model(scenario: Scenario, seed: int | None = None) -> TMEModel:
    """Build the model; errors found while building name the scenario file as well as the key."""
    try:
        return TMEModel(scenario, seed=seed)
    except TMEError as exc:
        source = getattr(scenario, "_source_path", None)
        if source is not None and str(source.name) not in str(exc):
            raise type(exc)(f"{source.name}: {exc}") from None
        raise


def run_scenario(
    scenario: str | Path | Scenario,
    out: str | Path | None = None,
    *,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    duration: str | None = None,
    force: bool = False,
    progress: bool = False,
    resume: bool = False,
    extra_observers: list[Observer] | None = None,
) -> Path:
    """Run a scenario and write its HDF5 output; returns the output path.

    Every expected mistake raises a :class:`~tme_sim.errors.TMEError` before any file is written.
    The output is locked for this process first (:class:`~tme_sim.io.lock.OutputLock`: a second
    writer is refused); an existing output or checkpoint is refused unless ``force`` (or
    ``resume``, which continues it from its checkpoint) and replaced only when the new file exists.
    """
    sc, minutes = prepare(scenario, overrides=overrides, duration=duration)
    out_path = Path(out) if out is not None else default_output_path(sc)
    if out_path.is_dir():
        raise OutputError(f"{out_path}: is a directory")
    if resume:
        if not out_path.exists():
            raise OutputError(f"{out_path}: no output to resume (run without --resume first)")
        with OutputLock(out_path):
            return resume_run(sc, out_path, minutes, seed=seed, progress=progress, extra_observers=extra_observers)
    _refuse_existing(out_path, force)  # early, before the model is built; checked again under the lock
    model = build_scenario_model(sc, seed=seed)  # validates everything that needs the model before writing
    configured = scenario_observers(sc.output.observers, out_path)
    _make_parent(out_path)
    with OutputLock(out_path):
        _refuse_existing(out_path, force)
        ckpt = checkpoint_path(out_path)
        if force:
            ckpt.unlink(missing_ok=True)  # the new output replaces the old one atomically when created
        _write_new(sc, model, out_path, ckpt, minutes, configured + (extra_observers or []), progress)
    return out_path


def _refuse_existing(out: Path, force: bool) -> None:
    """Refuse to replace an output or a checkpoint without ``force``."""
    if force:
        return
    if out.exists() or out.is_symlink():
        raise OutputError(f"{out}: exists; use --force to overwrite or --out to choose another file")
    ckpt = checkpoint_path(out)
    if ckpt.exists():
        raise OutputError(
            f"{ckpt}: a checkpoint of an earlier run exists (its output is gone); use --force to discard it"
        )


def _make_parent(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out.parent}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out.parent}: the output folder is not writable")


def _write_new(
    sc: Scenario,
    model: TMEModel,
    out_path: Path,
    ckpt: Path,
    minutes: float,
    more_observers: list[Observer],
    progress: bool,
) -> None:
    writer = OutputWriter.create(
        out_path,
        model,
        write_fields=sc.output.fields,
        write_cells=sc.output.cells,
        scenario_toml=getattr(sc, "_source_text", ""),
        scenario_json=scenario_json(sc),
    )
    observers: list[Observer] = [OutputObserver(writer, sc.output.interval)]
    if sc.output.checkpoint_interval > 0:
        observers.append(CheckpointObserver(ckpt, sc.output.checkpoint_interval))
    observers += more_observers
    execute(model, minutes, observers, writer, progress, checkpoint=ckpt)


def execute(
    model: TMEModel,
    minutes: float,
    observers: list[Observer],
    writer: OutputWriter,
    progress: bool,
    *,
    checkpoint: Path | None = None,
) -> None:
    """Run ``model`` for ``minutes`` with observers; mark the file complete only on success.

    Ctrl-C or SIGTERM stop the run at the next step boundary: the file keeps every committed
    snapshot (marked incomplete), a checkpoint of the current state is written to ``checkpoint``
    (when given) so ``tme run --resume`` continues, and :class:`~tme_sim.errors.RunInterrupted` is raised.
    """
    for obs in observers:  # observers that show progress learn how long this run is meant to go
        if hasattr(obs, "planned_minutes"):
            obs.planned_minutes = minutes
    ok = False
    t0 = wallclock.perf_counter()
    if not writer.broken:
        writer.set_attr("planned_minutes", model.time + minutes)
        writer.fh.flush()
    try:
        with graceful_stop() as flag:
            observers = [*observers, StopObserver(flag)]
            try:
                _run_with_progress(model, minutes, observers, progress)
            except RunInterrupted as exc:
                if checkpoint is None:
                    raise
                writer.sync()  # the output on disk is never behind the checkpoint
                write_checkpoint(model, checkpoint)
                stopped = RunInterrupted(
                    f"{exc}; {writer.path} keeps {writer.n_snapshots} snapshots, checkpoint {checkpoint.name} "
                    "saved: continue with the same command and --resume"
                )
                stopped.signal_name = getattr(exc, "signal_name", None)
                raise stopped from None
        ok = True
    finally:
        if not writer.broken:
            writer.set_attr("wall_seconds", wallclock.perf_counter() - t0)
        writer.close(complete=ok)


def _run_with_progress(model: TMEModel, minutes: float, observers: list[Observer], progress: bool) -> None:
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
            auto_refresh=False,  # the observer redraws 4×/s: no render thread competing for the GIL
        ) as bar:
            model.run_for(minutes, [*observers, ProgressObserver(minutes, bar)])
    else:
        model.run_for(minutes, observers)


def _check_output_not_behind(fh: Any, time: float, interval: float, out: Path) -> None:
    """Refuse to resume when the output lacks snapshots taken before the checkpoint.

    The output is flushed (not fsynced) after each snapshot, the checkpoint is fsynced: after a
    power failure the checkpoint can be ahead of the output, and continuing would leave a gap.
    """
    k = committed_snapshots(fh)
    times = fh["cells/snapshot_time"][:k]
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
    extra_observers: list[Observer] | None = None,
) -> Path:
    """Continue the run whose output is ``out`` from its checkpoint until ``minutes`` in total.

    The caller holds ``out``'s lock. Everything is checked (checkpoint, seed, duration, the output
    readable and not behind the checkpoint) before the output is touched.
    """
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
    with open_output(out) as fh:
        _check_output_not_behind(fh, model.time, scenario.output.interval, out)
    observers_more = scenario_observers(scenario.output.observers, out) + (extra_observers or [])
    writer = OutputWriter.reopen(out)
    writer.truncate_after(model.time)
    writer.go_live()
    out_obs = OutputObserver(writer, scenario.output.interval, initial=False)
    observers: list[Observer] = [out_obs]
    if scenario.output.checkpoint_interval > 0:
        observers.append(CheckpointObserver(ckpt, scenario.output.checkpoint_interval))
    observers += observers_more
    # observers schedule from the absolute simulated time so a resumed run writes the same snapshots
    execute(model, remaining * model.dt_mech, observers, writer, progress, checkpoint=ckpt)
    return out
