"""The rules engine: a cell type's ``behavior_rules`` and ``interactions``, evaluated on arrays.

One :class:`RuleTable` per cell type. Each phenotype step the model calls

* :meth:`RuleTable.apply` after the type's hand-written behaviour has written its columns: every
  behaviour that has rules is recomputed from its base value (what the behaviour wrote, i.e. the
  type's setting) with PhysiCell's response (:func:`tme_sim.rules.hill.rule_response`);
* :meth:`RuleTable.interact` after the hand-written interactions: transformations, attacks and
  phagocytosis at the rates the rules give (base rates from ``interactions``), each an event with
  probability ``1 − exp(−rate·dt)`` per phenotype step, random numbers from the model's generator.

Rules of one behaviour share one "max" (the saturation of its last increasing rule) and one
"min" (of its last decreasing rule), as in PhysiCell, where a behaviour has a single rule object.
Nothing here loops over cells in Python: loops run over rules and types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tme_sim.cells import ALIVE, APOPTOTIC, KI67_NEGATIVE, NECROTIC_LYSED, NECROTIC_SWELLING, CellStore
from tme_sim.errors import ConfigError
from tme_sim.rules.hill import rule_response
from tme_sim.rules.vocabulary import BehaviorSpec, SignalSpec, parse_behavior, parse_signal
from tme_sim.units import to_unit


class RulesContext(Protocol):
    """What the engine uses of the simulation (a :class:`~tme_sim.celltypes.context.BehaviorContext`
    provides it)."""

    store: Any
    grid: Any
    neighbours: Any
    rng: np.random.Generator
    type_names: list[str]

    @property
    def time(self) -> float: ...

    @property
    def dt_pheno(self) -> float: ...

    def record(self, kind: str, slots: np.ndarray, other: np.ndarray | int = -1) -> None: ...

    def sample(self, slots: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class _Rule:
    signal: SignalSpec
    up: bool
    half_max: float
    power: float
    applies_to_dead: bool


@dataclass
class _Behavior:
    spec: BehaviorSpec
    rules: list[_Rule] = field(default_factory=list)
    up_value: float = 0.0
    down_value: float = 0.0
    base: float | None = None  # interactions: the configured base rate; columns: read from the store


def _value(value: str | float, unit: str, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0  # a plain 0 needs no unit
    try:
        return to_unit(value, unit, allow_dimensionless=unit in ("", "1"))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def store_float_columns(store: CellStore) -> dict[str, str]:
    """Scalar float columns of ``store`` by name → unit (what ``custom:<name>`` may address)."""
    return {
        c.name: c.unit
        for c in store.columns
        if np.issubdtype(c.dtype, np.floating) and c.trailing_shape(store.n_substrates) == ()
    }


class RuleTable:
    """The compiled rules and interactions of one cell type.

    Parameters
    ----------
    type_name, type_index:
        The type this table drives.
    cfg:
        Its :class:`~tme_sim.config.CellTypeConfig` (``behavior_rules``, ``interactions``).
    type_names, substrate_names, substrate_units:
        Names of every type and substrate (rules refer to them by name).
    columns:
        Scalar float per-cell columns → unit (``custom:<column>`` signals and behaviours).
    """

    def __init__(
        self,
        type_name: str,
        type_index: int,
        cfg: Any,
        type_names: list[str],
        substrate_names: list[str],
        substrate_units: list[str],
        columns: dict[str, str],
    ) -> None:
        self.name = type_name
        self.index = type_index
        self.substrate_names = list(substrate_names)
        by_key: dict[tuple, _Behavior] = {}
        args = (type_names, substrate_names, substrate_units, columns)
        for i, rule in enumerate(cfg.behavior_rules):
            key = f"cell_types.{type_name}.behavior_rules[{i}]"
            sig = parse_signal(rule.signal, *args, key=f"{key}.signal")
            spec = parse_behavior(rule.behavior, *args, key=f"{key}.behavior")
            beh = by_key.setdefault(spec.key, _Behavior(spec))
            half = _value(rule.half_max, sig.unit, f"{key}.half_max")
            if half < 0:
                raise ConfigError(f"{key}.half_max: must be >= 0")
            sat = _value(rule.saturation, spec.unit, f"{key}.saturation")
            up = rule.direction == "increases"
            if up:
                beh.up_value = sat
            else:
                beh.down_value = sat
            beh.rules.append(_Rule(sig, up, half, float(rule.hill_power), bool(rule.applies_to_dead)))
        inter = cfg.interactions
        #: damage one attack adds to its target (0: an attack kills at once)
        self.attack_damage = (
            inter.attack_damage_rate * inter.attack_duration
            if inter.attack_damage_rate > 0 and inter.attack_duration > 0
            else 0.0
        )
        #: mean length of one attack (min): the attacker is busy, and starts no other, meanwhile
        self.attack_duration = float(inter.attack_duration)
        #: how far (× the sum of radii) attacks with damage reach: PhysiCell's interaction neighbours
        #: are the cells within its maximum adhesion distance
        self.attack_reach = float(cfg.mechanics.max_adhesion_distance)
        for target, rate in inter.phagocytosis.items():
            if target in ("apoptotic", "necrotic"):
                spec = BehaviorSpec("phagocytose", target=target, unit="1/min")
            elif target in type_names:
                spec = BehaviorSpec("phagocytose", index=type_names.index(target), unit="1/min")
            else:
                raise ConfigError(
                    f"cell_types.{type_name}.interactions.phagocytosis.{target}: expected 'apoptotic', "
                    f"'necrotic' or a cell type ({', '.join(type_names)})"
                )
            by_key.setdefault(spec.key, _Behavior(spec)).base = rate
        for kind, table in (("attack", inter.attack), ("transform", inter.transformation)):
            for target, rate in table.items():
                if target not in type_names:
                    raise ConfigError(
                        f"cell_types.{type_name}.interactions.{'attack' if kind == 'attack' else 'transformation'}."
                        f"{target}: not a cell type ({', '.join(type_names)})"
                    )
                spec = BehaviorSpec(kind, index=type_names.index(target), unit="1/min")
                by_key.setdefault(spec.key, _Behavior(spec)).base = rate
        for beh in by_key.values():
            if beh.spec.kind != "column" and beh.base is None:
                beh.base = 0.0
            if beh.spec.kind == "column":
                # a behaviour without rules in one direction stays at its base that way
                beh.up_value = beh.up_value if any(r.up for r in beh.rules) else 0.0
                beh.down_value = beh.down_value if any(not r.up for r in beh.rules) else 0.0
        self.column_behaviors = [b for b in by_key.values() if b.spec.kind == "column"]
        self.interactions = [b for b in by_key.values() if b.spec.kind != "column"]
        self.has_transform = any(b.spec.kind == "transform" for b in self.interactions)

    @property
    def active(self) -> bool:
        """Whether this type has any rule or interaction."""
        return bool(self.column_behaviors or self.interactions)

    # ------------------------------------------------------------------ signals
    def _signal(
        self, spec: SignalSpec, ctx: RulesContext, slots: np.ndarray, conc: np.ndarray | None, cache: dict
    ) -> np.ndarray:
        if spec in cache:
            return cache[spec]
        st = ctx.store
        n = slots.size
        if spec.kind == "substrate":
            if conc is None:
                if "conc" not in cache:
                    cache["conc"] = ctx.sample(slots)
                conc = cache["conc"]
            out = conc[:, spec.index]
        elif spec.kind == "gradient":
            grad = ctx.grid.gradient(self.substrate_names[spec.index], st.position[slots])
            out = np.linalg.norm(grad, axis=1)
        elif spec.kind == "pressure":
            out = ctx.neighbours.pressure(slots)
        elif spec.kind == "volume":
            out = st.volume[slots]
        elif spec.kind == "dead":
            out = (st.death[slots] != ALIVE).astype(np.float64)
        elif spec.kind == "apoptotic":
            out = (st.death[slots] == APOPTOTIC).astype(np.float64)
        elif spec.kind == "necrotic":
            d = st.death[slots]
            out = ((d == NECROTIC_SWELLING) | (d == NECROTIC_LYSED)).astype(np.float64)
        elif spec.kind == "time":
            out = np.full(n, ctx.time)
        elif spec.kind in ("contact", "contact with live cell"):
            if "counts" not in cache:
                cache["counts"] = ctx.neighbours.counts(slots)
            counts = cache["counts"]
            out = (counts[:, spec.index] if spec.kind == "contact" else counts.sum(axis=1)).astype(np.float64)
        elif spec.kind == "custom":
            out = getattr(st, spec.column)[slots].astype(np.float64)
        else:  # pragma: no cover - parse_signal admits only the kinds above
            raise AssertionError(spec.kind)
        cache[spec] = out
        return out

    def _evaluate(
        self,
        beh: _Behavior,
        base: np.ndarray,
        ctx: RulesContext,
        slots: np.ndarray,
        conc: np.ndarray | None,
        cache: dict,
    ) -> np.ndarray:
        alive = ctx.store.death[slots] == ALIVE
        applies_any = np.zeros(slots.size, dtype=np.bool_)
        cols: dict[bool, list[np.ndarray]] = {True: [], False: []}
        half: dict[bool, list[float]] = {True: [], False: []}
        power: dict[bool, list[float]] = {True: [], False: []}
        for r in beh.rules:
            applies = alive | r.applies_to_dead
            applies_any |= applies
            cols[r.up].append(np.where(applies, self._signal(r.signal, ctx, slots, conc, cache), 0.0))
            half[r.up].append(r.half_max)
            power[r.up].append(r.power)

        def group(up: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            sig = np.stack(cols[up], axis=1) if cols[up] else np.zeros((slots.size, 0))
            return sig, np.asarray(half[up], dtype=np.float64), np.asarray(power[up], dtype=np.float64)

        out = rule_response(base, beh.up_value, beh.down_value, group(True), group(False))
        return np.where(applies_any, out, base)

    # ------------------------------------------------------------------ behaviours
    def apply(self, ctx: RulesContext, slots: np.ndarray, conc: np.ndarray) -> None:
        """Recompute the behaviour columns that have rules for the cells at ``slots`` (``conc`` is
        ``(len(slots), S)``), from the values the type's behaviour has just written."""
        if not self.column_behaviors or slots.size == 0:
            return
        st = ctx.store
        cache: dict = {}
        for beh in self.column_behaviors:
            col = getattr(st, beh.spec.column)
            if beh.spec.sub >= 0:
                col[slots, beh.spec.sub] = self._evaluate(beh, col[slots, beh.spec.sub], ctx, slots, conc, cache)
            else:
                col[slots] = self._evaluate(beh, col[slots], ctx, slots, conc, cache)

    def apply_to_dead(self, ctx: RulesContext, slots: np.ndarray) -> None:
        """After the fates: recompute, for the dead cells among ``slots``, the behaviour columns with
        a rule that applies to dead cells (PhysiCell's ``applies_to_dead``, e.g. the debris a dead
        cell secretes), which death has just zeroed; nothing else changes."""
        behs = [b for b in self.column_behaviors if any(r.applies_to_dead for r in b.rules)]
        if not behs or slots.size == 0:
            return
        st = ctx.store
        dead = slots[st.death[slots] != ALIVE]
        if dead.size == 0:
            return
        conc = ctx.sample(dead)
        cache: dict = {}
        for beh in behs:
            col = getattr(st, beh.spec.column)
            if beh.spec.sub >= 0:
                col[dead, beh.spec.sub] = self._evaluate(beh, col[dead, beh.spec.sub], ctx, dead, conc, cache)
            else:
                col[dead] = self._evaluate(beh, col[dead], ctx, dead, conc, cache)

    def rates(self, ctx: RulesContext, slots: np.ndarray) -> dict[tuple, np.ndarray]:
        """Per-cell rates (1/min) of this type's interactions at ``slots``, by behaviour key."""
        cache: dict = {}
        out = {}
        for beh in self.interactions:
            base = np.full(slots.size, float(beh.base or 0.0))
            out[beh.spec.key] = self._evaluate(beh, base, ctx, slots, None, cache) if beh.rules else base
        return out

    def _attack_with_damage(self, ctx: RulesContext, attackers: np.ndarray, rate: np.ndarray, target_type: int) -> None:
        """PhysiCell's damage model over one phenotype step of ``ctx.dt_pheno`` minutes.

        PhysiCell (``standard_cell_cell_interactions``) gives a free attacker, at every mechanics
        step, a chance ``rate · dt`` to start an attack on *each* live neighbour of the target type
        in turn, so attacks start at ``rate · k`` per minute with ``k`` such neighbours; an attack
        then lasts ``attack_duration`` on average (the attacker is busy meanwhile) and delivers
        ``attack_damage_rate · attack_duration`` damage. Here the attacks of one attacker in the
        step are Poisson with mean ``dt · rate·k / (1 + rate·k·attack_duration)`` (idle then busy
        cycles), each on a uniformly picked touching target, which is the same as independent
        Poisson attacks on every neighbour. Neighbours are the cells within the attacker's
        ``max_adhesion_distance`` × the sum of radii (PhysiCell's interaction distance when both
        types share it). ``rate`` is ``(len(attackers),)`` in 1/min.
        """
        nb = ctx.neighbours
        k = nb.counts(attackers, reach=self.attack_reach)[:, target_type].astype(np.float64)
        rk = rate * k
        n_attacks = ctx.rng.poisson(ctx.dt_pheno * rk / (1.0 + rk * self.attack_duration))
        mask = nb.type_mask([target_type])
        st = ctx.store
        for m in range(1, int(n_attacks.max(initial=0)) + 1):
            target = nb.pick(attackers[n_attacks >= m], mask, ctx.rng, reach=self.attack_reach)
            np.add.at(st.damage, target[target >= 0], self.attack_damage)

    def interact(self, ctx: RulesContext, slots: np.ndarray, remove: Any) -> None:
        """Transformations, attacks and phagocytosis by the live cells at ``slots``; ``remove(slots,
        kind)`` removes engulfed cells (done once, at the end, so slots stay valid until then)."""
        if not self.interactions:
            return
        st = ctx.store
        act = slots[st.death[slots] == ALIVE]
        if act.size == 0:
            return
        dt = ctx.dt_pheno
        rng = ctx.rng
        rates = self.rates(ctx, act)
        acting = np.ones(act.size, dtype=np.bool_)
        for beh in self.interactions:
            if beh.spec.kind != "transform":
                continue
            p = 1.0 - np.exp(-np.maximum(rates[beh.spec.key], 0.0) * dt)
            hit = acting & (rng.random(act.size) < p)
            if hit.any():
                st.change_type(act[hit], beh.spec.index)
                ctx.record("transformation", act[hit])
                acting &= ~hit
        all_types = ctx.neighbours.type_mask(range(len(ctx.type_names)))
        for beh in self.interactions:
            if beh.spec.kind != "attack":
                continue
            r = rates[beh.spec.key]
            cand = act[acting & (r > 0)]
            if cand.size == 0:
                continue
            if self.attack_damage > 0:
                self._attack_with_damage(ctx, cand, r[acting & (r > 0)], beh.spec.index)
                continue
            target = ctx.neighbours.pick(cand, ctx.neighbours.type_mask([beh.spec.index]), rng)
            p = 1.0 - np.exp(-r[acting & (r > 0)] * dt)
            ok = (target >= 0) & (rng.random(cand.size) < p)
            killers, victims = cand[ok], target[ok]
            live = st.death[victims] == ALIVE
            killers, victims = killers[live], victims[live]
            if victims.size:
                v_unique, first = np.unique(victims, return_index=True)
                st.death[v_unique] = APOPTOTIC
                st.death_clock[v_unique] = 0.0
                st.phase[v_unique] = KI67_NEGATIVE
                st.zero_on_death(v_unique)
                st.kills[killers[first]] += 1
                ctx.record("kill", v_unique, st.id[killers[first]])
        eaten: list[np.ndarray] = []
        dead_rates = {
            b.spec.target: rates[b.spec.key]
            for b in self.interactions
            if b.spec.kind == "phagocytose" and b.spec.target
        }
        if dead_rates:
            zero = np.zeros(act.size)
            r_apo, r_nec = dead_rates.get("apoptotic", zero), dead_rates.get("necrotic", zero)
            sel = acting & ((r_apo > 0) | (r_nec > 0))
            cand = act[sel]
            if cand.size:
                target = ctx.neighbours.pick(cand, all_types, rng, dead=True)
                has = target >= 0
                d = st.death[np.where(has, target, 0)]
                r = np.where(d == APOPTOTIC, r_apo[sel], r_nec[sel])
                ok = has & (rng.random(cand.size) < 1.0 - np.exp(-r * dt))
                eaten.append(target[ok])
        for beh in self.interactions:
            if beh.spec.kind != "phagocytose" or beh.spec.target:
                continue
            r = rates[beh.spec.key]
            sel = acting & (r > 0)
            cand = act[sel]
            if cand.size == 0:
                continue
            target = ctx.neighbours.pick(cand, ctx.neighbours.type_mask([beh.spec.index]), rng)
            ok = (target >= 0) & (rng.random(cand.size) < 1.0 - np.exp(-r[sel] * dt))
            eaten.append(target[ok])
        if eaten:
            victims = np.unique(np.concatenate(eaten))
            if victims.size:
                remove(victims, "phagocytosis")


def build_rule_tables(
    scenario: Any, substrate_names: list[str], substrate_units: list[str], store: CellStore
) -> list[RuleTable]:
    """One :class:`RuleTable` per cell type of ``scenario`` (in type order)."""
    names = list(scenario.cell_types)
    columns = store_float_columns(store)
    subs = list(substrate_names)
    return [
        RuleTable(name, i, cfg, names, subs, substrate_units, columns)
        for i, (name, cfg) in enumerate(scenario.cell_types.items())
    ]
