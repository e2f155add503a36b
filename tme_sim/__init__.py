"""tme-sim: an agent-based simulator of the tumor microenvironment.

Cell state lives in arrays (:mod:`tme_sim.cells`), fields on a numba grid (:mod:`tme_sim.grid`),
and intracellular decisions come from rules, Boolean networks or neural surrogates
(:mod:`tme_sim.intracellular`). Mesa agents (:mod:`tme_sim.model.agents`) are thin handles on the arrays.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tme-sim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
