"""One writer per output, live readers, nothing replaced without --force, write errors (issue #25).

* two ``tme run`` on one ``--out`` started together: exactly one writes, the other is refused
  with one line (``--force`` too) and the file is the uninterrupted run's;
* a reader during a run: ``tme info`` says RUNNING with progress, the readers see committed
  snapshots while the writer goes on;
* an existing checkpoint or ``.part`` file is never removed without ``--force``; a refused
  ``--resume`` leaves a complete output byte-identical;
* write errors: an injected ENOSPC in a snapshot or a checkpoint ends the run with
  :class:`OutputWriteError`, keeps every earlier snapshot and the checkpoint, and ``--resume``
  then finishes bit-identically; as root, a real full disk (a tmpfs filled during the run by an
  observer plugin) gives exit 2 with one line, a readable file, and a resumable run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import tme_sim.io as tio
from tme_sim.config import load_scenario
from tme_sim.errors import OutputError, OutputWriteError
from tme_sim.io import describe, open_fields, read_cells, read_population, snapshot_times
from tme_sim.io.checkpoint import restore_model
from tme_sim.io.lock import holder
from tme_sim.model import TMEModel
from tme_sim.runner import checkpoint_path, run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "data" / "tiny_spheroid.toml"
GROUPS = ("cells", "fields", "population", "events")
ENV = dict(
    os.environ,
    PYTHONPATH=str(ROOT),
    PYTHONWARNINGS="ignore",
    NUMBA_NUM_THREADS="1",
    OMP_NUM_THREADS="1",
    MKL_NUM_THREADS="1",
)


def _tme(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "tme_sim", *map(str, args)]


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with tio.open_output(path) as fh:
        for g in GROUPS:
            fh[g].visititems(
                lambda n, o, g=g: out.__setitem__(f"{g}/{n}", o[()]) if isinstance(o, h5py.Dataset) else None
            )
    return out


def _assert_same(a: Path, b: Path) -> None:
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db)
    for k in da:
        assert da[k].shape == db[k].shape, k
        assert np.array_equal(da[k], db[k], equal_nan=da[k].dtype.kind == "f"), k


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    run_scenario(SCENARIO, out)
    return out


def _wait_running(proc: subprocess.Popen, out: Path, snapshots: int = 2, timeout: float = 180.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if out.exists() and holder(out) and len(snapshot_times(out)) >= snapshots:
            return
        time.sleep(0.2)
    raise AssertionError("the run did not start writing in time")


def test_reader_during_a_run_and_second_writer_refused(tmp_path: Path) -> None:
    out = tmp_path / "live.h5"
    proc = subprocess.Popen(
        _tme("run", SCENARIO, "--out", out, "-q", "--duration", "3000 min"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_running(proc, out)
        info = describe(out)
        assert f"RUNNING (pid {proc.pid}" in info and "of 3000 min" in info, info
        k0 = len(snapshot_times(out))
        cells = read_cells(out)
        assert len(cells) > 0 and len(read_population(out)) >= k0
        assert open_fields(out).sizes["time"] >= k0
        # a second writer, with or without --force or --resume, is refused before touching anything
        with pytest.raises(OutputError, match="exists; use --force"):
            run_scenario(SCENARIO, out, duration="3000 min")
        for extra in ({"force": True}, {"resume": True}):
            with pytest.raises(OutputError, match="another tme run is writing it"):
                run_scenario(SCENARIO, out, duration="3000 min", **extra)
        cli = subprocess.run(
            _tme("run", SCENARIO, "--out", out, "-q", "--force"), env=ENV, capture_output=True, text=True
        )
        assert cli.returncode == 2
        assert cli.stderr.strip().count("\n") == 0 and "another tme run is writing it" in cli.stderr, cli.stderr
        # the writer went on undisturbed; readers see its new snapshots
        t0 = time.monotonic()
        while len(snapshot_times(out)) <= k0 and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        assert len(snapshot_times(out)) > k0
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert holder(out) is None
    assert "INCOMPLETE" in describe(out)


def test_two_writers_started_together(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "both.h5"
    procs = [
        subprocess.Popen(
            _tme("run", SCENARIO, "--out", out, "-q", *extra),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in ([], ["--force"])
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    # started together: the second is refused while the first writes (or, if the first already
    # finished, its --force run replaces the file: both exit 0, and the file is still one whole run)
    assert codes in ([0, 2], [0, 0]), results
    for rc, _, err in results:
        if rc == 2:
            assert err.strip().count("\n") == 0 and "Traceback" not in err
            assert "another tme run is writing it" in err or "exists" in err, err
    _assert_same(out, reference)
    assert tio.read_attrs(out)["complete"]
    assert not list(tmp_path.glob("both.h5.part*")) and not list(tmp_path.glob("*.lock"))


def test_existing_checkpoint_and_part_are_never_removed_without_force(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    ckpt = checkpoint_path(out)
    ckpt.write_bytes(b"an earlier run's checkpoint")
    part = tmp_path / "run.h5.part"
    part.write_bytes(b"someone's temporary file")
    before = {p: _digest(p) for p in (ckpt, part)}
    with pytest.raises(OutputError, match="a checkpoint of an earlier run exists"):
        run_scenario(SCENARIO, out, duration="2 min")
    assert not out.exists()
    assert {p: _digest(p) for p in (ckpt, part)} == before
    run_scenario(SCENARIO, out, duration="2 min", force=True)  # --force discards the old checkpoint
    assert _digest(part) == before[part]
    assert tio.read_attrs(out)["complete"]


def test_refused_resume_leaves_a_complete_output_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "done.h5"
    run_scenario(SCENARIO, out, duration="6 min")
    files = [out, checkpoint_path(out)]
    before = [_digest(p) for p in files]
    with pytest.raises(OutputError, match="nothing to resume"):
        run_scenario(SCENARIO, out, duration="6 min", resume=True)
    with pytest.raises(OutputError, match="not --seed 99"):
        run_scenario(SCENARIO, out, duration="20 min", resume=True, seed=99)
    with pytest.raises(OutputError, match="exists; use --force"):
        run_scenario(SCENARIO, out, duration="6 min")
    assert [_digest(p) for p in files] == before
    assert "complete" in describe(out)


def _release_parked_handles() -> None:
    """The injected errors below leave HDF5 healthy: close the handles a real failure would park."""
    while tio._POISONED:
        fh = tio._POISONED.pop()
        if fh.id.valid:
            fh.close()


def test_injected_enospc_in_a_snapshot_keeps_earlier_snapshots_and_resumes(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "full.h5"
    original = tio.OutputWriter._snapshot

    def failing(self, model):  # snapshot 6 (t = 10 min) hits a full disk in its first write
        if self.n_snapshots == 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(self, model)

    monkeypatch.setattr(tio.OutputWriter, "_snapshot", failing)
    try:
        with pytest.raises(OutputWriteError, match=r"No space left on device \(errno 28\)"):
            run_scenario(SCENARIO, out)
    finally:
        _release_parked_handles()
    monkeypatch.undo()
    assert list(snapshot_times(out)) == [0, 2, 4, 6, 8, 10][:6]
    assert holder(out) is None
    model = TMEModel(load_scenario(SCENARIO))
    restore_model(model, checkpoint_path(out))  # the checkpoint (6 min) is intact
    assert model.time == pytest.approx(6.0)
    run_scenario(SCENARIO, out, resume=True)
    _assert_same(out, reference)


def test_injected_enospc_in_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tme_sim.io.checkpoint as ck

    out = tmp_path / "ck.h5"
    calls = {"n": 0}
    original = ck._fill

    def failing(fh, model, output_snapshots):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (12 min) fails half-way
            fh.attrs["schema"] = "half"
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fh, model, output_snapshots)

    monkeypatch.setattr(ck, "_fill", failing)
    try:
        with pytest.raises(OutputWriteError, match=r"ck.h5.ckpt: writing the checkpoint failed: No space left"):
            run_scenario(SCENARIO, out)
    finally:
        _release_parked_handles()
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.tmp*"))
    assert len(snapshot_times(out)) == 7  # 0..12 min were written before the checkpoint at 12 min
    run_scenario(SCENARIO, out, resume=True)  # from the 6 min checkpoint
    _assert_same(out, reference)


FILLER = textwrap.dedent(
    '''
    """Test plugin: fills the output's file system once the run passes ``at`` minutes."""
    from pathlib import Path

    from tme_sim.io.observers import Observer


    class DiskFiller(Observer):
        name = "disk_filler"

        @classmethod
        def from_settings(cls, settings, output, key):
            obs = cls()
            obs.folder = Path(output).parent
            obs.at = float(settings["at"])
            return obs

        def on_step(self, model):
            once = Path(__file__).with_name("filled")  # beside this plugin: only the first run fills
            if model.time < self.at or once.exists():
                return
            once.touch()
            with open(self.folder / "filler", "wb") as fh:
                try:
                    while True:
                        fh.write(b"x" * 65536)
                        fh.flush()
                except OSError:
                    pass
    '''
)


@pytest.fixture
def small_disk(tmp_path: Path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root to mount a small tmpfs (the injected ENOSPC tests cover the rest)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk_ends_cleanly_and_resumes(tmp_path: Path, small_disk: Path, reference: Path) -> None:
    sc = tmp_path / "fill.toml"
    (tmp_path / "filler.py").write_text(FILLER)
    sc.write_text(
        SCENARIO.read_text().replace('name = "tiny_spheroid"', 'name = "fill"\nplugins = ["filler.py"]')
        + "\n[output.observers.disk_filler]\nat = 9\n"
    )
    out = small_disk / "run.h5"
    r = subprocess.run(_tme("run", sc, "--out", out, "-q"), env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "No space left on device" in lines[0], r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    times = list(snapshot_times(out))  # readable, with every snapshot before the disk filled
    assert times[:5] == [0, 2, 4, 6, 8] and len(times) < 16  # stopped at the first failed write
    assert "INCOMPLETE" in describe(out)
    (small_disk / "filler").unlink()  # space again: --resume continues from the 6 min checkpoint
    r = subprocess.run(
        _tme("run", sc, "--out", out, "-q", "--resume"), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    _assert_same(out, reference)
