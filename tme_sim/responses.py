"""Response curves shared by behaviours, drug effects and rules: one Hill function for all."""

from __future__ import annotations

import numpy as np


def hill(x: np.ndarray | float, half: np.ndarray | float, n: np.ndarray | float = 1.0) -> np.ndarray:
    """Hill activation ``xⁿ / (Kⁿ + xⁿ)`` in [0, 1] (``half`` = K, same unit as ``x``; arrays broadcast).

    Negative ``x`` counts as 0. Written as ``1 / (1 + (K/x)ⁿ)`` so large ``n`` cannot overflow;
    ``x = 0`` gives 0. Where ``K ≤ 0`` the response is a switch: 1 for ``x > 0``, 0 at ``x = 0``.
    """
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    k = np.asarray(half, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = 1.0 / (1.0 + np.power(np.divide(k, x), n))
    if np.any(k <= 0):
        out = np.where(k <= 0, (x > 0).astype(np.float64), out)
    return out


def inhibition(x: np.ndarray | float, half: float, n: float = 1.0) -> np.ndarray:
    """``1 − hill(x, half, n)``: a factor in (0, 1] that halves at ``x = half``; 1 everywhere if
    ``half ≤ 0`` (no inhibition configured)."""
    if half <= 0:
        return np.ones_like(np.asarray(x, dtype=np.float64))
    return 1.0 - hill(x, half, n)
