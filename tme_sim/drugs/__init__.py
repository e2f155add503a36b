"""Drugs and drug combinations: library, pharmacokinetics, target effects, synergy, screening.

* :mod:`.library` — the validated TOML drug library (:func:`load_library`).
* :mod:`.pk` — one-compartment plasma PK and how plasma drug enters the grid.
* :mod:`.effects` — local concentration → anti-node (knock-out) / pro-node (knock-in) masks
  for Boolean networks, and expected target modulation for surrogates.
* :mod:`.synergy` — Bliss, HSA, Loewe and ZIP scores (own MIT implementation).
* :mod:`.screen` — efficacy/toxicity screen over dose matrices without the spatial simulation.
* :mod:`.dosing` — the scenario's ``[drugs]`` section: drug substrates, plasma PK → Dirichlet
  values on entry faces / vessel voxels each mechanics step (hooked into ``TMEModel.step``).
  Drug masks reach Boolean cells through ``drugs = [...]`` in a type's ``intracellular`` table.
* :mod:`.simulate` — dose points through the full spatial simulation (``tme drugs simulate``).
* :mod:`.report` — tables, heatmaps (PNG) and HDF5 output; :mod:`.cli` — ``tme drugs``.
"""

from tme_sim.drugs.library import Drug, DrugLibrary, load_library, parse_library

__all__ = ["Drug", "DrugLibrary", "load_library", "parse_library"]
