"""Readers of half-written outputs: the snapshot count comes from consistent datasets.

A file killed in the middle of a snapshot can hold some datasets one row longer than others,
and root attributes (``last_snapshot``) ahead of or behind the data. These tests build such
files by hand from a real output and check every reader.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tme_sim.errors import OutputError
from tme_sim.io import (
    CELL_COLUMNS,
    OutputWriter,
    committed_snapshots,
    describe,
    open_fields,
    read_cells,
    read_events,
    read_population,
    snapshot_times,
)
from tme_sim.runner import run_scenario

SCENARIO = Path(__file__).resolve().parent / "data" / "tiny_spheroid.toml"


@pytest.fixture(scope="module")
def complete_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("io") / "run.h5"
    run_scenario(SCENARIO, out, duration="6 min")
    return out


def _grow(ds: h5py.Dataset, rows: int = 1) -> None:
    n = ds.shape[0]
    ds.resize(n + rows, axis=0)
    ds[n:] = ds[n - 1 : n] if ds.ndim > 1 else ds[n - 1]


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "partial.h5"
    shutil.copy(src, dst)
    return dst


def test_complete_file_counts(complete_file: Path) -> None:
    with h5py.File(complete_file, "r") as fh:
        k = committed_snapshots(fh)
        assert k == fh["cells/snapshot_time"].shape[0] == fh.attrs["last_snapshot"] + 1 == 4  # 0, 2, 4, 6 min
        assert fh.attrs["complete"]
    assert "complete (4 snapshots, last at 6 min)" in describe(complete_file)


@pytest.mark.parametrize(
    "partial",
    [
        ["fields/time"],  # killed between the two appends of a field frame
        ["fields/time", "fields/concentration"],  # field frame written, cells not
        ["fields/time", "fields/concentration", "cells/x", "cells/y"],  # in the middle of the cell columns
        ["fields/time", "fields/concentration", *[f"cells/{n}" for n, _ in CELL_COLUMNS], "cells/offset"],
        ["cells/snapshot_time"],  # population rows missing
        ["cells/snapshot_time", "population/time"],
    ],
)
def test_half_written_snapshot_is_not_counted(complete_file: Path, tmp_path: Path, partial: list[str]) -> None:
    f = _copy(complete_file, tmp_path)
    with h5py.File(f, "a") as fh:
        for name in partial:
            _grow(fh[name], 45 if name.startswith("cells/") and name[6:] in dict(CELL_COLUMNS) else 1)
        fh.attrs["last_snapshot"] = 4  # the attributes claim the half-written snapshot
        fh.attrs["complete"] = False
    with h5py.File(f, "r") as fh:
        assert committed_snapshots(fh) == 4
    ref = read_cells(complete_file)
    got = read_cells(f)
    assert got.equals(ref)
    assert read_population(f).equals(read_population(complete_file))
    assert read_events(f).equals(read_events(complete_file))
    assert np.array_equal(snapshot_times(f), [0, 2, 4, 6])
    with pytest.raises(OutputError, match="no snapshot 4"):
        read_cells(f, snapshot=4)
    ds = open_fields(f)
    assert ds.sizes["time"] >= 4
    assert np.array_equal(ds["concentration"].values[:4], open_fields(complete_file)["concentration"].values)
    info = describe(f)
    assert "INCOMPLETE" in info and "last good snapshot 3 at 6 min" in info


def test_attributes_behind_the_data_do_not_hide_snapshots(complete_file: Path, tmp_path: Path) -> None:
    f = _copy(complete_file, tmp_path)
    with h5py.File(f, "a") as fh:
        fh.attrs["last_snapshot"] = 1
    assert len(snapshot_times(f)) == 4
    w = OutputWriter.reopen(f)
    assert w.n_snapshots == 4
    w.close(complete=False)


def test_truncate_after_drops_a_half_written_snapshot(complete_file: Path, tmp_path: Path) -> None:
    f = _copy(complete_file, tmp_path)
    with h5py.File(f, "a") as fh:
        for name in ("fields/time", "fields/concentration", "cells/snapshot_time"):
            _grow(fh[name])
    w = OutputWriter.reopen(f)
    w.truncate_after(4.0)
    w.close(complete=False)
    with h5py.File(f, "r") as fh:
        assert committed_snapshots(fh) == 3
        for name in ("fields/time", "fields/concentration", "cells/snapshot_time", "population/time"):
            assert fh[name].shape[0] == 3, name
        end = int(fh["cells/offset"][2] + fh["cells/count"][2])
        assert all(fh["cells"][n].shape[0] == end for n, _ in CELL_COLUMNS)
        assert (fh["events/time"][:] <= 4.0 + 1e-9).all()


def test_unfinished_or_foreign_files_give_one_line_errors(tmp_path: Path) -> None:
    from tme_sim.io import SCHEMA

    f = tmp_path / "created.h5"
    with h5py.File(f, "w") as fh:
        fh.attrs["schema"] = SCHEMA
    with pytest.raises(OutputError, match="stopped while creating the file"):
        describe(f)
    g = tmp_path / "junk.h5"
    g.write_bytes(b"not hdf5")
    with pytest.raises(OutputError, match="not a readable HDF5 file"):
        read_cells(g)
