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
(:mod:`tme_sim.agents`) are created lazily when a user reads ``model.agents``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import mesa
import numpy as np

import tme_sim.mechanics as mech
from tme_sim.cells import ALIVE, APOPTOTIC, KI67_NEGATIVE, NECROTIC_LYSED, NECROTIC_SWELLING, CellStore
from tme_sim.celltypes import rules_class
from tme_sim.config import Placement, Scenario, scenario_dir, value_in_unit
from tme_sim.errors import ConfigError, ResourceError
from tme_sim.events import EventLog
from tme_sim.grid import SUBSTRATES, Microenvironment, SubstrateParams, get_substrate, make_substrate
from tme_sim.intracellular.base import Signals
from tme_sim.intracellular.factory import uses_model
from tme_sim.mechanics import CellList, ab2_update, listed_velocities
from tme_sim.motility import Motility, add_motility
from tme_sim.parallel import KernelChooser
from tme_sim.phenotype import (
    TypeTables,
    fate_transitions,
    random_unit_vectors,
    randomize_cycle,
    relax_volumes,
)

if TYPE_CHECKING:
    from tme_sim.intracellular.base import IntracellularModel
    from tme_sim.io.observers import Observer

#: bytes of state per cell used for the memory estimate before allocating
BYTES_PER_CELL_ESTIMATE = 600


def resolve_substrates(scenario: Scenario) -> list[SubstrateParams]:
    """Registry defaults with the scenario's overrides; new names need unit, diffusion and decay."""
    out = []
    for name, sc in scenario.substrates.items():
        key = f"substrates.{name}"
        base = get_substrate(name) if name in SUBSTRATES else None
        if base is None:
            missing = [k for k in ("unit", "diffusion", "decay") if getattr(sc, k) is None]
            if missing:
                raise ConfigError(
                    f"{key}: not a known substrate; a new one needs {', '.join(missing)} "
                    "(or use a registry name such as oxygen, glucose, IFNG, TNF)"
                )
            unit = sc.unit
        else:
            unit = sc.unit or base.unit
            if sc.unit is not None and sc.unit != base.unit:
                raise ConfigError(f"{key}.unit: {sc.unit!r} differs from the registry unit {base.unit!r}")
        diffusion = sc.diffusion if sc.diffusion is not None else base.diffusion
        decay = sc.decay if sc.decay is not None else base.decay
        initial = (
            value_in_unit(sc.initial, unit, f"{key}.initial")
            if sc.initial is not None
            else (base.initial if base is not None else 0.0)
        )
        try:
            params = make_substrate(
                name,
                unit=unit,
                diffusion=diffusion,
                decay=decay,
                initial=initial,
                source=sc.source or (base.source if base is not None else "scenario"),
            )
        except Exception as exc:
            raise ConfigError(f"{key}: {exc}") from None
        out.append(params)
    return out


def estimate_memory(scenario: Scenario, n_cells: int) -> float:
    """Bytes a run needs at least: the grid (double-buffered) and the cells."""
    dx = scenario.domain.dx
    voxels = math.prod(max(1, round(L / dx)) for L in scenario.domain.size)
    itemsize = 4 if scenario.domain.float32_fields else 8
    return voxels * len(scenario.substrates) * itemsize * 3 + n_cells * BYTES_PER_CELL_ESTIMATE


def available_memory() -> float:
    """Bytes of memory available (MemAvailable), or +inf where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


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
        super().__init__(rng=self.seed_value)
        self.scenario = scenario
        self.dim = scenario.domain.dim
        domain = np.zeros(3)
        domain[: self.dim] = scenario.domain.size
        self.domain = domain
        self.time = 0.0
        self.n_mech_steps = 0
        ts = scenario.time
        self.dt_diff = ts.diffusion_dt
        self.dt_mech = ts.mechanics_dt
        self.dt_pheno = ts.phenotype_dt
        if self.dt_diff <= self.dt_mech * (1 + 1e-9):
            self.diff_substeps, self.diff_every = round(self.dt_mech / self.dt_diff), 1
        else:  # the grid steps once every ``diff_every`` mechanics steps
            self.diff_substeps, self.diff_every = 1, round(self.dt_diff / self.dt_mech)
        self.pheno_every = round(self.dt_pheno / self.dt_mech)

        # ---- grid
        n_initial = sum(self._placement_count(p) for p in scenario.initial_cells)
        need = estimate_memory(scenario, n_initial)
        if need > 0.8 * available_memory():
            raise ResourceError(
                f"scenario {scenario.name!r} needs about {need / 2**30:.1f} GiB (grid and cells) but only "
                f"{available_memory() / 2**30:.1f} GiB are available; use a larger dx, a smaller domain or fewer cells"
            )
        self.substrates = resolve_substrates(scenario)
        from tme_sim.drugs.dosing import build_dosing

        self.dosing = build_dosing(scenario, self.substrates)  # [drugs]: appends the drug substrates
        self.substrate_names = [s.name for s in self.substrates]
        self.substrate_units = [s.unit for s in self.substrates]
        dtype = np.float32 if scenario.domain.float32_fields else np.float64
        try:
            self.micro = Microenvironment(
                tuple(scenario.domain.size),
                scenario.domain.dx,
                self.substrates,
                dtype=dtype,
                scheme=scenario.time.diffusion_scheme,
            )
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"domain: {exc}") from None
        self._set_boundaries()
        self._setup_pulses()
        from tme_sim.vessels import build_vessels

        self.vessels = build_vessels(self)  # Dirichlet O2/glucose voxels and immune entry points
        if self.dosing is not None:
            self.dosing.attach(self)  # plasma drug -> Dirichlet values on entry faces / vessel voxels

        # ---- cell types
        self.type_names = list(scenario.cell_types)
        self.rules = []
        self.intracellular: dict[int, IntracellularModel] = {}
        for i, (name, cfg) in enumerate(scenario.cell_types.items()):
            self.rules.append(rules_class(cfg.rules, f"cell_types.{name}.rules")(name, i, cfg, self))
            key = f"cell_types.{name}.intracellular"
            if uses_model(cfg.intracellular, key):
                from tme_sim.intracellular.factory import build_intracellular

                self.intracellular[i] = build_intracellular(cfg.intracellular, scenario_dir(scenario), key, self)
        self._intra_clock = dict.fromkeys(self.intracellular, 0.0)
        self._last_intra: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self.tables = self._type_tables()
        sizes = {t: m.n_state for t, m in self.intracellular.items()}
        self.store = CellStore(len(self.substrates), self.type_names, sizes, capacity=max(64, 2 * n_initial))
        self.events = EventLog()

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
        self._pair_work = np.empty(0)

        self.observers: list[Observer] = []
        self._handles_version = -1
        self._population_version = 0
        self._handle_of_id: dict[int, mesa.Agent] = {}

        self._entry_rates = np.array([c.cycle.entry_rate for c in scenario.cell_types.values()])
        self._persistence = np.array([c.mechanics.persistence for c in scenario.cell_types.values()])
        self._coupling_dirty = True
        self._coupled_voxels = np.zeros(0, np.int64)
        self._place_initial_cells()
        self.reorder_for_locality()  # neighbours close in memory from the first step
        self.phenotype_step(initial=True)
        self.update_coupling()

    # ------------------------------------------------------------------ setup helpers
    def _placement_count(self, p: Placement) -> int:
        if p.shape == "points":
            return len(p.points or [])
        if p.count is not None:
            return p.count
        if p.radius is not None:
            r0 = 8.4
            if self.scenario.domain.dim == 3:
                return int(0.64 * (p.radius / r0) ** 3)
            return int(0.9 * (p.radius / r0) ** 2)
        return 0

    def _set_boundaries(self, only: str | None = None) -> None:
        for name, sc in self.scenario.substrates.items():
            if sc.boundary == "zero-flux" or (only is not None and name != only):
                continue
            unit = self.substrate_units[self.substrate_names.index(name)]
            for face, value in sc.boundary.items():
                key = f"substrates.{name}.boundary.{face}"
                if value == "zero-flux":
                    continue
                v = value_in_unit(value, unit, key)
                try:
                    self.micro.set_boundary(name, face, "dirichlet", v)
                except Exception as exc:
                    raise ConfigError(f"{key}: {exc}") from None

    def _setup_pulses(self) -> None:
        """Pulsed substrates: (name, faces, value, period, duration, start) in internal units."""
        self._pulses = []
        for name, sc in self.scenario.substrates.items():
            p = sc.pulse
            if p is None:
                continue
            unit = self.substrate_units[self.substrate_names.index(name)]
            value = value_in_unit(p.value, unit, f"substrates.{name}.pulse.value")
            self._pulses.append((name, list(p.faces), value, p.period, p.duration, p.start))
        self._pulse_on = [False] * len(self._pulses)

    def _pulse_states(self) -> list[bool]:
        out = []
        for _name, _faces, _value, period, duration, start in self._pulses:
            t = self.time - start
            out.append(bool(t >= -1e-9 and ((t + 1e-9) % period) < duration - 1e-9))
        return out

    def _apply_pulses(self) -> None:
        """Switch pulsed faces on/off for the coming mechanics step (cheap: only on changes)."""
        for k, on in enumerate(self._pulse_states()):
            if on == self._pulse_on[k]:
                continue
            self._pulse_on[k] = on
            name, faces, value, *_ = self._pulses[k]
            for face in faces:
                self.micro.set_boundary(name, face, "dirichlet" if on else "neumann", value if on else 0.0)
            if not on:
                self._set_boundaries(only=name)  # back to the substrate's own boundary

    def _type_tables(self) -> TypeTables:
        cts = list(self.scenario.cell_types.values())

        def arr(f, dtype=np.float64):
            return np.array([f(c) for c in cts], dtype=dtype)

        return TypeTables(
            has_cycle=arr(lambda c: c.cycle.model != "none", bool),
            ki67_positive_duration=arr(lambda c: c.cycle.ki67_positive_duration),
            apoptosis_duration=arr(lambda c: c.death.apoptosis_duration),
            rupture_ratio=arr(lambda c: c.death.rupture_volume_ratio),
            lysed_removal_time=arr(lambda c: c.death.lysed_removal_time),
            volume0=arr(lambda c: 4.0 / 3.0 * np.pi * c.volume.radius**3),
            growth_rate=arr(lambda c: c.volume.growth_rate),
            apoptotic_shrink_rate=arr(lambda c: c.volume.apoptotic_shrink_rate),
            necrotic_swell_rate=arr(lambda c: c.volume.necrotic_swell_rate),
            lysed_shrink_rate=arr(lambda c: c.volume.lysed_shrink_rate),
            repulsion=arr(lambda c: c.mechanics.repulsion),
            adhesion=arr(lambda c: c.mechanics.adhesion),
            adhesion_rel=arr(lambda c: c.mechanics.max_adhesion_distance),
        )

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
            pos = self._placement_positions(p, f"initial_cells[{i}]")
            t = self.type_names.index(p.type)
            slots = self.add_cells(np.full(len(pos), t, dtype=np.int16), pos, kind=None)
            randomize_cycle(self.store, slots, self.tables, self._entry_rates, self.rng)

    def _placement_positions(self, p: Placement, key: str) -> np.ndarray:
        dim = self.dim
        rng = self.rng
        if p.shape == "points":
            pts = np.zeros((len(p.points or []), 3))
            for k, q in enumerate(p.points or []):
                if len(q) != dim:
                    raise ConfigError(f"{key}.points[{k}]: expected {dim} coordinates")
                pts[k, :dim] = q
            return pts
        if p.shape in ("disc", "ball"):
            if p.radius is None:
                raise ConfigError(f"{key}.radius: required for shape {p.shape!r}")
            center = np.zeros(3)
            center[:dim] = p.center if p.center is not None else self.domain[:dim] / 2
            if p.center is not None and len(p.center) != dim:
                raise ConfigError(f"{key}.center: expected {dim} coordinates")
            count = self._placement_count(p)
            # uniform in the disc/ball (area/volume-uniform radius)
            u = rng.random(count)
            r = p.radius * (u ** (1.0 / dim))
            pos = center + random_unit_vectors(rng, count, dim) * r[:, None]
            return pos
        if p.shape in ("box", "random"):
            low = np.zeros(3)
            high = self.domain.copy()
            if p.low is not None:
                low[:dim] = p.low
            if p.high is not None:
                high[:dim] = p.high
            count = p.count or 0
            pos = np.zeros((count, 3))
            pos[:, :dim] = low[:dim] + rng.random((count, dim)) * (high[:dim] - low[:dim])
            return pos
        raise ConfigError(f"{key}.shape: unknown shape {p.shape!r}")

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
            st = self.store
            self.events.record(kind, self.time, st.id[slots], -1, st.type[slots], st.position[slots])
        self.store.remove(slots)
        self.cell_list.invalidate()
        self._coupling_dirty = True
        self._population_version += 1

    # ------------------------------------------------------------------ step loop
    def step(self) -> None:
        """Advance one mechanics step (``time.mechanics_dt`` minutes)."""
        if self._pulses:
            self._apply_pulses()
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
        self._update_motility()
        cl = self.cell_list
        lists = cl.neighbors(st.position, n, st.radius, st.type, self.tables.adhesion_rel)
        if self._pair_work.size < lists.nbr.size:  # per-pair forces of the velocity kernel, reused
            self._pair_work = np.empty(int(1.25 * lists.nbr.size) + 64)
        vel = st.velocity
        chooser = self._velocity_kernel
        chooser.min_work = min(mech.ADAPTIVE_MIN_CELLS, mech.PARALLEL_MIN_CELLS)  # read at call time
        par = chooser.use_parallel(n)
        t0 = time.perf_counter()
        coef = cl.coefficients(
            st.radius, st.type, st.death, n, self.tables.repulsion, self.tables.adhesion,
            self.tables.adhesion_rel, parallel=par,
        )  # fmt: skip
        listed_velocities(st.position, st.radius, st.type, n, self.tables.repulsion, coef, lists,
                          self.domain, self.dim, vel, parallel=par, work=self._pair_work)  # fmt: skip
        chooser.record(par, time.perf_counter() - t0, n)
        motile = self._motile
        if motile.size:
            add_motility(motile, st.migration_speed, st.motility_dir, vel)
        moved = ab2_update(st.position, vel, st.prev_velocity, n, self.dt_mech, self.domain, self.dim)
        cl.note_displacement(moved)

    def _update_motility(self) -> None:
        """New random-walk directions (with persistence) and chemotaxis for motile cells only
        (kernels in :mod:`tme_sim.motility`; per-type tables built once)."""
        mot = self.__dict__.get("_motility_tables")
        if mot is None:
            chem: list[tuple[str, float] | None] = []
            for cfg in self.scenario.cell_types.values():
                c = cfg.mechanics.chemotaxis
                chem.append(None if c is None else (c.substrate, -1.0 if c.direction == "down" else 1.0))
            mot = self._motility_tables = Motility(self._persistence, chem, self.dt_mech)
        self._motile = mot.update(self.store, self.micro, self.rng, self.dim, ALIVE)

    def sample_conditions(self) -> np.ndarray:
        """(n, S) local concentrations at every live cell."""
        st = self.store
        return self.micro.sample(st.position[: st.n])

    def phenotype_step(self, initial: bool = False) -> None:
        """Behaviours (rules, then intracellular), interactions, fates, volumes, recruitment."""
        st = self.store
        dt = self.dt_pheno
        self._coupling_dirty = True
        conc = self.sample_conditions()
        for t, rules in enumerate(self.rules):
            slots = st.slots_of_type(t)
            if slots.size:
                rules.set_behaviors(self, slots, conc[slots])
        for t, im in self.intracellular.items():
            self._intra_clock[t] += 0.0 if initial else dt
            im_dt = getattr(im, "dt", dt) or dt
            if not initial and self._intra_clock[t] + 1e-9 < im_dt:
                self._apply_last_intracellular(t)
                continue
            step_dt = self._intra_clock[t] if not initial else 0.0
            self._intra_clock[t] = 0.0
            self._run_intracellular(t, im, conc, step_dt)
        if initial:
            return
        for rules in self.rules:
            slots = st.slots_of_type(rules.index)
            if slots.size:
                rules.interact(self, slots)
        changes = fate_transitions(st, self.tables, dt, self.rng)
        relax_volumes(st, self.tables, dt)
        self._refresh_cutoff()
        if changes.apoptosis.size:
            self._record("apoptosis", changes.apoptosis)
        if changes.necrosis.size:
            self._record("necrosis", changes.necrosis)
        if changes.lysed.size:
            self._record("lysis", changes.lysed)
        self._divide(changes.divided)
        if changes.removed.size:
            self.remove_cells(changes.removed, kind="removal")
        for rules in self.rules:
            rules.recruit(self, dt)

    def _run_intracellular(self, t: int, im: IntracellularModel, conc: np.ndarray, dt: float) -> None:
        st = self.store
        slots = st.istate_slots(t)
        if slots.size == 0:
            return
        signals = self.signals_for(slots, conc[slots], im.required_signals())
        state = st.istate_of(t)
        out = im.update(signals, state, dt, self.rng)
        self._last_intra[t] = (
            st.id[slots].copy(),
            {k: np.asarray(v, dtype=np.float64) for k, v in out.items()},
        )
        self._write_behaviors(slots, out)

    def _apply_last_intracellular(self, t: int) -> None:
        """Between intracellular steps, keep the behaviours the model last decided (by cell id)."""
        last = self._last_intra.get(t)
        if not last:
            return
        ids, out = last
        slots = self.store.slot_of_id[ids]
        ok = slots >= 0
        self._write_behaviors(slots[ok], {name: values[ok] for name, values in out.items()})

    def _write_behaviors(self, slots: np.ndarray, out: dict[str, np.ndarray]) -> None:
        st = self.store
        alive = st.death[slots] == ALIVE
        for name, values in out.items():
            values = np.asarray(values, dtype=np.float64)
            prefix, _, sub = name.partition(":")
            if prefix in ("secretion", "uptake") and sub:
                j = self.substrate_names.index(sub)
                col = st.secretion_rate if prefix == "secretion" else st.uptake_rate
                col[slots[alive], j] = values[alive]
            else:
                getattr(st, name)[slots[alive]] = values[alive]

    def signals_for(self, slots: np.ndarray, conc: np.ndarray, extra: Sequence[str] = ()) -> Signals:
        """Signals for the cells at ``slots``: substrate concentrations, volume, age, time, contacts."""
        st = self.store
        names = list(self.substrate_names)
        cols = [conc]
        names += ["volume", "age", "time"]
        cols.append(np.stack([st.volume[slots], self.time - st.birth_time[slots], np.full(slots.size, self.time)], 1))
        contact = [s for s in extra if s.startswith("contact_")]
        if contact:
            from tme_sim.contacts import contact_counts

            counts = contact_counts(self, slots)
            for s in contact:
                other = s[len("contact_") :]
                if other not in self.type_names:
                    raise ConfigError(f"signal {s!r}: unknown cell type {other!r}")
                names.append(s)
                cols.append(counts[:, self.type_names.index(other)][:, None])
        return Signals(names, np.concatenate(cols, axis=1))

    def _record(self, kind: str, slots: np.ndarray, other: np.ndarray | int = -1) -> None:
        st = self.store
        self.events.record(kind, self.time, st.id[slots], other, st.type[slots], st.position[slots])

    def _divide(self, mothers: np.ndarray) -> None:
        if mothers.size == 0:
            return
        st = self.store
        k = mothers.size
        u = random_unit_vectors(self.rng, k, self.dim)
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
        for name in ("generation",):
            getattr(st, name)[mothers] += 1
        for name in ("generation", "clone", "exhaustion"):
            getattr(st, name)[slots] = getattr(st, name)[mothers]
        st.volume[slots] = half
        st.radius[slots] = r_half
        for col in (
            "cycle_rate",
            "apoptosis_rate",
            "necrosis_rate",
            "migration_speed",
            "chemotaxis_bias",
            "kill_rate",
            "phagocytosis_rate",
            "polarization",
            "pdl1",
            "secretion_rate",
            "saturation",
            "uptake_rate",
            "net_export",
        ):
            arr = getattr(st, col)
            arr[slots] = arr[mothers]
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
        self._coupling_dirty = False
        s = len(self.substrates)
        if n == 0:
            self.micro.set_cell_coupling(vox, np.zeros(0), *(np.zeros((0, s)),) * 4)
            return
        self.micro.set_cell_coupling(
            vox,
            st.volume[:n],
            st.secretion_rate[:n],
            st.saturation[:n],
            st.uptake_rate[:n],
            st.net_export[:n],
            check=False,  # the store's own float64 arrays, kept valid by construction
        )

    def reorder_for_locality(self) -> None:
        """Sort the store by cell-list bin so neighbours sit close in memory."""
        st = self.store
        if st.n < 2:
            return
        self.cell_list.ensure(st.position, st.n)
        st.permute(self.cell_list.bin_order().copy())
        self.cell_list.invalidate()
        self._coupling_dirty = True

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
        from tme_sim.agents import sync_handles

        if self._handles_version != self._population_version:
            sync_handles(self)
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


__all__ = ["APOPTOTIC", "NECROTIC_LYSED", "NECROTIC_SWELLING", "TMEModel"]
