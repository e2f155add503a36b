"""Helpers to compare final-state distributions with cMaBoSS (used by the corpus tests)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from tme_sim.intracellular.boolean import BooleanNetwork

#: Trajectories per engine. With n = 1e5 on both sides the standard error of a probability
#: difference is at most sqrt(2 * 0.25 / n) = 0.0022, so the tolerance below is 4.5 standard
#: errors: a correct engine fails a state with probability < 1e-5 (and the seeds are fixed, so a
#: run is reproducible), while a real difference of 0.02 or more cannot pass.
N = 100_000
TOL = 0.01


def state_key(names: list[str]) -> frozenset[str]:
    return frozenset(nm for nm in names if nm and nm != "<nil>")


def maboss_final_states(
    bnd: Path, cfgs: list[Path], n: int = N, knockout: str | None = None
) -> dict[frozenset[str], float]:
    """P(final state) from cMaBoSS, one thread, fixed seed; states as sets of active output nodes."""
    import maboss

    sim = maboss.load(str(bnd), *[str(c) for c in cfgs], cmaboss=True)
    sim.update_parameters(sample_count=n, thread_count=1, seed_pseudorandom=12345)
    if knockout is not None:
        sim.mutate(knockout, "OFF", simple=False)  # off from t = 0 and held off, like ours
    res = sim.run(only_final_state=True)
    last = res.get_last_states_probtraj()
    row = last.iloc[-1]
    return {state_key(str(col).split(" -- ")): float(p) for col, p in row.items() if float(p) > 0}


def ours_final_states(
    net: BooleanNetwork, n: int = N, knockout: str | None = None, seed: int = 0
) -> dict[frozenset[str], float]:
    """P(final state) from our engine at the .cfg's ``max_time`` (output nodes only)."""
    rng = np.random.default_rng(seed)
    ko = net.node_mask([knockout]) if knockout else None
    # the call the corpus benchmark times: on the state tables the final states counted in the
    # kernel (final_state_counts), elsewhere every cell's final state (sample)
    duration = float(net.settings.get("max_time", 1000.0))
    if net.kernel_name == "states":
        codes, counts, _ = net.final_state_counts(n, duration, rng, knockout=ko)
        bits = (codes[:, None] >> np.arange(net.n_nodes, dtype=np.uint64)[None, :]) & np.uint64(1)
        state = np.repeat(bits.astype(np.uint8), counts, axis=0)
    else:
        state, _ = net.sample(n, duration, rng, knockout=ko)
    outs = [net.index(nm) for nm in net.output_nodes]
    names = np.asarray(net.output_nodes, dtype=object)
    sub = state[:, outs].astype(bool)
    codes = Counter(map(bytes, np.packbits(sub, axis=1)))
    out: dict[frozenset[str], float] = {}
    for code, count in codes.items():
        row = np.unpackbits(np.frombuffer(code, dtype=np.uint8))[: len(outs)].astype(bool)
        out[state_key(list(names[row]))] = count / n
    return out


def max_abs_difference(a: dict, b: dict) -> tuple[float, frozenset[str] | None]:
    """Largest |p_a - p_b| over every state seen by either, and that state."""
    worst, where = 0.0, None
    for key in set(a) | set(b):
        d = abs(a.get(key, 0.0) - b.get(key, 0.0))
        if d > worst:
            worst, where = d, key
    return worst, where


def node_marginals(states: dict[frozenset[str], float]) -> dict[str, float]:
    """P(node on) for every node on in some state (a check that keeps its power when the states
    are too many for per-state differences to mean much, e.g. 9e4 states of the 78-node Ewing model)."""
    out: dict[str, float] = {}
    for key, p in states.items():
        for nm in key:
            out[nm] = out.get(nm, 0.0) + p
    return out
