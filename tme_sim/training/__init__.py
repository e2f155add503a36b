"""Training and cross-validation of neural intracellular surrogates (the ``tme train`` application).

Modules: :mod:`.data` (LEMBAS tables, AnnData, CSV), :mod:`.train` (fitting, ridge), :mod:`.cv`
(cross-validation with baselines) and :mod:`.distill` (MLPs distilled from Boolean networks). The
networks themselves, their saved artifacts and fast inference live in
:mod:`tme_sim.intracellular.neural`, which the simulation needs at run time.
"""
