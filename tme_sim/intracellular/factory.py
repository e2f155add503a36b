"""Build the intracellular model a scenario names for a cell type (``kind`` selects it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tme_sim.errors import ConfigError, TMEError
from tme_sim.intracellular.base import intracellular_kind, intracellular_kinds

if TYPE_CHECKING:
    from tme_sim.drugs.dosing import DrugDosing
    from tme_sim.intracellular.base import IntracellularModel

#: cell properties every model may read besides the substrates and ``contact_<type>`` counts
CELL_SIGNALS = ("volume", "age", "time")


def uses_model(raw: dict[str, Any] | None, key: str) -> bool:
    """Whether an ``intracellular`` table asks for a model. ``kind = "rules"`` keeps the type's
    hand-written rules: a scenario that ``extends`` one with a model switches back this way (the
    base's other keys, merged in by ``extends``, are then not used)."""
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a table")
    return raw.get("kind") != "rules"


def build_intracellular(
    raw: dict[str, Any],
    base_dir: Path,
    key: str,
    *,
    substrate_names: list[str],
    dosing: DrugDosing | None = None,
    substrate_units: dict[str, str] | None = None,
) -> IntracellularModel:
    """Validate ``raw`` (the scenario's ``intracellular`` table at ``key``) and build the model.

    ``substrate_names`` are the grid's substrates (every signal the model reads must be one of
    them, a cell property or a contact count); ``dosing`` the scenario's drugs, for a ``drugs``
    list in the table; ``substrate_units`` their units (name → unit), so that thresholds written
    with a unit are converted to the unit of the concentration they are compared with.
    """
    kind = raw.get("kind")
    raw = dict(raw)
    drug_names = raw.pop("drugs", None)  # drugs acting on this type's network (wired below)
    cls = intracellular_kind(kind) if isinstance(kind, str) else None
    if cls is None or cls.config_class is None:
        known = ", ".join(["rules", *(k for k in intracellular_kinds() if k != "abstract")])
        raise ConfigError(f"{key}.kind: expected one of {known}, got {kind!r}")
    try:
        cfg = cls.config_class.model_validate(raw, context={"signal_units": substrate_units or {}})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{key}.{loc}: {msg}" if loc else f"{key}: {msg}") from None
    try:
        im = cls.from_config(cfg, base_dir)
    except TMEError as exc:
        raise type(exc)(f"{key}: {exc}") from None
    if drug_names is not None:
        wire_drugs(im, drug_names, dosing, key)
    unknown = [
        s
        for s in im.required_signals()
        if s not in substrate_names and s not in CELL_SIGNALS and not s.startswith("contact_")
    ]
    if unknown:
        raise ConfigError(f"{key}: signal(s) {', '.join(unknown)} are not substrates of this scenario")
    return im


def wire_drugs(im: IntracellularModel, names: Any, dosing: DrugDosing | None, key: str) -> Any:
    """Make the drugs ``names`` act on the intracellular model ``im``; returns the effects object.

    The form behind ``drugs = [...]`` in a type's ``intracellular`` table (``key`` names that table
    in errors) and :meth:`TMEModel.attach_drugs`: every drug must be given in the scenario's
    ``[drugs]`` (``dosing``; its substrate is the local concentration). The model builds its own
    effects (:meth:`~tme_sim.intracellular.base.IntracellularModel.drug_effects_for`: anti/pro-node
    masks for Boolean networks, flag/ligand inputs or node drives for surrogates). Replaces drugs
    attached before. Mistakes raise a one-line :class:`ConfigError`.
    """
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f'{key}.drugs: expected a list of drug names, e.g. drugs = ["birinapant"]')
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}.drugs: a drug is listed twice")
    if dosing is None:
        raise ConfigError(f"{key}.drugs: needs a [drugs] section naming the library and the drugs given")
    for n in names:
        if n not in dosing.names:
            known = "" if n in dosing.library.drugs else f" and not in the library {dosing.library.path}"
            raise ConfigError(f"{key}.drugs: {n!r} is not given in [drugs]{known} (given: {', '.join(dosing.names)})")
    if not im.accepts_drugs:
        raise ConfigError(
            f"{key}.drugs: intracellular kind {im.kind!r} has no drug input; drugs act on 'boolean' networks "
            "and 'surrogate' models"
        )
    drugs = [dosing.library.drugs[n] for n in names]
    effects = im.drug_effects_for(drugs, source=f"{dosing.library.path} (for {key})")
    im.set_drug_effects(effects)
    return effects
