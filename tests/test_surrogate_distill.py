"""Distillation of the Boolean TNF cell-fate model into a surrogate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from surrogates.distill import FATES, agreement, conditions, input_names

NETWORKS = Path(__file__).resolve().parents[1] / "scenarios" / "networks"
BND, CFG = NETWORKS / "tnf_cellfate.bnd", NETWORKS / "tnf_cellfate.cfg"


def test_agreement_metrics():
    ref = np.array([[0.9, 0.05, 0.05, 0.0], [0.5, 0.48, 0.02, 0.0], [0.1, 0.1, 0.8, 0.0]])
    pred = np.array([[0.8, 0.1, 0.1, 0.0], [0.45, 0.5, 0.05, 0.0], [0.1, 0.1, 0.8, 0.0]])
    a = agreement(pred, ref, trajectories=400)
    assert a["argmax_agreement"] == pytest.approx(2 / 3)
    assert a["n_decided"] == 2 and a["argmax_agreement_decided"] == 1.0  # row 2 is a coin toss
    assert a["within_0.1"] == pytest.approx(1.0) and a["within_0.05"] == pytest.approx(2 / 3)  # row 0 is 0.1 off


def test_conditions_cover_ligands_and_mutations():
    names = input_names(["TNF", "FASL", "CASP8", "RIP1", "cFLIP", "BCL2"])
    assert names == ["TNF", "FASL", "KO_CASP8", "KO_RIP1", "KO_cFLIP", "KO_BCL2", "KI_cFLIP", "KI_BCL2"]
    c = conditions(names)
    assert c.shape[1] == len(names)
    assert len(np.unique(c, axis=0)) == len(c)
    assert set(np.unique(c[:, 0])) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert not np.any((c[:, 4] == 1) & (c[:, 6] == 1))  # never KO and KI of the same node


@pytest.mark.slow
@pytest.mark.skipif(not BND.is_file(), reason="TNF network not present")
def test_distilled_surrogate_agrees_with_engine(tmp_path):
    from surrogates.artifact import load_artifact
    from surrogates.distill import distill_tnf

    out = tmp_path / "tnf.pt"
    rep = distill_tnf(BND, CFG, out, trajectories=100, epochs=400, seed=3)
    s = rep["summary"]
    assert s["surrogate_vs_engine"]["argmax_agreement"] > 0.85
    assert s["surrogate_vs_engine"]["argmax_agreement_decided"] > 0.9
    sur = load_artifact(out, device="cpu")
    assert sur.output_names == list(FATES)
    p = sur.predict(np.zeros((1, len(sur.input_names)), dtype=np.float32))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
