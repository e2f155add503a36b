"""Loaders for surrogate training data: LEMBAS tables, CSV, AnnData; errors name file/row/column."""

from __future__ import annotations

import numpy as np
import pytest

from tme_sim.errors import DataError
from tme_sim.training.data import (
    LEMBAS_FILES,
    check_fits_network,
    lembas_dir,
    load_annotation,
    load_csv,
    load_dataset,
    load_lembas,
    load_network,
)

LEMBAS = lembas_dir()
needs_data = pytest.mark.skipif(
    not (LEMBAS / LEMBAS_FILES["inputs"]).is_file(),
    reason=f"ligand-screen data not found at {LEMBAS} (set TME_SHARED_DATA to the shared data folder)",
)


@needs_data
def test_real_ligand_screen_loads():
    ds = load_dataset(LEMBAS)
    assert ds.inputs.shape == (103, 60) and ds.outputs.shape == (103, 74)
    assert ds.inputs.dtype == np.float32
    assert set(np.unique(ds.inputs)) <= {0.0, 1.0}
    assert "P01579" in ds.input_names  # IFNG
    assert ds.condition_names[0] == "A2M"
    net = load_network(LEMBAS / LEMBAS_FILES["network"], LEMBAS / LEMBAS_FILES["annotation"])
    assert len(net.node_names) == 1262 and len(net.src) == 6594  # 6597 rows, 3 duplicate edges dropped
    assert set(np.unique(net.sign)) == {-1, 0, 1}
    assert net.names["P01579"] == "IFNG"
    check_fits_network(ds, net)
    assert len(ds.sha256()) == 64 and ds.sha256() == load_dataset(LEMBAS).sha256()


def write(path, text):
    path.write_text(text)
    return path


def test_lembas_tables_and_errors(tmp_path):
    lig = write(tmp_path / "lig.tsv", "\tA\tB\nc1\t1\t0\nc2\t0\t1\nc3\t1\t1\n")
    tf = write(tmp_path / "tf.tsv", "\tT1\tT2\nc2\t0.1\t0.2\nc1\t0.3\t0.4\nc3\t0.5\t0.6\n")
    ds = load_lembas(lig, tf)
    assert ds.condition_names == ["c1", "c2", "c3"]
    assert np.allclose(ds.outputs[0], [0.3, 0.4])  # rows re-ordered to match the inputs
    bad = write(tmp_path / "bad.tsv", "\tT1\tT2\nc1\t0.3\tx\nc2\t0.1\t0.2\nc3\t0.5\t0.6\n")
    with pytest.raises(DataError, match=r"bad\.tsv: row 'c1', column 'T2'"):
        load_lembas(lig, bad)
    nan = write(tmp_path / "nan.tsv", "\tT1\tT2\nc1\t0.3\t\nc2\t0.1\t0.2\nc3\t0.5\t0.6\n")
    with pytest.raises(DataError, match=r"nan.tsv: row 'c1', column 'T2'"):
        load_lembas(lig, nan)
    short = write(tmp_path / "short.tsv", "\tT1\tT2\nc1\t0.3\t0.4\n")
    with pytest.raises(DataError, match=r"short.tsv: condition\(s\) 'c2', 'c3' of .* have no row here"):
        load_lembas(lig, short)
    odd = write(tmp_path / "odd.tsv", "\tT1\tT2\nc1\t0.3\t0.4\nc2\t1\t1\nx9\t1\t1\n")
    with pytest.raises(DataError, match=r"'c3' of .* has no row here; 'x9' is not in"):
        load_lembas(lig, odd)
    with pytest.raises(DataError, match=r"missing.tsv: outputs file not found"):
        load_lembas(lig, tmp_path / "missing.tsv")
    dup = write(tmp_path / "dup.tsv", "\tT1\tT2\nc1\t1\t2\nc1\t1\t2\n")
    with pytest.raises(DataError, match=r"dup.tsv: duplicate row 'c1'"):
        load_lembas(dup, dup)


def test_network_and_annotation_errors(tmp_path):
    ok = write(tmp_path / "net.tsv", "source\ttarget\tstimulation\tinhibition\nA\tB\t1\t0\nB\tC\t0\t1\nA\tB\t1\t0\n")
    net = load_network(ok)
    assert net.node_names == ["A", "B", "C"] and list(net.sign) == [1, -1]  # duplicate edge dropped
    signed = write(tmp_path / "signed.tsv", "source\ttarget\tsign\nA\tB\t-1\n")
    assert list(load_network(signed).sign) == [-1]
    with pytest.raises(DataError, match=r"nocol.tsv: missing column 'target'"):
        load_network(write(tmp_path / "nocol.tsv", "source\tdst\tsign\nA\tB\t1\n"))
    with pytest.raises(DataError, match=r"badsign.tsv: row 3, column 'stimulation'"):
        load_network(
            write(tmp_path / "badsign.tsv", "source\ttarget\tstimulation\tinhibition\nA\tB\t1\t0\nB\tC\t2\t0\n")
        )
    with pytest.raises(DataError, match=r"needs columns"):
        load_network(write(tmp_path / "nosign.tsv", "source\ttarget\nA\tB\n"))
    with pytest.raises(DataError, match=r"missing column 'name'"):
        load_annotation(write(tmp_path / "ann.tsv", "code\tsymbol\nA\tx\n"))


def test_csv_and_fit_check(tmp_path):
    p = write(tmp_path / "d.csv", "cond,in:A,in:B,T1,T2\nc1,1,0,0.1,0.2\nc2,0,1,0.3,0.4\n")
    ds = load_csv(p)
    assert ds.input_names == ["A", "B"] and ds.output_names == ["T1", "T2"]
    assert load_dataset(p).n == 2
    with pytest.raises(DataError, match=r"no input columns"):
        load_csv(write(tmp_path / "e.csv", "cond,A,T1\nc1,1,2\n"))
    with pytest.raises(DataError, match=r"f.csv: row 'c1', column 'in:A'"):
        load_csv(write(tmp_path / "f.csv", "cond,in:A,T1\nc1,inf,2\n"))
    net = load_network(write(tmp_path / "n.tsv", "source\ttarget\tsign\nA\tT1\t1\n"))
    with pytest.raises(DataError, match=r"input 'B' is not a node"):
        check_fits_network(ds, net)
    with pytest.raises(DataError, match=r"unknown data format"):
        load_dataset(write(tmp_path / "x.json", "{}"))


def test_h5ad_loader(tmp_path):
    anndata = pytest.importorskip("anndata")
    import pandas as pd

    obs = pd.DataFrame(
        {"IFNG": [1.0, 0.0, 1.0], "IL4": [0.0, 1.0, 1.0], "donor": ["a", "b", "c"]}, index=["c1", "c2", "c3"]
    )
    ad = anndata.AnnData(
        X=np.arange(6, dtype=np.float32).reshape(3, 2), obs=obs, var=pd.DataFrame(index=["STAT1", "STAT6"])
    )
    p = tmp_path / "d.h5ad"
    ad.write_h5ad(p)
    ds = load_dataset(p)
    assert ds.input_names == ["IFNG", "IL4"] and ds.output_names == ["STAT1", "STAT6"]
    assert np.allclose(ds.outputs[2], [4, 5])
    with pytest.raises(DataError, match=r"obs has no column 'TNF'"):
        load_dataset(p, input_columns=["TNF"])
    junk = write(tmp_path / "junk.h5ad", "not hdf5")
    with pytest.raises(DataError, match=r"junk.h5ad: cannot read AnnData"):
        load_dataset(junk)
