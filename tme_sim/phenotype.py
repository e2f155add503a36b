"""Vectorized phenotype: cycle, death, volume and division for all cells at once.

Rates are per minute and turned into probabilities over the phenotype step ``dt`` as
p = 1 − exp(−rate·dt). All uniforms come from the model's Generator, one array per draw kind,
drawn for all live slots in slot order (reproducible and independent of threads).

Per-type parameters are looked up from small tables indexed by the ``type`` column
(:class:`TypeTables`), so no per-cell Python runs here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tme_sim.cells import (
    ALIVE,
    APOPTOTIC,
    KI67_NEGATIVE,
    KI67_POSITIVE,
    NECROTIC_LYSED,
    NECROTIC_SWELLING,
    CellStore,
)


@dataclass
class TypeTables:
    """Per-type parameter tables (index = type), units as in :mod:`tme_sim.config`."""

    has_cycle: np.ndarray  # bool
    ki67_positive_duration: np.ndarray  # min
    apoptosis_duration: np.ndarray  # min
    rupture_ratio: np.ndarray
    lysed_removal_time: np.ndarray  # min
    volume0: np.ndarray  # µm³, the type's reference volume
    growth_rate: np.ndarray  # 1/min
    apoptotic_shrink_rate: np.ndarray
    necrotic_swell_rate: np.ndarray
    lysed_shrink_rate: np.ndarray
    repulsion: np.ndarray  # µm/min
    adhesion: np.ndarray  # µm/min
    adhesion_rel: np.ndarray


@dataclass
class FateChanges:
    """What one phenotype step did (slots refer to the store before removals)."""

    divided: np.ndarray  # mother slots
    apoptosis: np.ndarray
    necrosis: np.ndarray
    lysed: np.ndarray
    removed: np.ndarray


def probability(rate: np.ndarray, dt: float) -> np.ndarray:
    """Probability of at least one event of a Poisson process with ``rate`` (1/min) over ``dt``."""
    return -np.expm1(-np.maximum(rate, 0.0) * dt)


def fate_transitions(store: CellStore, tables: TypeTables, dt: float, rng: np.random.Generator) -> FateChanges:
    """Advance clocks and apply cycle entry, death entry and death-phase transitions.

    Returns the slots that divide this step (end of Ki67+) and those to remove; does not add or
    remove cells itself (the model does, so it can record events and copy states).
    """
    n = store.n
    t = store.type[:n]
    death = store.death[:n]
    phase = store.phase[:n]
    u_death = rng.random(n)
    u_cycle = rng.random(n)

    store.phase_clock[:n] += dt
    store.death_clock[:n] += dt

    alive = death == ALIVE
    p_apo = probability(store.apoptosis_rate[:n], dt)
    p_nec = probability(store.necrosis_rate[:n], dt)
    to_apo = alive & (u_death < p_apo)
    to_nec = alive & ~to_apo & (u_death < p_apo + p_nec)

    # cycle: Ki67− → Ki67+ at cycle_rate; Ki67+ divides after its fixed duration
    cycling = alive & ~to_apo & ~to_nec & tables.has_cycle[t]
    enter = cycling & (phase == KI67_NEGATIVE) & (u_cycle < probability(store.cycle_rate[:n], dt))
    divide = cycling & (phase == KI67_POSITIVE) & (store.phase_clock[:n] >= tables.ki67_positive_duration[t])
    phase[enter] = KI67_POSITIVE
    store.phase_clock[:n][enter] = 0.0

    # death entries
    for mask, state in ((to_apo, APOPTOTIC), (to_nec, NECROTIC_SWELLING)):
        death[mask] = state
        store.death_clock[:n][mask] = 0.0
        phase[mask] = KI67_NEGATIVE
    # necrotic swelling → lysed at rupture volume
    lysed = (death == NECROTIC_SWELLING) & (store.volume[:n] >= tables.rupture_ratio[t] * tables.volume0[t] * 0.999)
    death[lysed] = NECROTIC_LYSED
    store.death_clock[:n][lysed] = 0.0

    remove = ((death == APOPTOTIC) & (store.death_clock[:n] >= tables.apoptosis_duration[t])) | (
        (death == NECROTIC_LYSED) & (store.death_clock[:n] >= tables.lysed_removal_time[t])
    )
    # dead cells stop everything else (the columns declared zero_on_death)
    store.zero_on_death(death != ALIVE)
    return FateChanges(
        divided=np.flatnonzero(divide),
        apoptosis=np.flatnonzero(to_apo),
        necrosis=np.flatnonzero(to_nec),
        lysed=np.flatnonzero(lysed),
        removed=np.flatnonzero(remove),
    )


def relax_volumes(store: CellStore, tables: TypeTables, dt: float) -> None:
    """Exact exponential relaxation of each volume towards its state's target over ``dt``."""
    n = store.n
    t = store.type[:n]
    death = store.death[:n]
    v0 = tables.volume0[t]
    target = np.where(death == ALIVE, v0, 0.0)
    target = np.where(death == NECROTIC_SWELLING, tables.rupture_ratio[t] * v0, target)
    rate = np.where(death == ALIVE, tables.growth_rate[t], tables.apoptotic_shrink_rate[t])
    rate = np.where(death == NECROTIC_SWELLING, tables.necrotic_swell_rate[t], rate)
    rate = np.where(death == NECROTIC_LYSED, tables.lysed_shrink_rate[t], rate)
    vol = store.volume[:n]
    vol += (target - vol) * (-np.expm1(-rate * dt))
    np.maximum(vol, 1e-3 * v0, out=vol)
    store.target_volume[:n] = target
    store.radius[:n] = np.cbrt(vol * (3.0 / (4.0 * np.pi)))


def random_unit_vectors(rng: np.random.Generator, k: int, dim: int) -> np.ndarray:
    """(k, 3) random unit vectors, isotropic in 2D (z = 0) or 3D."""
    v = np.zeros((k, 3))
    if k == 0:
        return v
    v[:, :dim] = rng.standard_normal((k, dim))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return v / norm


def randomize_cycle(
    store: CellStore, slots: np.ndarray, tables: TypeTables, entry_rate: np.ndarray, rng: np.random.Generator
) -> None:
    """Start cells at random points of their cycle (asynchronous population, as PhysiCell does).

    A cell is Ki67+ with the steady-state probability D+ / (D+ + 1/entry_rate) and then has
    spent a uniform fraction of D+ already; Ki67− cells start their clock at 0 (memoryless).
    """
    if slots.size == 0:
        return
    t = store.type[slots]
    d_pos = tables.ki67_positive_duration[t]
    d_neg = 1.0 / np.maximum(entry_rate[t], 1e-12)
    p_pos = np.where(tables.has_cycle[t], d_pos / (d_pos + d_neg), 0.0)
    u = rng.random(slots.size)
    frac = rng.random(slots.size)
    pos = u < p_pos
    store.phase[slots[pos]] = KI67_POSITIVE
    store.phase_clock[slots[pos]] = frac[pos] * d_pos[pos]
