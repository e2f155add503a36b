""" "Did you mean …?" for config mistakes: misspelt keys and choices, found with :mod:`difflib`."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def close_match(word: str, choices: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The choice closest to ``word`` (difflib ratio ≥ ``cutoff``), or None."""
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=cutoff)
    return found[0] if found else None


def _unwrap(tp: Any) -> list[Any]:
    """The candidate types inside an annotation (Optional/Union members, container items)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(tp) for t in _unwrap(a)]
    return [tp]


def _child(tp: Any, part: Any) -> list[Any]:
    """Types reached from ``tp`` by one location step (a field name, dict key or list index)."""
    out: list[Any] = []
    for t in _unwrap(tp):
        origin = typing.get_origin(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            field = t.model_fields.get(str(part))
            if field is not None:
                out.append(field.annotation)
        elif origin in (dict, typing.Mapping) or (origin is not None and str(origin).endswith("Mapping'>")):
            args = typing.get_args(t)
            if len(args) == 2:
                out.append(args[1])
        elif origin in (list, tuple, set, frozenset, Sequence):
            args = typing.get_args(t)
            if args:
                out.append(args[0])
    return out


def _models_at(root: type[BaseModel], parts: Sequence[Any]) -> list[type[BaseModel]]:
    current: list[Any] = [root]
    for part in parts:
        current = [c for t in current for c in _child(t, part)]
    return [t for tp in current for t in _unwrap(tp) if isinstance(t, type) and issubclass(t, BaseModel)]


def suggestion(root: type[BaseModel], loc: Sequence[Any], err: dict[str, Any]) -> str | None:
    """A likely intended key or value for one pydantic error at ``loc`` under ``root``, or None.

    Unknown keys are matched against the keys allowed at that place; a bad choice (``Literal``)
    against the allowed values.
    """
    if not loc:
        return None
    if err.get("type") == "extra_forbidden":
        keys = {k for m in _models_at(root, loc[:-1]) for k in m.model_fields}
        return close_match(str(loc[-1]), sorted(keys))
    if err.get("type") in ("literal_error", "enum"):
        expected = str((err.get("ctx") or {}).get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected)
        if choices and isinstance(err.get("input"), str):
            return close_match(err["input"], choices)
    return None
