"""Build the intracellular model a scenario names for a cell type (``kind`` selects it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tme_sim.errors import ConfigError, TMEError

if TYPE_CHECKING:
    from tme_sim.intracellular.base import IntracellularModel
    from tme_sim.model import TMEModel

KINDS = ("rules", "boolean", "surrogate")


def uses_model(raw: dict[str, Any] | None, key: str) -> bool:
    """Whether an ``intracellular`` table asks for a model. ``kind = "rules"`` keeps the type's
    hand-written rules: a scenario that ``extends`` one with a model switches back this way (the
    base's other keys, merged in by ``extends``, are then not used)."""
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a table")
    return raw.get("kind") != "rules"


def build_intracellular(raw: dict[str, Any], base_dir: Path, key: str, model: TMEModel) -> IntracellularModel:
    """Validate ``raw`` (the scenario's ``intracellular`` table) and build the model."""
    kind = raw.get("kind")
    raw = dict(raw)
    drug_names = raw.pop("drugs", None)  # drugs acting on this type's network (wired below)
    if kind == "boolean":
        from tme_sim.intracellular.boolean import BooleanIntracellular as cls
        from tme_sim.intracellular.boolean import BooleanIntracellularConfig as cfg_cls
    elif kind == "surrogate":
        from tme_sim.intracellular.surrogate import SurrogateIntracellular as cls
        from tme_sim.intracellular.surrogate import SurrogateIntracellularConfig as cfg_cls
    else:
        raise ConfigError(f"{key}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    try:
        cfg = cfg_cls.model_validate(raw)
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
        _wire_drugs(im, drug_names, key, model)
    unknown = [
        s
        for s in im.required_signals()
        if s not in model.substrate_names and s not in ("volume", "age", "time") and not s.startswith("contact_")
    ]
    if unknown:
        raise ConfigError(f"{key}: signal(s) {', '.join(unknown)} are not substrates of this scenario")
    return im


def _wire_drugs(im: IntracellularModel, names: Any, key: str, model: TMEModel) -> None:
    """Attach :class:`~tme_sim.drugs.effects.DrugEffects` for ``names`` (the type's ``drugs`` list).

    Each drug must be given in the scenario's ``[drugs]`` (its substrate is the local
    concentration) and every one of its targets must be a node of the network.
    """
    from tme_sim.drugs.effects import DrugEffects

    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f'{key}.drugs: expected a list of drug names, e.g. drugs = ["birinapant"]')
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}.drugs: a drug is listed twice")
    dosing = getattr(model, "dosing", None)
    if dosing is None:
        raise ConfigError(f"{key}.drugs: needs a [drugs] section naming the library and the drugs given")
    for n in names:
        if n not in dosing.names:
            known = "" if n in dosing.library.drugs else f" and not in the library {dosing.library.path}"
            raise ConfigError(f"{key}.drugs: {n!r} is not given in [drugs]{known} (given: {', '.join(dosing.names)})")
    if not hasattr(im, "set_drug_effects"):
        raise ConfigError(
            f"{key}.drugs: intracellular kind {im.kind!r} has no drug input yet; drugs act on 'boolean' networks"
        )
    drugs = [dosing.library.drugs[n] for n in names]
    source = f"{dosing.library.path} (for {key})"
    if hasattr(im, "drug_effects_for"):  # surrogates: targets on KO_/KI_ flags, ligand inputs or nodes
        im.set_drug_effects(im.drug_effects_for(drugs, source=source))
        return
    effects = DrugEffects(drugs, im.state_names, source=source, strict=True)
    im.set_drug_effects(effects)
