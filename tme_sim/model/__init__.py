"""The model layer: :class:`TMEModel` builds every component from a scenario, runs the step loop
and manages the cell lifecycle; :mod:`.agents` gives Mesa handles on the arrays."""

from tme_sim.model.model import APOPTOTIC, NECROTIC_LYSED, NECROTIC_SWELLING, TMEModel

__all__ = ["APOPTOTIC", "NECROTIC_LYSED", "NECROTIC_SWELLING", "TMEModel"]
