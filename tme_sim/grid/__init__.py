"""Diffusion–reaction grid: substrate fields on a uniform voxel grid (2D/3D), implicit time
stepping (numba: LOD, ADI, backward Euler + CG), boundary conditions, Dirichlet masks (vessels)
and cell coupling.

Public API::

    from tme_sim.grid import Microenvironment, SubstrateParams, SUBSTRATES, get_substrate
"""

from tme_sim.grid.geometry import BOUNDARY_KINDS, FACES
from tme_sim.grid.microenvironment import PARALLEL_MIN_UPDATES, Microenvironment
from tme_sim.grid.substrates import (
    SUBSTRATES,
    SubstrateParams,
    get_substrate,
    make_substrate,
    register_substrate,
)

__all__ = [
    "BOUNDARY_KINDS",
    "FACES",
    "PARALLEL_MIN_UPDATES",
    "SUBSTRATES",
    "Microenvironment",
    "SubstrateParams",
    "get_substrate",
    "make_substrate",
    "register_substrate",
]
