"""Models of phosphoprotein responses to stimuli × inhibitor combinations, per cell type.

All models see a :class:`~tme_sim.training.midas.ConditionTable` (log2 fold changes) and are fitted
on a subset of its conditions (``train``) to predict others (``predict``). Inhibitors enter as
*levels* ``u`` in [0, 1] (1 = the inhibitor at its assay dose, full target inhibition), so a
fitted model also answers intermediate doses (:meth:`FloorModel.predict_levels`).

* ``mean`` — per cell type and read-out, the mean of the training conditions (trivial baseline).
* ``additive`` — the log-scale additive model of single-inhibitor effects: for stimulus ``s`` and
  inhibitor set ``I``, ``y(s, I) = y(s, ∅) + Σ_{i∈I} [y(s, {i}) − y(s, ∅)]`` from the training
  conditions (defined only where ``y(s, ∅)`` and every single are in training).
* ``ridge`` — per cell type, ridge regression on stimulus-set one-hot, ligand and inhibitor
  indicators, ligand × inhibitor and inhibitor × inhibitor products; ``alpha`` chosen on the
  training conditions only (leave-one-inhibitor-set-out inside the training set).
* ``floor`` — a trained activity model (PyTorch): the measured signal is an assay background
  plus a phospho-activity that inhibitors scale multiplicatively,
  ``y = log2(2^f + 2^η)``, ``η = μ[c,s] + Σ_i u_i β[c,s,i]``, with ligand-additive ``μ`` and
  ``β`` (``μ[c,s] = a[c] + Σ_{l∈s} α[c,l] + ρ[c,s]``, the same for ``β`` with ``b``, ``γ``,
  ``τ``; ``ρ``, ``τ`` are L2-penalised per-stimulus-set residuals) and the background ``f``
  per cell type and read-out (``shared_floor``: per read-out, one model with a cell-type input
  whose background is a property of the assay). Inhibitor effects add in activity space, so a
  combination saturates at the background where the additive log model keeps going down.
  Ensembles (residual bootstrap, ``members``) give intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tme_sim.intracellular.neural.phospho import PhosphoSurrogate
from tme_sim.training.midas import ConditionTable, MidasData, condition_table


class MeanModel:
    name = "mean"

    def fit(self, tab: ConditionTable, train: np.ndarray) -> MeanModel:
        self.means = {int(c): tab.y[train][tab.cell[train] == c].mean(0) for c in np.unique(tab.cell[train])}
        return self

    def predict(self, tab: ConditionTable, idx: np.ndarray) -> np.ndarray:
        return np.stack([self.means[int(c)] for c in tab.cell[idx]])


class AdditiveModel:
    name = "additive"

    def fit(self, tab: ConditionTable, train: np.ndarray) -> AdditiveModel:
        self.lookup = {
            (int(tab.cell[i]), int(tab.stim_key[i]), int(tab.inhib_key[i])): tab.y[i] for i in np.asarray(train)
        }
        return self

    def predict(self, tab: ConditionTable, idx: np.ndarray) -> np.ndarray:
        out = np.full((len(idx), tab.y.shape[1]), np.nan)
        for k, i in enumerate(idx):
            c, s = int(tab.cell[i]), int(tab.stim_key[i])
            base = self.lookup.get((c, s, 0))
            singles = [self.lookup.get((c, s, 1 << j)) for j in np.flatnonzero(tab.inhib[i])]
            if base is None or any(v is None for v in singles):
                continue
            out[k] = base + sum(v - base for v in singles)
        return out


def _features(tab: ConditionTable, idx: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Ridge design: stimulus-set one-hot (``keys``), ligands, inhibitors, ligand×inhibitor, inhibitor pairs."""
    s = tab.stim[idx].astype(float)
    u = tab.inhib[idx].astype(float)
    onehot = (tab.stim_key[idx][:, None] == keys[None, :]).astype(float)
    li = (s[:, :, None] * u[:, None, :]).reshape(len(idx), -1)
    pairs = [u[:, a] * u[:, b] for a in range(u.shape[1]) for b in range(a + 1, u.shape[1])]
    return np.column_stack([onehot, s, u, li, *pairs]) if pairs else np.column_stack([onehot, s, u, li])


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, my - mx @ w


class RidgeModel:
    name = "ridge"
    alphas = (0.01, 0.1, 1.0, 10.0)

    def fit(self, tab: ConditionTable, train: np.ndarray) -> RidgeModel:
        self.fits: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.alpha: dict[int, float] = {}
        for c in np.unique(tab.cell[train]):
            tr = train[tab.cell[train] == c]
            keys = np.unique(tab.stim_key[tr])
            groups = tab.inhib_key[tr]
            err = []
            for a in self.alphas:  # inner leave-one-inhibitor-set-out on the training conditions
                e = 0.0
                for g in np.unique(groups):
                    fi, te = tr[groups != g], tr[groups == g]
                    w, b = _ridge(_features(tab, fi, keys), tab.y[fi], a)
                    e += float(((_features(tab, te, keys) @ w + b - tab.y[te]) ** 2).sum())
                err.append(e)
            a = self.alphas[int(np.argmin(err))]
            self.alpha[int(c)] = a
            self.fits[int(c)] = (keys, *_ridge(_features(tab, tr, keys), tab.y[tr], a))
        return self

    def predict(self, tab: ConditionTable, idx: np.ndarray) -> np.ndarray:
        out = np.zeros((len(idx), tab.y.shape[1]))
        for c, (keys, w, b) in self.fits.items():
            m = tab.cell[idx] == c
            if m.any():
                out[m] = _features(tab, idx[m], keys) @ w + b
        return out


@dataclass
class FloorConfig:
    """Settings of :class:`FloorModel` (fixed in advance, not tuned on held-out data)."""

    shared_floor: bool = False
    members: int = 5  # ensemble size (residual bootstrap; member 0 fits the data itself)
    steps: int = 600  # Adam steps per fit (full batch)
    lr: float = 0.05
    residual_l2: float = 0.01  # L2 weight of the per-stimulus-set residuals ρ, τ
    seed: int = 0


class FloorModel:
    """The background-plus-activity model (module docstring), fitted with PyTorch; an ensemble."""

    name = "floor"

    def __init__(self, cfg: FloorConfig | None = None) -> None:
        self.cfg = cfg or FloorConfig()
        if self.cfg.shared_floor:
            self.name = "floor-pooled"

    # -- parameters: dict of tensors; cell types C, ligands L, inhibitors I, stim sets K, read-outs R
    def _init(self, tab: ConditionTable, train: np.ndarray) -> dict[str, Any]:
        import torch

        C, L, inh, R = int(tab.cell.max()) + 1, tab.stim.shape[1], tab.inhib.shape[1], tab.y.shape[1]
        self.keys = np.unique(tab.stim_key)
        K = len(self.keys)
        ymin = np.zeros((C, R))
        ymean = np.zeros((C, R))
        for c in range(C):
            m = tab.cell[train] == c
            if m.any():
                ymin[c] = tab.y[train][m].min(0)
                ymean[c] = tab.y[train][m].mean(0)
        floor0 = ymin - 1.0
        if self.cfg.shared_floor:
            floor0 = floor0.min(0, keepdims=True)

        def z(*shape: int) -> Any:
            return torch.zeros(*shape, dtype=torch.float64, requires_grad=True)

        p = {
            "a": torch.tensor(ymean, dtype=torch.float64, requires_grad=True),
            "alpha": z(C, L, R),
            "rho": z(C, K, R),
            "b": z(C, inh, R),
            "gamma": z(C, L, inh, R),
            "tau": z(C, K, inh, R),
            "floor": torch.tensor(floor0, dtype=torch.float64, requires_grad=True),
        }
        return p

    def _forward(self, p: dict[str, Any], cell: np.ndarray, stim: np.ndarray, kidx: np.ndarray, u: np.ndarray) -> Any:
        import torch

        c = torch.as_tensor(cell, dtype=torch.long)
        k = torch.as_tensor(kidx, dtype=torch.long)
        s = torch.as_tensor(stim, dtype=torch.float64)
        uu = torch.as_tensor(u, dtype=torch.float64)
        mu = p["a"][c] + torch.einsum("nl,nlr->nr", s, p["alpha"][c]) + p["rho"][c, k]
        beta = p["b"][c] + torch.einsum("nl,nlir->nir", s, p["gamma"][c]) + p["tau"][c, k]
        eta = mu + torch.einsum("ni,nir->nr", uu, beta)
        floor = p["floor"][torch.zeros_like(c)] if self.cfg.shared_floor else p["floor"][c]
        return torch.logaddexp(floor * np.log(2.0), eta * np.log(2.0)) / np.log(2.0)

    def _kidx(self, tab: ConditionTable, idx: np.ndarray) -> np.ndarray:
        """Index of each row's stimulus set in ``self.keys`` (every set of the table has a slot)."""
        return np.minimum(np.searchsorted(self.keys, tab.stim_key[idx]), len(self.keys) - 1)

    def _fit_one(self, tab: ConditionTable, train: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
        import torch

        torch.manual_seed(seed)
        p = self._init(tab, train)
        opt = torch.optim.Adam(list(p.values()), lr=self.cfg.lr)
        yt = torch.as_tensor(y, dtype=torch.float64)
        kidx = self._kidx(tab, train)
        for _ in range(self.cfg.steps):
            opt.zero_grad()
            pred = self._forward(p, tab.cell[train], tab.stim[train], kidx, tab.inhib[train].astype(float))
            loss = ((pred - yt) ** 2).mean() + self.cfg.residual_l2 * ((p["rho"] ** 2).mean() + (p["tau"] ** 2).mean())
            loss.backward()
            opt.step()
        return {k: v.detach().numpy().copy() for k, v in p.items()}

    def fit(self, tab: ConditionTable, train: np.ndarray) -> FloorModel:
        train = np.asarray(train)
        first = self._fit_one(tab, train, tab.y[train], self.cfg.seed)
        self.surrogate = PhosphoSurrogate(
            cell_types=[str(c) for c in range(int(tab.cell.max()) + 1)],
            stimuli=[str(j) for j in range(tab.stim.shape[1])],
            inhibitors=[str(j) for j in range(tab.inhib.shape[1])],
            readouts=[str(j) for j in range(tab.y.shape[1])],
            keys=self.keys,
            seen={(int(c), int(k)) for c, k in zip(tab.cell[train], tab.stim_key[train], strict=True)},
            members=[first],
            shared_floor=self.cfg.shared_floor,
        )
        fitted = self.predict(tab, train)
        self.residual_sd = float(np.std(tab.y[train] - fitted))
        resid = tab.y[train] - fitted
        rng = np.random.default_rng(self.cfg.seed)
        for m in range(1, self.cfg.members):  # residual bootstrap
            boot = fitted + resid[rng.integers(0, len(train), len(train))]
            self.surrogate.members.append(self._fit_one(tab, train, boot, self.cfg.seed + m))
        return self

    def predict_members(self, tab: ConditionTable, idx: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """(members, len(idx), R) predictions; ``u`` (len(idx), I) inhibitor levels (default: the table's)."""
        uu = tab.inhib[idx].astype(float) if u is None else np.asarray(u, float)
        return self.surrogate.predict_rows(tab.cell[idx], tab.stim[idx], uu)

    def predict(self, tab: ConditionTable, idx: np.ndarray) -> np.ndarray:
        return self.predict_members(tab, idx).mean(0)


def train_phospho(data: MidasData, cfg: FloorConfig | None = None) -> PhosphoSurrogate:
    """Fit the ``floor`` ensemble on every condition of ``data``; names filled in for the runtime."""
    tab = condition_table(data)
    model = FloorModel(cfg).fit(tab, np.arange(len(tab.y)))
    sur = model.surrogate
    sur.cell_types = list(data.cell_types)
    sur.stimuli = list(data.stimuli)
    sur.inhibitors = list(data.inhibitors)
    sur.readouts = list(data.readouts)
    fitted = model.predict(tab, np.arange(len(tab.y)))
    sur.meta = {
        "healthy": list(data.healthy),
        "data": data.path,
        "data_sha256": data.sha256,
        "time": tab.time,
        "normalisation": "log2 fold change against the cell type's untreated time-0 rows",
        "config": asdict(model.cfg),
        "train_r": float(np.corrcoef(fitted.ravel(), tab.y.ravel())[0, 1]),
        "residual_sd": model.residual_sd,
    }
    return sur
