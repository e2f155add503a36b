"""A small TOML writer for generated scenarios (tables, arrays of tables, scalars, arrays).

The standard library reads TOML but does not write it; generated scenarios only need plain
values, so this stays small rather than adding a dependency.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v} to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(doc: dict[str, Any], comments: dict[str, str] | None = None) -> str:
    """``doc`` as TOML text; ``comments`` maps a dotted table path to a comment line written above it."""
    comments = comments or {}
    out: list[str] = []
    _emit(doc, [], out, comments)
    return "\n".join(out).strip() + "\n"


def _emit(table: dict[str, Any], path: list[str], out: list[str], comments: dict[str, str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    subtables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    arrays = [(k, v) for k, v in table.items() if _is_table_array(v)]
    for k, v in scalars:
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in subtables:
        sub = [*path, k]
        dotted = ".".join(_key(p) for p in sub)
        has_scalars = any(not isinstance(x, dict) and not _is_table_array(x) for x in v.values())
        if has_scalars or not v:
            out.append("")
            if ".".join(sub) in comments:
                out.append(f"# {comments['.'.join(sub)]}")
            out.append(f"[{dotted}]")
        _emit(v, sub, out, comments)
    for k, v in arrays:
        sub = [*path, k]
        dotted = ".".join(_key(p) for p in sub)
        for item in v:
            out.append("")
            out.append(f"[[{dotted}]]")
            _emit_scalars_inline(item, out)


def _emit_scalars_inline(item: dict[str, Any], out: list[str]) -> None:
    for k, v in item.items():
        out.append(f"{_key(k)} = {_value(v)}")
