"""The rule interface and the generic rules every type starts from."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tme_sim.cells import Column
from tme_sim.config import CellTypeConfig, value_in_unit
from tme_sim.errors import ConfigError
from tme_sim.plugins import import_submodules

if TYPE_CHECKING:
    from tme_sim.celltypes.context import BehaviorContext


class CellRules:
    """Generic rules: O2-dependent cycle entry and necrosis, background apoptosis,
    constant motility and the secretion/uptake given in the scenario.

    Subclasses (tumor, T cell, macrophage, fibroblast) add their own behaviour in
    :meth:`set_behaviors` and contact interactions in :meth:`interact`; every method works on
    arrays for all cells of the type and gets a :class:`~tme_sim.celltypes.context.BehaviorContext`
    (store, grid, contacts, generator, time, events), not the model. A subclass that sets
    ``rules_name`` registers itself under that name just by being defined (in this package, or in a
    user module named in the scenario's ``plugins``); scenarios select it with ``rules = "<name>"``.
    Per-cell state a behaviour needs beyond the core columns is declared in ``columns``
    (:class:`~tme_sim.cells.Column`).
    """

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "rules_name" in cls.__dict__:
            _REGISTRY[cls.rules_name] = cls

    rules_name: ClassVar[str] = "generic"
    #: per-cell columns this behaviour needs beyond the core ones (declared once; see :class:`Column`)
    columns: ClassVar[tuple[Column, ...]] = ()
    #: rule-specific parameters accepted in ``cell_types.<name>.params`` with their units
    param_units: dict[str, str] = {}

    def __init__(self, name: str, index: int, cfg: CellTypeConfig, ctx: BehaviorContext) -> None:
        self.name = name
        self.index = index
        self.cfg = cfg
        names = ctx.substrate_names
        units = ctx.substrate_units
        s = len(names)
        self.secretion_rate = np.zeros(s)
        self.saturation = np.zeros(s)
        self.uptake_rate = np.zeros(s)
        self.net_export = np.zeros(s)
        for sub, sc in cfg.secretion.items():
            j = names.index(sub)
            key = f"cell_types.{name}.secretion.{sub}"
            self.secretion_rate[j] = sc.secretion_rate
            self.uptake_rate[j] = sc.uptake_rate
            self.saturation[j] = value_in_unit(sc.saturation, units[j], key + ".saturation")
            self.net_export[j] = value_in_unit(sc.net_export, f"{units[j]}*um**3/min", key + ".net_export")
        self.o2 = names.index("oxygen")
        self.params = self._parse_params(cfg.params)

    def _parse_params(self, raw: dict) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in raw.items():
            if key not in self.param_units:
                known = ", ".join(sorted(self.param_units)) or "none"
                raise ConfigError(
                    f"cell_types.{self.name}.params.{key}: unknown parameter for rules "
                    f"{self.rules_name!r} (known: {known})"
                )
            out[key] = value_in_unit(value, self.param_units[key], f"cell_types.{self.name}.params.{key}")
        for key, (default, unit) in self.param_defaults().items():
            out.setdefault(key, value_in_unit(default, unit, f"cell_types.{self.name}.params.{key}"))
        return out

    def param_defaults(self) -> dict[str, tuple[str | float, str]]:
        """Defaults of rule parameters: name → (value with unit, unit)."""
        return {}

    # ------------------------------------------------------------------ behaviours
    def o2_factors(self, o2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cycle factor in [0,1], necrosis rate in 1/min) from local O2 (mmHg), PhysiCell style."""
        cyc = self.cfg.cycle
        if cyc.o2_dependent:
            span = max(cyc.o2_saturation - cyc.o2_threshold, 1e-12)
            fac = np.clip((o2 - cyc.o2_threshold) / span, 0.0, 1.0)
        else:
            fac = np.ones_like(o2)
        d = self.cfg.death
        if d.o2_necrosis:
            span = max(d.necrosis_o2_threshold - d.necrosis_o2_critical, 1e-12)
            nec = d.necrosis_max_rate * np.clip((d.necrosis_o2_threshold - o2) / span, 0.0, 1.0)
        else:
            nec = np.zeros_like(o2)
        return fac, nec

    def set_behaviors(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray) -> None:
        """Write behaviour columns for the cells at ``slots``; ``conc`` is (len(slots), S)."""
        st = ctx.store
        fac, nec = self.o2_factors(conc[:, self.o2])
        rate = self.cfg.cycle.entry_rate if self.cfg.cycle.model != "none" else 0.0
        st.cycle_rate[slots] = rate * fac
        st.necrosis_rate[slots] = nec + self.cfg.death.necrosis_rate
        st.apoptosis_rate[slots] = self.cfg.death.apoptosis_rate
        st.migration_speed[slots] = self.cfg.mechanics.speed
        chem = self.cfg.mechanics.chemotaxis
        st.chemotaxis_bias[slots] = chem.bias if chem is not None else 0.0
        st.secretion_rate[slots] = self.secretion_rate
        st.saturation[slots] = self.saturation
        st.uptake_rate[slots] = self.uptake_rate
        st.net_export[slots] = self.net_export
        self.silence_dead(ctx, slots)

    @staticmethod
    def silence_dead(ctx: BehaviorContext, slots: np.ndarray) -> None:
        """Dead cells neither secrete nor take up anything (PhysiCell zeroes both at death)."""
        st = ctx.store
        dead = slots[st.death[slots] != 0]
        if dead.size:
            for col in (st.secretion_rate, st.uptake_rate, st.net_export):
                col[dead] = 0.0

    def interact(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        """Contact interactions initiated by this type (killing, phagocytosis); none by default."""

    def recruit(self, ctx: BehaviorContext, dt: float) -> None:
        """Add cells of this type from sources (vessels); none by default."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Rule state that evolves during a run (for checkpoints); none by default."""
        return {}

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""


#: registered behaviours: ``rules_name`` → class (filled by :meth:`CellRules.__init_subclass__`)
_REGISTRY: dict[str, type[CellRules]] = {"generic": CellRules}


def rules_class(name: str, key: str = "rules") -> type[CellRules]:
    """The behaviour class for ``rules = "<name>"`` (imports the package's own behaviour modules on
    first use; user modules are imported from the scenario's ``plugins``); ``key`` names the
    setting in errors."""
    if name not in _REGISTRY:
        import_submodules("tme_sim.celltypes")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{key}: unknown behaviour {name!r} (known: {', '.join(sorted(_REGISTRY))}{hint} "
            "User behaviours come from the scenario's plugins.)"
        ) from None


def rules_names() -> list[str]:
    """Every registered behaviour name."""
    import_submodules("tme_sim.celltypes")
    return sorted(_REGISTRY)
