"""Boolean-network intracellular models (MaBoSS-compatible), batched over all cells of a type.

* :func:`load_network` reads a MaBoSS ``.bnd``/``.cfg`` pair into a :class:`BooleanNetwork`
  whose numba kernels advance a ``(cells × nodes)`` uint8 state matrix: exact asynchronous
  Gillespie (MaBoSS semantics) or a deterministic synchronous mode, with per-cell knock-outs
  and knock-ins. Networks of up to 12 nodes run on a table of every state's flip rates
  (:mod:`~tme_sim.intracellular.boolean.statetable`); up to 64 nodes bit-packed (one uint64 word
  per cell, flip rates as bit masks per rate class: :mod:`~tme_sim.intracellular.boolean.bitengine`),
  else on per-node-rate kernels generated per network
  (:mod:`~tme_sim.intracellular.boolean.engine`); above 64 nodes on precompiled clause-driven
  kernels (:mod:`~tme_sim.intracellular.boolean.clauseengine`) or, for rates that do not convert,
  table-driven ones (:mod:`~tme_sim.intracellular.boolean.tableengine`).
* :mod:`~tme_sim.intracellular.boolean.statehist`: final-state histograms on the state tables
  (:meth:`BooleanNetwork.final_state_counts`, what a MaBoSS run returns).
* :mod:`~tme_sim.intracellular.boolean.probtraj`: state probabilities over time (``tme network run``);
  :mod:`~tme_sim.intracellular.boolean.physiboss`: PhysiBoSS ``<intracellular>`` blocks to configs.
* :class:`BooleanIntracellular` couples a network to the simulation (inputs from signals,
  outputs to behaviours), configured by :class:`BooleanIntracellularConfig`.
"""

from tme_sim.intracellular.boolean.coupling import (
    BooleanIntracellular,
    BooleanIntracellularConfig,
    InputMap,
    OutputMap,
)
from tme_sim.intracellular.boolean.network import BooleanNetwork, load_network

__all__ = [
    "BooleanIntracellular",
    "BooleanIntracellularConfig",
    "BooleanNetwork",
    "InputMap",
    "OutputMap",
    "load_network",
]
