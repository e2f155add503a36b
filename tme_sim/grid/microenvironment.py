"""The diffusion–reaction grid: :class:`Microenvironment`.

Solves, per substrate, ``∂c/∂t = D ∇²c − λ c + (secretion − uptake by cells)`` on a uniform
Cartesian voxel grid (2D or 3D) with one of three implicit schemes: BioFVM's LOD splitting
(:mod:`tme_sim.grid.kernels`), Douglas–Rachford ADI (2D, :mod:`tme_sim.grid.adi`) or backward
Euler solved by conjugate gradients (:mod:`tme_sim.grid.implicit`). docs/diffusion.md compares
them.

Conventions (µm, minutes):

* the domain spans ``[0, Lx] x [0, Ly] (x [0, Lz])``; voxel centres are at ``(i + 0.5) * dx``;
  arrays are ``(nz, ny, nx)``, ``nz == 1`` in 2D where the voxel volume is ``dx²·thickness``
  (a monolayer; ``thickness`` defaults to ``dx``, BioFVM's slab);
* **Dirichlet faces** hold their value *on the boundary face* (cell-centred ghost-voxel
  treatment: the half-voxel flux ``2 D (c_face − c_0) / dx²`` enters the first voxel), which is
  second-order accurate, so the first voxel centre is *not* clamped to the value;
* **Dirichlet voxels** from a mask (vessels) hold their value inside every implicit solve: LOD
  solves the lines through them with the voxel as a known value (an identity row), ADI pins them
  with a penalty; both re-impose the value after the cell coupling;
* **cell coupling** (all cells at once) is aggregated per voxel when it is set:
  ``A = Σ (Vc/Vv) S ρ*``, ``B = Σ (Vc/Vv)(S + U)``, ``C = Σ E / Vv``; each substep applies
  ``ρ ← (ρ + dt·A) / (1 + dt·B) + dt·C`` (implicit in uptake/secretion). The per-voxel sums are
  taken in ascending order of the summands, so any permutation of the cells gives bit-identical
  fields;
* :meth:`Microenvironment.sample` returns the value of the voxel containing each position (no
  interpolation: the value the coupling acts on), :meth:`Microenvironment.gradient` central
  differences at that voxel's centre (one-sided in the first/last voxel of an axis);
* the NaN/negative guard runs once per :meth:`Microenvironment.advance` call (after its
  ``n_steps`` substeps) and is one vectorised pass over the array.

Accuracy (tests in ``tests/test_grid_analytic.py``): second order in ``dx``, first order in
``dt`` (implicit Euler and the LOD splitting). The splitting error also shifts steady states by
O(dt): with uptake by a cell cluster it is ~0.2 % of the far-field value at ``dt = 0.01`` min.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tme_sim.errors import FieldError, GridError
from tme_sim.grid import adi as A
from tme_sim.grid import implicit as I
from tme_sim.grid import kernels as K
from tme_sim.grid import lod_increment as LI
from tme_sim.grid.geometry import (
    FACES,
    _finite_number,
    grid_shape,
    parse_faces,
    parse_kind,
    positions_to_flat,
    positions_to_ijk,
)
from tme_sim.grid.substrates import SubstrateParams, get_substrate
from tme_sim.parallel import KernelChooser

__all__ = ["LOD_FORMS", "PARALLEL_MIN_UPDATES", "RETUNE_EVERY", "SCHEMES", "Microenvironment"]

SCHEMES = ("lod", "adi", "implicit")
"""Time-stepping schemes of :class:`Microenvironment` (``scheme`` argument)."""

LOD_FORMS = ("biofvm", "increment")
"""Forms of the ``lod`` scheme (``lod_form`` argument): BioFVM's step or its increment form."""

IMPLICIT_RTOL = 1e-8
"""CG stops when every residual is below this fraction of the substrate's scale
(its largest field, face or vessel value): the increment is then accurate to ~this fraction."""

IMPLICIT_MAX_ITER = 1000
"""Cap on CG iterations per substep and substrate (reached only by a badly conditioned step)."""

ADI_PENALTY = 1e12
"""``κ·dt`` that pins Dirichlet voxels in the ADI factors (see :mod:`tme_sim.grid.adi`)."""

PARALLEL_MIN_UPDATES = 20_000
"""Below this many voxel·substrate values the serial kernel is used even with >1 numba threads:
a substep then costs well under 100 µs, of the order of the fork/join of its two parallel
regions on a shared 2-core machine. From this size on both kernels are timed on the run's own
calls and the faster is kept (:class:`tme_sim.parallel.KernelChooser`; the flagship's 12 × 50 × 50
grid qualifies), so a machine where threads do not pay falls back to serial. Results are
bit-identical either way (``benchmarks/diffusion.py`` times 50x50x10 both ways)."""

RETUNE_EVERY = 50
"""With ``parallel=None``, every this many :meth:`Microenvironment.advance` calls the kernel that
is currently slower is timed again (its cost: one call at that speed)."""

_STATE_VERSION = 1


class Microenvironment:
    """Substrate fields on a uniform voxel grid with implicit diffusion, decay and cell coupling.

    Args:
        domain: ``(Lx, Ly)`` (2D) or ``(Lx, Ly, Lz)`` (3D) in µm; each a whole number of voxels.
        dx: voxel edge in µm (``dx = dy = dz``).
        substrates: the fields, as :class:`SubstrateParams` (or registered names).
        dtype: ``np.float64`` (default) or ``np.float32``.
        parallel: ``True``/``False`` forces the parallel/serial kernels. ``None`` (default): serial
            when numba has one thread or the grid holds fewer than :data:`PARALLEL_MIN_UPDATES`
            values; otherwise both kernels are timed on the run's own calls and the faster is
            used, re-trying the other every :data:`RETUNE_EVERY` calls (threads do not pay on an
            oversubscribed machine, where a barrier can wait a whole scheduler time slice).
            Results are bit-identical whichever kernel runs.
        scheme: ``"lod"`` (default): BioFVM's locally one-dimensional implicit splitting, cell
            coupling ``ρ ← (ρ + dt·(Vc/Vv)·S·ρ*) / (1 + dt·(Vc/Vv)·(S+U)) + dt·E/Vv`` after the
            sweeps. Its steady state is off by ``O(dt)``: for fast-diffusing, strongly consumed
            substrates (oxygen around a tumor) ~15 % at dt = 0.01 min. ``"adi"``: Douglas–Rachford
            ADI on the increment (:mod:`tme_sim.grid.adi`), with the same coupling terms inside
            the solve; its steady state is exact for any dt, so dt can be ~10× larger with better
            accuracy. 2D only. Costs five extra field-sized arrays and ~2.5× an LOD substep.
            ``"implicit"``: backward Euler on the unsplit operator solved by warm-started CG
            (:mod:`tme_sim.grid.implicit`): exact steady state and exact vessels for any dt,
            unconditionally stable and positivity preserving, 2D and 3D.
        lod_form: ``scheme = "lod"`` only. ``"biofvm"`` (default): BioFVM's step, the 1-D factors
            applied to the field (steady state off by O(dt)). ``"increment"``: the same factors
            applied to the residual of the unsplit problem, plus a half-weighted Jacobi term
            (:mod:`tme_sim.grid.lod_increment`): exact steady state and vessels for any dt,
            1.3–2.6× the cost of a BioFVM substep (measured: more on small 2D grids).
        thickness: 2D only: the depth in µm of the layer the grid stands for, so a voxel holds
            ``dx²·thickness`` µm³ (default ``dx``, BioFVM's slab). A 2D simulation is a
            monolayer: give one cell diameter and cell volume fractions (hence concentrations)
            no longer depend on ``dx``. Ignored in 3D.

    Raises:
        GridError: bad domain/dx, duplicate or unknown substrate, unsupported dtype.
    """

    def __init__(
        self,
        domain: Sequence[float],
        dx: float,
        substrates: Sequence[SubstrateParams | str],
        *,
        dtype: Any = np.float64,
        parallel: bool | None = None,
        scheme: str = "lod",
        thickness: float | None = None,
        lod_form: str = "biofvm",
    ) -> None:
        shape, dim = grid_shape(domain, dx)
        if scheme not in SCHEMES:
            raise GridError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        if lod_form not in LOD_FORMS:
            raise GridError(f"lod_form must be one of {', '.join(LOD_FORMS)}, got {lod_form!r}")
        self.lod_form: str = lod_form
        if scheme == "adi" and dim != 2:
            raise GridError("scheme 'adi' is for 2D grids (in 3D its three factors do not commute); use 'implicit'")
        self.scheme: str = scheme
        self._work: np.ndarray | None = None
        self._adi_cache: tuple | None = None  # (dt, diagonal, spare, factors, base, mask, rdt, adt, dirty)
        self._voxel_rank: np.ndarray | None = None  # voxel -> position in the coupling kernel order
        self._voxel_group = np.zeros(0, np.int64)
        self.dim: int = dim
        self.dx: float = float(dx)
        self.shape: tuple[int, int, int] = shape
        nz, ny, nx = shape
        self.domain: tuple[float, ...] = tuple(n * self.dx for n in (nx, ny, nz)[:dim])
        if thickness is None:
            thickness = self.dx
        thickness = _finite_number(thickness, "2D layer thickness")
        if thickness <= 0:
            raise GridError(f"2D layer thickness must be > 0 um, got {thickness:g}")
        self.thickness: float = self.dx if dim == 3 else float(thickness)
        """Depth of a voxel in µm: ``dx`` in 3D; in 2D the thickness of the layer the grid
        represents (a monolayer of cells: one cell diameter), so that volume fractions and
        concentrations do not depend on ``dx``."""
        self.voxel_volume: float = self.dx * self.dx * self.thickness
        self.n_voxels: int = nx * ny * nz
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise GridError(f"dtype must be float64 or float32, got {dtype!r}") from None
        if self.dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise GridError(f"dtype must be float64 or float32, got {self.dtype}")
        if isinstance(substrates, str | SubstrateParams):
            substrates = [substrates]
        subs: list[SubstrateParams] = []
        for p in substrates:
            if isinstance(p, str):
                p = get_substrate(p)
            if not isinstance(p, SubstrateParams):
                raise GridError(f"substrates must be SubstrateParams or names, got {type(p).__name__}")
            subs.append(p)
        if not subs:
            raise GridError("a Microenvironment needs at least one substrate")
        names = [p.name for p in subs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise GridError(f"substrate {dup[0]!r} is listed more than once")
        self.substrates: list[SubstrateParams] = subs
        self.names: list[str] = names
        self._index = {n: s for s, n in enumerate(names)}
        self.n_substrates: int = len(subs)
        self.last_iterations = np.zeros(self.n_substrates, np.int64)
        """``scheme = "implicit"``: CG iterations of the last substep, per substrate."""
        self.parallel = parallel
        self.time: float = 0.0
        # automatic kernel choice: seconds per value·substep of (serial, parallel), call counter
        self._chooser = KernelChooser(PARALLEL_MIN_UPDATES, RETUNE_EVERY)
        self.last_kernel: str = ""
        """``"serial"`` or ``"parallel"``: the kernel the last :meth:`advance` used."""

        S = self.n_substrates
        self._c = np.empty((S, *shape), dtype=self.dtype)
        for s, p in enumerate(subs):
            self._c[s] = p.initial
        self._bc_kind = np.zeros((S, 6), dtype=np.int8)
        self._bc_value = np.zeros((S, 6), dtype=np.float64)
        self._masks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._set_coupling_arrays(np.zeros(0, np.int64), np.zeros((S, 0)), np.zeros((S, 0)), np.zeros((S, 0)))
        self._coef_key: float | None = None
        self._coef: tuple[np.ndarray, ...] = ()
        self._coupling_key: float | None = None
        self._coupling: tuple[np.ndarray, ...] = ()
        self._build_masks()

    # ------------------------------------------------------------------ basic access
    def __repr__(self) -> str:
        nz, ny, nx = self.shape
        dims = f"{nx}x{ny}" + (f"x{nz}" if self.dim == 3 else "")
        return (
            f"Microenvironment({dims} voxels of {self.dx:g} um, substrates={self.names}, "
            f"dtype={self.dtype}, t={self.time:g} min)"
        )

    def index(self, name: str) -> int:
        """Position of substrate ``name`` in the field array. GridError if unknown."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise GridError(f"unknown substrate {name!r} in this grid (known: {', '.join(self.names)})") from None

    def field(self, name: str) -> np.ndarray:
        """The ``(nz, ny, nx)`` field of ``name`` (a writable view into the state; units of the
        substrate). Writing negative/NaN values makes the next :meth:`check` fail."""
        return self._c[self.index(name)]

    def fields_view(self) -> np.ndarray:
        """All fields ``(S, nz, ny, nx)``: the state array itself, not a copy (for kernels that
        read several fields in one call; the same caveat as :meth:`field` on writing)."""
        return self._c

    def species_first(self) -> np.ndarray:
        """All fields as a contiguous ``(S, nz, ny, nx)`` copy (for output)."""
        return self._c.copy()

    def set_field(self, name: str, values: float | np.ndarray) -> None:
        """Set the field of ``name`` to a scalar or an ``(nz, ny, nx)`` array (finite, >= 0)."""
        s = self.index(name)
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 2 and self.dim == 2:
            arr = arr[None]
        if arr.ndim != 0 and arr.shape != self.shape:
            raise GridError(f"values for {name!r} must be a scalar or of shape {self.shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise GridError(f"values for {name!r} must be finite and >= 0")
        self._c[s] = arr

    def total_amount(self, name: str) -> float:
        """``Σ c · voxel_volume`` of ``name`` (unit·µm³), summed in float64."""
        return float(np.sum(self._c[self.index(name)], dtype=np.float64)) * self.voxel_volume

    # ------------------------------------------------------------------ boundaries
    def set_boundary(self, name: str, face: str, kind: str, value: float = 0.0) -> None:
        """Boundary condition of substrate ``name`` on ``face``.

        Args:
            face: ``xmin``, ``xmax``, ``ymin``, ``ymax`` (``zmin``, ``zmax`` in 3D) or ``all``.
            kind: ``neumann`` (zero flux, the default) or ``dirichlet``.
            value: the Dirichlet value on the boundary face (unit of the substrate, >= 0).
        """
        s = self.index(name)
        faces = parse_faces(face, self.dim)
        k = parse_kind(kind)
        v = _finite_number(value, f"boundary value of {name!r} on {face}")
        if v < 0:
            raise GridError(f"boundary value of {name!r} on {face} must be >= 0, got {v:g}")
        for f in faces:
            self._bc_kind[s, f] = k
            self._bc_value[s, f] = v if k == 1 else 0.0
        self._coef_key = None
        self._adi_cache = None  # the ADI factorisations depend on the faces too

    def boundary(self, name: str) -> dict[str, tuple[str, float]]:
        """Current boundary conditions of ``name``: face -> (kind, value)."""
        s = self.index(name)
        return {
            FACES[f]: (("neumann", "dirichlet")[self._bc_kind[s, f]], float(self._bc_value[s, f]))
            for f in range(2 * self.dim)
        }

    def set_dirichlet_mask(self, name: str, mask: np.ndarray, value: float | np.ndarray) -> None:
        """Clamp the voxels where ``mask`` (bool ``(nz, ny, nx)``) is true to ``value``.

        ``value`` is a scalar, an array of the grid shape (read where ``mask`` is true) or a 1D
        array with one value per true voxel (in C order). Replaces any previous mask of ``name``;
        the values are imposed at once and after every sweep of :meth:`advance`.
        """
        s = self.index(name)
        m = np.asarray(mask)
        if m.ndim == 2 and self.dim == 2:
            m = m[None]
        if m.shape != self.shape:
            raise GridError(f"dirichlet mask of {name!r} must have shape {self.shape}, got {m.shape}")
        if m.dtype != np.bool_:
            raise GridError(f"dirichlet mask of {name!r} must be boolean, got {m.dtype}")
        flat = np.flatnonzero(m.ravel()).astype(np.int64)
        val = np.asarray(value, dtype=np.float64)
        if val.ndim == 0:
            vals = np.full(flat.size, float(val))
        elif val.shape == self.shape or (self.dim == 2 and val.shape == self.shape[1:]):
            vals = val.reshape(-1)[flat].copy()
        elif val.shape == (flat.size,):
            vals = val.copy()
        else:
            raise GridError(
                f"dirichlet value of {name!r} must be a scalar, of shape {self.shape} or "
                f"({flat.size},), got {val.shape}"
            )
        if not np.all(np.isfinite(vals)) or np.any(vals < 0):
            raise GridError(f"dirichlet values of {name!r} must be finite and >= 0")
        if flat.size == 0:
            self._masks.pop(s, None)
        else:
            self._masks[s] = (flat, vals)
            self._c[s].reshape(-1)[flat] = vals
        self._build_masks()

    def clear_dirichlet_mask(self, name: str) -> None:
        """Remove the Dirichlet voxels of ``name``."""
        self._masks.pop(self.index(name), None)
        self._build_masks()

    @property
    def _n_pass2(self) -> int:
        """Number of work items of the second pass: y-rows (3D) or column blocks (2D)."""
        _, ny, nx = self.shape
        return ny if self.dim == 3 else (nx + K.BLOCK - 1) // K.BLOCK

    def _pass2_group(self, flat: np.ndarray) -> np.ndarray:
        """Work item of the second pass that owns each flat voxel index."""
        _, ny, nx = self.shape
        if self.dim == 3:
            return (flat // nx) % ny
        return (flat % nx) // K.BLOCK

    def _build_masks(self) -> None:
        """CSR arrays of the Dirichlet voxels grouped by (substrate, work item of the second pass:
        y-row in 3D, column block in 2D), and the lines through them along each axis."""
        S = self.n_substrates
        subs = [np.full(self._masks[s][0].size, s, np.int64) for s in sorted(self._masks)]
        flats = [self._masks[s][0] for s in sorted(self._masks)]
        vals = [self._masks[s][1] for s in sorted(self._masks)]
        sub = np.concatenate(subs) if subs else np.zeros(0, np.int64)
        flat = np.concatenate(flats) if flats else np.zeros(0, np.int64)
        val = np.concatenate(vals) if vals else np.zeros(0)

        def csr(group: np.ndarray, ngroup: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            order = np.lexsort((flat, group, sub))
            counts = np.bincount(sub * ngroup + group, minlength=S * ngroup).reshape(S, ngroup)
            starts = np.concatenate([[0], np.cumsum(counts.ravel())]).astype(np.int64)
            ptr = np.empty((S, ngroup + 1), np.int64)
            ptr[:, :ngroup] = starts[:-1].reshape(S, ngroup)
            ptr[:, ngroup] = starts[1:].reshape(S, ngroup)[:, -1]
            return ptr, flat[order].copy(), val[order].astype(self.dtype)

        self._dir_by_pass2 = csr(self._pass2_group(flat), self._n_pass2)
        self._dir_zero = np.zeros_like(self._dir_by_pass2[2])
        self._line_shapes = [self._dirichlet_lines(axis) for axis in range(self.dim)]
        self._coef_key = None
        self._adi_cache = None  # the ADI factorisations depend on the masks
        self._coupling_key = None

    def _dirichlet_lines(self, axis: int) -> tuple[np.ndarray, ...]:
        """The grid lines along ``axis`` (0 = x, 1 = y, 2 = z) that cross a Dirichlet voxel.

        Returns ``(ptr (S, G+1), base, stride, length, offset (L,), sub (L,), fixed, value (E,))``:
        lines grouped by (substrate, work item of the pass that sweeps this axis — z-plane for x
        and y in 3D, y-row for z; row block for x and column block for y in 2D), each with its
        first flat voxel ``base``, ``stride`` and ``length``; ``offset`` into the concatenated
        per-voxel arrays ``fixed`` (bool) and ``value`` of all lines.
        """
        S = self.n_substrates
        nz, ny, nx = self.shape
        n_axis, stride = ((nx, 1), (ny, nx), (nz, nx * ny))[axis]
        if self.dim == 3:
            n_groups = nz if axis < 2 else ny
        else:
            n_groups = ((ny if axis == 0 else nx) + K.BLOCK - 1) // K.BLOCK
        counts = np.zeros((S, n_groups), np.int64)
        parts: list[tuple[np.ndarray, ...]] = []
        for s in range(S):
            if s not in self._masks:
                continue
            flat, vals = self._masks[s]
            if axis == 0:
                base = np.unique(flat - flat % nx)
            elif axis == 1:
                base = np.unique((flat // (ny * nx)) * ny * nx + flat % nx)
            else:
                base = np.unique(flat % (ny * nx))
            if self.dim == 3:
                group = base // (ny * nx) if axis < 2 else (base // nx) % ny
            else:
                group = (base // nx if axis == 0 else base % nx) // K.BLOCK
            order = np.lexsort((base, group))
            base, group = base[order], group[order]
            counts[s] = np.bincount(group, minlength=n_groups)
            dense = np.zeros(self.n_voxels, bool)
            dense[flat] = True
            dval = np.zeros(self.n_voxels)
            dval[flat] = vals
            idx = base[:, None] + np.arange(n_axis)[None, :] * stride
            parts.append((np.full(base.size, s, np.int64), base, dense[idx].ravel(), dval[idx].ravel()))
        ptr = np.zeros((S, n_groups + 1), np.int64)
        starts = np.concatenate([[0], np.cumsum(counts.ravel())]).astype(np.int64)
        ptr[:, :n_groups] = starts[:-1].reshape(S, n_groups)
        ptr[:, n_groups] = starts[1:].reshape(S, n_groups)[:, -1]
        sub = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        base = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        fixed = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, bool)
        value = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
        n_lines = base.size
        length = np.full(n_lines, n_axis, np.int64)
        offset = np.arange(n_lines, dtype=np.int64) * n_axis
        return ptr, base, np.full(n_lines, stride, np.int64), length, offset, sub, fixed, value

    def _dirichlet_line_tables(self, dt: float) -> list[tuple[np.ndarray, ...]]:
        """Per axis, the kernel table ``(ptr, base, stride, length, offset, inv, g, add, buffer)``
        of the lines through Dirichlet voxels, factorised for ``dt`` (3 tables; unused axes
        empty)."""
        tables = []
        for axis in range(3):
            if axis >= self.dim:
                e = np.zeros(0, np.int64)
                z = np.zeros(0, self.dtype)
                tables.append((np.zeros((self.n_substrates, 2), np.int64), e, e, e, e, z, z, z, z))
                continue
            ptr, base, stride, length, offset, sub, fixed, value = self._line_shapes[axis]
            face_value = self._bc_value
            if self._increment_form:  # the increment's data are homogeneous: vessels and faces add 0
                value, face_value = np.zeros_like(value), np.zeros_like(self._bc_value)
            rdt = np.array([p.diffusion * dt / self.dx**2 for p in self.substrates])
            adt = np.array([p.decay * dt / self.dim for p in self.substrates])
            lo, hi = 2 * axis, 2 * axis + 1
            inv, g, add = (np.empty(fixed.size) for _ in range(3))
            K.dirichlet_line_factors(
                sub, length, offset, fixed, value, rdt, adt,
                self._bc_kind[:, lo] != 0, self._bc_kind[:, hi] != 0,
                face_value[:, lo].copy(), face_value[:, hi].copy(), inv, g, add,
            )  # fmt: skip
            cast = [np.ascontiguousarray(a, dtype=self.dtype) for a in (inv, g, add)]
            tables.append((ptr, base, stride, length, offset, *cast, np.empty(fixed.size, self.dtype)))
        return tables

    # ------------------------------------------------------------------ cells
    def voxel_index(self, positions: np.ndarray) -> np.ndarray:
        """Flat voxel index ``(k*ny + j)*nx + i`` (int64, ``(N,)``) of positions ``(N, 3)`` µm,
        clipped into the domain (z ignored in 2D)."""
        return positions_to_flat(positions, self.shape, self.dx)

    def voxel_centres(self, voxel: np.ndarray) -> np.ndarray:
        """Centres ``(N, 3)`` µm of flat voxel indices (z = 0.5 dx in 2D)."""
        v = np.asarray(voxel, dtype=np.int64)
        _, ny, nx = self.shape
        i = v % nx
        j = (v // nx) % ny
        k = v // (nx * ny)
        return (np.stack([i, j, k], axis=1) + 0.5) * self.dx

    def set_cell_coupling(
        self,
        voxel: np.ndarray,
        cell_volume: np.ndarray,
        secretion: np.ndarray,
        saturation: np.ndarray,
        uptake: np.ndarray,
        export: np.ndarray,
        *,
        check: bool = True,
        by_row: np.ndarray | None = None,
    ) -> None:
        """Set the secretion/uptake of all cells (replaces the previous coupling).

        Args:
            voxel: ``(N,)`` int64 flat voxel of each cell (:meth:`voxel_index`).
            cell_volume: ``(N,)`` µm³.
            secretion: ``(N, S)`` secretion rate ``S`` in 1/min.
            saturation: ``(N, S)`` saturation density ``ρ*`` in the substrate unit.
            uptake: ``(N, S)`` uptake rate ``U`` in 1/min.
            export: ``(N, S)`` net export ``E`` in unit·µm³/min (may be negative).
            check: validate the arrays (``False``: a trusted caller's own float64 arrays).
            by_row: ``(N,)`` the cells in lexicographic order of their rows
                (:func:`~tme_sim.grid.kernels.coupling_row_order` of these arrays; computed when
                not given). A caller whose rates change less often than its cells change voxel
                passes it to skip the sort.

        The per-voxel sums ``A, B, C`` do not depend on the order of the cells (bit for bit).
        """
        S = self.n_substrates
        if not check:  # trusted caller (the model's own float64 arrays): skip validation
            return self._set_coupling_fast(
                np.asarray(voxel, dtype=np.int64), cell_volume, secretion, saturation, uptake, export, by_row
            )
        vox = np.asarray(voxel)
        if vox.ndim != 1 or not (vox.size == 0 or np.issubdtype(vox.dtype, np.integer)):
            raise GridError(f"voxel must be a 1D integer array, got shape {vox.shape} dtype {vox.dtype}")
        vox = vox.astype(np.int64, copy=False)
        n = vox.size
        if n and (vox.min() < 0 or vox.max() >= self.n_voxels):
            raise GridError(f"voxel indices must be in [0, {self.n_voxels}), got {vox.min()}..{vox.max()}")
        vol = np.asarray(cell_volume, dtype=np.float64)
        if vol.shape != (n,):
            raise GridError(f"cell_volume must have shape ({n},), got {vol.shape}")
        arrays = {}
        for key, arr in (
            ("secretion", secretion),
            ("saturation", saturation),
            ("uptake", uptake),
            ("export", export),
        ):
            a = np.asarray(arr, dtype=np.float64)
            if a.shape != (n, S):
                raise GridError(f"{key} must have shape ({n}, {S}), got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise GridError(f"{key} must be finite")
            if key != "export" and np.any(a < 0):
                raise GridError(f"{key} must be >= 0")
            arrays[key] = a
        if not np.all(np.isfinite(vol)) or np.any(vol < 0):
            raise GridError("cell_volume must be finite and >= 0")
        if n == 0:
            z = np.zeros((S, 0))
            self._set_coupling_arrays(np.zeros(0, np.int64), z, z, z)
            return
        self._set_coupling_fast(vox, vol, arrays["secretion"], arrays["saturation"], arrays["uptake"], arrays["export"])

    def _set_coupling_fast(self, vox, vol, sec, sat, upt, exp, by_row=None) -> None:
        """Aggregate validated coupling arrays into the per-voxel sums A, B, C (one kernel)."""
        if vox.size == 0:
            z = np.zeros((self.n_substrates, 0))
            self._set_coupling_arrays(np.zeros(0, np.int64), z, z, z)
            return
        if self._voxel_rank is None:  # voxels in kernel order: by second-pass work item, then index
            group = self._pass2_group(np.arange(self.n_voxels, dtype=np.int64))
            self._voxel_group = group
            self._voxel_rank = np.empty(self.n_voxels, np.int64)
            self._voxel_rank[np.argsort(group, kind="stable")] = np.arange(self.n_voxels)
        vol, sec, sat, upt, exp = (np.ascontiguousarray(a, dtype=np.float64) for a in (vol, sec, sat, upt, exp))
        if by_row is None or by_row.shape != vox.shape:
            by_row = K.coupling_row_order(vol, sec, sat, upt, exp)
        self._occ, self._A, self._B, self._C, self._occ_ptr = K.build_coupling(
            self._voxel_rank[vox], vox, vol, sec, sat, upt, exp, 1.0 / self.voxel_volume,
            self._voxel_group, self.n_voxels, self._n_pass2, by_row,
        )  # fmt: skip
        self._coupling_key = None

    def _set_coupling_arrays(self, occ: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
        """Store per-voxel sums (occupied voxels ``occ (M,)``, ``A, B, C (S, M)``) grouped by the
        work item of the second pass (stable, so the order inside a group is by voxel)."""
        occ = np.asarray(occ, dtype=np.int64)
        grp = self._pass2_group(occ)
        order = np.argsort(grp, kind="stable")
        self._occ = np.ascontiguousarray(occ[order])
        self._A = np.ascontiguousarray(np.asarray(A, dtype=np.float64)[:, order])
        self._B = np.ascontiguousarray(np.asarray(B, dtype=np.float64)[:, order])
        self._C = np.ascontiguousarray(np.asarray(C, dtype=np.float64)[:, order])
        counts = np.bincount(grp, minlength=self._n_pass2)
        self._occ_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._coupling_key = None

    # ------------------------------------------------------------------ stepping
    def _coefficients(self, dt: float) -> tuple[np.ndarray, ...]:
        if self._coef_key == dt:
            return self._coef
        S = self.n_substrates
        nz, ny, nx = self.shape
        out: list[np.ndarray] = []
        for axis, n in enumerate((nx, ny, nz)):
            inv = np.empty((S, n))
            g = np.empty((S, n))
            add = np.zeros((S, 2))
            for s, p in enumerate(self.substrates):
                r = p.diffusion * dt / self.dx**2
                a = dt * p.decay / self.dim
                if axis == 2 and self.dim == 2:
                    r, a = 0.0, 0.0
                lo, hi = 2 * axis, 2 * axis + 1
                inv[s], g[s], add[s, 0], add[s, 1] = K.thomas_coefficients(
                    n,
                    r,
                    a,
                    bool(self._bc_kind[s, lo]) and axis < self.dim,
                    bool(self._bc_kind[s, hi]) and axis < self.dim,
                    self._bc_value[s, lo],
                    self._bc_value[s, hi],
                )
            out += [inv.astype(self.dtype), g.astype(self.dtype), add.astype(self.dtype)]
        out += self._dirichlet_line_tables(dt)
        self._coef = tuple(out)
        self._coef_key = dt
        return self._coef

    def _coupling_arrays(self, dt: float) -> tuple[np.ndarray, ...]:
        """Per occupied voxel, cast to the field dtype. LOD: ``(P, Q, E)`` of
        ``ρ ← (ρ + P)·Q + E``; ADI: ``dt·(A + C)``, ``dt·B`` and the axis factorisations
        (:meth:`_adi_factors`)."""
        if self._coupling_key == dt:
            return self._coupling

        def cast(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a.astype(self.dtype))

        if self.scheme == "adi":
            F = np.multiply(self._A + self._C, dt, dtype=self.dtype)
            self._coupling = (F, np.multiply(self._B, dt, dtype=self.dtype), *self._adi_factors(dt))
        elif self._increment_form:
            jac0 = self._jacobi_base(dt)[:, None]
            dtB = dt * self._B
            occ_jac = LI.OMEGA / (jac0 + dtB) - LI.OMEGA / jac0
            self._coupling = (
                cast(dt * (self._A + self._C)), cast(dtB), cast(1.0 / (1.0 + dtB)), cast(occ_jac),
                np.zeros(self._B.shape, self.dtype),
            )  # fmt: skip
        elif self.scheme == "implicit":
            F = np.multiply(self._A + self._C, dt, dtype=self.dtype)
            dtB = np.multiply(self._B, dt, dtype=self.dtype)
            inv_diag = np.empty(self._c.shape, self.dtype)
            ptr, flat, _ = self._dir_by_pass2
            for s, p in enumerate(self.substrates):
                I.inverse_diagonal(
                    inv_diag[s], s, p.diffusion * dt / self.dx**2, p.decay * dt, self._bc_kind,
                    flat, int(ptr[s, 0]), int(ptr[s, -1]), self._occ, dtB,
                )  # fmt: skip
            self._coupling = (F, dtB, inv_diag)
        else:
            self._coupling = (cast(dt * self._A), cast(1.0 / (1.0 + dt * self._B)), cast(dt * self._C))
        self._coupling_key = dt
        return self._coupling

    @property
    def _increment_form(self) -> bool:
        return self.scheme == "lod" and self.lod_form == "increment"

    def _jacobi_base(self, dt: float) -> np.ndarray:
        """``J`` of a voxel without cells, per substrate ``(S,)``: ``1 + 2·dim·D dt/dx² + dt λ``."""
        return np.array([1.0 + 2 * self.dim * p.diffusion * dt / self.dx**2 + p.decay * dt for p in self.substrates])

    def _adi_factors(self, dt: float) -> tuple[np.ndarray, ...]:
        """Per-voxel factorisations ``inv_x, g_x, inv_y, g_y, inv_z, g_z`` of the ADI axis factors,
        with the cells' ``dt·B`` and the Dirichlet-voxel penalty shared among the axes (see
        :mod:`tme_sim.grid.adi`); ``inv_z, g_z`` are dummies in 2D. Cached: a change of dt,
        faces or masks refactors every line, a change of the coupling only the lines whose
        diagonal changed."""
        S = self.n_substrates
        nz, ny, nx = self.shape
        cache = self._adi_cache
        if cache is None or cache[0] != dt:
            zshape = self._c.shape if self.dim == 3 else (S, 1, 1, 1)
            factors = tuple(np.empty(self._c.shape, self.dtype) for _ in range(4)) + tuple(
                np.zeros(zshape, self.dtype)
                for _ in range(2)  # 2D: dummies, never written
            )
            base = np.zeros(self._c.shape)
            mask = np.zeros(self._c.shape, bool)
            for s, (flat, _) in self._masks.items():
                base[s].reshape(-1)[flat] = ADI_PENALTY / self.dim
                mask[s].reshape(-1)[flat] = True
            old = np.full(self._c.shape, np.nan)  # every line dirty
            rdt = np.array([p.diffusion * dt / self.dx**2 for p in self.substrates])
            adt = np.array([p.decay * dt / self.dim for p in self.substrates])
            dirty = (np.empty((S, nz, ny), bool), np.empty((S, nz, nx), bool), np.empty((S, ny, nx), bool))
            cache = (dt, old, np.empty_like(base), factors, base, mask, rdt, adt, dirty)
        _, old, extra, factors, base, mask, rdt, adt, dirty = cache
        A.coupling_diagonal(base, mask, self._occ, self._B, dt / self.dim, old, extra, *dirty)
        A.voxel_factors(extra, rdt, adt, self._bc_kind, self.dim, *dirty, *factors)
        self._adi_cache = (dt, extra, old, *cache[3:])  # the two diagonal buffers swap roles
        return factors

    def _use_parallel(self) -> bool:
        """Kernel for the next call (see ``parallel`` in the class docstring)."""
        self._chooser.forced = self.parallel
        self._chooser.min_work = PARALLEL_MIN_UPDATES  # read at call time (tests lower it)
        return self._chooser.use_parallel(self._c.size)

    def _record_speed(self, par: bool, seconds: float, n_steps: int) -> None:
        self._chooser.record(par, seconds, n_steps * self._c.size)

    def advance(self, dt: float, n_steps: int = 1) -> None:
        """Advance ``n_steps`` implicit substeps of ``dt`` minutes in one compiled call
        (diffusion + decay by LOD, then cell coupling, then Dirichlet voxels), then run the
        NaN/negative guard (:meth:`check`) and add ``n_steps * dt`` to :attr:`time`.

        Raises:
            GridError: ``dt <= 0`` or not finite, ``n_steps < 1``.
            FieldError: a field became NaN or negative.
        """
        dt = _finite_number(dt, "time step dt")
        if dt <= 0:
            raise GridError(f"time step dt must be > 0 min, got {dt:g}")
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 1:
            raise GridError(f"n_steps must be a positive integer, got {n_steps!r}")
        n_steps = int(n_steps)
        inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z, lines_x, lines_y, lines_z = self._coefficients(dt)
        coupling = self._coupling_arrays(dt)
        c = self._c
        c2 = c.reshape(self.n_substrates, self.n_voxels)
        par = self._use_parallel()
        self.last_kernel = "parallel" if par else "serial"
        t0 = time.perf_counter()
        if self.scheme == "adi":
            self._advance_adi(dt, n_steps, par, coupling)
        elif self.scheme == "implicit":
            self._advance_implicit(dt, n_steps, par, coupling)
        elif self._increment_form:
            self._advance_increment(dt, n_steps, par, coupling)
        elif self.dim == 3:
            fn = K.step_3d_parallel if par else K.step_3d_serial
            fn(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z,
               lines_x, lines_y, lines_z, *self._dir_by_pass2, self._occ_ptr, self._occ, *coupling)  # fmt: skip
        else:
            fn = K.step_2d_parallel if par else K.step_2d_serial
            fn(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, lines_x, lines_y,
               *self._dir_by_pass2, self._occ_ptr, self._occ, *coupling)  # fmt: skip
        self._record_speed(par, time.perf_counter() - t0, n_steps)
        self.time += n_steps * dt
        self._check(par)

    def _advance_adi(self, dt: float, n_steps: int, par: bool, coupling: tuple[np.ndarray, ...]) -> None:
        """``n_steps`` Douglas–Rachford substeps (see :mod:`tme_sim.grid.adi`)."""
        if self._work is None:
            self._work = np.zeros_like(self._c)
        c, res = self._c, self._work
        S = self.n_substrates
        c2, res2 = c.reshape(S, self.n_voxels), res.reshape(S, self.n_voxels)
        rdt = np.array([p.diffusion * dt / self.dx**2 for p in self.substrates])
        adt = np.array([p.decay * dt for p in self.substrates])
        F, B, inv_x, g_x, inv_y, g_y, _, _ = coupling
        fn = A.adi_2d_parallel if par else A.adi_2d_serial
        fn(c, c2, res, res2, n_steps, rdt, adt, self._bc_kind, self._bc_value, inv_x, g_x, inv_y, g_y,
           *self._dir_by_pass2, self._dir_zero, self._occ_ptr, self._occ, F, B)  # fmt: skip

    def _advance_increment(self, dt: float, n_steps: int, par: bool, coupling: tuple[np.ndarray, ...]) -> None:
        """``n_steps`` LOD substeps in increment form (see :mod:`tme_sim.grid.lod_increment`)."""
        if self._work is None:
            self._work = np.zeros_like(self._c)
        c, w = self._c, self._work
        S = self.n_substrates
        c2, w2 = c.reshape(S, self.n_voxels), w.reshape(S, self.n_voxels)
        rdt = np.array([p.diffusion * dt / self.dx**2 for p in self.substrates])
        adt = np.array([p.decay * dt for p in self.substrates])
        inv_x, g_x, _, inv_y, g_y, _, inv_z, g_z, _, lines_x, lines_y, lines_z = self._coefficients(dt)
        ptr, flat, _ = self._dir_by_pass2
        args = (self._bc_kind, self._bc_value, inv_x, g_x, inv_y, g_y)
        if self.dim == 3:
            fn = LI.increment_3d_parallel if par else LI.increment_3d_serial
            fn(c, c2, w, w2, n_steps, rdt, adt, self._jacobi_base(dt), *args, inv_z, g_z, lines_x, lines_y, lines_z,
               ptr, flat, self._occ_ptr, self._occ, *coupling)  # fmt: skip
        else:
            fn = LI.increment_2d_parallel if par else LI.increment_2d_serial
            fn(c, c2, w, w2, n_steps, rdt, adt, self._jacobi_base(dt), *args, lines_x, lines_y,
               ptr, flat, self._occ_ptr, self._occ, *coupling)  # fmt: skip

    def _advance_implicit(self, dt: float, n_steps: int, par: bool, coupling: tuple[np.ndarray, ...]) -> None:
        """``n_steps`` backward-Euler substeps solved by CG (see :mod:`tme_sim.grid.implicit`)."""
        if self._work is None:
            self._work = np.zeros_like(self._c)
            self._scratch = tuple(np.zeros(self.shape, self.dtype) for _ in range(3))
        c = self._c
        S = self.n_substrates
        c2 = c.reshape(S, self.n_voxels)
        rdt = np.array([p.diffusion * dt / self.dx**2 for p in self.substrates])
        adt = np.array([p.decay * dt for p in self.substrates])
        scale = np.max(c.reshape(S, -1), axis=1).astype(np.float64)
        scale = np.maximum(scale, np.max(self._bc_value, axis=1))
        for s, (_, vals) in self._masks.items():
            scale[s] = max(scale[s], float(vals.max()))
        tol = IMPLICIT_RTOL * np.where(scale > 0, scale, 1.0)
        F, dtB, inv_diag = coupling
        ptr, flat, _ = self._dir_by_pass2
        fn = I.implicit_parallel if par else I.implicit_serial
        fn(c, c2, self._work, *self._scratch, inv_diag, n_steps, rdt, adt, self._bc_kind, self._bc_value,
           ptr, flat, self._occ, F, dtB, tol, IMPLICIT_MAX_ITER, self.last_iterations)  # fmt: skip

    def check(self) -> None:
        """Raise :class:`FieldError` if any value is NaN or negative (one line: substrate, time,
        voxel indices and centre in µm)."""
        self._check(self.parallel is True or (self.parallel is None and self.last_kernel == "parallel"))

    def _check(self, par: bool) -> None:
        c1 = self._c.reshape(-1)
        e = int(K.first_bad(c1) if par else K.first_bad_serial(c1))
        if e < 0:
            return
        s, v = divmod(e, self.n_voxels)
        _, ny, nx = self.shape
        i, j, k = v % nx, (v // nx) % ny, v // (nx * ny)
        val = float(c1[e])
        what = "NaN" if math.isnan(val) else f"negative ({val:.4g} {self.substrates[s].unit})"
        x, y, z = ((i + 0.5) * self.dx, (j + 0.5) * self.dx, (k + 0.5) * self.dx)
        where = f"voxel (i, j, k) = ({i}, {j}, {k}), centre ({x:g}, {y:g}, {z:g}) um"
        if self.dim == 2:
            where = f"voxel (i, j) = ({i}, {j}), centre ({x:g}, {y:g}) um"
        raise FieldError(f"field {self.names[s]!r} became {what} at t = {self.time:g} min in {where}")

    # ------------------------------------------------------------------ reading
    def sample(self, positions: np.ndarray) -> np.ndarray:
        """Concentrations ``(N, S)`` float64 at positions ``(N, 3)`` µm: the value of the voxel
        that contains each position (no interpolation; positions outside are clipped)."""
        v = self.voxel_index(positions)
        by_voxel = self._c.reshape(self.n_substrates, self.n_voxels).T  # (V, S) view
        return by_voxel[v].astype(np.float64, copy=False)  # one (N, S) gather, no transposed copy

    def gradient(self, name: str, positions: np.ndarray) -> np.ndarray:
        """Gradient ``(N, 3)`` float64 of ``name`` in unit/µm at the centres of the voxels that
        contain ``positions``: central differences, one-sided in the first/last voxel of an axis,
        zero along an axis one voxel long (z in 2D)."""
        f = self._c[self.index(name)]
        ijk = positions_to_ijk(positions, self.shape, self.dx)
        nz, ny, nx = self.shape
        out = np.zeros((ijk.shape[0], 3))
        i, j, k = ijk[:, 0], ijk[:, 1], ijk[:, 2]
        for axis, n in ((0, nx), (1, ny), (2, nz)):
            if n == 1:
                continue
            q = ijk[:, axis]
            lo = np.maximum(q - 1, 0)
            hi = np.minimum(q + 1, n - 1)
            if axis == 0:
                diff = f[k, j, hi].astype(np.float64) - f[k, j, lo]
            elif axis == 1:
                diff = f[k, hi, i].astype(np.float64) - f[k, lo, i]
            else:
                diff = f[hi, j, i].astype(np.float64) - f[lo, j, i]
            out[:, axis] = diff / ((hi - lo) * self.dx)
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, np.ndarray | float]:
        """Everything needed to continue the run bit-identically (copies)."""
        subs = sorted(self._masks)
        return {
            "version": float(_STATE_VERSION),
            "time": float(self.time),
            "dx": self.dx,
            "shape": np.array(self.shape, dtype=np.int64),
            "names": np.array(self.names, dtype=str),
            "fields": self._c.copy(),
            "bc_kind": self._bc_kind.copy(),
            "bc_value": self._bc_value.copy(),
            "mask_substrate": np.concatenate([np.full(self._masks[s][0].size, s, np.int64) for s in subs])
            if subs
            else np.zeros(0, np.int64),
            "mask_voxel": np.concatenate([self._masks[s][0] for s in subs]) if subs else np.zeros(0, np.int64),
            "mask_value": np.concatenate([self._masks[s][1] for s in subs]) if subs else np.zeros(0),
            "coupling_voxel": self._occ.copy(),
            "coupling_A": self._A.copy(),
            "coupling_B": self._B.copy(),
            "coupling_C": self._C.copy(),
            # the implicit scheme's warm start: CG results depend on it, so a resumed run needs it
            "warm_start": self._work.copy() if self.scheme == "implicit" and self._work is not None else np.zeros(0),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into a grid built with the same geometry, substrates and
        dtype. GridError if they do not match or a key is missing."""
        try:
            shape = tuple(int(x) for x in np.asarray(d["shape"]))
            names = [str(x) for x in np.asarray(d["names"])]
            fields = np.asarray(d["fields"])
            S = self.n_substrates
            if shape != self.shape or not math.isclose(float(d["dx"]), self.dx) or names != self.names:
                raise GridError(
                    f"checkpoint grid {shape} dx={float(d['dx']):g} {names} does not match "
                    f"this grid {self.shape} dx={self.dx:g} {self.names}"
                )
            if fields.shape != self._c.shape:
                raise GridError(f"checkpoint fields have shape {fields.shape}, expected {self._c.shape}")
            self._c[...] = fields
            self.time = float(d["time"])
            self._bc_kind[...] = np.asarray(d["bc_kind"]).reshape(S, 6)
            self._bc_value[...] = np.asarray(d["bc_value"]).reshape(S, 6)
            ms = np.asarray(d["mask_substrate"], dtype=np.int64)
            mv = np.asarray(d["mask_voxel"], dtype=np.int64)
            mval = np.asarray(d["mask_value"], dtype=np.float64)
            self._masks = {}
            for s in np.unique(ms):
                sel = ms == s
                self._masks[int(s)] = (mv[sel].copy(), mval[sel].copy())
            self._set_coupling_arrays(
                np.asarray(d["coupling_voxel"], dtype=np.int64),
                np.asarray(d["coupling_A"], dtype=np.float64).reshape(S, -1),
                np.asarray(d["coupling_B"], dtype=np.float64).reshape(S, -1),
                np.asarray(d["coupling_C"], dtype=np.float64).reshape(S, -1),
            )
            warm = np.asarray(d.get("warm_start", np.zeros(0)))
            if self.scheme == "implicit" and warm.shape == self._c.shape:
                self._work = warm.astype(self.dtype, copy=True)
                self._scratch = tuple(np.zeros(self.shape, self.dtype) for _ in range(3))
            elif self.scheme == "implicit":
                self._work = None
        except KeyError as exc:
            raise GridError(f"checkpoint of the grid lacks key {exc.args[0]!r}") from None
        self._coef_key = None
        self._coupling_key = None
        self._build_masks()
