"""How deep viable tumor reaches from an O2 source, from the flagship's O2 parameters (issue #20).

Steady state of ``D c'' = q(c)`` with the flagship's Michaelis–Menten uptake
``q(c) = φ · U0 · (c_ref + K) · c / (c + K)`` (mmHg/min; ``φ`` the tumor-cell volume fraction,
``U0`` the scenario's tumor ``secretion.oxygen.uptake_rate``, ``c_ref`` 38 mmHg, ``K`` 1 mmHg;
``tme_sim/celltypes/metabolism.py``), solved on a fine 1-D grid by Newton's method in two
geometries:

* **slab**: a flat tumor face held at ``c0`` (the tumor edge next to well-supplied stroma, as in
  Thomlinson & Gray's cords, Br J Cancer 1955, 9:539, where the capillaries stay in the stroma);
* **cord**: a Krogh cylinder around one vessel of radius ``r_v`` at ``c0`` (Tannock's cords around
  a vessel, Br J Cancer 1968, 22:258); a 2D run's vessel voxel is such a line source crossing the
  monolayer, its radius that of a disc of one voxel's area.

Printed per case: the distance (µm) from the source at which O2 falls to 5 mmHg (hypoxia), to the
tumor's necrosis threshold (0.75 mmHg: necrosis starts) and to its critical value (0.075 mmHg:
maximal necrosis rate) — viable tumor reaches about the middle of those two. Run::

    python benchmarks/viable_depth.py

No simulation: it isolates the parameters (uptake, volume fraction, source O2, geometry); the
flagship runs themselves are measured by ``benchmarks/flagship_biology.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded

D_O2 = 1e5  # µm²/min (BioFVM registry, tme_sim/grid/substrates.py)
C_REF, KM = 38.0, 1.0  # mmHg (metabolism defaults; tumor o2_uptake_km)
THRESHOLDS = (5.0, 0.75, 0.075)  # mmHg: hypoxia; tumor necrosis threshold and critical value


def profile(c0: float, u0: float, phi: float, geometry: str, r_v: float = 11.3, length: float = 800.0) -> tuple:
    """Steady O2 (mmHg) against distance from the source (µm): returns ``(x, c)``, ``x`` from 0.

    ``geometry`` is ``"slab"`` (flat face at ``x = 0``) or ``"cord"`` (cylinder, vessel radius
    ``r_v`` µm); no flux at ``x = length``.
    """
    n = 4000
    h = length / n
    x = np.linspace(0.0, length, n + 1)
    r = x + r_v if geometry == "cord" else np.ones_like(x)
    vmax = phi * u0 * (C_REF + KM)
    c = np.full(n + 1, c0)
    for _ in range(200):
        q = vmax * c / (c + KM)
        dq = vmax * KM / (c + KM) ** 2
        # (1/r)(r c')' discretised with face weights r_{i±1/2}; Dirichlet at 0, Neumann at the end
        rp = np.empty(n + 1)
        rm = np.empty(n + 1)
        rp[:-1] = 0.5 * (r[:-1] + r[1:])
        rp[-1] = 0.0
        rm[1:] = 0.5 * (r[:-1] + r[1:])
        rm[0] = 0.0
        lap_c = np.zeros(n + 1)
        lap_c[1:-1] = (rp[1:-1] * (c[2:] - c[1:-1]) - rm[1:-1] * (c[1:-1] - c[:-2])) / (h * h * r[1:-1])
        lap_c[-1] = 2.0 * rm[-1] * (c[-2] - c[-1]) / (h * h * r[-1])
        res = D_O2 * lap_c - q
        res[0] = c[0] - c0
        ab = np.zeros((3, n + 1))
        diag = -D_O2 * (rp + rm) / (h * h * r) - dq
        diag[-1] = -2.0 * D_O2 * rm[-1] / (h * h * r[-1]) - dq[-1]
        ab[1] = diag
        ab[0, 1:] = D_O2 * rp[:-1] / (h * h * r[:-1])
        ab[2, :-1] = D_O2 * rm[1:] / (h * h * r[1:])
        ab[2, -2] = 2.0 * D_O2 * rm[-1] / (h * h * r[-1])
        ab[1, 0], ab[0, 1] = 1.0, 0.0
        step = solve_banded((1, 1), ab, -res)
        c = np.maximum(c + step, 0.0)
        if np.max(np.abs(step)) < 1e-10:
            break
    return x, c


def depths(c0: float, u0: float, phi: float, geometry: str) -> list[float]:
    """Distance (µm) from the source to each of :data:`THRESHOLDS` (nan when O2 stays above it)."""
    x, c = profile(c0, u0, phi, geometry)
    out = []
    for t in THRESHOLDS:
        below = np.flatnonzero(c <= t)
        out.append(float(x[below[0]]) if below.size else float("nan"))
    return out


def main() -> int:
    # φ: 2D, the flagship's initial disc (999 cells of 2494 µm³ in a disc of radius 280 µm, one
    # cell diameter deep: 0.60, the hexagonal monolayer's maximum π/(3√3) = 0.605); 3D, the
    # packed lattice of tumor_immune_3d.toml (0.74)
    cases = [
        ("PhysiCell uptake 10/min, 2D monolayer (φ 0.6)", 10.0, 0.6),
        ("PhysiCell uptake 10/min, 3D packed (φ 0.74)", 10.0, 0.74),
        ("Grimes et al. 2014 spheroid OCR: 37/min, 2D (φ 0.6)", 37.0, 0.6),
        ("Grimes et al. 2014 spheroid OCR: 37/min, 3D (φ 0.74)", 37.0, 0.74),
    ]
    print("distance (µm) from the O2 source to 5 / 0.75 / 0.075 mmHg")
    print(f"{'case':55s} {'geometry':8s} {'c0':>5s}  {'5':>5s} {'0.75':>5s} {'0.075':>5s}")
    for label, u0, phi in cases:
        for geometry in ("slab", "cord"):
            for c0 in (50.0, 40.0):
                d = depths(c0, u0, phi, geometry)
                print(f"{label:55s} {geometry:8s} {c0:5.0f}  " + " ".join(f"{v:5.0f}" for v in d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
