"""MaBoSS expressions: tokenizer, parser to a small AST, and code generation for numba.

The grammar is the C-like one MaBoSS uses in ``logic``, ``rate_up`` and ``rate_down``:

* operands: node names (0/1), ``$variables``, numbers (``1``, ``0.5``, ``1e+100``), ``@logic``
  and other ``@attribute`` aliases, the functions ``log(x)``, ``log(x, base)``, ``exp(x)`` and
  ``exp(x, base)`` (= ``base ** x``), the only ones MaBoSS defines;
* unary ``!`` / ``NOT``, unary ``-`` and ``+``;
* ``*`` ``/``, then ``+`` ``-``, then ``<`` ``<=`` ``>`` ``>=``, then ``==`` ``!=``,
  then ``&`` ``&&`` ``AND``, then ``|`` ``||`` ``OR``, then ``^`` ``XOR``,
  then the conditional ``c ? a : b`` (right-associative), lowest;
* parentheses.

This is MaBoSS's own grammar (``BooleanGrammar.y``/``.l`` of sysbio-curie/MaBoSS): XOR binds
*looser* than OR (``A | B ^ C`` is ``(A | B) ^ C``), and the keywords ``NOT AND OR XOR NODE`` are
case-insensitive. Chains of one logical operator are built as balanced trees, and nesting deeper
than :data:`MAX_DEPTH` is a one-line error instead of a ``RecursionError``.

Every AST node carries the line it started on so the reader can report ``file:line``. Code
generation turns an expression into a Python/numba source fragment over a state row ``s`` (uint8)
and a variable vector ``v`` (float64), in either a boolean or a numeric context; the network
compiler assembles those fragments into one ``@njit`` function per network (see
:mod:`tme_sim.intracellular.boolean.engine`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<badstr>")
  | (?P<op>&&|\|\||==|!=|<=|>=|[!&|^?:()+\-*/<>{}\[\];=,.])
    """,
    re.VERBOSE | re.DOTALL,
)


def tokenize(text: str, filename: str) -> list[Token]:
    """Split MaBoSS source into tokens with line numbers; comments (``//``, ``/* */``) dropped.

    ``#`` line comments are also accepted (some published .cfg files use them). Strings may span
    lines and contain backslash escapes (see :func:`unescape`).
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
        if kind == "badstr":
            raise NetworkFormatError(f"{filename}:{line}: unterminated string")
        if kind == "nl":
            line += 1
        elif kind == "bcomment":
            line += tok.count("\n")
        elif kind == "str":
            tokens.append(Token(kind, tok, line))
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
class FuncCall(Expr):
    name: str  # "log" or "exp"
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Cond(Expr):
    cond: Expr
    then: Expr
    other: Expr


#: MaBoSS's keyword operators (matched case-insensitively, as its lexer does).
_KEYWORD_OPS = {"AND": "&", "OR": "|", "XOR": "^", "NOT": "!"}
_CANON = {"&&": "&", "||": "|"}
# binary levels from lowest to highest precedence (MaBoSS: XOR below OR below AND)
_LEVELS: list[tuple[str, ...]] = [
    ("^",),
    ("|",),
    ("&",),
    ("==", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/"),
]
LOGICAL_OPS = frozenset({"&", "|", "^"})
COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
#: MaBoSS's built-in functions and how many arguments each takes.
FUNCTIONS = {"log": (1, 2), "exp": (1, 2)}
#: Deepest nesting of parentheses, unary operators, conditionals and calls accepted (the parser,
#: and every later pass, recurse once per level; real models stay far below).
MAX_DEPTH = 64
#: Deepest expression tree accepted after parsing (long arithmetic chains are left-deep).
MAX_TREE_DEPTH = 256
#: Python frames the parser may use per nesting level (one per precedence level and a few more).
_FRAMES_PER_LEVEL = len(_LEVELS) + 6


def _stack_depth() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def keyword(tok: Token) -> str | None:
    """The canonical operator of a keyword token (``AND``/``and``/``And`` -> ``&``), or None."""
    if tok.kind != "ident":
        return None
    return _KEYWORD_OPS.get(tok.text.upper())


def _balanced(op: str, items: list[Expr]) -> Expr:
    """A balanced tree of one associative logical operator over ``items`` (same value as a chain)."""
    while len(items) > 1:
        items = [
            Binary(items[k].line, op, items[k], items[k + 1]) if k + 1 < len(items) else items[k]
            for k in range(0, len(items), 2)
        ]
    return items[0]


def tree_depth(expr: Expr) -> int:
    """Depth of an expression tree (iterative, so it cannot overflow the Python stack)."""
    best = 0
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        e, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in children(e))
    return best


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, Unary):
        return (e.arg,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, Cond):
        return (e.cond, e.then, e.other)
    if isinstance(e, FuncCall):
        return e.args
    return ()


def replace_children(e: Expr, kids: list[Expr]) -> Expr:
    """A copy of ``e`` with new direct sub-expressions (in :func:`children` order)."""
    if isinstance(e, Unary):
        return Unary(e.line, e.op, kids[0])
    if isinstance(e, Binary):
        return Binary(e.line, e.op, kids[0], kids[1])
    if isinstance(e, Cond):
        return Cond(e.line, kids[0], kids[1], kids[2])
    if isinstance(e, FuncCall):
        return FuncCall(e.line, e.name, tuple(kids))
    return e


class ExprParser:
    """Recursive-descent parser over a token list (shared with the .bnd/.cfg readers)."""

    def __init__(self, tokens: list[Token], filename: str, pos: int = 0) -> None:
        self.tokens = tokens
        self.filename = filename
        self.pos = pos
        self.depth = 0

    # -- helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

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

    def is_op(self, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "op" and tok.text == text

    def expect(self, text: str) -> Token:
        tok = self.peek()
        if tok.kind != "op" or tok.text != text:
            raise self.error(f"syntax error: expected {text!r}, found {self.describe(tok)}")
        return self.next()

    def _binop(self, tok: Token) -> str | None:
        if tok.kind == "op":
            return _CANON.get(tok.text, tok.text)
        op = keyword(tok)
        return op if op != "!" else None

    def _enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested more than {MAX_DEPTH} levels deep", tok)

    # -- grammar
    def parse_expr(self) -> Expr:
        """One expression; the result's tree depth is at most :data:`MAX_TREE_DEPTH`."""
        start = self.peek()
        if self.depth:
            return self._parse_cond()
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, _stack_depth() + MAX_DEPTH * _FRAMES_PER_LEVEL + 100))
        try:
            expr = self._parse_cond()
        finally:
            sys.setrecursionlimit(limit)
        if tree_depth(expr) > MAX_TREE_DEPTH:
            raise self.error(f"expression more than {MAX_TREE_DEPTH} operators deep", start)
        return expr

    def _parse_cond(self) -> Expr:
        cond = self._parse_level(0)
        tok = self.peek()
        if tok.kind == "op" and tok.text == "?":
            self._enter(tok)
            self.next()
            then = self._parse_cond()
            self.expect(":")
            other = self._parse_cond()
            self.depth -= 1
            return Cond(cond.line, cond, then, other)
        return cond

    def _parse_level(self, level: int) -> Expr:
        if level == len(_LEVELS):
            return self._parse_unary()
        left = self._parse_level(level + 1)
        ops = _LEVELS[level]
        if ops[0] in LOGICAL_OPS:  # associative: collect the chain, build it balanced
            items = [left]
            while self._binop(self.peek()) == ops[0]:
                self.next()
                items.append(self._parse_level(level + 1))
            return _balanced(ops[0], items)
        while True:
            op = self._binop(self.peek())
            if op is None or op not in ops:
                return left
            self.next()
            right = self._parse_level(level + 1)
            left = Binary(left.line, op, left, right)

    def _parse_unary(self) -> Expr:
        tok = self.peek()
        if (tok.kind == "op" and tok.text in ("!", "-", "+")) or keyword(tok) == "!":
            self._enter(tok)
            self.next()
            op = "!" if tok.kind == "ident" else tok.text
            arg = self._parse_unary()
            self.depth -= 1
            return Unary(tok.line, op, arg)
        return self._parse_primary()

    def _parse_primary(self) -> Expr:
        tok = self.next()
        if tok.kind == "num":
            return Num(tok.line, float(tok.text))
        if tok.kind == "var":
            return VarRef(tok.line, tok.text[1:])
        if tok.kind == "at":
            return AtRef(tok.line, tok.text[1:])
        if tok.kind == "ident" and keyword(tok) is None:
            if self.is_op("("):
                return self._parse_call(tok)
            return NodeRef(tok.line, tok.text)
        if tok.kind == "op" and tok.text == "(":
            self._enter(tok)
            inner = self._parse_cond()
            self.expect(")")
            self.depth -= 1
            return inner
        raise self.error(f"syntax error: unexpected {self.describe(tok)} in expression", tok)

    def _parse_call(self, name: Token) -> Expr:
        if name.text not in FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise self.error(f"unknown function {name.text!r} (MaBoSS defines {known})", name)
        self._enter(name)
        self.expect("(")
        args: list[Expr] = []
        if not self.is_op(")"):
            args.append(self._parse_cond())
            while self.is_op(","):
                self.next()
                args.append(self._parse_cond())
        self.expect(")")
        self.depth -= 1
        lo, hi = FUNCTIONS[name.text]
        if not lo <= len(args) <= hi:
            raise self.error(f"{name.text}() takes {lo} or {hi} arguments, got {len(args)}", name)
        return FuncCall(name.line, name.text, tuple(args))


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
    """Yield every sub-expression (pre-order, iterative)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(reversed(children(e)))


def unescape(text: str) -> str:
    """The value of a MaBoSS string literal's body: ``\\n \\t \\" \\\\`` ... decoded like MaBoSS's lexer
    (an unknown escape keeps its backslash)."""
    table = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    table.update({"'": "'", '"': '"', "\\": "\\"})
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), m.group(0)), text, flags=re.DOTALL)


def call(name: str, args: list[float]) -> float:
    """Value of a MaBoSS function: ``log(x)``, ``log(x, b)`` = ln x / ln b, ``exp(x)``, ``exp(x, b)`` = b ** x
    (IEEE results for bad arguments, as in MaBoSS's C++ and in the compiled kernels)."""
    a = [np.float64(x) for x in args]
    with np.errstate(all="ignore"):
        if name == "log":
            out = np.log(a[0]) if len(a) == 1 else np.log(a[0]) / np.log(a[1])
        else:
            out = np.exp(a[0]) if len(a) == 1 else np.power(a[1], a[0])
    return float(out)


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
        if isinstance(e, FuncCall):
            return call(e.name, [ev(a) for a in e.args])
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
        if isinstance(e, FuncCall):
            return call_source(e.name, [self.numeric(a, logic_src) for a in e.args])
        return f"(1.0 if {self.boolean(e, logic_src)} else 0.0)"


def call_source(name: str, args: list[str]) -> str:
    """numba source of a MaBoSS function call on argument sources (see :func:`call`)."""
    if name == "log":
        return f"np.log({args[0]})" if len(args) == 1 else f"(np.log({args[0]}) / np.log({args[1]}))"
    return f"np.exp({args[0]})" if len(args) == 1 else f"np.power({args[1]}, {args[0]})"
