"""Drug runtime in the spatial simulation: pharmacokinetics, dosing, target effects.

* :mod:`.pk` — one-compartment plasma PK and how plasma drug enters the grid.
* :mod:`.effects` — local concentration → anti-node (knock-out) / pro-node (knock-in) masks
  for Boolean networks (:class:`~.effects.DrugEffects`), and target modulation of surrogate cell
  types in the simulation (:class:`~.effects.SurrogateDrugEffects`: KO_/KI_ flag inputs, ligand
  inputs or a drive on signaling-network nodes).
* :mod:`.dosing` — the scenario's ``[drugs]`` section: drug substrates, plasma PK → Dirichlet
  values on entry faces / vessel voxels each mechanics step (hooked into ``TMEModel.step``).
  Drugs reach a type's intracellular model through ``drugs = [...]`` in its ``intracellular``
  table, or :func:`~.dosing.attach_drugs` on a built model.

The drug library's schema lives in :mod:`tme_sim.config.drugs`; screens, synergy scores and
dose-response simulations (applications) in :mod:`tme_sim.screening`.
"""

from tme_sim.config.drugs import Drug, DrugLibrary, load_library, parse_library

__all__ = ["Drug", "DrugLibrary", "load_library", "parse_library"]
