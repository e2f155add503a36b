"""TMEModel: the Mesa model that owns the grid, the cell store and the step loop.

One call of :meth:`TMEModel.step` advances one mechanics step (``time.mechanics_dt``):

1. the diffusion grid advances ``mechanics_dt / diffusion_dt`` implicit substeps in one compiled
   call, with the cell secretion/uptake coupling of the current positions (refreshed at the end
   of the step before);
   when ``diffusion_dt`` is a whole multiple ``k`` of ``mechanics_dt`` instead, the grid advances
   one step of ``diffusion_dt`` on every ``k``-th mechanics step (fields quasi-steady at the scale
   of cell motion; the accuracy cost is measured in ``benchmarks/flagship_dt.py``);
2. motility directions are updated for motile cells (random walk with persistence, chemotaxis
   up a named field), then the mechanics kernel computes interaction velocities and positions
   advance (Adams–Bashforth 2);
3. when the phenotype clock is due: local concentrations are sampled, each type's rules set its
   behaviours, intracellular models override them (one batched call per type), contacts act
   (killing, phagocytosis), fates change (cycle, death, division, removal) and recruitment adds
   cells;
4. the cell–grid coupling is refreshed if the next step advances the grid, and the observers
   are told.

Everything is arrays: no per-agent Python runs in the loop. Mesa agent handles
(:mod:`tme_sim.model.agents`) are created lazily when a user reads ``model.agents``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import mesa
import numpy as np

import tme_sim.mechanics as mech
from tme_sim.cells import ALIVE, APOPTOTIC, KI67_NEGATIVE, NECROTIC_LYSED, NECROTIC_SWELLING, CellStore
from tme_sim.celltypes import rules_class
from tme_sim.celltypes.context import BehaviorContext, Clock
from tme_sim.config import Scenario, scenario_dir
from tme_sim.contacts import Neighbours
from tme_sim.drugs.dosing import build_dosing
from tme_sim.errors import ConfigError, ResourceError
from tme_sim.events import EventLog
from tme_sim.grid import Microenvironment
from tme_sim.grid import kernels as K
from tme_sim.intracellular.base import Signals
from tme_sim.intracellular.factory import CELL_SIGNALS, build_intracellular, uses_model, wire_drugs
from tme_sim.mechanics import CellList, ab2_update, direct_velocities
from tme_sim.model.agents import sync_handles
from tme_sim.model.intracellular_step import IntracellularStep
from tme_sim.model.setup import (
    BoundaryPulses,
    available_memory,
    check_settings,
    estimate_memory,
    layer_thickness,
    placement_count,
    placement_positions,
    placement_types,
    resolve_substrates,
    set_boundaries,
    type_tables,
)
from tme_sim.motility import Motility, add_motility
from tme_sim.parallel import KernelChooser
from tme_sim.phenotype import fate_transitions, random_unit_vectors, randomize_cycle, relax_volumes
from tme_sim.plugins import load_plugins
from tme_sim.rules import build_rule_tables
from tme_sim.vessels import build_vessels

if TYPE_CHECKING:
    from tme_sim.intracellular.base import IntracellularModel


class Observer(Protocol):
    """What the step loop calls on an observer (:mod:`tme_sim.io.observers` has the shipped ones)."""

    def on_start(self, model: TMEModel) -> None: ...

    def on_step(self, model: TMEModel) -> None: ...

    def on_finish(self, model: TMEModel) -> None: ...


__all__ = ["APOPTOTIC", "NECROTIC_LYSED", "NECROTIC_SWELLING", "TMEModel"]


class TMEModel(mesa.Model):
    """A tumor-microenvironment simulation built from a validated :class:`Scenario`.

    Parameters
    ----------
    scenario:
        The validated scenario.
    seed:
        Overrides ``scenario.seed``; the model's ``numpy.random.Generator`` (``self.rng``, Mesa's)
        is the only source of randomness.
    """

    def __init__(self, scenario: Scenario, *, seed: int | None = None) -> None:
        self.seed_value = int(scenario.seed if seed is None else seed)
        check_settings(scenario, self.seed_value)  # before anything is computed or allocated
        super().__init__(rng=self.seed_value)
        self.scenario = scenario
        load_plugins(list(scenario.plugins), scenario_dir(scenario))
        self.dim = scenario.domain.dim
        domain = np.zeros(3)
        domain[: self.dim] = scenario.domain.size
        self.domain = domain
        self.n_mech_steps = 0
        ts = scenario.time
        self.dt_diff = ts.diffusion_dt
        self.dt_mech = ts.mechanics_dt
        self.dt_pheno = ts.phenotype_dt
        self.clock = Clock(0.0, self.dt_pheno)
        if self.dt_diff <= self.dt_mech * (1 + 1e-9):
            self.diff_substeps, self.diff_every = round(self.dt_mech / self.dt_diff), 1
        else:  # the grid steps once every ``diff_every`` mechanics steps
            self.diff_substeps, self.diff_every = 1, round(self.dt_diff / self.dt_mech)
        self.pheno_every = round(self.dt_pheno / self.dt_mech)

        # ---- grid
        n_initial = sum(placement_count(p, self.dim, scenario) for p in scenario.initial_cells)
        need = estimate_memory(scenario, n_initial)
        if need > 0.8 * available_memory():
            raise ResourceError(
                f"scenario {scenario.name!r} needs about {need / 2**30:.1f} GiB (grid and cells) but only "
                f"{available_memory() / 2**30:.1f} GiB are available; use a larger dx, a smaller domain or fewer cells"
            )
        self.substrates = resolve_substrates(scenario)

        self.dosing = build_dosing(scenario, self.substrates)  # [drugs]: appends the drug substrates
        self.substrate_names = [s.name for s in self.substrates]
        self.substrate_units = [s.unit for s in self.substrates]
        units = dict(zip(self.substrate_names, self.substrate_units, strict=True))
        dtype = np.float32 if scenario.domain.float32_fields else np.float64
        try:
            self.micro = Microenvironment(
                tuple(scenario.domain.size),
                scenario.domain.dx,
                self.substrates,
                dtype=dtype,
                scheme=scenario.time.diffusion_scheme,
                lod_form=scenario.time.lod_form,
                thickness=layer_thickness(scenario),
            )
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"domain: {exc}") from None
        set_boundaries(scenario, self.micro, units)
        self.pulses = BoundaryPulses(scenario, self.micro, units)

        # Dirichlet O2/glucose voxels and immune entry points
        self.vessels = build_vessels(scenario, self.micro, self.substrate_names, self.substrate_units, self.seed_value)
        if self.dosing is not None:
            # plasma drug -> Dirichlet values on entry faces / vessel voxels
            self.dosing.attach(self.micro, self.vessels, self.dim, self.dt_mech, self.n_mech_steps)

        # ---- cell types: behaviours get a narrow context, not the model
        self.type_names = list(scenario.cell_types)
        self.ctx = BehaviorContext(
            scenario=scenario,
            type_names=self.type_names,
            substrate_names=self.substrate_names,
            substrate_units=self.substrate_units,
            dim=self.dim,
            domain=self.domain,
            clock=self.clock,
            rng=self.rng,
            grid=self.micro,
            vessels=self.vessels,
            rules_of_type=[cfg.rules for cfg in scenario.cell_types.values()],
            spawn=lambda types, positions, kind: self.add_cells(types, positions, kind=kind),
            remove=lambda slots, kind: self.remove_cells(slots, kind=kind),
        )
        self.rules = [
            rules_class(cfg.rules, f"cell_types.{name}.rules")(name, i, cfg, self.ctx)
            for i, (name, cfg) in enumerate(scenario.cell_types.items())
        ]
        self.intracellular: dict[int, IntracellularModel] = {}
        for i, (name, cfg) in enumerate(scenario.cell_types.items()):
            key = f"cell_types.{name}.intracellular"
            if uses_model(cfg.intracellular, key):
                self.intracellular[i] = build_intracellular(
                    cfg.intracellular,
                    scenario_dir(scenario),
                    key,
                    substrate_names=self.substrate_names,
                    dosing=self.dosing,
                    substrate_units={sp.name: sp.unit for sp in self.substrates},
                )
        self.intracellular_step = IntracellularStep(self.intracellular, self.substrate_names)
        self.tables = type_tables(scenario)
        sizes = {t: m.n_state for t, m in self.intracellular.items()}
        extra_columns = list(dict.fromkeys(c for r in self.rules for c in type(r).columns))
        try:
            self.store = CellStore(
                len(self.substrates),
                self.type_names,
                sizes,
                # 25 % headroom for growth (the store grows column by column when needed): at
                # 10⁶ cells each slot is ~650 B, so 2× headroom cost 0.65 GB of unused memory
                capacity=max(64, n_initial + n_initial // 4),
                extra_columns=extra_columns,
            )
        except ValueError as exc:
            raise ConfigError(f"cell_types: {exc}") from None
        self.events = EventLog()
        self.rule_tables = build_rule_tables(scenario, self.substrate_names, self.substrate_units, self.store)

        # ---- mechanics
        max_r = float(np.max(np.cbrt(self.tables.volume0 * 3 / (4 * np.pi))))
        self.cell_list = CellList(domain, self.dim, self._cutoff_for(max_r))
        # small motile cells (T cells) get wider Verlet margins: fewer list rebuilds (mechanics.list_margins)
        self.cell_list.motile_types = np.array([c.mechanics.speed > 0 for c in scenario.cell_types.values()])
        # Locality re-sorts (every ~50 mechanics steps) run right after a phenotype step: divisions
        # and removals there drop the Verlet lists anyway, so a re-sort then costs no extra list
        # build (re-sorting at other steps cost the flagship ~15 % more builds).
        self.reorder_every = self.pheno_every * max(1, math.ceil(50 / self.pheno_every))
        self._velocity_kernel = KernelChooser(mech.ADAPTIVE_MIN_CELLS)  # serial or threaded forces
        self.neighbours = Neighbours(self.store, self.cell_list, self.dim, len(self.type_names))
        self.ctx.store = self.store
        self.ctx.neighbours = self.neighbours
        self.ctx.events = self.events

        self.observers: list[Observer] = []
        self._handles_version = -1
        self._population_version = 0
        self._handle_of_id: dict[int, mesa.Agent] = {}

        self._entry_rates = np.array([c.cycle.entry_rate for c in scenario.cell_types.values()])
        chem: list[tuple | None] = []
        for cfg in scenario.cell_types.values():
            c = cfg.mechanics.chemotaxis
            chem.append(None if c is None else (c.weights(), c.normalize_each_gradient))
        persistence = np.array([c.mechanics.persistence for c in scenario.cell_types.values()])
        self.motility = Motility(persistence, chem, self.dt_mech)
        self._motile = np.zeros(0, dtype=np.int64)
        self._coupling_dirty = True
        self._coupled_voxels = np.zeros(0, np.int64)
        self._row_order = np.zeros(0, np.int64)  # cells in canonical coupling order (update_coupling)
        self._place_initial_cells()
        self.reorder_for_locality()  # neighbours close in memory from the first step
        self.phenotype_step(initial=True)
        self.update_coupling()

    # ------------------------------------------------------------------ clocks
    @property
    def time(self) -> float:
        """Simulated time (min)."""
        return self.clock.time

    @time.setter
    def time(self, value: float) -> None:
        self.clock.time = float(value)

    # ------------------------------------------------------------------ setup helpers
    def _cutoff_for(self, max_radius: float) -> float:
        """Largest interaction distance (µm) for cells up to ``max_radius``: 2·r·max adhesion ratio."""
        return 2.0 * max_radius * float(np.max(self.tables.adhesion_rel))

    def _refresh_cutoff(self) -> None:
        """Widen the cell-list bins when cells grew (division halves, swelling grows radii)."""
        st = self.store
        if st.n == 0:
            return
        needed = self._cutoff_for(float(st.radius[: st.n].max()))
        if needed > self.cell_list.cutoff + 1e-9:
            self.cell_list.set_cutoff(needed * 1.05)

    def _place_initial_cells(self) -> None:
        for i, p in enumerate(self.scenario.initial_cells):
            pos = placement_positions(p, f"initial_cells[{i}]", self.dim, self.domain, self.rng, self.scenario)
            types = placement_types(p, len(pos), self.type_names, self.rng)
            slots = self.add_cells(types, pos, kind=None)
            randomize_cycle(self.store, slots, self.tables, self._entry_rates, self.rng)

    # ------------------------------------------------------------------ cells
    def add_cells(
        self,
        types: np.ndarray,
        positions: np.ndarray,
        *,
        kind: str | None = "recruitment",
        istate: dict[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Add cells (vectorized); returns their slots. Records an event unless ``kind`` is None."""
        types = np.asarray(types, dtype=np.int16)
        positions = np.clip(np.asarray(positions, dtype=np.float64), 0.0, self.domain)
        if self.dim == 2:
            positions[:, 2] = 0.0
        vols = self.tables.volume0[types]
        rows = dict(istate or {})
        for t, m in self.intracellular.items():
            k = int(np.sum(types == t))
            if k and t not in rows:
                rows[t] = m.initial_state(k, self.rng)
        slots = self.store.add(types, positions, vols, self.time, rows)
        self.cell_list.invalidate()
        self._coupling_dirty = True
        self._population_version += 1
        if kind is not None and slots.size:
            self.events.record(kind, self.time, self.store.id[slots], -1, types, positions)
        return slots

    def remove_cells(self, slots: np.ndarray, kind: str | None = None) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size == 0:
            return
        if kind is not None:
            self.ctx.record(kind, slots)
        self.store.remove(slots)
        self.cell_list.invalidate()
        self._coupling_dirty = True
        self._population_version += 1

    def attach_drugs(self, cell_type: str, names: list[str]) -> Any:
        """Make the drugs ``names`` act on ``cell_type``'s intracellular model; returns the effects.

        The programmatic form of ``drugs = [...]`` in a type's ``intracellular`` table: every drug
        must be given in the scenario's ``[drugs]``. Replaces drugs attached before.
        """
        key = f"cell_types.{cell_type}.intracellular"
        if cell_type not in self.type_names:
            raise ConfigError(f"{key}: unknown cell type {cell_type!r} (types: {', '.join(self.type_names)})")
        im = self.intracellular.get(self.type_names.index(cell_type))
        if im is None:
            raise ConfigError(f"{key}: cell type {cell_type!r} has no intracellular model for drugs to act on")
        return wire_drugs(im, names, self.dosing, key)

    # ------------------------------------------------------------------ step loop
    def step(self) -> None:
        """Advance one mechanics step (``time.mechanics_dt`` minutes)."""
        if self.pulses:
            self.pulses.apply(self.time)
        if self.dosing is not None:
            self.dosing.apply(self.n_mech_steps)
        if self.n_mech_steps % self.diff_every == 0:
            self.micro.advance(self.dt_diff, self.diff_substeps)
        self.mechanics_step()
        self.n_mech_steps += 1
        self.time = self.n_mech_steps * self.dt_mech  # no accumulated rounding
        if self.n_mech_steps % self.pheno_every == 0:
            self.phenotype_step()
        if self.n_mech_steps % self.reorder_every == 0:
            self.reorder_for_locality()
        if self.n_mech_steps % self.diff_every == 0:  # the next step advances the grid
            self.update_coupling()
        for obs in self.observers:
            obs.on_step(self)

    def run_for(self, duration: float, observers: Iterable[Observer] = ()) -> None:
        """Run ``duration`` minutes (rounded to whole mechanics steps), notifying ``observers``."""
        added = [o for o in observers if o not in self.observers]
        self.observers.extend(added)
        try:
            for obs in added:
                obs.on_start(self)
            n_steps = round(duration / self.dt_mech)
            for _ in range(n_steps):
                self.step()
            for obs in added:
                obs.on_finish(self)
        finally:
            for obs in added:
                self.observers.remove(obs)

    def mechanics_step(self) -> None:
        st = self.store
        n = st.n
        if n == 0:
            return
        # new random-walk directions (with persistence) and chemotaxis for motile cells only
        self._motile = self.motility.update(st, self.micro, self.rng, self.dim, ALIVE)
        cl = self.cell_list
        lists = cl.neighbors(st.position, n, st.radius, st.type, self.tables.adhesion_rel)
        vel = st.velocity
        chooser = self._velocity_kernel
        chooser.min_work = min(mech.ADAPTIVE_MIN_CELLS, mech.PARALLEL_MIN_CELLS)  # read at call time
        par = chooser.use_parallel(n)
        t0 = time.perf_counter()
        # pair constants computed in the force loop (no per-pair coefficient array: 0.4 GB at 10⁶ cells)
        direct_velocities(st.position, st.radius, st.type, st.death, n, self.tables.repulsion, self.tables.adhesion,
                          self.tables.adhesion_rel, lists, self.domain, self.dim, vel, parallel=par,
                          work=cl.pair_work())  # fmt: skip
        chooser.record(par, time.perf_counter() - t0, n)
        motile = self._motile
        if motile.size:
            add_motility(motile, st.migration_speed, st.motility_dir, vel)
        moved = ab2_update(st.position, vel, st.prev_velocity, n, self.dt_mech, self.domain, self.dim)
        cl.note_displacement(moved)

    def sample_conditions(self, slots: np.ndarray | None = None) -> np.ndarray:
        """(n, S) local concentrations at every live cell, or (len(slots), S) at those slots."""
        st = self.store
        return self.micro.sample(st.position[: st.n] if slots is None else st.position[slots])

    def phenotype_step(self, initial: bool = False) -> None:
        """Behaviours (rules, then intracellular), interactions, fates, volumes, recruitment."""
        st = self.store
        ctx = self.ctx
        dt = self.dt_pheno
        self._coupling_dirty = True
        # concentrations sampled per type (the fields do not change during this step): an (n, S)
        # array for all cells plus each type's copy was the step's memory peak at 10⁶ cells
        conditions = self.sample_conditions
        for t, rules in enumerate(self.rules):
            slots = st.slots_of_type(t)
            if slots.size:
                rules.set_behaviors(ctx, slots, conditions(slots))
        for t, table in enumerate(self.rule_tables):  # PhysiCell-grammar rules act on what the behaviour wrote
            slots = st.slots_of_type(t) if table.column_behaviors else None
            if slots is not None and slots.size:
                table.apply(ctx, slots, conditions(slots))
        self.intracellular_step.run(st, conditions, dt, self.signals_for, self.rng, initial=initial)
        if initial:
            return
        for rules in self.rules:
            slots = st.slots_of_type(rules.index)
            if slots.size:
                rules.interact(ctx, slots)
        for t, table in enumerate(self.rule_tables):
            if table.interactions:
                table.interact(ctx, st.slots_of_type(t), ctx.remove)
        changes = fate_transitions(st, self.tables, dt, self.rng)
        for t, table in enumerate(self.rule_tables):  # death zeroed what dead cells' rules set
            table.apply_to_dead(ctx, st.slots_of_type(t))
        relax_volumes(st, self.tables, dt)
        self._refresh_cutoff()
        if changes.apoptosis.size:
            ctx.record("apoptosis", changes.apoptosis)
        if changes.necrosis.size:
            ctx.record("necrosis", changes.necrosis)
        if changes.lysed.size:
            ctx.record("lysis", changes.lysed)
        self._divide(changes.divided)
        if changes.removed.size:
            self.remove_cells(changes.removed, kind="removal")
        self._regress_vessels(dt)
        for rules in self.rules:
            rules.recruit(ctx, dt)

    def _regress_vessels(self, dt: float) -> None:
        """Vessel voxels surrounded by the regression type stop supplying (see :meth:`Vessels.regress`)."""
        ves = self.vessels
        if ves is None or ves.regression_rate <= 0 or ves.count == 0:
            return
        st = self.store
        n = st.n
        sel = (st.type[:n] == ves.regression_type) & (st.death[:n] == ALIVE)
        voxels, centres = ves.regress(self.micro.voxel_index(st.position[:n][sel]), self.micro, self.rng, dt)
        if voxels.size:
            self.events.record("vessel_regression", self.time, voxels, -1, np.full(voxels.size, -1, np.int16), centres)

    def signals_for(self, slots: np.ndarray, conc: np.ndarray, extra: Sequence[str] = ()) -> Signals:
        """Signals for the cells at ``slots``: substrate concentrations, volume, age, time, contacts."""
        st = self.store
        names = list(self.substrate_names)
        cols = [conc]
        names += list(CELL_SIGNALS)
        cols.append(np.stack([st.volume[slots], self.time - st.birth_time[slots], np.full(slots.size, self.time)], 1))
        contact = [s for s in extra if s.startswith("contact_")]
        if contact:
            counts = self.neighbours.counts(slots)
            for s in contact:
                other = s[len("contact_") :]
                if other not in self.type_names:
                    raise ConfigError(f"signal {s!r}: unknown cell type {other!r}")
                names.append(s)
                cols.append(counts[:, self.type_names.index(other)][:, None])
        return Signals(names, np.concatenate(cols, axis=1))

    def _divide(self, mothers: np.ndarray) -> None:
        """Split each mother in two halves along a random axis; the daughter inherits what its
        columns declare (``Column.inherit``) and a copy of the mother's intracellular state."""
        if mothers.size == 0:
            return
        st = self.store
        u = random_unit_vectors(self.rng, mothers.size, self.dim)
        half = st.volume[mothers] * 0.5
        st.volume[mothers] = half
        r_half = np.cbrt(half * (3.0 / (4.0 * np.pi)))
        st.radius[mothers] = r_half
        offset = u * r_half[:, None]
        mother_pos = st.position[mothers].copy()
        st.position[mothers] = np.clip(mother_pos - 0.5 * offset, 0, self.domain)
        types = st.type[mothers].copy()
        rows = {}
        for t in self.intracellular:
            sel = mothers[types == t]
            if sel.size:
                rows[t] = st.istate[t][st.istate_row[sel]].copy()
        mother_ids = st.id[mothers].copy()
        slots = self.add_cells(types, mother_pos + 0.5 * offset, kind=None, istate=rows)
        st.generation[mothers] += 1
        st.inherit(slots, mothers)
        st.volume[slots] = half
        st.radius[slots] = r_half
        st.phase[mothers] = KI67_NEGATIVE
        st.phase_clock[mothers] = 0.0
        self.events.record("division", self.time, mother_ids, st.id[slots], types, mother_pos)

    def update_coupling(self) -> None:
        """Refresh the cell → grid secretion/uptake coupling from current positions and rates.

        Skipped when no cell changed voxel and no rate, volume or population changed since the
        last refresh (the common case between phenotype steps).
        """
        st = self.store
        n = st.n
        vox = self.micro.voxel_index(st.position[:n]) if n else np.zeros(0, np.int64)
        if (
            not self._coupling_dirty
            and vox.shape == self._coupled_voxels.shape
            and np.array_equal(vox, self._coupled_voxels)
        ):
            return
        self._coupled_voxels = vox
        s = len(self.substrates)
        if n == 0:
            self._coupling_dirty = False
            self.micro.set_cell_coupling(vox, np.zeros(0), *(np.zeros((0, s)),) * 4)
            return
        rows = (st.volume[:n], st.secretion_rate[:n], st.saturation[:n], st.uptake_rate[:n], st.net_export[:n])
        if self._coupling_dirty or self._row_order.shape != (n,) or self.pulses or self.dosing is not None:
            # the canonical summation order of the rows: they change with rates, volumes and the
            # population (which set the dirty flag), not when cells only move
            self._row_order = K.coupling_row_order(*rows)
        self._coupling_dirty = False
        # the store's own float64 arrays, kept valid by construction
        self.micro.set_cell_coupling(vox, *rows, check=False, by_row=self._row_order)

    def reorder_for_locality(self) -> None:
        """Sort the store by cell-list bin so neighbours sit close in memory."""
        st = self.store
        if st.n < 2:
            return
        self.cell_list.ensure(st.position, st.n)
        st.permute(self.cell_list.bin_order().copy())
        self.cell_list.invalidate()
        self._coupling_dirty = True

    # ------------------------------------------------------------------ state
    def state_dict(self, copy: bool = True) -> dict[str, Any]:
        """Everything that evolves during a run, one entry per component (the scenario rebuilds
        the rest); :func:`tme_sim.io.checkpoint.write_checkpoint` stores it. ``copy=False``: the
        cell store's columns as views (valid until the next step), not copies."""
        state: dict[str, Any] = {
            "rng": json.dumps(self.rng.bit_generator.state),
            "clock": {"time": np.array(self.time), "n_mech_steps": np.array(self.n_mech_steps)},
            "store": self.store.state_dict(copy=copy),
            "grid": self.micro.state_dict(),
            "events": self.events.state_dict(),
            "intracellular": self.intracellular_step.state_dict(len(self.type_names)),
            "rules": {str(i): r.state_dict() for i, r in enumerate(self.rules) if r.state_dict()},
            "cell_list": self.cell_list.state_dict(),
        }
        if self.dosing is not None:
            state["dosing"] = self.dosing.state_dict()
        if self.vessels is not None and self.vessels.regression_rate > 0:
            state["vessels"] = {"voxels": self.vessels.voxels.copy()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a model freshly built from the same scenario."""
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.store.load_state_dict(state["store"])
        self.micro.load_state_dict(state["grid"])
        self.events.load_state_dict(state["events"])
        self.time = float(state["clock"]["time"])
        self.n_mech_steps = int(state["clock"]["n_mech_steps"])
        if self.dosing is not None:
            self.dosing.load_state_dict(state["dosing"])
        self.intracellular_step.load_state_dict(state["intracellular"])
        for i, r in enumerate(self.rules):
            if str(i) in state.get("rules", {}):
                r.load_state_dict(state["rules"][str(i)])
        self.cell_list.load_state_dict(state["cell_list"])
        if "vessels" in state and self.vessels is not None:  # regressed vessels (the grid holds their masks)
            self.vessels.keep_only(np.asarray(state["vessels"]["voxels"], np.int64), self.micro)
        # the grid state carries the coupling the original run had; the next refresh recomputes it
        self._coupling_dirty = True
        self._population_version += 1

    # ------------------------------------------------------------------ summaries
    def population_counts(self) -> np.ndarray:
        """(n_types, 4) counts of live, apoptotic, necrotic (swelling) and lysed cells."""
        st = self.store
        n = st.n
        out = np.zeros((len(self.type_names), 4), dtype=np.int64)
        key = st.type[:n].astype(np.int64) * 4 + st.death[:n]
        counts = np.bincount(key, minlength=4 * len(self.type_names))
        out[:] = counts.reshape(-1, 4)
        return out

    def summary(self) -> dict[str, int]:
        """Live cells per type."""
        c = self.population_counts()
        return {name: int(c[i, ALIVE]) for i, name in enumerate(self.type_names)}

    # ------------------------------------------------------------------ Mesa handles
    def _sync_handles(self) -> None:
        if self._handles_version != self._population_version:
            sync_handles(self, self._handle_of_id)
            self._handles_version = self._population_version

    @property
    def agents(self) -> mesa.agent.AgentSet:  # type: ignore[override]
        """All live cells as Mesa agents (handles created lazily, on access)."""
        self._sync_handles()
        return super().agents

    @property
    def agents_by_type(self) -> dict:  # type: ignore[override]
        self._sync_handles()
        return super().agents_by_type

    def agent(self, cell_id: int) -> mesa.Agent:
        """The handle of the cell with stable id ``cell_id``."""
        self._sync_handles()
        return self._handle_of_id[int(cell_id)]
