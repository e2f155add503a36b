"""Registry of translators for ``<intracellular type="...">`` blocks of imported projects.

A translator takes the ``<intracellular>`` element (an :class:`~tme_sim.importers.xmltree.Node`),
the project folder and a warning list, and returns the ``[cell_types.<name>.intracellular]``
table of the scenario (or None when it cannot translate; it then adds a warning saying why).
Register one with :func:`register_intracellular` (e.g. the PhysiBoSS ``maboss`` translator);
:func:`translate_intracellular` is what the PhysiCell importer calls for each cell definition.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tme_sim.intracellular.boolean.physiboss import translate_maboss

if TYPE_CHECKING:
    from tme_sim.importers.xmltree import Node

#: ``translator(element, project_dir, warnings, cell_type) -> table | None``; ``warnings`` takes
#: ``(setting, reason)`` pairs
Translator = Callable[["Node", Path, list[tuple[str, str]], str], "dict[str, Any] | None"]

_TRANSLATORS: dict[str, Translator] = {}


def register_intracellular(kind: str, translator: Translator) -> Translator:
    """Make ``translator`` handle ``<intracellular type="kind">`` (a later registration replaces it)."""
    _TRANSLATORS[kind] = translator
    return translator


def intracellular_kinds() -> list[str]:
    """The ``type`` values that have a translator."""
    return sorted(_TRANSLATORS)


def translate_intracellular(
    element: Node, project_dir: Path, warnings: list[tuple[str, str]], cell_type: str
) -> dict[str, Any] | None:
    """The scenario table for one ``<intracellular>`` element, or None (with a warning) when no
    translator handles its ``type``."""
    kind = element.attrs.get("type", "")
    translator = _TRANSLATORS.get(kind)
    if translator is None:
        known = ", ".join(intracellular_kinds()) or "none registered"
        warnings.append(
            (
                f"cell_definitions.{cell_type}.intracellular",
                f'type="{kind}" has no translator (known: {known}); the cells run without it',
            )
        )
        return None
    return translator(element, project_dir, warnings, cell_type)


# the translators that ship with tme-sim (registered here, above the intracellular layer)
register_intracellular("maboss", translate_maboss)
