"""Intracellular models: the single interface through which a cell type's decisions are made.

A cell type's behaviours (cycle rate, death rates, motility, secretion, killing) are first set by
its hand-written rules; an :class:`~tme_sim.intracellular.base.IntracellularModel` chosen in the
scenario (Boolean network or neural surrogate) may then override any of them, once per
intracellular step, for all cells of the type in one batched call.
"""

from tme_sim.intracellular.base import BEHAVIOR_NAMES, IntracellularModel, Signals

__all__ = ["BEHAVIOR_NAMES", "IntracellularModel", "Signals"]
