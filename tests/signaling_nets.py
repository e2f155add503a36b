"""Random signed graphs for the signaling-network tests (imported by the test modules)."""

from __future__ import annotations

import numpy as np

from tme_sim.intracellular.neural.networks import SignalingNetwork


def random_signaling_net(
    seed: int, n: int, e: int, input_nodes: list[int], output_nodes: list[int], *, prescale: float, **kw
) -> tuple[SignalingNetwork, np.random.Generator]:
    """A SignalingNetwork on ``n`` nodes with up to ``e`` random signed edges (self-loops dropped),
    initial weight 0.3 unless given; returns it with the generator, for further random draws."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    sign = rng.choice([-1, 0, 1], len(src))
    kw.setdefault("init_weight", 0.3)
    net = SignalingNetwork(
        [f"n{i}" for i in range(n)], src, dst, sign, np.array(input_nodes), np.array(output_nodes),
        prescale=prescale, **kw,
    )  # fmt: skip
    return net, rng
