"""Parameter sweeps on dask (``tme sweep`` / ``tme analyze``).

:mod:`~tme_sim.sweep.config` (sweep files) → :mod:`~tme_sim.sweep.design` (points and seeds) →
:mod:`~tme_sim.sweep.execute` (one dask task per run, atomic files, resume, manifest and summary)
on a cluster from :mod:`~tme_sim.sweep.cluster` (LocalCluster, a scheduler, SLURM/PBS), with
per-run :mod:`~tme_sim.sweep.metrics`, then :mod:`~tme_sim.sweep.analyze` (SALib indices, plots).
"""
