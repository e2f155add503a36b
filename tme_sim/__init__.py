"""tme-sim: an agent-based simulator of the tumor microenvironment.

Cell state lives in arrays (:mod:`tme_sim.cells`), fields on a numba grid (:mod:`tme_sim.grid`),
and intracellular decisions come from rules, Boolean networks or neural surrogates
(:mod:`tme_sim.intracellular`). Mesa agents (:mod:`tme_sim.model.agents`) are thin handles on the arrays.
"""

#: the package version: the one place it is written (pyproject.toml reads it; CHANGELOG.md lists releases)
__version__ = "0.1.0"

__all__ = ["__version__"]
