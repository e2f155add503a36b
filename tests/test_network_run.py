"""``tme network run`` and the probability trajectory behind it."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tme_sim.cli import main
from tme_sim.intracellular.boolean import BooleanNetwork
from tme_sim.intracellular.boolean.probtraj import probability_trajectory

BND = """\
Node A { rate_up = $k; rate_down = 0; }
Node B { logic = A; rate_up = @logic ? 1e9 : 0; rate_down = @logic ? 0 : 1e9; }
Node H { rate_up = 0; rate_down = 0; }
"""
CFG = "$k = 0.5; A.istate = 0; B.istate = 0; H.istate = 1; H.is_internal = TRUE; max_time = 4; time_tick = 0.5;\n"


def call(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_probability_trajectory_follows_the_analytic_curve():
    net = BooleanNetwork.from_text(BND, CFG, name="ab")
    traj = probability_trajectory(net, 100_000, np.random.default_rng(1))
    assert traj.times.tolist() == [0.5 * k for k in range(9)]
    assert set(traj.states) == {"<nil>", "A -- B"}  # H is internal; B follows A at once
    on = traj.probs[:, traj.states.index("A -- B")]
    expected = 1 - np.exp(-0.5 * traj.times)
    # 1e5 cells: standard error <= 0.0016, so 0.01 is > 6 standard errors
    assert np.abs(on - expected).max() < 0.01
    assert np.allclose(traj.probs.sum(axis=1), 1.0)


def test_knockout_holds_a_node_off():
    net = BooleanNetwork.from_text(BND, CFG, name="ab")
    traj = probability_trajectory(net, 1000, np.random.default_rng(1), knockout=["A"])
    assert traj.final() == {"<nil>": 1.0}


def test_discrete_time_makes_one_transition_per_tick():
    # A toggles at every tick: after max_time = 3 with tick 1 MaBoSS makes the transitions at t = 1, 2
    bnd = "Node A { rate_up = 1; rate_down = 1; }\n"
    net = BooleanNetwork.from_text(bnd, "A.istate = 0; max_time = 3; time_tick = 1; discrete_time = 1;", name="t")
    traj = probability_trajectory(net, 100, np.random.default_rng(0))
    assert traj.probs[:, traj.states.index("A")].tolist() == [0.0, 1.0, 0.0, 0.0]
    state = np.zeros((5, 1), dtype=np.uint8)
    net.advance(state, 3.0, np.random.default_rng(0))
    assert state.sum() == 0  # t = 1 and t = 2: two flips; the one at t = 3 is not made


def test_cli_writes_probtraj_csv(tmp_path, capsys):
    (tmp_path / "ab.bnd").write_text(BND)
    (tmp_path / "ab.cfg").write_text(CFG)
    out = tmp_path / "probtraj.csv"
    code, stdout, err = call(
        ["network", "run", str(tmp_path / "ab.bnd"), str(tmp_path / "ab.cfg"), "-n", "2000", "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "final states" in stdout and "A -- B" in stdout
    rows = list(csv.reader(out.open()))
    assert rows[0][0] == "time" and "Prob[A -- B]" in rows[0]
    assert len(rows) == 1 + 9
    assert abs(sum(float(x) for x in rows[-1][1:]) - 1.0) < 1e-9


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        (["missing.bnd"], "missing.bnd: file not found"),
        (["ab.bnd", "bad.cfg"], "bad.cfg:1: unknown setting 'max_tim'"),
        (["ab.bnd", "--out", "nowhere/p.csv"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, files, fragment):
    (tmp_path / "ab.bnd").write_text(BND)
    (tmp_path / "bad.cfg").write_text("max_tim = 3;")
    args = [f if f.startswith("-") else str(tmp_path / f) for f in files]
    code, _, err = call(["network", "run", *args], capsys)
    assert code == 2
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1
