"""Dask clusters for sweeps: a LocalCluster, an existing scheduler, or SLURM/PBS via dask-jobqueue.

Site settings for SLURM and PBS come from the dask config (``~/.config/dask/jobqueue.yaml``,
section ``jobqueue.slurm`` / ``jobqueue.pbs``) or from environment variables in dask's form
(``DASK_JOBQUEUE__SLURM__QUEUE=short``, ``DASK_JOBQUEUE__SLURM__ACCOUNT=...``); options given
on the command line win. Workers run the Python of the driver (``sys.executable``, e.g. the
project's virtualenv) in the driver's working directory with the driver's ``PYTHONPATH`` plus
the folder that holds ``tme_sim``, so the cluster needs a shared filesystem (as any SLURM/PBS
site has) but nothing installed beyond that.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tme_sim
from tme_sim.errors import ConfigError


class SweepBackend:
    """Where a sweep's workers run. Subclasses register under ``name`` just by being defined (here,
    or in a plugin module); ``tme sweep --backend NAME`` selects one."""

    name: ClassVar[str] = ""
    #: whether the batch-system options (--queue, --account, --walltime, --interface) apply
    batch: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            _BACKENDS[cls.name] = cls

    def make_cluster(self, opts: ClusterOptions, log_level: int) -> Any:
        """A dask cluster object for ``opts`` (closed by the caller)."""
        raise NotImplementedError


_BACKENDS: dict[str, type[SweepBackend]] = {}


class LocalBackend(SweepBackend):
    """One worker process per core of this machine (``--workers`` to choose)."""

    name = "local"

    def make_cluster(self, opts: ClusterOptions, log_level: int) -> Any:
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=opts.workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=log_level,
            local_directory=opts.local_directory,
        )


class JobqueueBackend(SweepBackend):
    """Batch jobs through dask-jobqueue; subclasses name the cluster class."""

    batch = True
    #: attribute of ``dask_jobqueue`` holding the cluster class
    cluster_class: ClassVar[str] = ""

    def cluster_type(self) -> Any:
        import dask_jobqueue

        return getattr(dask_jobqueue, self.cluster_class)

    def make_cluster(self, opts: ClusterOptions, log_level: int) -> Any:
        kw = jobqueue_kwargs(opts)
        try:
            cluster = self.cluster_type()(silence_logs=log_level, **kw)
        except ValueError as exc:  # dask-jobqueue reports bad settings as ValueError
            raise ConfigError(f"--backend {opts.backend}: {exc}") from None
        # --workers counts worker processes; each batch job holds `processes` of them. A fixed-size
        # adaptive cluster replaces jobs that end (walltime, node failure) instead of shrinking.
        n_jobs = -(-(opts.workers or kw["processes"]) // kw["processes"])
        cluster.adapt(minimum_jobs=n_jobs, maximum_jobs=n_jobs)
        return cluster


class SlurmBackend(JobqueueBackend):
    name = "slurm"
    cluster_class = "SLURMCluster"


class PbsBackend(JobqueueBackend):
    name = "pbs"
    cluster_class = "PBSCluster"


def backend(name: str) -> SweepBackend:
    """The registered backend ``name`` (ConfigError naming the known ones otherwise)."""
    try:
        return _BACKENDS[name]()
    except KeyError:
        raise ConfigError(f"--backend: unknown backend {name!r} (choose from {', '.join(backend_names())})") from None


def backend_names() -> list[str]:
    """Names of the registered backends, in registration order."""
    return list(_BACKENDS)


#: used when neither the command line nor the dask config sets them
FALLBACK_CORES = 1
FALLBACK_MEMORY = "2GiB"


@dataclass
class ClusterOptions:
    """Command-line settings of the cluster (``None`` = from the dask config, else a fallback)."""

    backend: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    cores: int | None = None
    memory: str | None = None
    processes: int | None = None
    interface: str | None = None
    job_extra: list[str] = field(default_factory=list)
    log_directory: str | None = None
    local_directory: str | None = None


def _package_root() -> str:
    return str(Path(tme_sim.__file__).resolve().parent.parent)


def worker_prologue() -> list[str]:
    """Shell lines run at the top of every batch job before the worker starts."""
    paths = [_package_root()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    uniq = list(dict.fromkeys(paths))
    return [
        f"cd {shlex.quote(os.getcwd())}",
        f"export PYTHONPATH={shlex.quote(os.pathsep.join(uniq))}",
    ]


def walltime_seconds(text: str) -> int | None:
    """``"D-HH:MM:SS"``, ``"HH:MM:SS"``, ``"MM:SS"`` or ``"MM"`` → seconds (``None`` if unreadable)."""
    text = str(text).strip()
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            return None
        days = int(d)
    parts = text.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        return None
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        secs = nums[0] * 60  # SLURM: a bare number is minutes
    elif len(nums) == 2:
        secs = nums[0] * 60 + nums[1] if days == 0 else nums[0] * 3600 + nums[1] * 60
    else:
        secs = nums[0] * 3600 + nums[1] * 60 + nums[2]
    return days * 86400 + secs


def lifetime_args(walltime: str | None) -> list[str]:
    """Worker options that retire a worker before the batch system kills its job.

    A worker retires gracefully at ``walltime - margin`` (± a stagger so that jobs do not all
    leave at once): its running task is rescheduled without counting as a failure, and the
    adaptive cluster submits a replacement job (the approach of dask-jobqueue's documentation,
    "How to handle job queueing system walltime killing workers").
    """
    secs = walltime_seconds(walltime) if walltime else None
    if secs is None or secs < 600:
        return []
    margin = max(120, secs // 10)
    return ["--lifetime", f"{secs - margin}s", "--lifetime-stagger", f"{margin // 4}s"]


def jobqueue_kwargs(opts: ClusterOptions) -> dict[str, Any]:
    """Keyword arguments for ``SLURMCluster`` / ``PBSCluster`` (config values are not repeated)."""
    import dask

    section = f"jobqueue.{opts.backend}"
    kw: dict[str, Any] = {
        "python": sys.executable,
        "job_script_prologue": [
            *list(dask.config.get(f"{section}.job-script-prologue", None) or []),
            *worker_prologue(),
        ],
    }
    for name in ("queue", "account", "walltime", "interface", "log_directory", "local_directory"):
        value = getattr(opts, name)
        if value is not None:
            kw[name] = value
    kw["cores"] = opts.cores or dask.config.get(f"{section}.cores", None) or FALLBACK_CORES
    kw["memory"] = opts.memory or dask.config.get(f"{section}.memory", None) or FALLBACK_MEMORY
    processes = opts.processes or dask.config.get(f"{section}.processes", None)
    # one single-threaded worker process per core: simulations hold the GIL
    kw["processes"] = processes or kw["cores"]
    extra_args = list(dask.config.get(f"{section}.worker-extra-args", None) or [])
    if "--lifetime" not in extra_args:
        walltime = opts.walltime or dask.config.get(f"{section}.walltime", None)
        extra_args += lifetime_args(walltime)
    kw["worker_extra_args"] = extra_args
    if opts.job_extra:
        kw["job_extra_directives"] = [
            *list(dask.config.get(f"{section}.job-extra-directives", None) or []),
            *opts.job_extra,
        ]
    return kw


def check_options(opts: ClusterOptions) -> None:
    """Reject inconsistent command-line cluster settings (ConfigError naming the option)."""
    chosen = backend(opts.backend)
    if opts.workers is not None and opts.workers < 1:
        raise ConfigError("--workers: must be at least 1")
    if opts.scheduler is not None and chosen.batch:
        raise ConfigError("--scheduler: joins an existing cluster; do not combine it with --backend slurm/pbs")
    if opts.scheduler is not None and opts.workers is not None:
        raise ConfigError("--workers: the cluster behind --scheduler decides its workers")
    if not chosen.batch:
        for name in ("queue", "account", "walltime", "interface"):
            if getattr(opts, name) is not None:
                raise ConfigError(f"--{name}: only for --backend slurm or pbs")
    if opts.cores is not None and opts.cores < 1:
        raise ConfigError("--cores: must be at least 1")


@contextlib.contextmanager
def open_client(
    opts: ClusterOptions, *, silence_logs: int | str = "error", connect_timeout: str = "30s"
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``opts``; closes what it created on exit."""
    import logging

    from distributed import Client

    check_options(opts)
    if opts.scheduler is not None:
        try:
            client = Client(opts.scheduler, timeout=connect_timeout)
        except OSError as exc:
            raise ConfigError(f"--scheduler: cannot reach {opts.scheduler}: {exc}") from None
        with client:
            yield client
        return

    level = logging.ERROR if silence_logs == "error" else silence_logs
    cluster = backend(opts.backend).make_cluster(opts, level)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def describe(client: Any) -> str:
    """One line: where the sweep runs."""
    try:
        n = len(client.scheduler_info(n_workers=-1)["workers"])
    except TypeError:  # older distributed without n_workers
        n = len(client.scheduler_info()["workers"])
    return f"scheduler {client.scheduler.address} ({n} workers connected)"


def job_script(opts: ClusterOptions) -> str:
    """The batch script dask-jobqueue would submit (for ``--dry-run`` and tests)."""
    chosen = backend(opts.backend)
    if not isinstance(chosen, JobqueueBackend):
        raise ConfigError(f"--dry-run: backend {opts.backend!r} submits no batch jobs")
    with chosen.cluster_type()(**jobqueue_kwargs(opts)) as cluster:
        return cluster.job_script()


__all__: Sequence[str] = [
    "ClusterOptions",
    "JobqueueBackend",
    "LocalBackend",
    "SweepBackend",
    "backend",
    "backend_names",
    "describe",
    "job_script",
    "jobqueue_kwargs",
    "open_client",
]
