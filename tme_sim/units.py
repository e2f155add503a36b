"""Units: one pint registry and pydantic field types that convert at load time.

Config values are strings with units (``"20 um"``, ``"0.1 1/min"``, ``"5 day"``). Each field type
below names the unit the simulator uses internally (µm, minutes, ...) and converts to a plain
float in that unit when the config is validated. A bare number, an unparsable string or a
quantity of the wrong dimension is a validation error that pydantic reports with the key.

Example::

    class Grid(BaseModel):
        dx: Length          # "20 um" -> 20.0 (µm)
        dt: Time            # "0.01 min" -> 0.01 (min)

Custom units: ``mmHg`` exists in pint; concentrations of ligands are in ``ng/mL`` or ``nM``,
metabolites in ``mM``; ``cell`` is not a unit (counts are plain ints).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Annotated, Any

import pint
from pydantic import BeforeValidator, PlainSerializer


# the on-disk cache (platformdirs user cache) cuts registry start-up from ~1 s to ~0.05 s
def _registry() -> pint.UnitRegistry:
    try:
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True, cache_folder=":auto:")
    except OSError:  # read-only or missing $HOME: no on-disk cache, just a slower start
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


ureg = _registry()
Q_ = ureg.Quantity


#: largest magnitude of any quantity, in the unit the simulator uses (um, min, 1/min, ...): 1e15 um
#: is 1000 km, 1e15 min 2e9 years; bigger values are typos that would overflow step counts and grids
MAX_MAGNITUDE = 1e15
#: longest quantity string accepted (pint evaluates expressions: bound the work before it does)
MAX_QUANTITY_LENGTH = 80
#: largest exponent allowed after ``**`` or ``^`` (units like um**3 need 3)
MAX_EXPONENT = 4
_EXPONENT = re.compile(r"(\*\*|\^)\s*")
_LITERAL_EXPONENT = re.compile(r"[-+]?\d+(\.\d+)?")


def check_expression(text: str) -> None:
    """Refuse quantity strings that would make pint work unboundedly (``9**9**9``, huge inputs).

    Length at most :data:`MAX_QUANTITY_LENGTH`; every ``**``/``^`` followed by a literal number of
    magnitude at most :data:`MAX_EXPONENT` that is not itself raised to a power. Raises ``ValueError``.
    """
    if len(text) > MAX_QUANTITY_LENGTH:
        raise ValueError(f"quantity string too long ({len(text)} characters; at most {MAX_QUANTITY_LENGTH})")
    for m in _EXPONENT.finditer(text):
        rest = text[m.end() :]
        lit = _LITERAL_EXPONENT.match(rest)
        if lit is None or abs(float(lit.group())) > MAX_EXPONENT or _EXPONENT.match(rest[lit.end() :].lstrip()):
            raise ValueError(
                f"exponent in {text!r} not allowed: write a plain number of at most {MAX_EXPONENT} after ** or ^"
            )


#: "<number> <unit>" with the unit spelled exactly as the target: the magnitude is the number
#: (what pint would give), read without pint (an imported project has thousands of positions)
_PLAIN = re.compile(r"([-+]?(?:(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]\w*)")


@lru_cache(maxsize=512)
def _parse(text: str) -> pint.Quantity:
    check_expression(text)
    return ureg.Quantity(text)


def to_unit(value: Any, unit: str, *, allow_dimensionless: bool = False) -> float:
    """Convert ``value`` (a string with units, or a pint Quantity) to a float in ``unit``.

    Raises ``ValueError`` with a short message (pydantic adds the key) when the unit is missing,
    unparsable or of the wrong dimension.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a quantity in {unit}, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        if allow_dimensionless or unit in ("", "1", "dimensionless"):
            return float(value)
        raise ValueError(f'missing unit: write it as a string with units, e.g. "{value} {unit}"')
    plain = _PLAIN.fullmatch(value.strip()) if isinstance(value, str) and len(value) <= MAX_QUANTITY_LENGTH else None
    if plain is not None and plain.group(2) == unit:
        return _checked(float(plain.group(1)), value, unit)
    if isinstance(value, pint.Quantity):
        q = value
    elif isinstance(value, str):
        try:
            q = _parse(value.strip())
        except ValueError as exc:
            if "not allowed" in str(exc) or "too long" in str(exc):
                raise
            raise ValueError(f"cannot parse {value!r} as a quantity ({type(exc).__name__})") from None
        except Exception as exc:  # pint raises several error types
            raise ValueError(f"cannot parse {value!r} as a quantity ({type(exc).__name__})") from None
        if not isinstance(q, pint.Quantity):
            q = ureg.Quantity(float(q), "dimensionless")
        if q.dimensionless and unit not in ("", "1", "dimensionless"):
            raise ValueError(f"missing unit in {value!r}: expected something convertible to {unit}")
    else:
        raise ValueError(f'expected a quantity string such as "1 {unit}", got {type(value).__name__}')
    try:
        out = float(q.to(unit).magnitude)
    except pint.DimensionalityError:
        raise ValueError(f"wrong unit in {value!r}: expected something convertible to {unit}") from None
    except (OverflowError, TypeError, ValueError, ArithmeticError):
        raise ValueError(f"{value!r}: not a finite number in {unit}") from None
    return _checked(out, value, unit)


def _checked(out: float, value: Any, unit: str) -> float:
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not a finite number")
    if abs(out) > MAX_MAGNITUDE:
        raise ValueError(f"{value!r} is implausibly large (more than {MAX_MAGNITUDE:g} {unit or '(dimensionless)'})")
    return out


def _nonnegative(x: float, raw: Any) -> float:
    if x < 0:
        raise ValueError(f"{raw!r} is negative; must be >= 0")
    return x


def quantity(unit: str) -> Any:
    """A pydantic field type: accepts ``"<number> <unit>"`` (finite, >= 0) and stores a float in ``unit``.

    Every physical quantity of a scenario (lengths, positions in the domain, times, rates,
    diffusivities, speeds, volumes, pressures) is non-negative; a negative one is an error.

    Serialises back to a string with the unit so a resolved config round-trips.
    """
    return Annotated[
        float,
        BeforeValidator(lambda v, _u=unit: _nonnegative(to_unit(v, _u), v)),
        PlainSerializer(lambda x, _u=unit: f"{x!r} {_u}", return_type=str, when_used="json"),
    ]


Length = quantity("um")
Time = quantity("min")
Rate = quantity("1/min")
Diffusivity = quantity("um**2/min")
Speed = quantity("um/min")
Volume = quantity("um**3")
Pressure = quantity("mmHg")
Fraction = Annotated[float, BeforeValidator(lambda v: to_unit(v, "", allow_dimensionless=True))]


def parse_duration(text: str) -> float:
    """Parse a duration such as ``"5d"``, ``"120 min"``, ``"2 hours"`` into minutes."""
    t = text.strip()
    if t and t[-1] in "dhms" and t[:-1].replace(".", "", 1).isdigit():
        t = t[:-1] + " " + {"d": "day", "h": "hour", "m": "minute", "s": "second"}[t[-1]]
    return to_unit(t, "min")
