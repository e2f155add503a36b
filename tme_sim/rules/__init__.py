"""PhysiCell's rules grammar on arrays: signals → behaviours through Hill responses, per cell type.

:mod:`~tme_sim.rules.hill` is the response, :mod:`~tme_sim.rules.vocabulary` the signal and
behaviour names, :mod:`~tme_sim.rules.engine` the per-type tables the model evaluates each
phenotype step. Scenarios write rules in ``[[cell_types.<name>.behavior_rules]]``.
"""

from tme_sim.rules.engine import RuleTable, build_rule_tables
from tme_sim.rules.hill import multivariate_hill, rule_response

__all__ = ["RuleTable", "build_rule_tables", "multivariate_hill", "rule_response"]
