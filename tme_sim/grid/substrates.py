"""Substrate registry: names, units and default transport parameters.

Every diffusible field of the grid is described by a :class:`SubstrateParams` (diffusion
coefficient ``D`` in µm²/min, bulk decay rate ``λ`` in 1/min, unit, initial / far-field value and
the literature the defaults come from). :data:`SUBSTRATES` is the shipped set; scenarios add
drugs and other species with :func:`make_substrate` / :func:`register_substrate`, or simply build
a :class:`SubstrateParams` and hand it to :class:`~tme_sim.grid.Microenvironment`.

About the defaults (read before trusting a number)
--------------------------------------------------
Diffusion coefficients and half-lives of signalling proteins in tumour interstitium are known to
an order of magnitude at best. The values below are round numbers inside the ranges reported by
the cited work; where no direct tissue measurement exists the ``source`` string says so. Useful
conversions: ``1e-6 cm²/s = 100 µm²/s = 6000 µm²/min``; a half-life ``t½`` gives
``λ = ln 2 / t½``. Bulk decay ``λ`` stands for everything that removes a substrate uniformly
(proteolysis, clearance into lymph/blood); uptake by modelled cells is *not* included in ``λ``
because the cell coupling models it explicitly.

Proteins of 10–50 kDa diffuse in water with ``D ≈ 0.6–1.2e-6 cm²/s`` and 2–5 times slower in
interstitium; Francis & Palsson (PNAS 1997, 94:12258) use ``D ≈ 1e-6 cm²/s`` for cytokines. The
cytokine defaults therefore use ``D = 3000 µm²/min`` (5e-7 cm²/s) and matrix-binding factors
(VEGF-A165, CXCL12, TGF-β1) a lower value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tme_sim.errors import GridError

__all__ = [
    "SUBSTRATES",
    "SubstrateParams",
    "get_substrate",
    "make_substrate",
    "register_substrate",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")


@dataclass(frozen=True)
class SubstrateParams:
    """One diffusible substrate.

    Attributes:
        name: identifier (letters, digits, ``_ - .``; starts with a letter or ``_``).
        unit: concentration unit, e.g. ``"mmHg"``, ``"mM"``, ``"ng/mL"``, ``"nM"``.
        diffusion: diffusion coefficient ``D`` in µm²/min (>= 0).
        decay: bulk decay rate ``λ`` in 1/min (>= 0).
        initial: initial value of the field and default far-field / Dirichlet value, in ``unit``
            (>= 0).
        source: literature source (or stated assumption) for the defaults.

    Construction validates the numbers and raises :class:`~tme_sim.errors.GridError` naming the
    setting, e.g. ``diffusion of 'oxygen' must be >= 0, got -1``.
    """

    name: str
    unit: str
    diffusion: float
    decay: float
    initial: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise GridError(
                f"substrate name {self.name!r} is not valid (letters, digits, '_-.', starting with a letter)"
            )
        if not isinstance(self.unit, str):
            raise GridError(f"unit of {self.name!r} must be a string, got {type(self.unit).__name__}")
        for key in ("diffusion", "decay", "initial"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    value = float(value)  # numpy scalars
                except (TypeError, ValueError):
                    raise GridError(f"{key} of {self.name!r} must be a number, got {type(value).__name__}") from None
            if not math.isfinite(value):
                raise GridError(f"{key} of {self.name!r} must be finite, got {value}")
            if value < 0:
                raise GridError(f"{key} of {self.name!r} must be >= 0, got {value:g}")
            object.__setattr__(self, key, float(value))

    @property
    def half_life(self) -> float:
        """Bulk half-life ``ln 2 / λ`` in minutes (``inf`` when ``λ = 0``)."""
        return math.log(2.0) / self.decay if self.decay > 0 else math.inf

    @property
    def diffusion_length(self) -> float:
        """Diffusion length ``√(D/λ)`` in µm (``inf`` when ``λ = 0``)."""
        return math.sqrt(self.diffusion / self.decay) if self.decay > 0 else math.inf


def _ln2_over(minutes: float) -> float:
    return math.log(2.0) / minutes


_BIOFVM = "Ghaffarizadeh, Friedman & Macklin, Bioinformatics 2016, 32:1256 (BioFVM)"
_FP97 = "Francis & Palsson, PNAS 1997, 94:12258 (cytokine D ~1e-6 cm2/s in water)"

_SHIPPED: tuple[SubstrateParams, ...] = (
    SubstrateParams(
        "oxygen",
        "mmHg",
        diffusion=1.0e5,
        decay=0.1,
        initial=38.0,
        source=(
            f"D = 1e5 um2/min and lambda = 0.1/min as in {_BIOFVM} and PhysiCell; "
            "38 mmHg ~ tissue physoxia, McKeown, Br J Radiol 2014, 87:20130676"
        ),
    ),
    SubstrateParams(
        "glucose",
        "mM",
        diffusion=3.0e4,
        decay=0.0,
        initial=5.0,
        source=(
            "D = 3e4 um2/min (5e-6 cm2/s): between free water (~6.7e-6 cm2/s at 25 C) and tumour "
            "spheroids (order 1e-6 cm2/s, Casciari, Sotirchos & Sutherland, Cancer Res 1988, "
            "48:3905); no bulk decay (consumed by cells, supplied by vessels/boundaries); "
            "5 mM ~ normal plasma glucose"
        ),
    ),
    SubstrateParams(
        "lactate",
        "mM",
        diffusion=3.0e4,
        decay=0.0,
        initial=1.0,
        source=(
            "D taken equal to glucose (small metabolite, same order; Casciari et al. 1988 measured "
            "both in spheroids); no bulk decay (removed by cells and vessels); 1 mM ~ resting "
            "blood lactate"
        ),
    ),
    SubstrateParams(
        "IFNG",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(30.0),
        initial=0.0,
        source=(
            f"D: {_FP97}, reduced ~2x for interstitium; t1/2 ~30 min: serum half-life of "
            "i.v. recombinant IFN-gamma (Kurzrock et al., J Clin Oncol 1985, 3:1101)"
        ),
    ),
    SubstrateParams(
        "TNF",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(17.0),
        initial=0.0,
        source=(
            f"D: {_FP97}, reduced for interstitium; t1/2 ~17 min, inside the 6-20 min plasma "
            "half-lives reported across species (Beutler, Milsark & Cerami, J Immunol 1985, 135:3972)"
        ),
    ),
    SubstrateParams(
        "TGFB1",
        "ng/mL",
        diffusion=1500.0,
        decay=_ln2_over(60.0),
        initial=0.0,
        source=(
            "matrix binding lowers effective D (assumed half the cytokine default); active TGF-b1 "
            "clears in 2-3 min from plasma but latent TGF-b1 in ~100 min (Wakefield et al., "
            "J Clin Invest 1990, 86:1976); tissue t1/2 of 60 min assumed between the two"
        ),
    ),
    SubstrateParams(
        "IL10",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(180.0),
        initial=0.0,
        source=(
            f"D: {_FP97}, reduced for interstitium; t1/2 ~3 h: terminal serum half-life of "
            "i.v. IL-10 in volunteers (Huhn et al., Blood 1996, 87:699)"
        ),
    ),
    SubstrateParams(
        "CSF1",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(60.0),
        initial=0.0,
        source=(
            f"D: {_FP97}; plasma CSF-1 is cleared in ~10 min mostly by CSF1R+ macrophages "
            "(Bartocci et al., PNAS 1987, 84:6179) - that part is cell uptake here, so the bulk "
            "t1/2 is an assumed 60 min"
        ),
    ),
    SubstrateParams(
        "CXCL9",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(60.0),
        initial=0.0,
        source=(
            "T-cell chemokine (CXCL9/10-like, ~12 kDa). D: cytokine default from "
            f"{_FP97}; no tissue half-life measurement known to us: t1/2 = 60 min assumed"
        ),
    ),
    SubstrateParams(
        "CCL2",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(60.0),
        initial=0.0,
        source=(
            f"monocyte chemokine (~13 kDa). D: cytokine default from {_FP97}; "
            "t1/2 = 60 min assumed (no direct tissue measurement)"
        ),
    ),
    SubstrateParams(
        "VEGFA",
        "ng/mL",
        diffusion=1500.0,
        decay=_ln2_over(45.0),
        initial=0.0,
        source=(
            "VEGF-A165 binds heparan sulfate: effective D assumed half the cytokine default; "
            "t1/2 ~30-60 min for free rhVEGF in plasma (Eppler et al., Clin Pharmacol Ther 2002, 72:20)"
        ),
    ),
    SubstrateParams(
        "IL4",
        "ng/mL",
        diffusion=3000.0,
        decay=_ln2_over(30.0),
        initial=0.0,
        source=(
            f"D: cytokine default from {_FP97}; t1/2 = 30 min assumed (short plasma half-lives "
            "of recombinant IL-4, order 20-60 min)"
        ),
    ),
    SubstrateParams(
        "CXCL12",
        "ng/mL",
        diffusion=1500.0,
        decay=_ln2_over(60.0),
        initial=0.0,
        source=(
            "matrix-binding chemokine (~8 kDa): effective D assumed half the cytokine default; "
            "t1/2 = 60 min assumed (no direct tissue measurement)"
        ),
    ),
)

SUBSTRATES: dict[str, SubstrateParams] = {p.name: p for p in _SHIPPED}
"""The shipped registry (name -> defaults). Extra substrates (drugs) are added with
:func:`register_substrate`; mutate it only through that function."""


def get_substrate(name: str) -> SubstrateParams:
    """Return the registered defaults for ``name``.

    Raises:
        GridError: ``unknown substrate 'X' (known: oxygen, glucose, ...)``.
    """
    try:
        return SUBSTRATES[name]
    except (KeyError, TypeError):
        known = ", ".join(SUBSTRATES)
        raise GridError(f"unknown substrate {name!r} (known: {known})") from None


def make_substrate(
    name: str,
    unit: str,
    diffusion: float,
    decay: float,
    initial: float = 0.0,
    source: str = "",
) -> SubstrateParams:
    """Build (and validate) parameters for a substrate that is not in the registry, e.g. a drug.

    ``diffusion`` in µm²/min, ``decay`` in 1/min, ``initial`` in ``unit``.
    """
    return SubstrateParams(name, unit, diffusion, decay, initial, source)


def register_substrate(params: SubstrateParams, *, replace: bool = False) -> SubstrateParams:
    """Add ``params`` to :data:`SUBSTRATES` so that :func:`get_substrate` finds it.

    Raises:
        GridError: when the name is already registered with different values and ``replace`` is
            false.
    """
    if not isinstance(params, SubstrateParams):
        raise GridError(f"register_substrate expects SubstrateParams, got {type(params).__name__}")
    old = SUBSTRATES.get(params.name)
    if old is not None and old != params and not replace:
        raise GridError(f"substrate {params.name!r} is already registered with other values (pass replace=True)")
    SUBSTRATES[params.name] = params
    return params
