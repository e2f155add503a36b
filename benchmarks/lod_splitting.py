"""Can a different LOD sequence bring its vessel error within 5 % at dt 0.01 min? (issue #20)

The case of ``tests/test_grid_vessels.py``: a 200 µm cube (dx 20 µm) of packed tissue taking up O2
at 10/min (90 % cells: 9/min per voxel), decay 0.1/min, D = 1e5 µm²/min, a vessel line along z or a
single vessel voxel at 38 mmHg, all voxels held inside every 1-D solve. Each variant is run 3 min
(300 steps of 0.01 min, converged) in plain NumPy (batched Thomas solves along every line) and its
O2 20 µm from the vessel is compared with the exact discrete steady state (sparse direct solve):

* ``lie``: the shipped LOD — x, y, z implicit solves (decay λ/3 each), then the uptake
  ``c / (1 + dt·B)``; reproduces ``tme_sim``'s −32.7 % / −62.8 %;
* ``inline``: the uptake put into the 1-D solves, ``(λ + B)/3`` on each diagonal;
* ``strang``: half the uptake, the three solves, half the uptake;
* ``symmetric``: x y z z y x, each dt/2, uptake inline;
* ``defect1``, ``defect2``: the shipped LOD step followed by 1 or 2 defect corrections — the
  residual of the unsplit backward-Euler system of the step, ``c_n − M c``, mapped back through the
  same LOD factors and added (``M = (1 + dt(λ + B)) I − dt D∇²``);
* ``delta``: the same three 1-D factors applied to the increment,
  ``Π(I + dt·A_a') δ = dt·(D∇²c − (λ + B) c)``, ``c += δ`` (Douglas' approximate factorisation —
  the ADI scheme's form; its fixed point is the unsplit steady state);
* ``increment``: what ships as ``lod_form = "increment"`` (tme_sim/grid/lod_increment.py): the
  shipped LOD factors (x, y, z solves with λ/3, then ``1/(1 + dt B)``) on the residual
  ``ρ = dt·(D∇²c − (λ + B) c)``, plus a half-weighted Jacobi step ``ρ / (2 (1 + 6 D dt/dx² +
  dt (λ + B)))``, then ``c = max(c + δ, 0)``.

A second table runs ``delta`` and ``increment`` to a steady state at dt 0.1 min (30 min) and
dt 1 min with 10× uptake (100 min) and reports the error 20 µm from the vessel and the largest
error anywhere (fraction of the vessel value), and the last row runs the shipped kernel itself
(``Microenvironment(..., lod_form="increment")``) at dt 0.01.

Run: ``python benchmarks/lod_splitting.py`` (~2 min, one core).
Finding (measured): no sequence of the LOD solves gets there — lie −32.7 / −62.8 %, inline
−31.2 / −61.4 %, strang −30.3 / −61.6 %, symmetric +1.5 / +37.4 % (line / point); what biases LOD is
the product of the 1-D factors (``dt²·A_x·A_y`` with ``D·dt/dx² = 2.5``), not the split of the
uptake. Defect corrections reduce but do not remove it (their fixed point is not the steady state):
−12.4 / −43.4 % with one, −6.7 / −35.4 % with two. The increment (delta) form is exact with the
same 1-D solves, but alone it leaves the shortest wavelengths almost undamped at large
``D dt/dx²`` (per step ``1 − Σa/Π(1 + a)``, ``a ≈ 4 D dt/dx²``): not converged after 30 min at
dt 0.1 (point +2.8 %, largest error 14 % of the vessel value) nor 100 min at dt 1 with 10× uptake
(−89 / −95 %). With the Jacobi term it is converged at all three steps (within 0.005 %; largest
error ≤ 5e-5 of the vessel value), and the shipped kernel agrees (< 1e-14 at dt 0.01).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_grid_vessels import LAM, VESSEL, D, _at_20um, _tissue, exact_steady_state  # noqa: E402

UPTAKE = 9.0  # 1/min per voxel: 90 % cells × 10/min


def solve_lines(u: np.ndarray, r: float, diag_extra: float, fixed: np.ndarray, axis: int) -> np.ndarray:
    """Solve ``(1 + 2r + diag_extra) u_i − r (u_{i−1} + u_{i+1}) = rhs_i`` along ``axis`` on every line at
    once (zero-flux ends; rows of ``fixed`` voxels are identity rows, so they keep their value)."""
    rhs = np.moveaxis(u, axis, -1)
    fx = np.moveaxis(fixed, axis, -1)
    n = rhs.shape[-1]
    a = np.where(fx, 0.0, -r)
    c = np.where(fx, 0.0, -r)
    b = np.full(rhs.shape, 1.0 + 2.0 * r + diag_extra)
    b[..., 0] -= r
    b[..., -1] -= r
    b = np.where(fx, 1.0, b)
    a[..., 0] = 0.0
    c[..., -1] = 0.0
    cp, dp = np.empty_like(rhs), np.empty_like(rhs)
    cp[..., 0], dp[..., 0] = c[..., 0] / b[..., 0], rhs[..., 0] / b[..., 0]
    for i in range(1, n):
        m = b[..., i] - a[..., i] * cp[..., i - 1]
        cp[..., i] = c[..., i] / m
        dp[..., i] = (rhs[..., i] - a[..., i] * dp[..., i - 1]) / m
    x = np.empty_like(rhs)
    x[..., -1] = dp[..., -1]
    for i in range(n - 2, -1, -1):
        x[..., i] = dp[..., i] - cp[..., i] * x[..., i + 1]
    return np.moveaxis(x, -1, axis)


def laplacian(u: np.ndarray, dx: float) -> np.ndarray:
    """7-point Laplacian with zero-flux faces."""
    out = np.zeros_like(u)
    for ax in range(3):
        lo = np.concatenate([u.take([0], axis=ax), u], axis=ax)
        hi = np.concatenate([u, u.take([-1], axis=ax)], axis=ax)
        out += np.diff(hi, axis=ax) - np.diff(lo, axis=ax)
    return out / dx**2


def lod_factors(u: np.ndarray, r: float, dt: float, fixed: np.ndarray, uptake: float) -> np.ndarray:
    """The shipped LOD step's factors: x, y, z solves (decay λ/3 each), then ``1/(1 + dt·B)``."""
    for ax in (2, 1, 0):
        u = solve_lines(u, r, dt * LAM / 3, fixed, ax)
    return np.where(fixed, u, u / (1 + dt * uptake))


def step(u: np.ndarray, variant: str, dt: float, dx: float, fixed: np.ndarray, uptake: float = UPTAKE) -> np.ndarray:
    r = D * dt / dx**2
    if variant.startswith("defect"):
        un = u
        u = lod_factors(u, r, dt, fixed, uptake)
        u[fixed] = VESSEL
        for _ in range(int(variant[6:])):
            res = np.where(fixed, 0.0, un - u + dt * (D * laplacian(u, dx) - (LAM + uptake) * u))
            u = u + lod_factors(res, r, dt, fixed, uptake)
    elif variant == "increment":
        res = np.where(fixed, 0.0, dt * (D * laplacian(u, dx) - (LAM + uptake) * u))
        d = lod_factors(res, r, dt, fixed, uptake) + 0.5 * res / (1 + 6 * r + dt * (LAM + uptake))
        u = np.maximum(u + d, 0.0)
    elif variant == "lie":
        for ax in (2, 1, 0):
            u = solve_lines(u, r, dt * LAM / 3, fixed, ax)
        u = np.where(fixed, u, u / (1 + dt * UPTAKE))
    elif variant == "inline":
        for ax in (2, 1, 0):
            u = solve_lines(u, r, dt * (LAM + UPTAKE) / 3, fixed, ax)
    elif variant == "strang":
        u = np.where(fixed, u, u / (1 + dt * UPTAKE / 2))
        for ax in (2, 1, 0):
            u = solve_lines(u, r, dt * LAM / 3, fixed, ax)
        u = np.where(fixed, u, u / (1 + dt * UPTAKE / 2))
    elif variant == "symmetric":
        for ax in (2, 1, 0, 0, 1, 2):
            u = solve_lines(u, r / 2, dt / 2 * (LAM + UPTAKE) / 3, fixed, ax)
    elif variant == "delta":
        d = np.where(fixed, 0.0, dt * (D * laplacian(u, dx) - (LAM + uptake) * u))
        for ax in (2, 1, 0):
            d = solve_lines(d, r, dt * (LAM + uptake) / 3, fixed, ax)
        u = u + d
    else:
        raise ValueError(variant)
    u[fixed] = VESSEL
    return u


def errors(point: bool, variant: str, dt: float = 0.01, minutes: float = 3.0, uptake: float = 10.0):
    """Relative error of O2 20 µm from the vessel after ``minutes`` against the exact steady state,
    and the largest absolute error anywhere as a fraction of the vessel value (cells take up
    ``uptake``/min; ``variant = "kernel"`` runs ``Microenvironment(lod_form="increment")``)."""
    m = _tissue("lod", point=point, uptake=uptake, lod_form="increment" if variant == "kernel" else "biofvm")
    exact = exact_steady_state(m)
    if variant == "kernel":
        m.advance(dt, round(minutes / dt))
        u = m.field("o")
    else:
        fixed = np.zeros(m.shape, bool)
        fixed.reshape(-1)[m._masks[0][0]] = True
        u = np.where(fixed, VESSEL, 0.0)
        for _ in range(round(minutes / dt)):
            u = step(u, variant, dt, m.dx, fixed, 0.9 * uptake)
    return _at_20um(m, u) / _at_20um(m, exact) - 1, float(np.abs(u - exact).max()) / VESSEL


def main() -> int:
    print("| variant (dt 0.01 min, 3 min) | vessel line | point vessel |")
    print("|---|---|---|")
    for variant in ("lie", "inline", "strang", "symmetric", "defect1", "defect2", "delta", "increment"):
        (line, _), (point, _) = errors(False, variant), errors(True, variant)
        print(f"| {variant} | {100 * line:+.2f} % | {100 * point:+.2f} % |", flush=True)
    print("\n| variant | dt (min) | uptake (1/min) | simulated | vessel line: at 20 µm, max | point: at 20 µm, max |")
    print("|---|---|---|---|---|---|")
    for dt, minutes, uptake in ((0.1, 30.0, 10.0), (1.0, 100.0, 100.0)):
        for variant in ("delta", "increment"):
            (le, lm), (pe, pm) = (errors(p, variant, dt, minutes, uptake) for p in (False, True))
            print(f"| {variant} | {dt:g} | {uptake:g} | {minutes:g} min | {100 * le:+.3f} %, {lm:.1e} "
                  f"| {100 * pe:+.3f} %, {pm:.1e} |", flush=True)  # fmt: skip
    (le, lm), (pe, pm) = (errors(p, "kernel") for p in (False, True))
    print(f"| tme_sim kernel | 0.01 | 10 | 3 min | {100 * le:+.4f} %, {lm:.1e} | {100 * pe:+.4f} %, {pm:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
