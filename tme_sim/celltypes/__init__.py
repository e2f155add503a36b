"""Hand-written rules per cell type (the PhysiCell-rules baseline).

Each rule set turns local conditions into behaviours for all cells of its type at once;
a Boolean network or a neural surrogate may then override any behaviour
(:mod:`tme_sim.intracellular`).
"""

from tme_sim.celltypes.base import CellRules, rules_class

__all__ = ["CellRules", "rules_class"]
