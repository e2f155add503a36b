"""Property-based fuzzing (Hypothesis) of the scenario loader and the MaBoSS .bnd parser (issue #25).

Whatever the text, the loaders either return or raise their one-line :class:`TMEError`; never
another exception, never a hang (each example runs under Hypothesis' deadline).
"""

from __future__ import annotations

from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tme_sim.config import load_scenario  # noqa: E402
from tme_sim.errors import TMEError  # noqa: E402
from tme_sim.intracellular.boolean.maboss_format import parse_bnd_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = (ROOT / "tests" / "data" / "tiny_spheroid.toml").read_text()
FAST = settings(
    max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

KEYS = [
    "name", "seed", "duration", "domain.size", "domain.dx", "time.diffusion_dt", "time.mechanics_dt",
    "time.phenotype_dt", "output.interval", "output.checkpoint_interval", "substrates.oxygen.initial",
    "substrates.oxygen.diffusion", "substrates.oxygen.decay", "cell_types.tumor.rules",
    "cell_types.tumor.cycle.entry_rate", "cell_types.tumor.mechanics.speed", "initial_cells.0.radius",
    "initial_cells.0.center", "initial_cells.0.type", "extends", "plugins",
]  # fmt: skip
UNITS = ["um", "min", "1/min", "um**2/min", "mmHg", "mM", "", "day", "um^2", "ng/mL", "parsec", "**", "^"]
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["9**9**9", "1e308*1e308", "nan", "-inf", "0", "-0", "1e-320", "(((1)))"]),
)
QUANTITIES = st.builds(lambda n, u: f"{n} {u}".strip(), NUMBERS, st.sampled_from(UNITS))
SCALARS = st.one_of(QUANTITIES, NUMBERS, st.booleans(), st.text(max_size=30))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def _loads_or_one_line_error(path: Path, overrides: dict | None = None) -> None:
    try:
        load_scenario(path, overrides or {})
    except TMEError as exc:
        assert (str(exc) and "\n" not in str(exc).strip()) or exc.details, str(exc)


@FAST
@given(sets=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_scenario_loader_with_random_overrides(tmp_path_factory: pytest.TempPathFactory, sets: dict) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    p = d / "s.toml"
    p.write_text(TINY)
    _loads_or_one_line_error(p, {k: _toml(v) for k, v in sets.items()})


@FAST
@given(
    cuts=st.lists(st.tuples(st.integers(0, len(TINY)), st.integers(0, 40), st.text(max_size=12)), max_size=4),
)
def test_scenario_loader_with_mangled_text(tmp_path_factory: pytest.TempPathFactory, cuts: list) -> None:
    text = TINY
    for at, n, ins in cuts:
        text = text[:at] + ins + text[at + n :]
    p = tmp_path_factory.mktemp("fuzz") / "s.toml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    _loads_or_one_line_error(p)


BND_TOKENS = [
    "Node", "A", "B", "C", "{", "}", "logic", "rate_up", "rate_down", "=", ";", "&", "|", "!", "^", "AND", "OR",
    "NOT", "(", ")", "?", ":", "1", "0", "1/0", "-1", "nan", "1e999", "$x", "@logic", "\n", "//", "/*", "*/", " ",
    "\"", "'", "\u00e5",
]  # fmt: skip


@FAST
@given(tokens=st.lists(st.sampled_from(BND_TOKENS), max_size=80))
def test_bnd_parser_with_random_tokens(tokens: list[str]) -> None:
    try:
        parse_bnd_text(" ".join(tokens), "fuzz.bnd")
    except TMEError:
        pass


@FAST
@given(depth=st.integers(1, 5000), op=st.sampled_from(["(", "!", "NOT "]))
def test_bnd_parser_with_deep_expressions(depth: int, op: str) -> None:
    close = ")" * depth if op == "(" else ""
    text = "Node A { logic = A; rate_up = 1; rate_down = 1; }\nNode B { logic = " + op * depth + "A" + close + "; }\n"
    try:
        parse_bnd_text(text, "deep.bnd")
    except TMEError as exc:
        assert "deep.bnd" in str(exc)


@FAST
@given(text=st.text(max_size=400))
def test_bnd_parser_with_random_text(text: str) -> None:
    try:
        parse_bnd_text(text, "fuzz.bnd")
    except TMEError:
        pass
