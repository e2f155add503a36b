"""Pharmacokinetics: plasma concentration over time, and how plasma drug enters the tissue grid.

One-compartment model with first-order elimination ``k = CL/V`` (1/min)::

    dA/dt = -k A + R(t) + ka A_gut,        C = A / V

Doses superpose (the model is linear), so the plasma concentration is an exact sum of closed
forms, evaluated at any times without time stepping:

* IV bolus ``D`` at ``t0``:        ``C = D/V · exp(-k (t-t0))``
* infusion ``R`` over ``[t0, t0+T]``: ``C = R/(kV) · (1 - exp(-k τ))`` during, then exponential decay
* oral ``D`` (absorption ``ka``, bioavailability ``F``), the Bateman function:
  ``C = F D ka / (V (ka - k)) · (exp(-k τ) - exp(-ka τ))``

Units: time in minutes, amounts in nmol, volumes in L, concentrations in nM (nmol/L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tme_sim.config.drugs import Drug


@dataclass(frozen=True)
class DoseEvent:
    """One administration: ``kind`` in {bolus, infusion, oral}; time (min); amount (nmol) for
    bolus/oral; rate (nmol/min) and duration (min) for infusions."""

    kind: str
    time: float
    amount: float = 0.0
    rate: float = 0.0
    duration: float = 0.0


def dose_events(drug: Drug) -> list[DoseEvent]:
    """Expand the drug's schedule (repeats included) into time-sorted events in nmol and minutes."""
    events: list[DoseEvent] = []
    for d in drug.schedule:
        for i in range(d.count):
            t = d.start + i * (d.every or 0.0)
            if d.kind == "infusion":
                assert d.rate is not None and d.duration is not None
                events.append(DoseEvent("infusion", t, rate=drug.to_nmol(d.rate), duration=d.duration))
            else:
                assert d.amount is not None
                events.append(DoseEvent(d.kind, t, amount=drug.to_nmol(d.amount)))
    events.sort(key=lambda e: e.time)
    return events


def _expm1_over(k: float, tau: np.ndarray) -> np.ndarray:
    """(1 - exp(-k τ)) / k, with the k → 0 limit τ."""
    if k == 0.0:
        return tau
    return -np.expm1(-k * tau) / k


@dataclass(frozen=True)
class OneCompartment:
    """Plasma concentration of a one-compartment model.

    ``volume`` L, ``k_el`` 1/min, ``ka`` 1/min (oral only), ``bioavailability`` in (0, 1].
    """

    volume: float
    k_el: float
    events: tuple[DoseEvent, ...] = ()
    ka: float | None = None
    bioavailability: float = 1.0

    @classmethod
    def from_drug(cls, drug: Drug) -> OneCompartment:
        if drug.pk is None:
            raise ValueError(f"drug {drug.name!r} has no pk table")
        return cls(
            volume=drug.pk.volume,
            k_el=drug.pk.elimination_rate,
            events=tuple(dose_events(drug)),
            ka=drug.pk.absorption_rate,
            bioavailability=drug.pk.bioavailability,
        )

    def concentration(self, t: np.ndarray | float) -> np.ndarray:
        """Plasma concentration (nM, float64, shape of ``t``) at times ``t`` (min)."""
        t = np.asarray(t, dtype=np.float64)
        c = np.zeros_like(t)
        k, v = self.k_el, self.volume
        for e in self.events:
            tau = t - e.time
            on = tau >= 0
            if not on.any():
                continue
            tau = np.where(on, tau, 0.0)
            if e.kind == "bolus":
                c += np.where(on, e.amount / v * np.exp(-k * tau), 0.0)
            elif e.kind == "infusion":
                during = np.minimum(tau, e.duration)
                after = np.maximum(tau - e.duration, 0.0)
                c += np.where(on, e.rate / v * _expm1_over(k, during) * np.exp(-k * after), 0.0)
            else:  # oral, Bateman function
                ka = self.ka
                assert ka is not None
                fd = self.bioavailability * e.amount / v
                if math.isclose(ka, k, rel_tol=1e-9):
                    c += np.where(on, fd * ka * tau * np.exp(-k * tau), 0.0)
                else:
                    c += np.where(on, fd * ka / (ka - k) * (np.exp(-k * tau) - np.exp(-ka * tau)), 0.0)
        return c

    def amount_eliminated(self, t: float) -> float:
        """nmol eliminated from plasma by time ``t`` (min): k · V · ∫₀ᵗ C dt (numerical, for checks)."""
        ts = np.linspace(0.0, t, 20001)
        return float(self.k_el * self.volume * np.trapezoid(self.concentration(ts), ts))


def plasma_concentrations(drugs: list[Drug], t: np.ndarray) -> np.ndarray:
    """(len(t), n_drugs) plasma concentrations in nM; a drug without schedule stays at 0."""
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros((t.size, len(drugs)))
    for j, d in enumerate(drugs):
        if d.pk is not None and d.schedule:
            out[:, j] = OneCompartment.from_drug(d).concentration(t).ravel()
    return out


def vessel_source(c_local: np.ndarray, c_plasma: float, permeability: float, dx: float) -> np.ndarray:
    """Exchange through vessel walls, as a source rate (nM/min) for voxels holding a vessel.

    A voxel of side ``dx`` (µm) crossed by a vessel has wall area ≈ dx² per volume dx³, so the
    net flux ``P · (C_plasma − C_local)`` (``permeability`` P in µm/min) is a rate
    ``P/dx · (C_plasma − C_local)``. ``c_local``: (n,) nM; returns float64 (n,).
    """
    if dx <= 0:
        raise ValueError("dx must be > 0")
    return (permeability / dx) * (c_plasma - np.asarray(c_local, dtype=np.float64))


def face_concentration(drug: Drug, c_plasma: float | np.ndarray) -> np.ndarray:
    """Dirichlet value (nM) on the drug's entry faces for a plasma concentration (nM)."""
    return np.asarray(c_plasma, dtype=np.float64) * drug.entry.partition


def substrate_table(drug: Drug, concentration: float | None = None) -> dict[str, object]:
    """A scenario ``[substrates.<drug>]`` table for this drug (unit nM, its diffusion and decay).

    With ``concentration`` (nM) the tissue starts at that level and the drug's entry faces hold
    it (Dirichlet; every face when the drug enters through vessels): a constant exposure, the
    spatial counterpart of one dose point of a screen. Without it the drug starts at 0 with
    zero-flux faces (the simulation then adds it through vessels/faces from the PK curve).
    """
    table: dict[str, object] = {
        "unit": "nM",
        "diffusion": f"{drug.diffusion!r} um**2/min",
        "decay": f"{drug.decay_rate!r} 1/min",
        "source": f"drug library: {drug.name}",
    }
    if concentration is None:
        table["initial"] = "0 nM"
        table["boundary"] = "zero-flux"
        return table
    if not concentration >= 0:
        raise ValueError("concentration must be >= 0")
    value = f"{float(concentration)!r} nM"
    table["initial"] = value
    faces = drug.entry.faces if drug.entry.via == "faces" else ()
    table["boundary"] = {f: value for f in faces} if faces and len(faces) < 6 else {"all": value}
    return table
