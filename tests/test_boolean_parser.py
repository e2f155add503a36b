"""MaBoSS .bnd/.cfg reader and expression compiler."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tme_sim.errors import NetworkFormatError, TMEError
from tme_sim.intracellular.boolean import BooleanNetwork, load_network
from tme_sim.intracellular.boolean.clauseengine import ClauseKernels
from tme_sim.intracellular.boolean.expressions import evaluate, parse_expression
from tme_sim.intracellular.boolean.maboss_format import parse_bnd_text, parse_cfg_text
from tme_sim.intracellular.boolean.tableengine import TableKernels

NETWORKS = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "networks"


def ev(text: str, nodes: dict[str, float] | None = None, variables=None, logic=None) -> float:
    e = parse_expression(text)
    return evaluate(
        e,
        nodes=(nodes or {}).__getitem__,
        variables=(variables or {}).__getitem__,
        logic=logic,
    )


# --------------------------------------------------------------------------- expressions


def test_precedence_and_keywords():
    st = {"A": 1, "B": 0, "C": 1}
    # AND binds tighter than OR; NOT tighter than AND
    assert ev("A OR B AND NOT C", st) == 1.0
    assert ev("(A OR B) AND NOT C", st) == 0.0
    assert ev("!A | B & C", st) == 0.0
    assert ev("A && !B || B", st) == 1.0
    assert ev("A ^ C", st) == 0.0
    assert ev("A XOR B", st) == 1.0
    # MaBoSS (BooleanGrammar.y): XOR binds looser than OR, and keywords are case-insensitive
    assert ev("A | C ^ C", st) == 0.0  # (A | C) ^ C; it would be 1 if XOR bound tighter
    assert ev("C ^ C | A", st) == 0.0
    assert ev("A Or B xor C", st) == 0.0
    assert ev("Not A and C", st) == 0.0


def test_maboss_functions():
    assert ev("log(8, 2)") == pytest.approx(3.0)
    assert ev("exp(3, 2)") == pytest.approx(8.0)
    assert ev("log(exp(1.5))") == pytest.approx(1.5)
    assert ev("exp(A, 2) * $k", {"A": 1}, {"k": 2}) == pytest.approx(4.0)
    with pytest.raises(NetworkFormatError, match=r"x\.bnd:1: unknown function 'pow'"):
        parse_expression("pow(2, 3)", "x.bnd")
    with pytest.raises(NetworkFormatError, match=r"log\(\) takes 1 or 2 arguments, got 3"):
        parse_expression("log(1, 2, 3)")


def test_deep_expressions_are_one_line_errors_not_recursion_errors():
    chain = " & ".join(f"A{i}" for i in range(3000))  # flat chains are balanced: they load
    assert ev(chain, {f"A{i}": 1 for i in range(3000)}) == 1.0
    for text in ("(" * 3000 + "A" + ")" * 3000, "!" * 3000 + "A", "1" + " + 1" * 3000):
        with pytest.raises(NetworkFormatError, match=r"^x\.bnd:1: expression (nested|more than)"):
            parse_expression(text, "x.bnd")


def test_arithmetic_comparison_and_conditional():
    assert ev("1 + 2 * 3") == 7.0
    assert ev("(1 + 2) * 3") == 9.0
    assert ev("1/24") == pytest.approx(1 / 24)
    assert ev("-2 + 5") == 3.0
    assert ev("2 * $k + 1", variables={"k": 0.5}) == 2.0
    assert ev("1e+100 > 3") == 1.0
    assert ev("$a == 2 ? 10 : 20", variables={"a": 2}) == 10.0
    # right-associative nested conditional
    assert ev("A ? 1 : B ? 2 : 3", {"A": 0, "B": 1}) == 2.0
    assert ev("@logic ? $up : 0", variables={"up": 3.5}, logic=1) == 3.5
    assert ev("@logic ? $up : 0", variables={"up": 3.5}, logic=0) == 0.0
    assert ev("(@logic ? 1 : 0) + 1000 * $del", variables={"del": 1}, logic=0) == 1000.0


def test_expression_syntax_errors():
    with pytest.raises(NetworkFormatError, match=r"x\.bnd:2: syntax error"):
        parse_expression("A &\n& ) B", "x.bnd")
    with pytest.raises(NetworkFormatError, match="unexpected character"):
        parse_expression("A % B")


# --------------------------------------------------------------------------- .bnd


BND = """\
// a comment line
/* a block
   comment */
Node A {
  logic = !C;            // trailing comment
  rate_up = @logic ? $ka : 0;
  rate_down = @logic ? 0 : 2 * $ka + 0.5;
  description = "repressed by C";
}
node B { logic = A AND NOT C; }
NODE C {
  logic = B;
  rate_up = @logic ? 1/4 : 0;
}
Node D { rate_up = A ? 3 : 0; }
"""

CFG = """\
$ka = 1.5;   # a hash comment
$kb = $ka * 2;
A.istate = 1;
B.istate = -1;
[C, D].istate = 0.25 [1, 0], 0.75 [0, 1];
D.is_internal = 1;
time_tick = 0.5; max_time = 10;
sample_count = 100;
"""


def test_bnd_parse_structure():
    bnd = parse_bnd_text(BND, "t.bnd")
    assert [n.name for n in bnd.nodes] == ["A", "B", "C", "D"]
    a = bnd.nodes[0]
    assert a.line == 4
    assert a.attrs["description"] == "repressed by C"
    assert bnd.nodes[3].logic is None


def test_network_defaults_and_variables():
    net = BooleanNetwork.from_text(BND, CFG, name="t")
    assert net.node_names == ["A", "B", "C", "D"]
    assert net.variables == {"ka": 1.5, "kb": 3.0}
    assert net.index("C") == 2
    assert net.settings["max_time"] == 10
    assert net.output_nodes == ["A", "B", "C"]
    np.testing.assert_allclose(net.istate_prob, [1.0, 0.5, 0.5, 0.5])


def _reference_rates(net: BooleanNetwork, row: np.ndarray) -> np.ndarray:
    vals = dict(zip(net.node_names, row.astype(float), strict=True))
    out = []
    for j in range(net.n_nodes):
        lg = None
        if net.logic[j] is not None:
            lg = evaluate(net.logic[j], vals.__getitem__, net.variables.__getitem__)
        expr = net.rate_up[j] if row[j] == 0 else net.rate_down[j]
        out.append(evaluate(expr, vals.__getitem__, net.variables.__getitem__, lg))
    return np.array(out)


def test_compiled_rates_match_python_evaluation_on_all_states():
    net = BooleanNetwork.from_text(BND, CFG, name="t")
    states = np.array(list(itertools.product([0, 1], repeat=net.n_nodes)), dtype=np.uint8)
    got = net.flip_rates(states)
    want = np.array([_reference_rates(net, row) for row in states])
    np.testing.assert_allclose(got, want)
    # spot checks by hand: A off, C off -> logic(A) true -> rate_up = ka
    s = np.array([[0, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_allclose(net.flip_rates(s)[0], [1.5, 0.0, 0.0, 0.0])
    s = np.array([[1, 0, 1, 1]], dtype=np.uint8)  # A on, C on: logic(A) false -> rate_down = 3.5
    np.testing.assert_allclose(net.flip_rates(s)[0], [3.5, 0.0, 1.0, 0.0])


# rates mixing node values into arithmetic, comparisons, XOR and nested conditionals: the bit
# engine must expand them (Shannon expansion) into exactly the same flip rates
TRICKY = """
Node A { logic = B XOR C; rate_up = $k * (B + 2 * C) + 0.25; rate_down = @logic ? 0 : (C ? $k : 3); }
Node B { logic = (A + C >= 2) OR !D; rate_up = @logic ? $k / 2 : 0; rate_down = @logic ? 0 : 1; }
Node C { logic = A ? B : D; rate_up = D ? (A ? 1 : 2) : ($k > 1 ? 4 : 5); rate_down = (@logic ? 0 : 1) * $k; }
Node D { logic = !(A & B); }
"""


@pytest.mark.parametrize(("bnd", "cfg"), [(BND, CFG), (TRICKY, "$k = 1.5;")])
def test_bit_engine_rates_match_generic_rates_on_all_states(bnd, cfg):
    net = BooleanNetwork.from_text(bnd, cfg, name="t")
    assert net.uses_bit_engine
    states = np.array(list(itertools.product([0, 1], repeat=net.n_nodes)), dtype=np.uint8)
    want = np.array([_reference_rates(net, row) for row in states])
    np.testing.assert_allclose(net.flip_rates(states, engine="bits"), want)
    np.testing.assert_allclose(net.flip_rates(states), want)
    np.testing.assert_allclose(net.flip_rates(states, engine="table"), want)
    net2 = net.with_variables(**{k: 0.3 for k in net.variables})  # class values follow the variables
    want2 = np.array([_reference_rates(net2, row) for row in states])
    np.testing.assert_allclose(net2.flip_rates(states, engine="bits"), want2)


def test_bit_engine_rates_match_on_the_tnf_model():
    net = load_network(NETWORKS / "tnf_cellfate.bnd", NETWORKS / "tnf_cellfate.cfg")
    assert net.uses_bit_engine
    assert sorted(net.class_values().tolist()) == pytest.approx([1 / 24, 1.0])
    s = (np.random.default_rng(0).random((4000, net.n_nodes)) < 0.5).astype(np.uint8)
    np.testing.assert_array_equal(net.flip_rates(s, engine="bits"), net.flip_rates(s))
    np.testing.assert_array_equal(net.flip_rates(s, engine="table"), net.flip_rates(s))


def test_networks_outside_the_bit_engine_use_the_generic_one():
    # more than 64 nodes
    big = BooleanNetwork.from_text(
        "".join(f"Node N{i} {{ logic = N{(i + 1) % 70}; }}\n" for i in range(70)), name="big"
    )
    assert not big.uses_bit_engine
    s = np.zeros((50, 70), dtype=np.uint8)
    s[:, 0] = 1
    ev = big.advance(s, 1.0, np.random.default_rng(0))
    assert ev.sum() > 0 and s[:, 69].mean() > 0.2  # N69 copies N0 at rate 1
    assert isinstance(big.kernels(), ClauseKernels)  # no per-network compile above 64 nodes
    np.testing.assert_array_equal(big.flip_rates(s, engine="table"), big.flip_rates(s))
    np.testing.assert_array_equal(big.flip_rates(s, engine="clauses"), big.flip_rates(s, engine="table"))
    # a gate reading numbers does not convert to clauses: the table-driven kernels run it
    arith = BooleanNetwork.from_text(
        "".join(f"Node N{i} {{ logic = N{(i + 1) % 70}; }}\n" for i in range(69))
        + "Node N69 { rate_up = (N0 + N1 > 1) ? 1 : 0; rate_down = 1; }\n",
        name="arith",
    )
    assert isinstance(arith.kernels(), TableKernels)
    assert (big.kernel_name, arith.kernel_name) == ("clauses", "table")
    small = BooleanNetwork.from_text("Node A { logic = !B; }\nNode B { logic = A; }", name="small")
    assert small.kernel_name == "states"
    small.engine = "bits"
    assert small.kernel_name == "bits"
    with pytest.raises(RuntimeError, match="bit engine is not used"):
        big.flip_rates(s, engine="bits")
    # a rate that expands to more than MAX_LEAVES cases (8 nodes inside arithmetic: 256 cases)
    terms = " + ".join(f"B{i}" for i in range(8))
    nodes = "".join(f"Node B{i} {{ rate_up = 0; rate_down = 0; }}\n" for i in range(8))
    wide = BooleanNetwork.from_text(nodes + f"Node A {{ rate_up = {terms}; rate_down = 0; }}", name="wide")
    assert not wide.uses_bit_engine
    s = np.ones((1, 9), dtype=np.uint8)
    s[0, 8] = 0
    np.testing.assert_allclose(wide.flip_rates(s)[0, 8], 8.0)


def test_variables_changed_after_load_are_used():
    net = BooleanNetwork.from_text(BND, CFG, name="t")
    s = np.array([[0, 0, 0, 0]], dtype=np.uint8)
    net2 = net.with_variables(ka=4.0)
    assert net2.flip_rates(s)[0, 0] == 4.0
    assert net.flip_rates(s)[0, 0] == 1.5
    with pytest.raises(NetworkFormatError, match=r"unknown variable"):
        net.with_variables(nope=1.0)


# --------------------------------------------------------------------------- .cfg


def test_cfg_joint_istate_and_settings():
    cfg = parse_cfg_text(CFG, "t.cfg", {"A", "B", "C", "D"})
    assert cfg.istate["A"][0] == 1.0
    assert cfg.istate["B"][0] == 0.5
    (joint,) = cfg.joint_istates
    assert joint.nodes == ["C", "D"]
    assert joint.weights == [0.25, 0.75]
    assert joint.values == [[1, 0], [0, 1]]
    assert cfg.is_internal["D"][0] is True
    assert cfg.settings["time_tick"] == 0.5


def test_initial_state_honours_istates():
    net = BooleanNetwork.from_text(BND, CFG, name="t")
    s = net.initial_state(20000, np.random.default_rng(3))
    assert s.dtype == np.uint8 and s.shape == (20000, 4)
    assert s[:, 0].all()
    assert abs(s[:, 1].mean() - 0.5) < 0.02
    assert abs(s[:, 2].mean() - 0.25) < 0.02
    assert (s[:, 2] + s[:, 3] == 1).all()  # joint istate rows
    # unspecified nodes are random (MaBoSS default)
    net2 = BooleanNetwork.from_text(BND, "$ka = 1;", name="u")
    s2 = net2.initial_state(20000, np.random.default_rng(4))
    assert np.all(np.abs(s2.mean(axis=0) - 0.5) < 0.02)


# --------------------------------------------------------------------------- errors


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_node_error_names_file_and_line(tmp_path):
    bnd = _write(
        tmp_path,
        "tnf.bnd",
        "Node CASP8 { logic = CASP8; }\n\nNode BAX {\n  logic = CASP8 AND\n    NOT CASP9;\n}\n",
    )
    with pytest.raises(NetworkFormatError) as exc:
        load_network(bnd)
    assert str(exc.value) == "tnf.bnd:5: unknown node 'CASP9' in logic of BAX"
    assert isinstance(exc.value, TMEError)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("Node A { logic = A & ; }", r"x\.bnd:1: syntax error: unexpected ';'"),
        ("Node A {\n logic = A\n}", r"x\.bnd:3: syntax error: expected ';', found '}'"),
        ("Node A { logic = A; }\nNode A { logic = 1; }", r"x\.bnd:2: node 'A' defined twice"),
        ("Nod A { logic = A; }", r"x\.bnd:1: syntax error: expected 'Node'"),
        ("Node A { rate_up = $k; }", r"x\.bnd:1: undefined variable \$k in rate_up of A"),
        ("Node A { rate_up = @logic ? 1 : 0; }", r"x\.bnd:1: rate_up of A uses @logic but the node has no"),
        ("Node A { rate_up = @k; logic = A; }", r"x\.bnd:1: unknown attribute @k in rate_up of A"),
        ("Node A { logic = A; k = @j; j = @k; rate_up = @k; }", r"x\.bnd:1: circular alias @k in rate_up of A"),
        ('Node A { logic = A;\n description = "open', r"x\.bnd:2: unterminated string"),
        ("Node A { logic = A; in_graph = FALSE; rate_up = @in_graph; }", r"x\.bnd:1: unknown node 'FALSE'"),
        ("Node A { logic = A; } /* open", r"x\.bnd:1: unterminated /\* comment"),
        ("", r"x\.bnd:1: no Node block found"),
    ],
)
def test_bnd_errors(tmp_path, text, pattern):
    p = _write(tmp_path, "x.bnd", text)
    with pytest.raises(NetworkFormatError, match=pattern):
        load_network(p)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("A.istate = 1;\nZ.istate = 0;", r"x\.cfg:2: unknown node 'Z'"),
        ("A.istate = A;", r"x\.cfg:1: A.istate cannot use node 'A'"),
        ("A.colour = 2;", r"x\.cfg:1: unknown node setting 'colour'"),
        ("$a = TRUTH;", r"x\.cfg:1: \$a cannot use node 'TRUTH'"),
        ("max_tim = 3;", r"x\.cfg:1: unknown setting 'max_tim'"),
        ("$a = $b + 1;", r"x\.cfg:1: undefined variable \$b"),
        ("$a = A;", r"x\.cfg:1: \$a cannot use node 'A'"),
        ("[A].istate = 0.5 [1, 0];", r"x\.cfg:1: istate row has 2 values for 1 nodes"),
        ("max_time = 3\ntime_tick = 1;", r"x\.cfg:2: syntax error: expected ';'"),
    ],
)
def test_cfg_errors(tmp_path, text, pattern):
    bnd = _write(tmp_path, "x.bnd", "Node A { logic = A; }")
    cfg = _write(tmp_path, "x.cfg", text)
    with pytest.raises(NetworkFormatError, match=pattern):
        load_network(bnd, cfg)


def test_missing_file_is_a_tme_error(tmp_path):
    with pytest.raises(NetworkFormatError, match="file not found"):
        load_network(tmp_path / "nope.bnd")


@pytest.mark.parametrize("engine", ["auto", "generic"])
def test_negative_rate_is_reported(engine):
    net = BooleanNetwork.from_text(
        "Node A { rate_up = $k; rate_down = 0; }\nNode B { rate_up = B ? 0 : $k * A; rate_down = 0; }",
        "$k = -1;",
        name="neg",
    )
    net.engine = engine
    assert net.uses_bit_engine == (engine == "auto")
    s = np.zeros((3, 2), dtype=np.uint8)
    with pytest.raises(NetworkFormatError, match="negative or NaN transition rate of node A"):
        net.advance(s, 1.0, np.random.default_rng(0))
    # a bad rate is an error only where it applies: with A knocked out, B's rate $k * A is 0
    net.advance(s, 1.0, np.random.default_rng(0), knockout=net.node_mask(["A"]))
    with pytest.raises(NetworkFormatError, match="transition rate of node B"):
        net.advance(np.array([[1, 0]], dtype=np.uint8), 1.0, np.random.default_rng(0), clamp=net.node_mask(["A"]))
    with pytest.raises(NetworkFormatError, match="negative or NaN transition rate"):
        net.step_synchronous(np.zeros((2, 2), dtype=np.uint8), 1)


# --------------------------------------------------------------------------- shipped model


def test_tnf_model_has_31_nodes_and_published_initial_state():
    net = load_network(NETWORKS / "tnf_cellfate.bnd", NETWORKS / "tnf_cellfate.cfg")
    assert net.n_nodes == 31
    assert net.variables["TransRate"] == pytest.approx(1 / 24)
    s = net.initial_state(5, np.random.default_rng(0))
    on = {nm for nm in net.node_names if s[0, net.index(nm)]}
    assert on == {"FADD", "ATP", "cIAP"}
    assert (s == s[0]).all()
    for nm in ("Apoptosis", "NonACD", "Survival", "TNF"):
        assert nm in net.output_nodes


# --------------------------------------------------------------------------- MaBoSS's grammar


MABOSS_STYLE_BND = """\
NODE A {
  LOGIC_note = "a note that
spans lines, with \\"quotes\\"";
  logic = b OR C;
  slow = $k * log(exp(1));
  rate_up = @logic ? @slow : 0;
  rate_down = Not @logic ? 1 : 0;
}
b : !C;
C, C
"""

MABOSS_STYLE_CFG = """\
$k = 0.5;
b.ISTATE = TRUE;
C.istate = 0.3;   // MaBoSS: any non-negative value is a Boolean
A.istate = -1;
C.is_internal = true;
MAX_TIME = 5; discrete_time = FALSE;
"""


def test_maboss_grammar_as_users_write_it(tmp_path):
    bnd = tmp_path / "m.bnd"
    bnd.write_bytes(("// caf\xe9 (Latin-1)\n" + MABOSS_STYLE_BND).encode("latin-1"))
    cfg = tmp_path / "m.cfg"
    cfg.write_text(MABOSS_STYLE_CFG)
    extra = tmp_path / "later.cfg"
    extra.write_text("$k = 2; A.istate = 0;")  # a second .cfg of the same run overrides
    net = load_network(bnd, [cfg, extra])
    assert net.node_names == ["A", "b", "C"]
    assert net.variables["k"] == 2.0
    assert net.istate_prob.tolist() == [0.0, 1.0, 1.0]
    assert net.output_nodes == ["A", "b"]
    assert net.settings["max_time"] == 5.0 and net.settings["discrete_time"] == 0.0
    state = np.array([[0, 1, 0], [1, 0, 0]], dtype=np.uint8)
    # @slow is the alias of the node's attribute: $k * log(exp(1)) = 2 when A is off and its logic on
    assert net.flip_rates(state)[:, 0].tolist() == [2.0, 1.0]
    assert net.flip_rates(state, engine="bits")[:, 0].tolist() == [2.0, 1.0]
    spec = parse_bnd_text(MABOSS_STYLE_BND, "m.bnd").nodes[0]
    assert spec.attrs["LOGIC_note"] == 'a note that\nspans lines, with "quotes"'


def test_attribute_given_twice_keeps_the_last_like_maboss():
    net = BooleanNetwork.from_text("Node A { logic = A; logic = !A; }")
    assert net.flip_rates(np.array([[0]], dtype=np.uint8)).tolist() == [[1.0]]


def test_rate_classes_are_grouped_by_value_not_text():
    bnd = "Node A { logic = B; rate_up = @logic ? $u_A : 0; rate_down = @logic ? 0 : $d_A; }\n"
    bnd += "Node B { logic = A; rate_up = @logic ? $u_B : 0; rate_down = @logic ? 0 : 1; }\n"
    net = BooleanNetwork.from_text(bnd, "$u_A = 1; $d_A = 1; $u_B = 1;")
    assert len(net.class_values()) == 1
    state = np.array([[0, 1], [1, 0], [0, 0]], dtype=np.uint8)
    before = net.flip_rates(state, engine="bits")
    net.variables["u_A"] = 3.0  # splits the class: the kernels are regrouped, rates follow
    after = net.flip_rates(state, engine="bits")
    assert len(net.class_values()) == 2
    assert after[0, 0] == 3.0 and before[0, 0] == 1.0
    assert np.array_equal(after, net.flip_rates(state))
