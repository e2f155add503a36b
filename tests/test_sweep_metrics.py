"""Summary metrics on small synthetic tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tme_sim.sweep.metrics import (
    METRICS,
    MetricContext,
    MetricSet,
    RunTables,
    context_for,
    events,
    final_cells,
    kills,
    tcell_infiltration,
    tumor_auc,
)

CTX = MetricContext(tumor_types=("tumor",), tcell_types=("cd8",))


class Tables(RunTables):
    def __init__(self, population=None, events=None, cells=None):
        self.__dict__.update(population=population, events=events, cells=cells)


def population() -> pd.DataFrame:
    rows = []
    for t, tum, cd8 in [(0.0, 100, 5), (60.0, 120, 5), (120.0, 80, 7)]:
        rows.append({"time": t, "type": "tumor", "live": tum, "apoptotic": 2, "necrotic": 1, "lysed": 1})
        rows.append({"time": t, "type": "cd8", "live": cd8, "apoptotic": 0, "necrotic": 0, "lysed": 0})
    return pd.DataFrame(rows)


def test_final_cells_and_auc():
    t = Tables(population=population())
    assert final_cells(t, CTX) == {
        "final_cd8": 7.0,
        "final_dead_cd8": 0.0,
        "final_tumor": 80.0,
        "final_dead_tumor": 4.0,
    }
    # trapezoid over hours: (100 + 120) / 2 * 1 h + (120 + 80) / 2 * 1 h
    got = tumor_auc(t, CTX)
    assert got["tumor_auc"] == pytest.approx(210.0)
    assert got["tumor_fold_change"] == pytest.approx(0.8)
    # a type missing at some times counts as zero there; no tumor at t=0 → fold change NaN
    pop = population()
    pop = pop[~((pop["type"] == "tumor") & (pop["time"] == 0.0))]
    got = tumor_auc(Tables(population=pop), CTX)
    assert got["tumor_auc"] == pytest.approx(60 + 100) and np.isnan(got["tumor_fold_change"])


def cells_3d(n_tumor=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # uniform ball of radius 100 µm centred at (500, 500, 500)
    v = rng.normal(size=(n_tumor, 3))
    v *= (100 * rng.random(n_tumor) ** (1 / 3) / np.linalg.norm(v, axis=1))[:, None]
    tum = pd.DataFrame(v + 500, columns=["x", "y", "z"]).assign(type="tumor", dead=0)
    # 3 T cells inside (one dead), 2 outside
    tc = pd.DataFrame(
        [
            [500, 500, 500, 0],
            [540, 500, 500, 0],
            [500, 450, 530, 0],
            [500, 500, 520, 1],
            [700, 500, 500, 0],
            [500, 300, 500, 0],
        ],
        columns=["x", "y", "z", "dead"],
    ).assign(type="cd8")
    return pd.concat([tum, tc], ignore_index=True)


def test_tcell_infiltration_3d_and_2d():
    got = tcell_infiltration(Tables(cells=cells_3d()), CTX)
    assert got == {"tcell_infiltration": 3 / 5, "tcells_in_tumor": 3.0, "tcells_live": 5.0}
    c2 = cells_3d()
    c2["z"] = 0.0  # flattened: uses the disc radius; the same T cells are in or out
    got2 = tcell_infiltration(Tables(cells=c2), CTX)
    assert got2["tcells_in_tumor"] == 3.0
    none = cells_3d()
    none = none[none["type"] == "tumor"]
    assert np.isnan(tcell_infiltration(Tables(cells=none), CTX)["tcell_infiltration"])


def test_event_counts():
    ev = pd.DataFrame({"time": [1.0, 2.0, 3.0, 4.0], "kind": ["kill", "division", "kill", "mystery"]})
    t = Tables(events=ev)
    assert kills(t, CTX) == {"kills": 2.0}
    e = events(t, CTX)
    assert e["n_kill"] == 2 and e["n_division"] == 1 and e["n_lysis"] == 0 and e["n_mystery"] == 1
    empty = Tables(events=ev.iloc[:0])
    assert kills(empty, CTX) == {"kills": 0.0}
    assert set(events(empty, CTX).values()) == {0.0}


def test_context_from_scenario_types():
    ctx = context_for({"cancer": "tumor", "killer": "cd8_t_cell", "mac": "macrophage"})
    assert ctx.tumor_types == ("cancer",) and ctx.tcell_types == ("killer",)
    ctx = context_for({"tumor": "generic", "cd8": "generic"})
    assert ctx.tumor_types == ("tumor",) and ctx.tcell_types == ("cd8",)
    assert context_for({"a": "tumor"}, tcell_types=["b"]).tcell_types == ("b",)


def test_metric_set_is_picklable_and_merges(tmp_path):
    import pickle

    ms = MetricSet(("final_cells", "kills"), CTX)
    assert pickle.loads(pickle.dumps(ms)) == ms
    with pytest.raises(ValueError, match="unknown metric"):
        MetricSet(("nope",))
    assert set(METRICS) >= {"final_cells", "tumor_auc", "tcell_infiltration", "kills"}
