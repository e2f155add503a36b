"""Drugs and drug combinations: library, pharmacokinetics, target effects, synergy, screening.

* :mod:`.library` — the validated TOML drug library (:func:`load_library`).
* :mod:`.pk` — one-compartment plasma PK and how plasma drug enters the grid.
* :mod:`.effects` — local concentration → anti-node (knock-out) / pro-node (knock-in) masks
  for Boolean networks (:class:`~.effects.DrugEffects`), and target modulation of surrogate cell
  types in the simulation (:class:`~.effects.SurrogateDrugEffects`: KO_/KI_ flag inputs, ligand
  inputs or a drive on signaling-network nodes).
* :mod:`.synergy` — Bliss, HSA, Loewe and ZIP scores (own MIT implementation).
* :mod:`.screen` — efficacy/toxicity screen over dose matrices without the spatial simulation.
* :mod:`.dosing` — the scenario's ``[drugs]`` section: drug substrates, plasma PK → Dirichlet
  values on entry faces / vessel voxels each mechanics step (hooked into ``TMEModel.step``).
  Drugs reach a type's intracellular model through ``drugs = [...]`` in its ``intracellular``
  table, or :func:`~.dosing.attach_drugs` on a built model.
* :mod:`.simulate` — dose points through the full spatial simulation (``tme drugs simulate``).
* :mod:`.report` — tables, heatmaps (PNG) and HDF5 output; :mod:`.cli` — ``tme drugs``.
"""

from tme_sim.drugs.library import Drug, DrugLibrary, load_library, parse_library

__all__ = ["Drug", "DrugLibrary", "load_library", "parse_library"]
