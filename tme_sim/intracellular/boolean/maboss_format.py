"""Reader for MaBoSS ``.bnd`` (network) and ``.cfg`` (simulation settings) files.

Supported ``.bnd`` content::

    Node NAME {                      // "node" / "Node" / "NODE"
      logic = A & !B | (C AND NOT D);
      rate_up = @logic ? $k_up : 0;  // any expression; default @logic ? 1 : 0
      rate_down = @logic ? 0 : 1;    // default @logic ? 0 : 1
      description = "free text";     // other attributes are accepted and kept
    }
    $var = 0.5;                      // variables may also be declared here

A node without ``logic`` keeps any rate it does not define at 0 (MaBoSS treats it as an input
that only moves through its explicit rates). Supported ``.cfg`` content::

    $TransRate = 1/24;               // variables (expressions of earlier variables allowed)
    TNF.istate = 1;                  // 0, 1, or -1 (random, p = 0.5); unspecified nodes are random
    [A, B].istate = 0.3 [0, 1], 0.7 [1, 0];   // joint random initial state
    Survival.is_internal = 0;        // also refstate
    time_tick = 0.5; max_time = 100; sample_count = 10000;   // other MaBoSS settings are kept

Every mistake raises :class:`~tme_sim.errors.NetworkFormatError` with ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tme_sim.errors import NetworkFormatError
from tme_sim.intracellular.boolean.expressions import (
    AtRef,
    Expr,
    ExprParser,
    NodeRef,
    Num,
    VarRef,
    evaluate,
    tokenize,
    walk,
)

#: Node attributes with a meaning here; any other attribute is kept but unused.
RATE_ATTRS = ("logic", "rate_up", "rate_down")

#: Settings MaBoSS accepts in a .cfg (kept in ``CfgModel.settings``; only a few are used here).
KNOWN_SETTINGS = frozenset(
    {
        "time_tick",
        "max_time",
        "sample_count",
        "discrete_time",
        "use_physrandgen",
        "use_glibcrandgen",
        "use_mtrandgen",
        "seed_pseudorandom",
        "display_traj",
        "statdist_traj_count",
        "statdist_cluster_threshold",
        "thread_count",
        "statdist_similarity_cache_max_size",
        "init_pop",
        "pop_sample_count",
    }
)


@dataclass
class NodeSpec:
    """One ``Node`` block. Expressions are unresolved ASTs; ``line`` is the line of ``Node``."""

    name: str
    line: int
    logic: Expr | None = None
    rate_up: Expr | None = None
    rate_down: Expr | None = None
    attrs: dict[str, Expr | str] = field(default_factory=dict)
    attr_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class BndModel:
    """A parsed .bnd file."""

    filename: str
    nodes: list[NodeSpec]
    variables: dict[str, tuple[Expr, int]]


@dataclass
class JointIstate:
    """``[A, B].istate = w1 [a1, b1], w2 [a2, b2];``: weights (normalised later) and 0/1 rows."""

    nodes: list[str]
    weights: list[float]
    values: list[list[int]]
    line: int


@dataclass
class CfgModel:
    """A parsed .cfg file (variables evaluated to floats)."""

    filename: str
    variables: dict[str, float] = field(default_factory=dict)
    istate: dict[str, tuple[float, int]] = field(default_factory=dict)  # node -> (P(on), line)
    joint_istates: list[JointIstate] = field(default_factory=list)
    is_internal: dict[str, tuple[bool, int]] = field(default_factory=dict)
    refstate: dict[str, tuple[int, int]] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)


def _read(path: str | Path) -> tuple[str, str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NetworkFormatError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NetworkFormatError(f"{p}: cannot read ({type(exc).__name__})") from None
    return text, p.name


def parse_bnd_text(text: str, filename: str = "<bnd>") -> BndModel:
    """Parse .bnd source. Names are not resolved here (see :func:`check_bnd`)."""
    tokens = tokenize(text, filename)
    p = ExprParser(tokens, filename)
    nodes: list[NodeSpec] = []
    seen: dict[str, int] = {}
    variables: dict[str, tuple[Expr, int]] = {}
    while p.peek().kind != "eof":
        tok = p.next()
        if tok.kind == "var":
            p.expect("=")
            variables[tok.text[1:]] = (p.parse_expr(), tok.line)
            p.expect(";")
            continue
        if tok.kind != "ident" or tok.text.lower() != "node":
            raise p.error(f"syntax error: expected 'Node', found {p.describe(tok)}", tok)
        name_tok = p.next()
        if name_tok.kind != "ident" or "." in name_tok.text:
            raise p.error(f"syntax error: expected a node name after 'Node', found {p.describe(name_tok)}")
        name = name_tok.text
        if name in seen:
            raise p.error(f"node {name!r} defined twice (first at line {seen[name]})", name_tok)
        seen[name] = name_tok.line
        spec = NodeSpec(name=name, line=name_tok.line)
        p.expect("{")
        while not (p.peek().kind == "op" and p.peek().text == "}"):
            atok = p.next()
            if atok.kind != "ident":
                raise p.error(
                    f"syntax error: expected an attribute or '}}' in node {name}, found {p.describe(atok)}",
                    atok,
                )
            attr = atok.text
            if attr in spec.attr_lines:
                raise p.error(f"attribute {attr!r} of node {name} given twice", atok)
            p.expect("=")
            value: Expr | str
            if p.peek().kind == "str":
                value = p.next().text[1:-1]
            else:
                value = p.parse_expr()
            p.expect(";")
            spec.attr_lines[attr] = atok.line
            if attr in RATE_ATTRS:
                if isinstance(value, str):
                    raise p.error(f"{attr} of node {name} must be an expression, not a string", atok)
                setattr(spec, attr, value)
            else:
                spec.attrs[attr] = value
        p.expect("}")
        nodes.append(spec)
    if not nodes:
        raise NetworkFormatError(f"{filename}:1: no Node block found")
    return BndModel(filename=filename, nodes=nodes, variables=variables)


def check_bnd(bnd: BndModel, variables: dict[str, float]) -> None:
    """Reject unknown nodes / variables / ``@`` names, with ``file:line``."""
    names = {n.name for n in bnd.nodes}
    for spec in bnd.nodes:
        for attr in RATE_ATTRS:
            expr = getattr(spec, attr)
            if expr is None:
                continue
            for sub in walk(expr):
                if isinstance(sub, NodeRef) and sub.name not in names:
                    raise NetworkFormatError(
                        f"{bnd.filename}:{sub.line}: unknown node {sub.name!r} in {attr} of {spec.name}"
                    )
                if isinstance(sub, VarRef) and sub.name not in variables:
                    raise NetworkFormatError(
                        f"{bnd.filename}:{sub.line}: undefined variable ${sub.name} in {attr} of {spec.name}"
                    )
                if isinstance(sub, AtRef):
                    if sub.name != "logic" or attr == "logic":
                        raise NetworkFormatError(
                            f"{bnd.filename}:{sub.line}: '@{sub.name}' is not allowed in {attr} of {spec.name}"
                        )
                    if spec.logic is None:
                        raise NetworkFormatError(
                            f"{bnd.filename}:{sub.line}: {attr} of {spec.name} uses @logic but the node has no logic"
                        )


def _eval_const(expr: Expr, variables: dict[str, float], filename: str, what: str) -> float:
    for sub in walk(expr):
        if isinstance(sub, NodeRef):
            raise NetworkFormatError(f"{filename}:{sub.line}: {what} cannot use node {sub.name!r}")
        if isinstance(sub, AtRef):
            raise NetworkFormatError(f"{filename}:{sub.line}: {what} cannot use @{sub.name}")
        if isinstance(sub, VarRef) and sub.name not in variables:
            raise NetworkFormatError(f"{filename}:{sub.line}: undefined variable ${sub.name} in {what}")
    return evaluate(expr, variables=variables.__getitem__)


def parse_cfg_text(text: str, filename: str = "<cfg>", node_names: set[str] | None = None) -> CfgModel:
    """Parse .cfg source. With ``node_names``, unknown nodes are errors (``file:line``)."""
    tokens = tokenize(text, filename)
    p = ExprParser(tokens, filename)
    cfg = CfgModel(filename=filename)

    def check_node(name: str, tok_line: int) -> None:
        if node_names is not None and name not in node_names:
            raise NetworkFormatError(f"{filename}:{tok_line}: unknown node {name!r}")

    def number(expr: Expr, what: str) -> float:
        return _eval_const(expr, cfg.variables, filename, what)

    while p.peek().kind != "eof":
        tok = p.next()
        if tok.kind == "var":
            p.expect("=")
            cfg.variables[tok.text[1:]] = number(p.parse_expr(), f"${tok.text[1:]}")
            p.expect(";")
        elif tok.kind == "op" and tok.text == "[":
            names: list[str] = []
            while True:
                ntok = p.next()
                if ntok.kind != "ident":
                    raise p.error(f"syntax error: expected a node name, found {p.describe(ntok)}", ntok)
                check_node(ntok.text, ntok.line)
                names.append(ntok.text)
                sep = p.next()
                if sep.kind == "op" and sep.text == "]":
                    break
                if not (sep.kind == "op" and sep.text == ","):
                    raise p.error(f"syntax error: expected ',' or ']', found {p.describe(sep)}", sep)
            p.expect(".")
            atok = p.next()
            if atok.kind != "ident" or atok.text != "istate":
                raise p.error(f"syntax error: expected 'istate' after [...]., found {p.describe(atok)}", atok)
            p.expect("=")
            cfg.joint_istates.append(_parse_joint(p, names, tok.line, cfg, number))
            for nm in names:
                cfg.istate.pop(nm, None)
            p.expect(";")
        elif tok.kind == "ident" and "." in tok.text:
            node, _, attr = tok.text.partition(".")
            check_node(node, tok.line)
            p.expect("=")
            if attr == "istate":
                expr = p.parse_expr()
                if p.peek().kind == "op" and p.peek().text == "[":
                    # weighted form for a single node: 0.3 [1], 0.7 [0]
                    joint = _parse_joint(p, [node], tok.line, cfg, number, first_weight=expr)
                    cfg.joint_istates.append(joint)
                    cfg.istate.pop(node, None)
                    p.expect(";")
                    continue
                val = number(expr, f"{node}.istate")
                if val == -1:
                    prob = 0.5
                elif val in (0.0, 1.0):
                    prob = val
                else:
                    raise NetworkFormatError(
                        f"{filename}:{tok.line}: {node}.istate must be 0, 1 or -1 (random), got {val:g}"
                    )
                cfg.istate[node] = (prob, tok.line)
                cfg.joint_istates = [j for j in cfg.joint_istates if node not in j.nodes]
            elif attr in ("is_internal", "refstate"):
                val = number(p.parse_expr(), f"{node}.{attr}")
                if attr == "is_internal":
                    cfg.is_internal[node] = (val != 0.0, tok.line)
                else:
                    cfg.refstate[node] = (int(val), tok.line)
            else:
                raise NetworkFormatError(
                    f"{filename}:{tok.line}: unknown node setting {attr!r} (expected istate, is_internal or refstate)"
                )
            p.expect(";")
        elif tok.kind == "ident":
            if tok.text not in KNOWN_SETTINGS:
                raise NetworkFormatError(f"{filename}:{tok.line}: unknown setting {tok.text!r}")
            p.expect("=")
            cfg.settings[tok.text] = number(p.parse_expr(), tok.text)
            p.expect(";")
        else:
            raise p.error(f"syntax error: unexpected {p.describe(tok)}", tok)
    return cfg


def _parse_joint(p: ExprParser, names: list[str], line: int, cfg: CfgModel, number, first_weight=None):
    weights: list[float] = []
    values: list[list[int]] = []
    while True:
        wexpr = first_weight if first_weight is not None else p.parse_expr()
        first_weight = None
        w = number(wexpr, "istate weight")
        if w < 0:
            raise NetworkFormatError(f"{p.filename}:{wexpr.line}: negative istate weight {w:g}")
        p.expect("[")
        row: list[int] = []
        while True:
            vexpr = p.parse_expr()
            if not isinstance(vexpr, Num) or vexpr.value not in (0.0, 1.0):
                raise NetworkFormatError(f"{p.filename}:{vexpr.line}: istate values must be 0 or 1")
            row.append(int(vexpr.value))
            sep = p.next()
            if sep.kind == "op" and sep.text == "]":
                break
            if not (sep.kind == "op" and sep.text == ","):
                raise p.error(f"syntax error: expected ',' or ']', found {p.describe(sep)}", sep)
        if len(row) != len(names):
            raise NetworkFormatError(
                f"{p.filename}:{wexpr.line}: istate row has {len(row)} values for {len(names)} nodes"
            )
        weights.append(w)
        values.append(row)
        if p.peek().kind == "op" and p.peek().text == ",":
            p.next()
            continue
        break
    if sum(weights) <= 0:
        raise NetworkFormatError(f"{p.filename}:{line}: istate weights sum to 0")
    return JointIstate(nodes=list(names), weights=weights, values=values, line=line)


def read_bnd(path: str | Path) -> BndModel:
    """Read and parse a .bnd file (names resolved later, once the .cfg variables are known)."""
    text, name = _read(path)
    return parse_bnd_text(text, name)


def read_cfg(path: str | Path, node_names: set[str] | None = None) -> CfgModel:
    """Read and parse a .cfg file."""
    text, name = _read(path)
    return parse_cfg_text(text, name, node_names)


def resolve_variables(bnd: BndModel, cfg: CfgModel | None) -> dict[str, float]:
    """Variables from the .bnd (evaluated in order), overridden by the .cfg ones."""
    values: dict[str, float] = {}
    for name, (expr, _line) in bnd.variables.items():
        values[name] = _eval_const(expr, values, bnd.filename, f"${name}")
    if cfg is not None:
        values.update(cfg.variables)
    return values
