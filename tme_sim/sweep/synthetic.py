"""Synthetic run and metrics callables with known outputs.

They let the executor, the analysis and the overhead benchmark be exercised without running the
simulator (on any cluster, in seconds): :class:`SyntheticRun` writes a small HDF5 file that
records the run's parameters and seed, optionally sleeping, failing for chosen runs, or writing
slowly so that a worker can be killed in the middle of a write; :class:`LinearResponse` reads
such a file back and returns ``y = Σ coeffs[k] · params[k] + noise · N(0, 1)`` (noise seeded by
the run's seed), so sensitivity indices of the analysis can be checked against exact values.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tme_sim.sweep.design import RunSpec


@dataclass(frozen=True)
class SyntheticRun:
    """Picklable run callable: writes ``out`` (HDF5) for ``spec``.

    ``sleep_s``: seconds spent "simulating"; ``write_pause_s``: pause between the two halves of
    the payload (the file is partial meanwhile); ``fail_ids``: run ids that raise
    ``RuntimeError``; ``crash_ids``: run ids whose worker process kills itself (SIGKILL), as
    a node failure would; ``log_dir``: every attempt creates ``<log_dir>/<run_id>.<pid>.<hex>``
    (tests count executions with it); ``payload``: number of float64 values written.
    """

    sleep_s: float = 0.0
    write_pause_s: float = 0.0
    fail_ids: tuple[str, ...] = ()
    crash_ids: tuple[str, ...] = ()
    log_dir: str | None = None
    payload: int = 16

    def __call__(self, spec: RunSpec, out: Path) -> Path:
        if self.log_dir is not None:
            Path(self.log_dir, f"{spec.run_id}.{os.getpid()}.{uuid.uuid4().hex[:6]}").touch()
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if spec.run_id in self.crash_ids:
            os.kill(os.getpid(), signal.SIGKILL)
        if spec.run_id in self.fail_ids:
            raise RuntimeError(f"synthetic failure of {spec.run_id}")
        data = np.random.default_rng(spec.seed).random(self.payload)
        half = self.payload // 2
        with h5py.File(out, "w") as fh:
            fh.attrs["run_id"] = spec.run_id
            fh.attrs["seed"] = spec.seed
            fh.attrs["params"] = json.dumps(spec.params)
            ds = fh.create_dataset("data", shape=(self.payload,), dtype=np.float64)
            ds[:half] = data[:half]
            fh.flush()
            if self.write_pause_s:
                time.sleep(self.write_pause_s)
            ds[half:] = data[half:]
            fh.attrs["complete"] = True
        return out

    @staticmethod
    def is_complete(path: Path) -> bool:
        try:
            with h5py.File(path, "r") as fh:
                return bool(fh.attrs.get("complete", False))
        except OSError:
            return False


@dataclass(frozen=True)
class LinearResponse:
    """Picklable metrics callable for :class:`SyntheticRun` files: ``{"y": ..., "seed_mod": ...}``."""

    coeffs: Mapping[str, float] = field(default_factory=dict)
    noise: float = 0.0

    def __call__(self, path: Path) -> dict[str, float]:
        with h5py.File(path, "r") as fh:
            params = json.loads(fh.attrs["params"])
            seed = int(fh.attrs["seed"])
            n = int(fh["data"].shape[0])
        y = sum(c * params[k] for k, c in self.coeffs.items())
        if self.noise:
            y += self.noise * float(np.random.default_rng(seed).standard_normal())
        return {"y": float(y), "payload": float(n)}
