"""Reader for MaBoSS ``.bnd`` (network) and ``.cfg`` (simulation settings) files.

Supported ``.bnd`` content::

    Node NAME {                      // "node" / "Node" / "NODE"
      logic = A & !B | (C AND NOT D);
      rate_up = @logic ? $k_up : 0;  // any expression; default @logic ? 1 : 0
      rate_down = @logic ? 0 : 1;    // default @logic ? 0 : 1
      description = "free text";     // other attributes are accepted and kept
    }
    $var = 0.5;                      // variables may also be declared here

    A : B & !C;                      // short form: a node with only a logic (also "A, B & !C;")

A node without ``logic`` keeps any rate it does not define at 0 (MaBoSS treats it as an input
that only moves through its explicit rates). Any other attribute may be used in expressions as
``@name`` (an alias, replaced by its expression); ``@logic`` is the node's logic. An attribute
given twice keeps the last value, as in MaBoSS. Strings may span lines and hold escapes.
``$var = ...;`` in a .bnd is a tme-sim extension (MaBoSS wants variables in the .cfg).

Supported ``.cfg`` content (several .cfg files may be read in order, later ones overriding)::

    $TransRate = 1/24;               // variables (expressions of earlier variables allowed)
    TNF.istate = 1;                  // < 0: random (p = 0.5); otherwise on if non-zero (MaBoSS);
                                     // unspecified nodes are random
    [A, B].istate = 0.3 [0, 1], 0.7 [1, 0];   // joint random initial state
    Survival.is_internal = 0;        // also refstate
    time_tick = 0.5; max_time = 100; sample_count = 10000;   // other MaBoSS settings are kept
    discrete_time = TRUE;            // TRUE / FALSE (any case) are 1 / 0 in .cfg expressions

Node attributes and setting names are case-insensitive, as are the keywords ``NOT AND OR XOR
NODE``. Files that are not UTF-8 are read as Latin-1 (MaBoSS reads bytes). Every mistake raises
:class:`~tme_sim.errors.NetworkFormatError` with ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tme_sim.errors import NetworkFormatError
from tme_sim.intracellular.boolean.expressions import (
    MAX_TREE_DEPTH,
    AtRef,
    Expr,
    ExprParser,
    NodeRef,
    Num,
    VarRef,
    children,
    evaluate,
    replace_children,
    tokenize,
    tree_depth,
    unescape,
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
#: Node settings of a .cfg (case-insensitive, as in MaBoSS).
NODE_SETTINGS = ("istate", "is_internal", "refstate", "in_graph")
#: Constants MaBoSS's .cfg lexer knows (case-insensitive).
CFG_CONSTANTS = {"TRUE": 1.0, "FALSE": 0.0}


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
    in_graph: dict[str, tuple[bool, int]] = field(default_factory=dict)


def _read(path: str | Path) -> tuple[str, str]:
    """(text, file name): UTF-8, else Latin-1 (published MaBoSS files are); binary files are errors."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise NetworkFormatError(f"{p}: file not found") from None
    except OSError as exc:
        raise NetworkFormatError(f"{p}: cannot read ({type(exc).__name__})") from None
    if b"\0" in data:
        raise NetworkFormatError(f"{p}: cannot read (a binary file, not MaBoSS text)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
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
        if tok.kind == "ident" and tok.text.lower() != "node" and (p.is_op(":") or p.is_op(",")):
            _short_form(p, tok, nodes, seen)
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
            spec.attrs.pop(attr, None)  # given twice: the last one counts (MaBoSS)
            p.expect("=")
            value: Expr | str
            if p.peek().kind == "str":
                value = unescape(p.next().text[1:-1])
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


def _short_form(p: ExprParser, tok, nodes: list[NodeSpec], seen: dict[str, int]) -> None:
    """``NAME : expr [;]`` or ``NAME , expr [;]`` (a node with a logic only); ``targets, factors``
    (the header of a BoolNet file) is skipped, as MaBoSS does."""
    sep = p.next()
    if sep.text == "," and tok.text == "targets" and p.peek().kind == "ident" and p.peek().text == "factors":
        p.next()
    else:
        if tok.text in seen:
            raise p.error(f"node {tok.text!r} defined twice (first at line {seen[tok.text]})", tok)
        seen[tok.text] = tok.line
        spec = NodeSpec(name=tok.text, line=tok.line, logic=p.parse_expr())
        spec.attr_lines["logic"] = tok.line
        nodes.append(spec)
    if p.is_op(";"):
        p.next()


def resolve_aliases(bnd: BndModel) -> None:
    """Replace every ``@name`` other than ``@logic`` by the expression of the node's attribute
    ``name`` (MaBoSS's aliases), in place; unknown, string or circular aliases are errors."""

    def expand(spec: NodeSpec, e: Expr, attr: str, active: tuple[str, ...]) -> Expr:
        if isinstance(e, AtRef) and e.name != "logic":
            value = spec.attrs.get(e.name)
            where = f"in {attr} of {spec.name}"
            if value is None:
                raise NetworkFormatError(f"{bnd.filename}:{e.line}: unknown attribute @{e.name} {where}")
            if isinstance(value, str):
                raise NetworkFormatError(f"{bnd.filename}:{e.line}: @{e.name} {where} is a string")
            if e.name in active:
                raise NetworkFormatError(f"{bnd.filename}:{e.line}: circular alias @{e.name} {where}")
            return expand(spec, value, attr, (*active, e.name))
        kids = children(e)
        if not kids:
            return e
        new = [expand(spec, k, attr, active) for k in kids]
        if all(a is b for a, b in zip(new, kids, strict=True)):
            return e
        return replace_children(e, new)

    for spec in bnd.nodes:
        for attr in RATE_ATTRS:
            expr = getattr(spec, attr)
            if expr is not None:
                setattr(spec, attr, expand(spec, expr, attr, ()))


def check_bnd(bnd: BndModel, variables: dict[str, float]) -> None:
    """Reject unknown nodes / variables / ``@`` names, with ``file:line`` (aliases already resolved)."""
    names = {n.name for n in bnd.nodes}
    for spec in bnd.nodes:
        for attr in RATE_ATTRS:
            expr = getattr(spec, attr)
            if expr is None:
                continue
            if tree_depth(expr) > MAX_TREE_DEPTH:
                raise NetworkFormatError(
                    f"{bnd.filename}:{expr.line}: {attr} of {spec.name} is more than {MAX_TREE_DEPTH} operators deep"
                )
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
                    if attr == "logic":
                        raise NetworkFormatError(
                            f"{bnd.filename}:{sub.line}: '@{sub.name}' is not allowed in {attr} of {spec.name}"
                        )
                    if spec.logic is None:
                        raise NetworkFormatError(
                            f"{bnd.filename}:{sub.line}: {attr} of {spec.name} uses @logic but the node has no logic"
                        )


def _eval_const(expr: Expr, variables: dict[str, float], filename: str, what: str, constants: bool = False) -> float:
    """Value of a node-free expression; with ``constants``, ``TRUE``/``FALSE`` (any case) are 1/0."""
    if constants:
        expr = _fold_constants(expr)
    for sub in walk(expr):
        if isinstance(sub, NodeRef):
            raise NetworkFormatError(f"{filename}:{sub.line}: {what} cannot use node {sub.name!r}")
        if isinstance(sub, AtRef):
            raise NetworkFormatError(f"{filename}:{sub.line}: {what} cannot use @{sub.name}")
        if isinstance(sub, VarRef) and sub.name not in variables:
            raise NetworkFormatError(f"{filename}:{sub.line}: undefined variable ${sub.name} in {what}")
    return evaluate(expr, variables=variables.__getitem__)


def _fold_constants(e: Expr) -> Expr:
    if isinstance(e, NodeRef) and e.name.upper() in CFG_CONSTANTS:
        return Num(e.line, CFG_CONSTANTS[e.name.upper()])
    kids = children(e)
    if not kids:
        return e
    return replace_children(e, [_fold_constants(k) for k in kids])


def parse_cfg_text(
    text: str, filename: str = "<cfg>", node_names: set[str] | None = None, base: CfgModel | None = None
) -> CfgModel:
    """Parse .cfg source. With ``node_names``, unknown nodes are errors (``file:line``).

    ``base``: the model of earlier .cfg files of the same run; this file's lines are added to it
    (its variables are visible here, later values override earlier ones), as MaBoSS does with
    several ``-c`` files.
    """
    tokens = tokenize(text, filename)
    p = ExprParser(tokens, filename)
    cfg = base if base is not None else CfgModel(filename=filename)

    def check_node(name: str, tok_line: int) -> None:
        if node_names is not None and name not in node_names:
            raise NetworkFormatError(f"{filename}:{tok_line}: unknown node {name!r}")

    def number(expr: Expr, what: str) -> float:
        return _eval_const(expr, cfg.variables, filename, what, constants=True)

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
            if atok.kind != "ident" or atok.text.lower() != "istate":
                raise p.error(f"syntax error: expected 'istate' after [...]., found {p.describe(atok)}", atok)
            p.expect("=")
            cfg.joint_istates.append(_parse_joint(p, names, tok.line, cfg, number))
            for nm in names:
                cfg.istate.pop(nm, None)
            p.expect(";")
        elif tok.kind == "ident" and "." in tok.text:
            node, _, attr = tok.text.partition(".")
            attr = attr.lower()
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
                if val != val:
                    raise NetworkFormatError(f"{filename}:{tok.line}: {node}.istate is NaN")
                # MaBoSS: a negative value means random, any other value is a Boolean
                prob = 0.5 if val < 0 else float(val != 0.0)
                cfg.istate[node] = (prob, tok.line)
                cfg.joint_istates = [j for j in cfg.joint_istates if node not in j.nodes]
            elif attr in NODE_SETTINGS:
                val = number(p.parse_expr(), f"{node}.{attr}")
                if attr == "is_internal":
                    cfg.is_internal[node] = (val != 0.0, tok.line)
                elif attr == "in_graph":
                    cfg.in_graph[node] = (val != 0.0, tok.line)
                else:
                    cfg.refstate[node] = (int(val), tok.line)
            else:
                raise NetworkFormatError(
                    f"{filename}:{tok.line}: unknown node setting {attr!r} (expected {', '.join(NODE_SETTINGS)})"
                )
            p.expect(";")
        elif tok.kind == "ident":
            key = tok.text.lower()
            if key not in KNOWN_SETTINGS:
                raise NetworkFormatError(f"{filename}:{tok.line}: unknown setting {tok.text!r}")
            p.expect("=")
            cfg.settings[key] = number(p.parse_expr(), tok.text)
            p.expect(";")
        elif tok.kind == "op" and tok.text == ";":
            continue  # an empty statement (MaBoSS's grammar allows it)
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


def read_cfg(
    path: str | Path | list[str | Path] | tuple[str | Path, ...], node_names: set[str] | None = None
) -> CfgModel:
    """Read and parse a .cfg file, or several in order (later files override earlier ones)."""
    paths = list(path) if isinstance(path, list | tuple) else [path]
    if not paths:
        raise NetworkFormatError("no .cfg file given")
    cfg: CfgModel | None = None
    for one in paths:
        text, name = _read(one)
        cfg = parse_cfg_text(text, name, node_names, base=cfg)
    assert cfg is not None
    return cfg


def resolve_variables(bnd: BndModel, cfg: CfgModel | None) -> dict[str, float]:
    """Variables from the .bnd (evaluated in order), overridden by the .cfg ones."""
    values: dict[str, float] = {}
    for name, (expr, _line) in bnd.variables.items():
        values[name] = _eval_const(expr, values, bnd.filename, f"${name}")
    if cfg is not None:
        values.update(cfg.variables)
    return values
