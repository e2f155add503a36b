"""MaBoSS expressions: tokenizer, parser to a small AST, and code generation for numba.

The grammar is the C-like one MaBoSS uses in ``logic``, ``rate_up`` and ``rate_down``:

* operands: node names (0/1), ``$variables``, numbers (``1``, ``0.5``, ``1e+100``), ``@logic``;
* unary ``!`` / ``NOT``, unary ``-`` and ``+``;
* ``*`` ``/``, then ``+`` ``-``, then ``<`` ``<=`` ``>`` ``>=``, then ``==`` ``!=``,
  then ``&`` ``&&`` ``AND``, then ``^`` ``XOR``, then ``|`` ``||`` ``OR``,
  then the conditional ``c ? a : b`` (right-associative), lowest;
* parentheses.

Every AST node carries the line it started on so the reader can report ``file:line``. Code
generation turns an expression into a Python/numba source fragment over a state row ``s`` (uint8)
and a variable vector ``v`` (float64), in either a boolean or a numeric context; the network
compiler assembles those fragments into one ``@njit`` function per network (see
:mod:`tme_sim.intracellular.boolean.engine`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tme_sim.errors import NetworkFormatError

# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "ident", "var", "at", "str", "op", "eof"
    text: str
    line: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<nl>\n)
  | (?P<lcomment>//[^\n]*|\#[^\n]*)
  | (?P<bcomment>/\*.*?\*/)
  | (?P<badcomment>/\*)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<at>@[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<str>"[^"\n]*")
  | (?P<op>&&|\|\||==|!=|<=|>=|[!&|^?:()+\-*/<>{}\[\];=,.])
    """,
    re.VERBOSE | re.DOTALL,
)


def tokenize(text: str, filename: str) -> list[Token]:
    """Split MaBoSS source into tokens with line numbers; comments (``//``, ``/* */``) dropped.

    ``#`` line comments are also accepted (some published .cfg files use them).
    Raises :class:`NetworkFormatError` naming ``filename:line`` on an unexpected character.
    """
    tokens: list[Token] = []
    line = 1
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise NetworkFormatError(f"{filename}:{line}: syntax error: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        tok = m.group()
        if kind == "badcomment":
            raise NetworkFormatError(f"{filename}:{line}: unterminated /* comment")
        if kind == "nl":
            line += 1
        elif kind == "bcomment":
            line += tok.count("\n")
        elif kind in ("ws", "lcomment"):
            pass
        else:
            assert kind is not None
            tokens.append(Token(kind, tok, line))
        pos = m.end()
    tokens.append(Token("eof", "", line))
    return tokens


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Expr:
    line: int


@dataclass(frozen=True)
class Num(Expr):
    value: float


@dataclass(frozen=True)
class NodeRef(Expr):
    name: str


@dataclass(frozen=True)
class VarRef(Expr):
    name: str  # without the leading $


@dataclass(frozen=True)
class AtRef(Expr):
    name: str  # "logic"


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "!", "-", "+"
    arg: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # canonical: "&", "|", "^", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Cond(Expr):
    cond: Expr
    then: Expr
    other: Expr


_KEYWORD_OPS = {"AND": "&", "OR": "|", "XOR": "^", "NOT": "!", "and": "&", "or": "|", "xor": "^", "not": "!"}
_CANON = {"&&": "&", "||": "|"}
# binary levels from lowest to highest precedence
_LEVELS: list[tuple[str, ...]] = [
    ("|",),
    ("^",),
    ("&",),
    ("==", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/"),
]
LOGICAL_OPS = frozenset({"&", "|", "^"})
COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})


#: deepest nesting (parentheses, negations, conditionals) and longest operator chain of one
#: expression: deeper input is refused with a one-line error instead of exhausting the stack here
#: or in the tree walks that compile it (real networks nest a few levels, chain a few dozen terms)
MAX_NESTING = 40
MAX_CHAIN = 400


class ExprParser:
    """Recursive-descent parser over a token list (shared with the .bnd/.cfg readers)."""

    def __init__(self, tokens: list[Token], filename: str, pos: int = 0) -> None:
        self.tokens = tokens
        self.filename = filename
        self.pos = pos
        self.depth = 0

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression nested more than {MAX_NESTING} levels deep")

    # -- helpers
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def error(self, msg: str, tok: Token | None = None) -> NetworkFormatError:
        tok = tok or self.peek()
        return NetworkFormatError(f"{self.filename}:{tok.line}: {msg}")

    def describe(self, tok: Token) -> str:
        return "end of file" if tok.kind == "eof" else repr(tok.text)

    def expect(self, text: str) -> Token:
        tok = self.peek()
        if tok.kind != "op" or tok.text != text:
            raise self.error(f"syntax error: expected {text!r}, found {self.describe(tok)}")
        return self.next()

    def _binop(self, tok: Token) -> str | None:
        if tok.kind == "op":
            return _CANON.get(tok.text, tok.text)
        if tok.kind == "ident" and tok.text in _KEYWORD_OPS and _KEYWORD_OPS[tok.text] != "!":
            return _KEYWORD_OPS[tok.text]
        return None

    # -- grammar
    def parse_expr(self) -> Expr:
        self._nest()
        try:
            cond = self._parse_level(0)
            tok = self.peek()
            if tok.kind == "op" and tok.text == "?":
                self.next()
                then = self.parse_expr()
                self.expect(":")
                other = self.parse_expr()
                return Cond(cond.line, cond, then, other)
            return cond
        finally:
            self.depth -= 1

    def _parse_level(self, level: int) -> Expr:
        if level == len(_LEVELS):
            return self._parse_unary()
        left = self._parse_level(level + 1)
        terms = 1
        while True:
            op = self._binop(self.peek())
            if op is None or op not in _LEVELS[level]:
                return left
            terms += 1
            if terms > MAX_CHAIN:
                raise self.error(f"expression chains more than {MAX_CHAIN} terms with {op!r}")
            self.next()
            right = self._parse_level(level + 1)
            left = Binary(left.line, op, left, right)

    def _parse_unary(self) -> Expr:
        tok = self.peek()
        if (tok.kind == "op" and tok.text in ("!", "-", "+")) or (
            tok.kind == "ident" and _KEYWORD_OPS.get(tok.text) == "!"
        ):
            self.next()
            op = "!" if tok.kind == "ident" else tok.text
            self._nest()
            try:
                return Unary(tok.line, op, self._parse_unary())
            finally:
                self.depth -= 1
        return self._parse_primary()

    def _parse_primary(self) -> Expr:
        tok = self.next()
        if tok.kind == "num":
            return Num(tok.line, float(tok.text))
        if tok.kind == "var":
            return VarRef(tok.line, tok.text[1:])
        if tok.kind == "at":
            return AtRef(tok.line, tok.text[1:])
        if tok.kind == "ident" and tok.text not in _KEYWORD_OPS:
            if self.peek().kind == "op" and self.peek().text == "(":
                raise self.error(f"syntax error: function calls are not supported ({tok.text}(...))", tok)
            return NodeRef(tok.line, tok.text)
        if tok.kind == "op" and tok.text == "(":
            inner = self.parse_expr()
            self.expect(")")
            return inner
        raise self.error(f"syntax error: unexpected {self.describe(tok)} in expression", tok)


def parse_expression(text: str, filename: str = "<expr>") -> Expr:
    """Parse one complete expression (tests and programmatic use)."""
    tokens = tokenize(text, filename)
    p = ExprParser(tokens, filename)
    expr = p.parse_expr()
    if p.peek().kind != "eof":
        raise p.error(f"syntax error: unexpected {p.describe(p.peek())} after expression")
    return expr


# --------------------------------------------------------------------------- analysis


def walk(expr: Expr):
    """Yield every sub-expression (pre-order)."""
    yield expr
    if isinstance(expr, Unary):
        yield from walk(expr.arg)
    elif isinstance(expr, Binary):
        yield from walk(expr.left)
        yield from walk(expr.right)
    elif isinstance(expr, Cond):
        yield from walk(expr.cond)
        yield from walk(expr.then)
        yield from walk(expr.other)


def is_boolean(expr: Expr) -> bool:
    """True when ``expr`` yields a truth value (logic operators, comparisons, node refs, @logic)."""
    if isinstance(expr, NodeRef | AtRef):
        return True
    if isinstance(expr, Unary):
        return expr.op == "!"
    if isinstance(expr, Binary):
        return expr.op in LOGICAL_OPS or expr.op in COMPARISON_OPS
    if isinstance(expr, Cond):
        return is_boolean(expr.then) and is_boolean(expr.other)
    return False


def evaluate(
    expr: Expr,
    nodes: Callable[[str], float] | None = None,
    variables: Callable[[str], float] | None = None,
    logic: float | None = None,
) -> float:
    """Evaluate ``expr`` in Python (used for constants in .cfg and for reference tests).

    ``nodes`` / ``variables`` map a name to its value; ``logic`` is the value of ``@logic``.
    Booleans are 1.0 / 0.0.
    """

    def ev(e: Expr) -> float:
        if isinstance(e, Num):
            return e.value
        if isinstance(e, NodeRef):
            if nodes is None:
                raise KeyError(e.name)
            return float(nodes(e.name))
        if isinstance(e, VarRef):
            if variables is None:
                raise KeyError("$" + e.name)
            return float(variables(e.name))
        if isinstance(e, AtRef):
            if logic is None:
                raise KeyError("@" + e.name)
            return float(logic)
        if isinstance(e, Unary):
            a = ev(e.arg)
            return {"!": float(a == 0.0), "-": -a, "+": a}[e.op]
        if isinstance(e, Cond):
            return ev(e.then) if ev(e.cond) != 0.0 else ev(e.other)
        assert isinstance(e, Binary)
        a = ev(e.left)
        if e.op == "&":
            return float(a != 0.0 and ev(e.right) != 0.0)
        if e.op == "|":
            return float(a != 0.0 or ev(e.right) != 0.0)
        b = ev(e.right)
        ops: dict[str, Callable[[float, float], float]] = {
            "^": lambda x, y: float((x != 0.0) != (y != 0.0)),
            "==": lambda x, y: float(x == y),
            "!=": lambda x, y: float(x != y),
            "<": lambda x, y: float(x < y),
            "<=": lambda x, y: float(x <= y),
            ">": lambda x, y: float(x > y),
            ">=": lambda x, y: float(x >= y),
            "+": lambda x, y: x + y,
            "-": lambda x, y: x - y,
            "*": lambda x, y: x * y,
            "/": lambda x, y: x / y if y != 0.0 else (float("inf") if x > 0 else float("nan")),
        }
        return ops[e.op](a, b)

    return ev(expr)


# --------------------------------------------------------------------------- code generation


class CodeGen:
    """Emit numba-compatible Python source for expressions.

    ``node_index`` and ``var_index`` map names to columns of ``s`` (the state row, uint8) and
    ``v`` (float64 variables). ``logic_src`` is the boolean source that replaces ``@logic``.
    Unknown names must have been rejected by the caller (the reader reports them with lines).
    """

    def __init__(self, node_index: dict[str, int], var_index: dict[str, int]) -> None:
        self.node_index = node_index
        self.var_index = var_index

    def boolean(self, e: Expr, logic_src: str | None = None) -> str:
        """Source of a Python ``bool`` expression."""
        if isinstance(e, NodeRef):
            return f"(s[{self.node_index[e.name]}] != 0)"
        if isinstance(e, AtRef):
            assert logic_src is not None
            return logic_src
        if isinstance(e, Unary) and e.op == "!":
            return f"(not {self.boolean(e.arg, logic_src)})"
        if isinstance(e, Binary) and e.op in LOGICAL_OPS:
            a = self.boolean(e.left, logic_src)
            b = self.boolean(e.right, logic_src)
            op = {"&": "and", "|": "or", "^": "!="}[e.op]
            return f"({a} {op} {b})"
        if isinstance(e, Binary) and e.op in COMPARISON_OPS:
            return f"({self.numeric(e.left, logic_src)} {e.op} {self.numeric(e.right, logic_src)})"
        if isinstance(e, Cond) and is_boolean(e):
            c = self.boolean(e.cond, logic_src)
            return f"({self.boolean(e.then, logic_src)} if {c} else {self.boolean(e.other, logic_src)})"
        return f"({self.numeric(e, logic_src)} != 0.0)"

    def numeric(self, e: Expr, logic_src: str | None = None) -> str:
        """Source of a float64 expression."""
        if isinstance(e, Num):
            return repr(float(e.value)) if e.value == e.value else "np.nan"
        if isinstance(e, VarRef):
            return f"v[{self.var_index[e.name]}]"
        if isinstance(e, Unary) and e.op in ("-", "+"):
            return f"({e.op}{self.numeric(e.arg, logic_src)})"
        if isinstance(e, Binary) and e.op in ("+", "-", "*", "/"):
            a = self.numeric(e.left, logic_src)
            b = self.numeric(e.right, logic_src)
            return f"({a} {e.op} {b})"
        if isinstance(e, Cond) and not is_boolean(e):
            c = self.boolean(e.cond, logic_src)
            return f"({self.numeric(e.then, logic_src)} if {c} else {self.numeric(e.other, logic_src)})"
        return f"(1.0 if {self.boolean(e, logic_src)} else 0.0)"
