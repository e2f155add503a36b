"""PhysiCell's rule response (``Hypothesis_Rule::evaluate``, PhysiCell 1.14 core/PhysiCell_rules.cpp),
vectorised over cells.

For one behaviour with base value ``b``, the value ``M`` its up-regulating rules drive it to and the
value ``m`` its down-regulating rules drive it to::

    S_up = Σ_i (s_i / h_i)^n_i          over the rules that increase it
    U    = b + (M − b) · S_up / (1 + S_up)
    S_dn = Σ_j (s_j / h_j)^n_j          over the rules that decrease it
    out  = U + (m − U) · S_dn / (1 + S_dn)

(PhysiCell's ``multivariate_Hill_response_function``). A rule that does not apply to dead cells
contributes s = 0 for a dead cell; a dead cell for which no rule of the behaviour applies keeps its
value (PhysiCell returns its "do not write" sentinel).
"""

from __future__ import annotations

import numpy as np


def hill_sum(signals: np.ndarray, half_max: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``Σ_i (s_i / h_i)^n_i`` per row: ``signals`` is ``(N, R)``, ``half_max`` and ``power`` ``(R,)``.

    Negative signals count as 0; ``h = 0`` makes any positive signal saturate (and 0/0 count as 0).
    Returns ``(N,)``; 0 when ``R = 0``.
    """
    s = np.maximum(np.asarray(signals, dtype=np.float64), 0.0)
    if s.shape[1] == 0:
        return np.zeros(s.shape[0])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(s > 0, s / half_max, 0.0)
        terms = np.power(ratio, power)
    return np.nan_to_num(terms, nan=0.0, posinf=np.inf).sum(axis=1)


def multivariate_hill(signals: np.ndarray, half_max: np.ndarray, power: np.ndarray) -> np.ndarray:
    """PhysiCell's multivariate Hill response ``S / (1 + S)`` in [0, 1], ``S`` = :func:`hill_sum`."""
    total = hill_sum(signals, half_max, power)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(total), 1.0, total / (1.0 + total))


def rule_response(
    base: np.ndarray | float,
    up_value: float,
    down_value: float,
    up: tuple[np.ndarray, np.ndarray, np.ndarray],
    down: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """The behaviour value after its rules: ``up`` and ``down`` are ``(signals (N, R), half_max (R,),
    power (R,))`` of the increasing and decreasing rules; ``up_value`` / ``down_value`` are PhysiCell's
    max / min value of the behaviour (the saturation of its up / down rules). Returns ``(N,)``."""
    hu = multivariate_hill(*up)
    u = base + (up_value - base) * hu
    hd = multivariate_hill(*down)
    return u + (down_value - u) * hd
