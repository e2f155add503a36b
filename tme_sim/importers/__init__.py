"""Importers: other simulators' project files → tme-sim scenarios.

:mod:`tme_sim.importers.physicell` reads a PhysiCell project (``PhysiCell_settings.xml``,
``cells.csv``, ``cell_rules.csv``); :mod:`tme_sim.importers.intracellular` is the registry through
which ``<intracellular type="...">`` blocks are translated.
"""
