"""Neural intracellular surrogates: networks, data loaders, training, cross-validation, artifacts.

Modules: :mod:`surrogates.networks` (prior-knowledge recurrent network, dense MLP, ridge),
:mod:`surrogates.data` (LEMBAS tables, AnnData, CSV), :mod:`surrogates.train`,
:mod:`surrogates.cv`, :mod:`surrogates.distill`, :mod:`surrogates.artifact` (saved models and their
metadata), :mod:`surrogates.inference` (fast batched evaluation) and :mod:`surrogates.cli`
(``tme train``).
"""
