"""Run a sweep on a dask cluster: one task per run, atomic files, resume, manifest and summary.

The executor is generic over the run callable: ``run_fn(spec, out)`` must write one complete
file at ``out`` (a temporary name) or raise. :class:`ScenarioRun` is the callable for real
simulations (it calls :func:`tme_sim.runner.run_scenario`); tests and benchmarks pass others.

Guarantees:

* **Atomic files.** A task writes ``runs/.<run_id>.<random>.tmp.h5``, fsyncs it and renames it to
  ``runs/<run_id>.h5`` only when ``run_fn`` returned. A final name therefore always holds a
  complete file; two attempts of one run (a worker presumed lost that was still alive) both
  rename onto the same name, so there are never duplicates. Temporary files of attempts that
  died are removed when the sweep ends (and when it starts).
* **Resume.** Runs whose final file exists (and, for :class:`ScenarioRun`, whose ``complete``
  attribute is true) are not run again; their metrics come from the previous summary table, or
  are recomputed on a worker when the table lacks them.
* **Lost workers.** A task whose worker dies is rescheduled by the dask scheduler (up to
  ``distributed.scheduler.allowed-failures`` times, default 3); a run still lost after that is
  recorded as ``failed`` with the reason. An exception inside ``run_fn`` is recorded as
  ``failed`` with its message and is not retried (simulations are deterministic).
* **Records.** ``manifest.json`` (the sweep file's text, the resolved design, every run's seed
  and overrides, a fingerprint that guards resume against a changed sweep or scenario, and the
  status) and ``summary.csv`` (one row per run: ``run_id, point, replicate, seed, status``, the
  parameter columns, the metric columns, ``elapsed_s, worker, job_id, path, error``); load it with
  ``pandas.read_csv(DIR / "summary.csv")``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

import tme_sim
from tme_sim.errors import OutputError
from tme_sim.io import read_attrs
from tme_sim.paths import safe_file_name
from tme_sim.runner import run_scenario
from tme_sim.sweep.config import Sweep
from tme_sim.sweep.design import Design, RunSpec, build_design, plan_runs
from tme_sim.sweep.metrics import MetricSet, context_for

MANIFEST = "manifest.json"
SUMMARY = "summary.csv"
RUNS_DIR = "runs"
LOCK = "sweep.lock"
MANIFEST_SCHEMA = "tme-sim-sweep/1"
TMP_GLOB = ".*.tmp.h5*"  # the temporary file and anything the run put beside it (.ckpt)

META_COLUMNS = ("run_id", "point", "replicate", "seed", "status")
TAIL_COLUMNS = ("elapsed_s", "worker", "job_id", "path", "error")
LOGS_DIR = "logs"  # batch-job logs of the slurm/pbs backends


class RunFunction(Protocol):
    """Writes one complete output file at ``out`` for ``spec`` (or raises)."""

    def __call__(self, spec: RunSpec, out: Path) -> Any: ...


MetricsFunction = Callable[[Path], Mapping[str, float]]


@dataclass(frozen=True)
class ScenarioRun:
    """Picklable run callable for real simulations (``tme_sim.runner.run_scenario``)."""

    scenario: str

    def __call__(self, spec: RunSpec, out: Path) -> Path:
        path = Path(run_scenario(self.scenario, out, seed=spec.seed, overrides=dict(spec.overrides)))
        if not self.is_complete(path):
            raise OutputError(f"{path.name}: the run returned but its file is not marked complete")
        return path

    def is_complete(self, path: Path) -> bool:
        try:
            return bool(read_attrs(path).get("complete", False))
        except Exception:
            return False


@dataclass
class RunResult:
    run_id: str
    status: str  # "done" | "skipped" | "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = math.nan
    worker: str = ""
    error: str = ""
    job_id: str = ""


# ---------------------------------------------------------------------------------------------
# worker side


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows fsync on a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_companions(tmp: Path) -> None:
    """Delete ``tmp`` and files the run wrote beside it (``tmp.ckpt``, ...)."""
    for p in tmp.parent.glob(f"{tmp.name}*"):
        with contextlib.suppress(OSError):
            p.unlink()


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _job_id() -> str:
    """The batch job the worker runs in (SLURM or PBS), or ``""``."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID") or ""


def run_one(
    spec: RunSpec,
    run_fn: RunFunction,
    metrics_fn: MetricsFunction | None,
    runs_dir: str,
    rerun: bool = False,
    existed: bool = False,
) -> RunResult:
    """One dask task: run ``spec`` into a temporary file, rename it, compute its metrics.

    When the final file already exists and ``rerun`` is false, only the metrics are computed:
    status ``"skipped"`` if the file ``existed`` before this sweep invocation, else ``"done"``
    (an earlier attempt in this invocation wrote it, on a worker lost afterwards together with
    the task's result).
    """
    final = Path(runs_dir) / spec.filename
    worker = _worker_name()
    t0 = time.perf_counter()
    elapsed = math.nan
    if final.exists() and not rerun:
        status = "skipped" if existed else "done"
    else:
        status = "done"
        tmp = final.with_name(f".{spec.run_id}.{uuid.uuid4().hex[:12]}.tmp.h5")
        try:
            run_fn(spec, tmp)
            if not tmp.is_file():
                raise OutputError(f"{type(run_fn).__name__} returned without writing {tmp.name}")
            _fsync_file(tmp)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            _remove_companions(tmp)
        except Exception as exc:
            _remove_companions(tmp)
            msg = " ".join(f"{type(exc).__name__}: {exc}".split())
            return RunResult(spec.run_id, "failed", {}, time.perf_counter() - t0, worker, msg, _job_id())
        elapsed = time.perf_counter() - t0
    metrics: dict[str, float] = {}
    error = ""
    if metrics_fn is not None:
        try:
            metrics = {k: float(v) for k, v in metrics_fn(final).items()}
        except Exception as exc:
            error = " ".join(f"metrics: {type(exc).__name__}: {exc}".split())
    return RunResult(spec.run_id, status, metrics, elapsed, worker, error, _job_id())


# ---------------------------------------------------------------------------------------------
# driver side


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def remove_stale_tmp(runs_dir: Path) -> int:
    """Delete temporary files left by attempts that died; return how many."""
    n = 0
    for p in runs_dir.glob(TMP_GLOB):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


@contextlib.contextmanager
def sweep_lock(out_dir: Path) -> Iterator[None]:
    """One driver per sweep folder: ``sweep.lock`` holds ``host pid``; a dead holder's lock is taken over."""
    lock = out_dir / LOCK
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                host, pid = "", "0"
            alive = True
            if host == socket.gethostname():
                try:
                    os.kill(int(pid), 0)
                except ProcessLookupError:
                    alive = False
                except PermissionError:
                    alive = True
            if alive:
                raise OutputError(
                    f"{out_dir}: another sweep (pid {pid} on {host or '?'}) is using this folder; "
                    f"delete {lock} if it is not running"
                ) from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text() == me:
                lock.unlink()


def fingerprint(sweep: Sweep, runs: Sequence[RunSpec]) -> str:
    """What must not change for a resume to be valid: scenario file, runs' seeds and overrides."""
    h = hashlib.sha256()
    h.update(sweep.scenario_sha256().encode())
    for r in runs:
        h.update(json.dumps([r.run_id, r.seed, r.overrides], sort_keys=True, default=str).encode())
    return h.hexdigest()


def build_manifest(sweep: Sweep, design: Design, runs: Sequence[RunSpec], fp: str) -> dict[str, Any]:
    try:
        import dask

        dask_version = dask.__version__
    except ImportError:  # pragma: no cover
        dask_version = ""
    return {
        "schema": MANIFEST_SCHEMA,
        "name": sweep.name,
        "sweep_file": str(sweep.path),
        "sweep_text": sweep.text,
        "scenario": str(sweep.scenario),
        "scenario_sha256": sweep.scenario_sha256(),
        "design": design.kind,
        "parameters": [p.describe() for p in sweep.parameters],
        "options": sweep.options.model_dump(),
        "samples": sweep.samples,
        "replicates": sweep.replicates,
        "seed": sweep.seed,
        "common_seeds": sweep.common_seeds,
        "fixed": sweep.base_overrides(),
        "metrics": list(sweep.metrics),
        "n_points": design.n_points,
        "n_runs": len(runs),
        "design_values": design.values.tolist(),
        "unit_samples": None if design.unit_samples is None else design.unit_samples.tolist(),
        "problem": design.problem,
        "fingerprint": fp,
        "runs": [
            {
                "run_id": r.run_id,
                "point": r.point,
                "replicate": r.replicate,
                "seed": r.seed,
                "overrides": r.overrides,
            }
            for r in runs
        ],
        "tme_sim_version": tme_sim.__version__,
        "dask_version": dask_version,
        "created": _now(),
        "status": "running",
    }


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path}: no such file (not a sweep folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OutputError(f"{path}: not a valid manifest") from None


def summary_frame(runs: Sequence[RunSpec], results: Mapping[str, RunResult]) -> pd.DataFrame:
    """The summary table: one row per run (runs without a result yet have status ``pending``)."""
    rows = []
    metric_cols: dict[str, None] = {}
    param_cols: dict[str, None] = {}
    for r in runs:
        res = results.get(r.run_id)
        row: dict[str, Any] = {"run_id": r.run_id, "point": r.point, "replicate": r.replicate, "seed": r.seed}
        row["status"] = res.status if res else "pending"
        for k, v in r.params.items():
            param_cols[k] = None
            row[k] = v
        if res:
            for k, v in res.metrics.items():
                metric_cols[k] = None
                row[k] = v
        row["elapsed_s"] = res.elapsed_s if res else math.nan
        row["worker"] = res.worker if res else ""
        row["job_id"] = res.job_id if res else ""
        row["path"] = f"{RUNS_DIR}/{r.filename}"
        row["error"] = res.error if res else ""
        rows.append(row)
    cols = [*META_COLUMNS, *param_cols, *sorted(metric_cols), *TAIL_COLUMNS]
    return pd.DataFrame(rows, columns=cols)


def _previous_results(out_dir: Path, same_metrics: bool) -> dict[str, RunResult]:
    """Finished runs of an earlier ``summary.csv`` (metrics, time, worker, job; empty when unusable)."""
    path = out_dir / SUMMARY
    if not same_metrics or not path.is_file():
        return {}
    try:
        df = pd.read_csv(path, keep_default_na=True, dtype={"worker": str, "job_id": str, "error": str})
    except Exception:
        return {}
    if "run_id" not in df or "status" not in df:
        return {}
    skip = set(META_COLUMNS) | set(TAIL_COLUMNS)
    prev_manifest_params: set[str] = set()
    with contextlib.suppress(OutputError, KeyError, TypeError):
        prev_manifest_params = {p["key"] for p in read_manifest(out_dir)["parameters"]}
    metric_cols = [c for c in df.columns if c not in skip and c not in prev_manifest_params]

    def text(row: pd.Series, col: str) -> str:
        v = row.get(col, "")
        return "" if pd.isna(v) else str(v)

    out: dict[str, RunResult] = {}
    for _, row in df[df["status"].isin(["done", "skipped"])].iterrows():
        if text(row, "error"):
            continue
        try:
            metrics = {c: float(row[c]) for c in metric_cols if not pd.isna(row[c])}
            elapsed = float(row.get("elapsed_s", math.nan))
        except (TypeError, ValueError):
            continue
        rid = str(row["run_id"])
        out[rid] = RunResult(rid, "skipped", metrics, elapsed, text(row, "worker"), "", text(row, "job_id"))
    return out


@dataclass
class SweepOutcome:
    out_dir: Path
    n_runs: int
    counts: dict[str, int]
    summary: pd.DataFrame

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.counts.get("pending", 0) == 0


def _progress(enabled: bool, total: int, description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )


def execute_runs(
    runs: Sequence[RunSpec],
    run_fn: RunFunction,
    runs_dir: Path,
    client: Any,
    *,
    metrics_fn: MetricsFunction | None = None,
    cached: Mapping[str, RunResult] | None = None,
    progress: bool = False,
    on_result: Callable[[RunResult], None] | None = None,
    description: str = "sweep",
) -> dict[str, RunResult]:
    """Run ``runs`` on ``client`` (a ``distributed.Client``); return results by run id.

    Runs whose final file is complete are not submitted: with an entry in ``cached`` (their
    earlier result) they are reported ``skipped`` at once, otherwise a metrics-only task is
    submitted.
    """
    from distributed import as_completed

    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    cached = cached or {}
    is_complete = getattr(run_fn, "is_complete", None)
    token = uuid.uuid4().hex[:8]
    results: dict[str, RunResult] = {}
    todo: list[tuple[RunSpec, bool, bool]] = []  # (spec, rerun, existed)
    for spec in runs:
        final = runs_dir / spec.filename
        if final.exists():
            complete = is_complete(final) if is_complete is not None else True
            if complete:
                if spec.run_id in cached or metrics_fn is None:
                    prev = cached.get(spec.run_id)
                    results[spec.run_id] = (
                        dataclasses.replace(prev, status="skipped") if prev else RunResult(spec.run_id, "skipped")
                    )
                    continue
                todo.append((spec, False, True))  # metrics only
                continue
            todo.append((spec, True, True))  # an incomplete file under a final name: run again
        else:
            todo.append((spec, False, False))

    counts = {"done": 0, "skipped": len(results), "failed": 0}
    with _progress(progress, len(runs), description) as bar:
        task = bar.add_task(description, total=len(runs), completed=len(results), info="")

        def info() -> str:
            return f"done {counts['done']} skipped {counts['skipped']} failed {counts['failed']}"

        bar.update(task, info=info())
        if not todo:
            return results
        futures: dict[Any, RunSpec] = {}
        for spec, rerun, existed in todo:
            fut = client.submit(
                run_one,
                spec,
                run_fn,
                metrics_fn,
                str(runs_dir),
                rerun,
                existed,
                key=f"tme-run-{spec.run_id}-{token}",
                pure=False,
            )
            futures[fut] = spec
        try:
            for fut in as_completed(list(futures)):
                spec = futures.pop(fut)
                if fut.status == "finished":
                    res = fut.result()
                else:
                    exc = fut.exception()
                    if exc is None:  # lost/cancelled with its worker: dask keeps no exception
                        msg = f"WorkerLost: the task ended {fut.status!r} without a result (its worker died)"
                    else:
                        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
                    res = RunResult(spec.run_id, "failed", {}, math.nan, "", msg)
                fut.release()  # the worker may drop the result: a lost worker then costs nothing
                results[spec.run_id] = res
                counts[res.status] = counts.get(res.status, 0) + 1
                bar.update(task, advance=1, info=info())
                if on_result is not None:
                    on_result(res)
        except BaseException:
            client.cancel(list(futures))
            raise
    return results


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    client: Any,
    *,
    run_fn: RunFunction | None = None,
    metrics_fn: MetricsFunction | None = None,
    progress: bool = False,
    backend: str = "",
    flush_every_s: float = 30.0,
) -> SweepOutcome:
    """Run (or resume) ``sweep`` into ``out_dir`` on ``client``.

    ``run_fn`` defaults to :class:`ScenarioRun` and ``metrics_fn`` to the sweep's
    :class:`~tme_sim.sweep.metrics.MetricSet`. Raises :class:`OutputError` when ``out_dir``
    holds a different sweep or another driver is running in it.
    """
    out_dir = Path(out_dir)
    design = build_design(sweep)
    runs = plan_runs(sweep, design)
    fp = fingerprint(sweep, runs)
    if run_fn is None:
        run_fn = ScenarioRun(str(sweep.scenario))
    if metrics_fn is None:
        ctx = context_for(sweep.scenario_types, sweep.metric_options.tumor_types, sweep.metric_options.tcell_types)
        metrics_fn = MetricSet(sweep.metrics, ctx)

    manifest_path = out_dir / MANIFEST
    check_out_dir(sweep, out_dir, runs)
    previous = read_manifest(out_dir) if manifest_path.exists() else None

    out_dir.mkdir(parents=True, exist_ok=True)
    runs_dir = out_dir / RUNS_DIR
    runs_dir.mkdir(exist_ok=True)
    with sweep_lock(out_dir):
        remove_stale_tmp(runs_dir)
        manifest = build_manifest(sweep, design, runs, fp)
        if previous is not None:
            manifest["created"] = previous.get("created", manifest["created"])
        manifest["backend"] = backend
        manifest["started"] = _now()
        _write_atomic(manifest_path, json.dumps(manifest, indent=1))
        same_metrics = previous is not None and previous.get("metrics") == list(sweep.metrics)
        cached = _previous_results(out_dir, same_metrics)

        results: dict[str, RunResult] = {}
        last_flush = [time.monotonic()]

        def flush() -> pd.DataFrame:
            df = summary_frame(runs, results)
            tmp = out_dir / f".{SUMMARY}.{uuid.uuid4().hex[:8]}.tmp"
            df.to_csv(tmp, index=False)
            os.replace(tmp, out_dir / SUMMARY)
            return df

        def on_result(res: RunResult) -> None:
            results[res.run_id] = res
            if time.monotonic() - last_flush[0] > flush_every_s:
                flush()
                last_flush[0] = time.monotonic()

        status = "interrupted"
        try:
            got = execute_runs(
                runs,
                run_fn,
                runs_dir,
                client,
                metrics_fn=metrics_fn,
                cached=cached,
                progress=progress,
                on_result=on_result,
                description=sweep.name,
            )
            results.update(got)
            status = "complete"
        finally:
            remove_stale_tmp(runs_dir)
            df = flush()
            counts = {k: int(v) for k, v in df["status"].value_counts().items()}
            if status == "complete" and counts.get("failed", 0):
                status = "incomplete"
            manifest["status"] = status
            manifest["counts"] = counts
            manifest["finished"] = _now()
            _write_atomic(manifest_path, json.dumps(manifest, indent=1))
    return SweepOutcome(out_dir, len(runs), counts, df)


def check_out_dir(sweep: Sweep, out_dir: str | Path, runs: Sequence[RunSpec]) -> int:
    """Check that ``out_dir`` is new, empty, or holds this same sweep; return its finished runs.

    Raises :class:`OutputError` (nothing is written) when it holds a different sweep (design,
    seeds or scenario file changed) or unrelated files.
    """
    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).exists():
        previous = read_manifest(out_dir)
        if previous.get("fingerprint") != fingerprint(sweep, runs):
            raise OutputError(
                f"{out_dir}: holds a different sweep (its design, seeds or scenario file differ); "
                "choose another --out or delete the folder"
            )
        runs_dir = out_dir / RUNS_DIR
        return sum((runs_dir / r.filename).exists() for r in runs)
    if out_dir.exists() and (not out_dir.is_dir() or any(p.name != LOGS_DIR for p in out_dir.iterdir())):
        raise OutputError(f"{out_dir}: exists, is not an empty folder and has no {MANIFEST}; choose another --out")
    return 0


def default_out_dir(sweep: Sweep) -> Path:
    """``outputs/sweeps/<sweep name>`` under the current directory."""
    return Path("outputs") / "sweeps" / safe_file_name(sweep.name, "name")


__all__ = [
    "RunFunction",
    "RunResult",
    "ScenarioRun",
    "SweepOutcome",
    "check_out_dir",
    "default_out_dir",
    "execute_runs",
    "fingerprint",
    "read_manifest",
    "remove_stale_tmp",
    "run_one",
    "run_sweep",
    "summary_frame",
]
