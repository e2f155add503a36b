"""State probabilities over time for a standalone network run (like MaBoSS's ``probtraj``).

:func:`probability_trajectory` simulates ``n`` independent cells from the .cfg's initial state and
records, every ``time_tick``, the fraction of cells in each state of the output nodes (nodes not
marked ``is_internal``). Unlike MaBoSS, which averages each state's probability over the window
``[t, t + time_tick)``, these are snapshots at ``t = 0, tick, 2 tick, ..., max_time``; the last row
is MaBoSS's final-state distribution (``get_last_states_probtraj``).

With ``discrete_time`` every transition takes one tick (MaBoSS's rule); the transition falling
exactly on an intermediate snapshot time is included in that snapshot, the one at ``max_time`` is
not (MaBoSS stops there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tme_sim.errors import NetworkFormatError
from tme_sim.intracellular.boolean.network import BooleanNetwork

#: MaBoSS's name of the state with no output node on.
NIL = "<nil>"


@dataclass
class ProbTraj:
    """``times`` (float64 ``(t,)``), ``states`` (MaBoSS labels such as ``"A -- B"`` or ``<nil>``)
    and ``probs`` (float64 ``(t, n_states)``, rows sum to 1)."""

    times: np.ndarray
    states: list[str]
    probs: np.ndarray

    def final(self) -> dict[str, float]:
        """The last row as ``{state: probability}`` (states with probability 0 left out)."""
        return {s: float(p) for s, p in zip(self.states, self.probs[-1], strict=True) if p > 0}

    def to_csv(self, path) -> None:
        """Write ``time`` and one column per state (``Prob[state]`` as in MaBoSS's headers)."""
        header = ",".join(["time"] + [f'"Prob[{s}]"' for s in self.states])
        rows = [header]
        for t, row in zip(self.times, self.probs, strict=True):
            rows.append(",".join([f"{t:.10g}"] + [f"{p:.6g}" for p in row]))
        tmp = f"{path}.part"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\n".join(rows) + "\n")
        os.replace(tmp, path)


def _labels(net: BooleanNetwork, outs: list[int], codes: np.ndarray) -> list[str]:
    out = []
    for code in codes:
        on = [net.node_names[j] for k, j in enumerate(outs) if (int(code) >> k) & 1]
        out.append(" -- ".join(on) if on else NIL)
    return out


def probability_trajectory(
    net: BooleanNetwork,
    n: int,
    rng: np.random.Generator,
    *,
    max_time: float | None = None,
    time_tick: float | None = None,
    knockout: list[str] | None = None,
    knockin: list[str] | None = None,
) -> ProbTraj:
    """Simulate ``n`` cells to ``max_time`` (default: the .cfg's) recording state probabilities
    every ``time_tick`` (default: the .cfg's); ``knockout`` / ``knockin``: node names held off / on."""
    t_end = float(max_time if max_time is not None else net.settings.get("max_time", 1000.0))
    tick = float(time_tick if time_tick is not None else net.settings.get("time_tick", 1.0))
    if not (np.isfinite(t_end) and t_end > 0):
        raise NetworkFormatError(f"{net.name}: max_time must be a positive number, got {t_end:g}")
    if not (np.isfinite(tick) and tick > 0):
        raise NetworkFormatError(f"{net.name}: time_tick must be a positive number, got {tick:g}")
    if int(n) < 1:
        raise NetworkFormatError(f"{net.name}: the number of trajectories must be at least 1, got {n}")
    outs = [net.index(nm) for nm in net.output_nodes]
    if len(outs) > 62:
        raise NetworkFormatError(f"{net.name}: at most 62 output nodes for a probability trajectory")
    ko = net.node_mask(knockout) if knockout else None
    ki = net.node_mask(knockin) if knockin else None
    state, _ = net.sample(int(n), 0.0, rng, knockout=ko, knockin=ki)  # the start states, mutations applied
    weights = (np.uint64(1) << np.arange(len(outs), dtype=np.uint64)).astype(np.uint64)
    n_ticks = int(np.ceil(t_end / tick - 1e-9))
    times = np.minimum(np.arange(n_ticks + 1) * tick, t_end)
    snaps: list[tuple[np.ndarray, np.ndarray]] = []

    def snapshot() -> None:
        codes = state[:, outs].astype(np.uint64) @ weights if outs else np.zeros(len(state), np.uint64)
        snaps.append(np.unique(codes, return_counts=True))

    snapshot()
    discrete = net.discrete_tick > 0
    for k in range(1, n_ticks + 1):
        window = float(times[k] - times[k - 1])
        if discrete and k < n_ticks:
            window *= 1.0 + 1e-12  # keep the transition that falls on this snapshot time
        net.advance(state, window, rng, knockout=ko, knockin=ki)
        snapshot()
    all_codes = np.unique(np.concatenate([c for c, _ in snaps]))
    col = {int(c): i for i, c in enumerate(all_codes)}
    probs = np.zeros((len(snaps), len(all_codes)))
    for r, (codes, counts) in enumerate(snaps):
        for c, m in zip(codes, counts, strict=True):
            probs[r, col[int(c)]] = m / n
    return ProbTraj(times=times, states=_labels(net, outs, all_codes), probs=probs)
