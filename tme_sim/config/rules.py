"""The behaviour-rules table of a cell type (PhysiCell's rules grammar, ``cell_rules.csv`` v3).

``[[cell_types.<name>.behavior_rules]]`` entries read "in the presence of ``signal``, ``behavior``
``direction`` (increases/decreases) towards ``saturation`` with a Hill response of half-maximum
``half_max`` and power ``hill_power``". Signal and behaviour names are PhysiCell's dictionary
names (``oxygen``, ``pressure``, ``contact with tumor``, ``cycle entry``, ``IL10 secretion``,
``attack tumor``…); :mod:`tme_sim.rules` lists the ones tme-sim evaluates and checks them when the
model is built. Values are in the simulator's units (1/min for rates, µm/min for speeds, µm³ for
volume, minutes for time, the substrate's unit for concentrations), or strings with a unit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tme_sim.units import Rate, Time


class BehaviorRule(BaseModel):
    """One signal → behaviour Hill response (a row of PhysiCell's ``cell_rules.csv``, v3 layout)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    signal: str = Field(min_length=1, description="what the cell senses (PhysiCell signal name)")
    direction: Literal["increases", "decreases"]
    behavior: str = Field(min_length=1, description="what it changes (PhysiCell behaviour name)")
    saturation: str | float = Field(
        description="the behaviour's value at full response (PhysiCell's 'max response value')"
    )
    half_max: str | float = Field(description="signal value of half response, in the signal's unit")
    hill_power: float = Field(gt=0.0, description="Hill coefficient")
    applies_to_dead: bool = Field(False, description="the rule also acts on dead cells")


class InteractionsConfig(BaseModel):
    """Base rates of the contact interactions and transformations the rules engine carries out
    (PhysiCell's ``cell_interactions`` and ``cell_transformations``); rules modulate them.

    ``phagocytosis`` keys: ``apoptotic``, ``necrotic``, ``other_dead`` (dead cells of any type) or a
    cell type (engulfing live cells of it); ``attack``: cell type → rate of killing a touching live
    cell of it; ``transformation``: cell type → rate of turning into it. All rates in 1/min; each
    phenotype step an event happens with probability ``1 − exp(−rate·dt)``.

    An attack kills at once, unless ``attack_damage_rate`` and ``attack_duration`` are both > 0
    (PhysiCell's damage model): then, as in PhysiCell, a free attacker starts attacks at ``rate``
    per touching live target (``rate · k`` with ``k`` of them), stays busy ``attack_duration`` per
    attack, and each attack adds ``attack_damage_rate · attack_duration`` to the target's
    ``damage`` (dimensionless, never repaired); rules on the signal ``damage`` decide what it does
    (e.g. ``damage increases apoptosis``).
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    phagocytosis: dict[str, Rate] = {}
    attack: dict[str, Rate] = {}
    attack_damage_rate: Rate = "0 1/min"
    attack_duration: Time = "0 min"
    transformation: dict[str, Rate] = {}
