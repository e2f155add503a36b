"""Any LEMBAS-format data set: files named by folder, dataset.toml or options; names aligned to nodes."""

from __future__ import annotations

import numpy as np
import pytest

from tme_sim.errors import DataError
from tme_sim.training.data import check_fits_network
from tme_sim.training.sources import align_to_network, load_source, resolve_source


def write_lembas(folder, prefix="myScreen", n=12, seed=0, extra_outputs=("NOTANODE", "ALSO_MISSING")):
    """A synthetic LEMBAS folder: ligands L1, L2 -> nodes -> TFs T1, T2 (+ outputs that are no nodes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 2)) < 0.5).astype(float)
    outs = ["T1", "stat6", *extra_outputs]  # 'stat6' matches node T2 by its annotation symbol STAT6
    y = rng.random((n, len(outs)))
    conds = [f"c{i}" for i in range(n)]
    (folder / f"{prefix}-Ligands.tsv").write_text(
        "\t"
        + "\t".join(["L1", "L2"])
        + "\n"
        + "".join(f"{c}\t{a:g}\t{b:g}\n" for c, (a, b) in zip(conds, x, strict=True))
    )
    (folder / f"{prefix}-TFs.tsv").write_text(
        "\t".join(["", *outs])
        + "\n"
        + "".join("\t".join([c, *(f"{v:.4f}" for v in r)]) + "\n" for c, r in zip(conds, y, strict=True))
    )
    (folder / f"{prefix}-Model.tsv").write_text(
        "source\ttarget\tstimulation\tinhibition\nL1\tK\t1\t0\nL2\tK\t0\t1\nK\tT1\t1\t0\nK\tT2\t1\t0\n"
    )
    (folder / f"{prefix}-Annotation.tsv").write_text("code\tname\nT2\tSTAT6\nT1\tSTAT1\nK\tKIN\n")
    return folder


def test_folder_with_any_prefix_maps_and_drops_with_one_line(tmp_path):
    folder = write_lembas(tmp_path / "d")
    src = resolve_source(str(folder), need_network=True)
    assert src.inputs.endswith("myScreen-Ligands.tsv") and src.annotation.endswith("myScreen-Annotation.tsv")
    ds, net, line = load_source(src)
    assert ds.output_names == ["T1", "T2"] and ds.outputs.shape == (12, 2)
    check_fits_network(ds, net)
    assert line.count("\n") == 0 and "outputs 2/4 matched (1 by name" in line
    assert "2 dropped (NOTANODE, ALSO_MISSING)" in line


def test_unmatched_error_lists_every_name(tmp_path):
    folder = write_lembas(tmp_path / "d")
    src = resolve_source(str(folder), unmatched="error", need_network=True)
    with pytest.raises(DataError, match=r"outputs 'NOTANODE', 'ALSO_MISSING'"):
        load_source(src)


def test_dataset_toml_with_map_and_any_names(tmp_path):
    folder = write_lembas(tmp_path / "d", extra_outputs=("NOTANODE",))
    for role, new in (("Ligands", "in.tsv"), ("TFs", "out.tsv"), ("Model", "pkn.tsv")):
        (folder / f"myScreen-{role}.tsv").rename(folder / new)
    (folder / "myScreen-Annotation.tsv").unlink()
    toml = folder / "dataset.toml"
    toml.write_text(
        'inputs = "in.tsv"\noutputs = "out.tsv"\nnetwork = "pkn.tsv"\nunmatched = "error"\n'
        '[map]\nstat6 = "T2"\nNOTANODE = "K"\n'
    )
    for data in (str(toml), str(folder)):  # the file itself, or the folder holding it
        ds, _, line = load_source(resolve_source(data, need_network=True))
        assert ds.output_names == ["T1", "T2", "K"] and "0 dropped" not in line
    # the same by options only
    files = {k: str(folder / f) for k, f in (("inputs", "in.tsv"), ("outputs", "out.tsv"), ("network", "pkn.tsv"))}
    ds, _, _ = load_source(resolve_source(None, **files, need_network=True))
    assert ds.output_names == ["T1"]  # stat6 has no annotation here, NOTANODE dropped


def test_all_missing_files_in_one_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        resolve_source(str(empty), need_network=True)
    msg = str(e.value)
    assert "inputs (*-Ligands.tsv)" in msg and "outputs (*-TFs.tsv)" in msg and "network (*-Model.tsv)" in msg
    assert "dataset.toml" in msg and "\n" not in msg
    toml = tmp_path / "ds.toml"
    toml.write_text('inputs = "a.tsv"\noutputs = "b.tsv"\nnetwork = "c.tsv"\n')
    with pytest.raises(DataError, match=r"missing inputs .*a.tsv, outputs .*b.tsv, network .*c.tsv"):
        resolve_source(str(toml), need_network=True)
    toml.write_text('inputs = "a.tsv"\nbogus = 1\n')
    with pytest.raises(DataError, match=r"unknown key\(s\) bogus"):
        resolve_source(str(toml))
    toml.write_text('inputs = "a.tsv"\nunmatched = "ignore"\n')
    with pytest.raises(DataError, match=r"unmatched must be one of drop, error"):
        resolve_source(str(toml))


def test_align_rejects_bad_map_and_duplicates(tmp_path):
    folder = write_lembas(tmp_path / "d", extra_outputs=())
    ds, net, _ = load_source(resolve_source(str(folder), need_network=True), with_network=False)
    from tme_sim.training.data import load_network

    net = load_network(folder / "myScreen-Model.tsv", folder / "myScreen-Annotation.tsv")
    with pytest.raises(DataError, match=r"\[map\]: not nodes .*T1 -> NOPE"):
        align_to_network(ds, net, mapping={"T1": "NOPE"})
    with pytest.raises(DataError, match=r"same network node\(s\): T2"):
        align_to_network(ds, net, mapping={"T1": "T2"})
    aligned, _ = align_to_network(ds, net, unmatched="drop")
    assert aligned.output_names == ["T1", "T2"] and np.array_equal(aligned.outputs, ds.outputs)


def test_sif_network(tmp_path):
    from tme_sim.training.data import load_network

    p = tmp_path / "pkn.sif"
    p.write_text("# a comment\nL1 1 K\nL2 -1 K\nK 1 T1\n\nK 1 T2\n")
    net = load_network(p)
    assert net.node_names == ["K", "L1", "L2", "T1", "T2"] and sorted(net.sign.tolist()) == [-1, 1, 1, 1]
    p.write_text("L1 1 K\nL2 K\n")
    with pytest.raises(DataError, match=r"line 2: expected 'source sign target'"):
        load_network(p)
    p.write_text("L1 2 K\n")
    with pytest.raises(DataError, match=r"expected -1, 0 or 1"):
        load_network(p)
