"""Agreement with MaBoSS itself (test-only dependency ``maboss`` with ``cmaboss``).

Final-state probabilities of our Gillespie engine and of cMaBoSS on the same files, with
10 000 trajectories each. Skipped only where maboss cannot be imported.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tme_sim.intracellular.boolean import load_network

maboss = pytest.importorskip("maboss", reason="maboss (pymaboss + cmaboss) is not installed")
pytest.importorskip("cmaboss", reason="cmaboss (MaBoSS C++ bindings) is not installed")

NETWORKS = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "networks"
N = 10_000
TOL = 0.02


def maboss_final(bnd: Path, cfg: Path, nodes: list[str], *, knockout: str | None = None) -> dict[str, float]:
    sim = maboss.load(str(bnd), str(cfg), cmaboss=True)
    sim.update_parameters(sample_count=N, thread_count=1, seed_pseudorandom=12345)
    if knockout is not None:
        # simple=False: MaBoSS's full mutation ($Low_<node>: rate_up 0, rate_down "infinite"),
        # i.e. the node is off from t = 0 like our knock-out. (simple=True only sets logic = 0,
        # so a node that starts on decays at rate 1: cIAP-KO then gives Apoptosis 0.917 vs 0.912.)
        sim.mutate(knockout, "OFF", simple=False)
    res = sim.run(only_final_state=True)
    last = res.get_last_nodes_probtraj()
    row = last.iloc[-1]
    return {nm: float(row.get(nm, 0.0)) for nm in nodes}


def ours_final(bnd: Path, cfg: Path, nodes: list[str], t: float, *, knockout: str | None = None, seed=0):
    net = load_network(bnd, cfg)
    rng = np.random.default_rng(seed)
    s = net.initial_state(N, rng)
    ko = net.node_mask([knockout]) if knockout else None
    net.advance(s, t, rng, knockout=ko)
    return {nm: float(s[:, net.index(nm)].mean()) for nm in nodes}


def _tnf_cfg(tmp_path: Path, tnf_on: bool) -> Path:
    text = (NETWORKS / "tnf_cellfate.cfg").read_text()
    text, k = re.subn(r"(?m)^TNF\.istate = 0;", f"TNF.istate = {int(tnf_on)};", text)
    assert k == 1
    p = tmp_path / f"tnf_{int(tnf_on)}.cfg"
    p.write_text(text)
    return p


FATES = ["Apoptosis", "NonACD", "Survival"]
OTHERS = ["NFkB", "cIAP", "ATP"]  # also reported by MaBoSS (not is_internal)


@pytest.mark.parametrize(
    ("tnf_on", "knockout"),
    [(True, None), (False, None), (True, "cIAP")],
    ids=["TNF-on", "TNF-off", "TNF-on-cIAP-KO"],
)
def test_tnf_cell_fates_agree_with_maboss(tmp_path, tnf_on, knockout):
    bnd = NETWORKS / "tnf_cellfate.bnd"
    cfg = _tnf_cfg(tmp_path, tnf_on)
    max_time = load_network(bnd, cfg).settings["max_time"]
    assert max_time == 100
    ref = maboss_final(bnd, cfg, FATES + OTHERS, knockout=knockout)
    got = ours_final(bnd, cfg, FATES + OTHERS, max_time, knockout=knockout)
    print(f"TNF={'on' if tnf_on else 'off'} KO={knockout}: MaBoSS {ref} ours {got}")
    for nm in FATES + OTHERS:
        assert abs(got[nm] - ref[nm]) <= TOL, (nm, got, ref)
    if tnf_on and knockout is None:
        assert ref["Apoptosis"] > 0.8  # the model does what it should: TNF kills most cells
    if knockout == "cIAP":
        assert ref["Survival"] == 0.0 and got["Survival"] == 0.0


SMALL_BND = """\
// arithmetic in rates, $variables, @logic forms and a custom rate_down
Node A { rate_up = $ka; rate_down = $kd * (1 + B); }
Node B {
  logic = A AND NOT C;
  rate_up = @logic ? 2 * $ka : 0;
  rate_down = @logic ? 0 : 0.5;
}
Node C { logic = B OR C; rate_up = @logic ? $kc / 2 : 0; }
"""

SMALL_CFG = """\
$ka = 1.5;
$kd = 0.25;
$kc = 0.8;
A.istate = 0;
B.istate = 0;
C.istate = 0;
time_tick = 0.01;
max_time = 2;
sample_count = 10000;
"""


def test_transient_probabilities_agree_with_maboss(tmp_path):
    bnd = tmp_path / "small.bnd"
    cfg = tmp_path / "small.cfg"
    bnd.write_text(SMALL_BND)
    cfg.write_text(SMALL_CFG)
    ref = maboss_final(bnd, cfg, ["A", "B", "C"])
    got = ours_final(bnd, cfg, ["A", "B", "C"], 2.0, seed=3)
    print(f"small network at t=2: MaBoSS {ref} ours {got}")
    assert 0.1 < ref["C"] < 0.9  # a genuinely transient, non-trivial regime
    for nm in ("A", "B", "C"):
        assert abs(got[nm] - ref[nm]) <= TOL, (nm, got, ref)
