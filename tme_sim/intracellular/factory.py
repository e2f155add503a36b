"""Build the intracellular model a scenario names for a cell type (``kind`` selects it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tme_sim.errors import ConfigError, TMEError

if TYPE_CHECKING:
    from tme_sim.intracellular.base import IntracellularModel
    from tme_sim.model import TMEModel

KINDS = ("boolean", "surrogate")


def build_intracellular(raw: dict[str, Any], base_dir: Path, key: str, model: TMEModel) -> IntracellularModel:
    """Validate ``raw`` (the scenario's ``intracellular`` table) and build the model."""
    kind = raw.get("kind")
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
    unknown = [
        s
        for s in im.required_signals()
        if s not in model.substrate_names and s not in ("volume", "age", "time") and not s.startswith("contact_")
    ]
    if unknown:
        raise ConfigError(f"{key}: signal(s) {', '.join(unknown)} are not substrates of this scenario")
    return im
