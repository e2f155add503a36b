"""Checkpoint and restart: a run killed and resumed is bit-identical to the uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tme_sim.config import load_scenario
from tme_sim.errors import OutputError, OutputWriteError
from tme_sim.io import open_output
from tme_sim.io.checkpoint import restore_model, write_checkpoint
from tme_sim.io.observers import Observer
from tme_sim.model import TMEModel
from tme_sim.runner import checkpoint_path, run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "data" / "tiny_spheroid.toml"
GROUPS = ("cells", "fields", "population", "events")


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with open_output(path) as fh:
        for g in GROUPS:
            fh[g].visititems(
                lambda n, o, g=g: out.__setitem__(f"{g}/{n}", o[()]) if isinstance(o, h5py.Dataset) else None
            )
    return out


def assert_same_outputs(a: Path, b: Path) -> None:
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db)
    for k in da:
        assert da[k].dtype == db[k].dtype, k
        assert da[k].shape == db[k].shape, k
        assert np.array_equal(da[k], db[k], equal_nan=da[k].dtype.kind == "f"), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    run_scenario(SCENARIO, out)
    with open_output(out) as fh:
        assert fh.attrs["complete"]
        assert fh["events/time"].shape[0] > 0, "the tiny scenario must produce events"
    return out


def test_sigkilled_run_resumed_is_bit_identical(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    ckpt = checkpoint_path(out)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tme_sim.cli import main; main()", "run", str(SCENARIO), "-q", "--out", str(out)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    while not ckpt.exists() and proc.poll() is None and time.monotonic() - t0 < 300:
        time.sleep(0.02)
    # kill right after the first checkpoint (a quiet machine can finish this tiny run within
    # a few tenths of a second, so no extra wait here)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    with open_output(out) as fh:
        assert not fh.attrs["complete"]
    run_scenario(SCENARIO, out, resume=True)
    assert_same_outputs(reference, out)
    with open_output(out) as fh:
        assert fh.attrs["complete"]


class _Crash(Observer):
    """Raises at a given simulated time (a crash that Python sees)."""

    def __init__(self, at: float) -> None:
        super().__init__(at)

    def act(self, model: TMEModel) -> None:
        raise RuntimeError("simulated crash")


@pytest.mark.parametrize("crash_at", [7.0, 13.3])
def test_crashed_run_resumed_is_bit_identical(reference: Path, tmp_path: Path, crash_at: float) -> None:
    out = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_scenario(SCENARIO, out, extra_observers=[_Crash(crash_at)])
    with open_output(out) as fh:
        assert not fh.attrs["complete"]
    # resuming twice in a row (the second finds the output complete) is refused
    run_scenario(SCENARIO, out, resume=True)
    assert_same_outputs(reference, out)
    with pytest.raises(OutputError, match="nothing to resume"):
        run_scenario(SCENARIO, out, resume=True)


def test_checkpoint_round_trip_restores_every_array(tmp_path: Path) -> None:
    sc = load_scenario(SCENARIO)
    a = TMEModel(sc)
    a.run_for(6.5)
    p = write_checkpoint(a, tmp_path / "x.ckpt")
    assert not list(tmp_path.glob("x.ckpt.tmp*"))
    b = TMEModel(sc)
    restore_model(b, p)
    assert b.time == a.time and b.n_mech_steps == a.n_mech_steps
    assert b.rng.bit_generator.state == a.rng.bit_generator.state
    sa, sb = a.store.state_dict(), b.store.state_dict()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    ga, gb = a.micro.state_dict(), b.micro.state_dict()
    for k in ga:
        np.testing.assert_array_equal(np.asarray(ga[k]), np.asarray(gb[k]), err_msg=k)
    np.testing.assert_array_equal(a.cell_list.order, b.cell_list.order)
    # and both continue identically
    a.run_for(5)
    b.run_for(5)
    np.testing.assert_array_equal(a.store.position[: a.store.n], b.store.position[: b.store.n])
    np.testing.assert_array_equal(a.micro.state_dict()["fields"], b.micro.state_dict()["fields"])


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = load_scenario(SCENARIO)
    m = TMEModel(sc)
    p = write_checkpoint(m, tmp_path / "x.ckpt")
    before = p.read_bytes()
    m.run_for(1)

    def boom(**_):
        raise OSError("disk full")

    monkeypatch.setattr(m, "state_dict", boom)
    with pytest.raises(OutputWriteError, match=r"x\.ckpt: writing the checkpoint failed: disk full"):
        write_checkpoint(m, p)
    assert p.read_bytes() == before
    assert not list(tmp_path.glob("x.ckpt.tmp*"))


def test_resume_refuses_mismatches(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    with pytest.raises(OutputError, match="no output to resume"):
        run_scenario(SCENARIO, out, resume=True)
    run_scenario(SCENARIO, out, duration="7 min")
    with pytest.raises(OutputError, match="different scenario"):
        run_scenario(SCENARIO, out, resume=True, overrides={"cell_types.tumor.mechanics.speed": "2 um/min"})
    with pytest.raises(OutputError, match="seed"):
        run_scenario(SCENARIO, out, resume=True, seed=99)
    checkpoint_path(out).unlink()
    with pytest.raises(OutputError, match="no checkpoint"):
        run_scenario(SCENARIO, out, resume=True)


def test_resume_refuses_an_output_behind_its_checkpoint(tmp_path: Path) -> None:
    """After a power failure the fsynced checkpoint can be newer than the (flushed) output."""
    from tme_sim.io import OutputWriter

    out = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_scenario(SCENARIO, out, extra_observers=[_Crash(13.3)])  # checkpoint at 12 min
    w = OutputWriter.reopen(out)
    w.truncate_after(5.0)  # the output lost its snapshots after 4 min
    w.close(complete=False)
    before = _datasets(out)
    with pytest.raises(OutputError, match="holds snapshots up to 4 min but its checkpoint is at 12"):
        run_scenario(SCENARIO, out, resume=True)
    after = _datasets(out)  # refused before touching the data
    assert sorted(before) == sorted(after)
    assert all(np.array_equal(before[k], after[k], equal_nan=before[k].dtype.kind == "f") for k in before)


def test_resume_with_checkpoints_between_snapshots(tmp_path: Path) -> None:
    """Checkpoint every 3 min, snapshots every 5 min: pending events cross the restart."""
    over = {"output.interval": "5 min", "output.checkpoint_interval": "3 min"}
    ref = tmp_path / "ref.h5"
    run_scenario(SCENARIO, ref, overrides=over)
    out = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_scenario(SCENARIO, out, overrides=over, extra_observers=[_Crash(14.0)])  # checkpoint at 12
    run_scenario(SCENARIO, out, overrides=over, resume=True)
    assert_same_outputs(ref, out)


def test_resume_boolean_intracellular_run(tmp_path: Path) -> None:
    """Stochastic Boolean networks: per-cell node states and the RNG cross the restart exactly."""
    sc = ROOT / "tests" / "data" / "tiny_tnf.toml"
    ref = tmp_path / "ref.h5"
    run_scenario(sc, ref)
    out = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_scenario(sc, out, extra_observers=[_Crash(17.0)])  # checkpoint at 16 min
    run_scenario(sc, out, resume=True)
    assert_same_outputs(ref, out)
    with open_output(ref) as fh:
        assert fh["cells/state/tumor/values"].shape[0] > 0  # node states are in the compared datasets
