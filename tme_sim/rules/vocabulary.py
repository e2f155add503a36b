"""The signal and behaviour names the rules engine understands (PhysiCell's dictionary names).

:func:`parse_signal` and :func:`parse_behavior` turn a name into a small spec (kind + index +
unit); an unknown name is a :class:`~tme_sim.errors.ConfigError` listing what is understood.
"""

from __future__ import annotations

from dataclasses import dataclass

from tme_sim.errors import ConfigError

#: behaviours stored in a core per-cell column, by PhysiCell name → (column, unit)
COLUMN_BEHAVIORS: dict[str, tuple[str, str]] = {
    "cycle entry": ("cycle_rate", "1/min"),
    "exit from cycle phase 0": ("cycle_rate", "1/min"),
    "apoptosis": ("apoptosis_rate", "1/min"),
    "necrosis": ("necrosis_rate", "1/min"),
    "migration speed": ("migration_speed", "um/min"),
    "migration bias": ("chemotaxis_bias", ""),
}
#: per-substrate behaviours: suffix → (column, unit template; {u} = the substrate's unit)
SUBSTRATE_BEHAVIORS: dict[str, tuple[str, str]] = {
    " secretion target": ("saturation", "{u}"),
    " secretion": ("secretion_rate", "1/min"),
    " uptake": ("uptake_rate", "1/min"),
    " export": ("net_export", "{u}*um**3/min"),
}
SIMPLE_SIGNALS: dict[str, str] = {
    "pressure": "",
    "volume": "um**3",
    "dead": "",
    "apoptotic": "",
    "necrotic": "",
    "time": "min",
    "contact with live cell": "",
}


@dataclass(frozen=True)
class SignalSpec:
    """What a rule senses: ``kind`` (substrate, gradient, contact, custom or a simple signal name),
    ``index`` (substrate or type index; −1 if none), ``column`` (custom) and the signal's ``unit``."""

    kind: str
    index: int = -1
    column: str = ""
    unit: str = ""


@dataclass(frozen=True)
class BehaviorSpec:
    """What a rule changes: ``kind`` (column, attack, phagocytose, transform), the store ``column``
    and substrate ``sub`` (−1: a scalar column), the target ``index`` (type; −1 none) or dead
    ``target`` (apoptotic / necrotic / other_dead), and the behaviour's ``unit``."""

    kind: str
    column: str = ""
    sub: int = -1
    index: int = -1
    target: str = ""
    unit: str = ""

    @property
    def key(self) -> tuple:
        return (self.kind, self.column, self.sub, self.index, self.target)


def _unit_of_substrate(unit: str) -> str:
    return "" if unit in ("dimensionless", "1") else unit


def parse_signal(
    name: str, types: list[str], substrates: list[str], units: list[str], columns: dict[str, str], key: str
) -> SignalSpec:
    """The spec of signal ``name`` (``key`` names the setting in errors)."""
    if name in substrates:
        j = substrates.index(name)
        return SignalSpec("substrate", j, unit=_unit_of_substrate(units[j]))
    if name.endswith(" gradient") and name[: -len(" gradient")] in substrates:
        j = substrates.index(name[: -len(" gradient")])
        u = _unit_of_substrate(units[j])
        return SignalSpec("gradient", j, unit=f"{u}/um" if u else "1/um")
    if name in SIMPLE_SIGNALS:
        return SignalSpec(name, unit=SIMPLE_SIGNALS[name])
    if name == "damage":  # delivered by attacks (InteractionsConfig.attack_damage_rate)
        return SignalSpec("custom", column="damage", unit="")
    if name.startswith("contact with ") and name[len("contact with ") :] in types:
        return SignalSpec("contact", types.index(name[len("contact with ") :]))
    if name.startswith("custom:") and name[len("custom:") :] in columns:
        col = name[len("custom:") :]
        return SignalSpec("custom", column=col, unit=columns[col])
    raise ConfigError(
        f"{key}: unknown or unsupported signal {name!r} (understood: a substrate, '<substrate> gradient',"
        f" {', '.join(repr(s) for s in SIMPLE_SIGNALS)}, 'damage', 'contact with <type>',"
        " 'custom:<per-cell column>')"
    )


def parse_behavior(
    name: str, types: list[str], substrates: list[str], units: list[str], columns: dict[str, str], key: str
) -> BehaviorSpec:
    """The spec of behaviour ``name`` (``key`` names the setting in errors)."""
    if name in COLUMN_BEHAVIORS:
        col, unit = COLUMN_BEHAVIORS[name]
        return BehaviorSpec("column", col, unit=unit)
    for suffix, (col, template) in SUBSTRATE_BEHAVIORS.items():
        if name.endswith(suffix) and name[: -len(suffix)] in substrates:
            j = substrates.index(name[: -len(suffix)])
            unit = template.format(u=_unit_of_substrate(units[j])).lstrip("*")
            return BehaviorSpec("column", col, sub=j, unit=unit)
    if name.startswith("attack ") and name[len("attack ") :] in types:
        return BehaviorSpec("attack", index=types.index(name[len("attack ") :]), unit="1/min")
    if name.startswith("transform to ") and name[len("transform to ") :] in types:
        return BehaviorSpec("transform", index=types.index(name[len("transform to ") :]), unit="1/min")
    dead = {
        "phagocytose apoptotic cell": "apoptotic",
        "phagocytose necrotic cell": "necrotic",
        "phagocytose other dead cell": "other_dead",
    }
    if name in dead:
        return BehaviorSpec("phagocytose", target=dead[name], unit="1/min")
    if name.startswith("phagocytose ") and name[len("phagocytose ") :] in types:
        return BehaviorSpec("phagocytose", index=types.index(name[len("phagocytose ") :]), unit="1/min")
    if name.startswith("custom:") and name[len("custom:") :] in columns:
        col = name[len("custom:") :]
        return BehaviorSpec("column", col, unit=columns[col])
    raise ConfigError(
        f"{key}: unknown or unsupported behaviour {name!r} (understood: {', '.join(repr(b) for b in COLUMN_BEHAVIORS)},"
        " '<substrate> secretion|secretion target|uptake|export', 'attack <type>', 'phagocytose apoptotic|necrotic|"
        "other dead cell', 'phagocytose <type>', 'transform to <type>', 'custom:<per-cell column>')"
    )
