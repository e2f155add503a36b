"""Drug → target → network → phenotype models (shared by the viability and hepatocyte trainers).

One model, :class:`DrugResponseModel`, maps drug concentrations and a cell line's omics to
read-outs (viability, phosphoproteins, node activities):

1. **Targets** (:class:`DrugTargetLayer`): drug ``d`` occupies each known target ``n`` with a Hill
   curve of its concentration ``c`` (µM as given by the data), ``occ = c^h / (c^h + K^h)``;
   the potency ``log K`` per edge and the slope ``h`` per drug are learned. A second, **off-target**
   set of weights ``a_off[d, n] ∈ [0, 1]`` on every candidate node (L1-penalised, so most stay 0)
   lets a drug inhibit further nodes with its own potency. Several drugs on one node combine as
   independent inhibitors: ``u_n = 1 - Π_d (1 - a_dn occ_dn)``.
2. **Network** (:class:`NetworkInfluence`): the inhibition of node ``n`` lowers its activity by
   ``u_n``; the change propagates linearly along the signed prior-knowledge edges (learned weights
   initialised at ``sign · edge_init``) for ``steps`` hops: the influence of node ``s`` on read-out
   node ``r`` is ``Σ_k (A^k)[s, r]``. Linear propagation makes this a product with one
   (nodes × read-out nodes) matrix per evaluation, so a 1,250-node network costs milliseconds.
3. **Phenotype**: output ``o`` (e.g. viability) is ``base_o(line) + Σ_r s_ro(line) Δa_r`` over its
   read-out nodes ``r`` (a read-out layer: node → output with a sign); the cell line's dependency
   ``s_ro(line) = sign · softplus(b_ro + F_line · B_ro)`` and a shift of every drug's potency
   ``F_line · P_d`` come from the line's omics features ``F`` (expression components, mutations),
   so unseen lines are predicted from their omics, not from an identity.

:class:`DrugEnsemble` trains several members (different seeds, each on a bootstrap resample of the
cell lines) and reports the mean and the spread (intervals) of their predictions.

Shapes: ``conc`` (n_conditions, n_drugs) in the data's concentration unit; ``line`` (n_conditions,)
int index into ``features`` (n_lines, n_features); outputs (n_conditions, n_outputs).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class DrugModelSpec:
    """The structure of a drug-response model: drugs, nodes, edges, read-outs (all by name).

    ``targets``: known (drug, node) inhibitions; ``edges``: (source, target, sign) of the prior
    network; ``readouts``: (node, output, sign) of the read-out layer; ``offtarget_nodes``: nodes a
    drug may inhibit besides its targets (``None`` = every node of the network).
    """

    drugs: list[str]
    nodes: list[str]
    targets: list[tuple[str, str]]
    edges: list[tuple[str, str, int]]
    readouts: list[tuple[str, str, int]]
    outputs: list[str]
    offtarget_nodes: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "drugs": self.drugs,
            "nodes": self.nodes,
            "targets": [list(t) for t in self.targets],
            "edges": [list(e) for e in self.edges],
            "readouts": [list(r) for r in self.readouts],
            "outputs": self.outputs,
            "offtarget_nodes": self.offtarget_nodes,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DrugModelSpec:
        return cls(
            list(d["drugs"]),
            list(d["nodes"]),
            [tuple(t) for t in d["targets"]],
            [(a, b, int(s)) for a, b, s in d["edges"]],
            [(a, b, int(s)) for a, b, s in d["readouts"]],
            list(d["outputs"]),
            None if d.get("offtarget_nodes") is None else list(d["offtarget_nodes"]),
        )


@dataclass
class DrugFitConfig:
    """Training settings of :class:`DrugResponseModel` (fixed in advance; see docs/drug_models.md)."""

    epochs: int = 600
    lr: float = 0.03
    steps: int = 3  # network hops of the linear propagation
    edge_init: float = 0.1
    l1_offtarget: float = 1e-3  # L1 on off-target efficacies (per drug-node weight)
    l2_omics: float = 1e-3  # L2 on the omics weights (B, P)
    l2_edges: float = 1e-4  # L2 on the deviation of edge weights from their initial value
    offtarget_init: float = 1e-3
    offtarget_lr_scale: float = 1.0  # learning-rate factor of the off-target layer
    seed: int = 0
    members: int = 3
    bootstrap: bool = True
    early_stopping: bool = True  # stop at the best epoch on each member's out-of-bootstrap lines
    patience: int = 150  # epochs without improvement of that out-of-bag loss before stopping
    threads: int | None = 1
    centered: bool = False  # output = the line's deviation from the average line (see forward)
    refit_full: bool = False  # after the bootstrap members, refit each on every line for its stopped epochs
    extra: dict[str, Any] = field(default_factory=dict)


class DrugTargetLayer(nn.Module):
    """Known targets with learned Hill potency and off-targets with sparse learned efficacy.

    ``forward(conc, shift)`` → node inhibition ``u`` (n_conditions, n_nodes) in [0, 1]; ``shift``
    (n_conditions, n_drugs) adds to every log-potency of that drug (a cell line's sensitivity).
    """

    def __init__(
        self,
        n_drugs: int,
        n_nodes: int,
        target_pairs: np.ndarray,
        offtarget_mask: np.ndarray,
        offtarget_init: float = 1e-3,
    ) -> None:
        super().__init__()
        self.n_drugs, self.n_nodes = n_drugs, n_nodes
        tp = np.asarray(target_pairs, dtype=np.int64).reshape(-1, 2)
        self.register_buffer("t_drug", torch.as_tensor(tp[:, 0]))
        self.register_buffer("t_node", torch.as_tensor(tp[:, 1]))
        known = np.zeros((n_drugs, n_nodes), dtype=bool)
        known[tp[:, 0], tp[:, 1]] = True
        mask = np.asarray(offtarget_mask, dtype=bool) & ~known
        self.register_buffer("off_mask", torch.as_tensor(mask, dtype=torch.float32))
        self.log_k = nn.Parameter(torch.zeros(len(tp)))  # log potency per known edge (data units)
        self.eff_logit = nn.Parameter(torch.full((len(tp),), 2.0))  # efficacy ≈ 0.88 at start
        self.h_logit = nn.Parameter(torch.zeros(n_drugs))  # Hill slope per drug, in (0.3, 3)
        self.off_log_k = nn.Parameter(torch.zeros(n_drugs))  # one off-target potency per drug
        # efficacy = sigmoid(logit): never stuck at 0, so the data can pull a real off-target up
        self.off_logit = nn.Parameter(torch.full((n_drugs, n_nodes), math.log(offtarget_init / (1 - offtarget_init))))

    def off_efficacy(self) -> torch.Tensor:
        """(n_drugs, n_nodes) off-target efficacies in [0, 1] (0 outside the candidate mask)."""
        return torch.sigmoid(self.off_logit) * self.off_mask

    def hill(self) -> torch.Tensor:
        """(n_drugs,) Hill slopes, bounded to (0.3, 3): steeper curves turn the line shifts into cliffs."""
        return 0.3 + 2.7 * torch.sigmoid(self.h_logit - 1.3)

    def known_log_keep(self, conc: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
        """log Π (1 - inhibition) of the known targets, per condition and edge: (n, n_edges)."""
        logc = torch.log(conc.clamp_min(1e-12))[:, self.t_drug]
        if shift is not None:
            logc = logc - shift[:, self.t_drug]
        occ = torch.sigmoid(self.hill()[self.t_drug] * (logc - self.log_k)) * (conc[:, self.t_drug] > 0)
        return torch.log1p(-(occ * torch.sigmoid(self.eff_logit)).clamp(max=1 - 1e-6))

    def off_log_keep(self, conc: torch.Tensor) -> torch.Tensor:
        """log Π_d (1 - occ_d a_dn) of the off-targets: (n, n_nodes). No line shift: it depends on the
        concentrations only, so callers evaluate it on the distinct concentration rows."""
        logc = torch.log(conc.clamp_min(1e-12))
        occ = torch.sigmoid(self.hill() * (logc - self.off_log_k)) * (conc > 0)
        eff = self.off_efficacy()
        out = torch.zeros(conc.shape[0], self.n_nodes, dtype=conc.dtype, device=conc.device)
        for d in range(self.n_drugs):
            out = out + torch.log1p(-(occ[:, d : d + 1] * eff[d][None, :]).clamp(max=1 - 1e-6))
        return out

    def forward(self, conc: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Node inhibition (n, n_nodes) in [0, 1] (dense; for small networks and inspection)."""
        keep = self.off_log_keep(conc).index_add(1, self.t_node, self.known_log_keep(conc, shift))
        return 1.0 - torch.exp(keep)


class NetworkInfluence(nn.Module):
    """Linear signed propagation on the prior network: influence matrix (n_nodes, n_readout_nodes)."""

    def __init__(
        self, n_nodes: int, src: np.ndarray, dst: np.ndarray, sign: np.ndarray, readout_nodes: np.ndarray, cfg: Any
    ) -> None:
        super().__init__()
        self.n_nodes, self.steps = n_nodes, int(cfg.steps)
        self.register_buffer("src", torch.as_tensor(np.asarray(src, dtype=np.int64)))
        self.register_buffer("dst", torch.as_tensor(np.asarray(dst, dtype=np.int64)))
        s = np.asarray(sign, dtype=np.float32)
        s = np.where(s == 0, 0.5, s)  # unknown sign: start weakly activating
        init = torch.as_tensor(s * cfg.edge_init)
        self.register_buffer("w0", init.clone())
        self.w = nn.Parameter(init.clone())
        self.register_buffer("ro", torch.as_tensor(np.asarray(readout_nodes, dtype=np.int64)))

    def forward(self) -> torch.Tensor:
        q = torch.zeros(self.n_nodes, len(self.ro), dtype=self.w.dtype, device=self.w.device)
        q[self.ro, torch.arange(len(self.ro), device=q.device)] = 1.0
        total = q
        for _ in range(self.steps):  # q_{k+1}[s] = Σ_{edges s→t} w · q_k[t]
            q = torch.zeros_like(q).index_add(0, self.src, self.w[:, None] * q[self.dst])
            total = total + q
        return total

    def penalty(self) -> torch.Tensor:
        return ((self.w - self.w0) ** 2).sum()


class DrugResponseModel(nn.Module):
    """Drug concentrations + line omics → outputs through targets, network and read-out layer."""

    def __init__(self, spec: DrugModelSpec, n_features: int, cfg: DrugFitConfig) -> None:
        super().__init__()
        self.spec, self.cfg, self.n_features = spec, cfg, n_features
        self.stopped_epoch = cfg.epochs
        self.max_shift = 3.0  # a line's potency shift is bounded to ± this many log units (e-fold)
        nidx = {n: i for i, n in enumerate(spec.nodes)}
        didx = {d: i for i, d in enumerate(spec.drugs)}
        oidx = {o: i for i, o in enumerate(spec.outputs)}
        pairs = np.array([(didx[d], nidx[n]) for d, n in spec.targets], dtype=np.int64).reshape(-1, 2)
        mask = np.zeros((len(spec.drugs), len(spec.nodes)), dtype=bool)
        cand = spec.nodes if spec.offtarget_nodes is None else spec.offtarget_nodes
        mask[:, [nidx[n] for n in cand]] = True
        self.targets = DrugTargetLayer(len(spec.drugs), len(spec.nodes), pairs, mask, cfg.offtarget_init)
        tnodes = np.unique(pairs[:, 1])
        self.register_buffer("target_nodes", torch.as_tensor(tnodes))
        self.register_buffer("t_pos", torch.as_tensor(np.searchsorted(tnodes, pairs[:, 1])))
        e = spec.edges
        ro_nodes = sorted({nidx[n] for n, _, _ in spec.readouts})
        self.network = NetworkInfluence(
            len(spec.nodes),
            np.array([nidx[a] for a, _, _ in e], dtype=np.int64),
            np.array([nidx[b] for _, b, _ in e], dtype=np.int64),
            np.array([s for _, _, s in e]),
            np.array(ro_nodes),
            cfg,
        )
        rpos = {n: i for i, n in enumerate(ro_nodes)}
        n_r, n_o = len(ro_nodes), len(spec.outputs)
        ro_sign = np.zeros((n_r, n_o), dtype=np.float32)
        for n, o, s in spec.readouts:
            ro_sign[rpos[nidx[n]], oidx[o]] = 1.0 if s >= 0 else -1.0
        self.register_buffer("ro_sign", torch.as_tensor(ro_sign))
        self.dep_bias = nn.Parameter(torch.full((n_r, n_o), -1.0))
        self.dep_omics = nn.Parameter(torch.zeros(n_features, n_r, n_o))
        self.pot_omics = nn.Parameter(torch.zeros(n_features, len(spec.drugs)))
        self.base = nn.Parameter(torch.zeros(n_o))

    def forward(self, conc: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """``conc`` (n, n_drugs), ``feats`` (n, n_features) → outputs (n, n_outputs). With
        ``cfg.centered`` the output is the line's deviation from the average line (features 0, the
        training lines' mean after standardisation) at the same concentrations: the caller adds the
        measured mean dose-response curve, so the network explains only how lines differ."""
        tl = self.targets
        infl = self.network()  # (n_nodes, n_readout_nodes)
        # off-targets depend on the concentrations only: evaluate on the distinct rows
        uc, inv = torch.unique(conc, dim=0, return_inverse=True)
        off_keep = tl.off_log_keep(uc)  # (n_unique, n_nodes)
        tn = self.target_nodes
        not_t = torch.ones(tl.n_nodes, dtype=torch.bool, device=conc.device)
        not_t[tn] = False
        d_off = -((1.0 - torch.exp(off_keep[:, not_t])) @ infl[not_t])[inv]
        off_t = off_keep[:, tn][inv]
        out = self._line_output(conc, feats, infl[tn], d_off, off_t)
        if self.cfg.centered:
            out = out - self._line_output(conc, torch.zeros_like(feats), infl[tn], d_off, off_t)
        return out

    def _line_output(
        self, conc: torch.Tensor, feats: torch.Tensor, infl_t: torch.Tensor, d_off: torch.Tensor, off_t: torch.Tensor
    ) -> torch.Tensor:
        """Outputs (n, n_outputs) for lines with ``feats`` given the influence of the target nodes
        ``infl_t`` (n_targets, n_readout_nodes), the off-target change of the read-out nodes ``d_off``
        (n, n_readout_nodes) and the off-target log keep of the target nodes ``off_t`` (n, n_targets)."""
        tl = self.targets
        # target nodes: known inhibition (with the line's potency shift) times off-target keep
        known = torch.zeros(conc.shape[0], len(self.target_nodes), dtype=conc.dtype, device=conc.device)
        known = known.index_add(
            1, self.t_pos, tl.known_log_keep(conc, self.max_shift * torch.tanh(feats @ self.pot_omics / self.max_shift))
        )
        u_t = 1.0 - torch.exp(known + off_t)
        d_ro = d_off - u_t @ infl_t  # change of read-out node activity
        dep = nn.functional.softplus(self.dep_bias + torch.einsum("nf,fro->nro", feats, self.dep_omics))
        return self.base + torch.einsum("nr,nro->no", d_ro, dep * self.ro_sign)

    def penalty(self) -> torch.Tensor:
        c = self.cfg
        om = (self.dep_omics**2).sum() + (self.pot_omics**2).sum()
        return (
            c.l1_offtarget * self.targets.off_efficacy().sum() + c.l2_omics * om + c.l2_edges * self.network.penalty()
        )

    def offtarget_scores(self) -> np.ndarray:
        """(n_drugs, n_nodes) inferred off-target efficacy (0 on known targets and non-candidates)."""
        return self.targets.off_efficacy().detach().cpu().numpy().astype(np.float64)


def fit_model(
    spec: DrugModelSpec,
    conc: np.ndarray,
    feats: np.ndarray,
    y: np.ndarray,
    cfg: DrugFitConfig,
    *,
    seed: int | None = None,
    weights: np.ndarray | None = None,
) -> DrugResponseModel:
    """Fit one :class:`DrugResponseModel` by full-batch Adam on (weighted) mean squared error.

    ``conc`` (n, n_drugs), ``feats`` (n, n_features) per condition, ``y`` (n, n_outputs).
    """
    torch.manual_seed(cfg.seed if seed is None else seed)
    model = DrugResponseModel(spec, feats.shape[1], cfg)
    with torch.no_grad():
        model.base.copy_(torch.as_tensor(np.asarray(y, dtype=np.float32).max(0)))
        # potencies start at each drug's median tested concentration (where the curve has slope)
        c = np.asarray(conc, dtype=np.float64)
        med = np.array([np.median(c[c[:, d] > 0, d]) if (c[:, d] > 0).any() else 1.0 for d in range(c.shape[1])])
        log_med = torch.as_tensor(np.log(med), dtype=torch.float32)
        model.targets.log_k.copy_(log_med[model.targets.t_drug])
        model.targets.off_log_k.copy_(log_med)
    xc = torch.as_tensor(np.asarray(conc, dtype=np.float32))
    xf = torch.as_tensor(np.asarray(feats, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
    wt = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))[:, None]
    off = [model.targets.off_logit]
    rest = [p for p in model.parameters() if p is not model.targets.off_logit]
    opt = torch.optim.Adam([{"params": rest}, {"params": off, "lr": cfg.lr * cfg.offtarget_lr_scale}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr * 0.05)
    # rows of weight 0 (out of a bootstrap resample) watch for over-fitting: keep the best epoch
    val = None if wt is None or not cfg.early_stopping else (wt[:, 0] == 0)
    if val is not None and not bool(val.any()):
        val = None
    best, best_state, best_epoch = math.inf, None, cfg.epochs
    for ep in range(cfg.epochs):
        opt.zero_grad()
        err = (model(xc, xf) - yt) ** 2
        loss = (err * wt).sum() / (wt.sum() * yt.shape[1]) if wt is not None else err.mean()
        if val is not None and ep % 10 == 0:
            v = float(err[val].mean().detach())
            if v < best:
                best, best_epoch = v, ep
                best_state = copy.deepcopy(model.state_dict())
            elif ep - best_epoch >= cfg.patience:
                break
        (loss + model.penalty()).backward()
        opt.step()
        sched.step()
    if val is not None and best_state is not None:
        with torch.no_grad():
            v = float(((model(xc, xf) - yt) ** 2)[val].mean())
        if v > best:
            model.load_state_dict(best_state)
        else:
            best_epoch = cfg.epochs
    model.stopped_epoch = best_epoch
    model.eval()
    return model


def predict_model(model: DrugResponseModel, conc: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Outputs (n, n_outputs) float64 of one trained model."""
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(conc, np.float32)), torch.as_tensor(np.asarray(feats, np.float32)))
    return out.numpy().astype(np.float64)


class DrugEnsemble:
    """``cfg.members`` models (seeds ``cfg.seed + i``), each on a bootstrap resample of the groups
    (cell lines) when ``cfg.bootstrap`` (its out-of-bag lines decide when to stop training,
    ``cfg.early_stopping``); prediction = member mean, interval = member quantiles."""

    def __init__(self, spec: DrugModelSpec, cfg: DrugFitConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.members: list[DrugResponseModel] = []
        #: per member, the groups (cell lines) left out of its bootstrap resample (empty without one)
        self.out_of_bag: list[np.ndarray] = []
        #: the members fitted on the bootstrap resamples (the out-of-bag predictions use them); the
        #: same objects as ``members`` unless ``cfg.refit_full`` refitted those on every line
        self.bag_members: list[DrugResponseModel] = []

    def fit(
        self,
        conc: np.ndarray,
        feats: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        *,
        refit: bool = True,
    ) -> DrugEnsemble:
        """Fit the bootstrap members; with ``cfg.refit_full`` (and ``refit``) refit them on every row
        (:meth:`refit_members`). ``refit=False`` defers that, so a caller comparing several ensembles
        by their out-of-bag error refits only the one it keeps."""
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.members, self.out_of_bag = [], []
        for i in range(self.cfg.members):
            w = None
            oob = np.zeros(0, dtype=np.int64)
            if self.cfg.bootstrap and groups is not None:
                rng = np.random.default_rng(self.cfg.seed + 1000 + i)
                g = np.unique(groups)
                counts = np.bincount(np.searchsorted(g, rng.choice(g, len(g))), minlength=len(g))
                w = counts[np.searchsorted(g, groups)].astype(np.float64)
                oob = g[counts == 0]
                if w.sum() == 0:
                    w, oob = None, np.zeros(0, dtype=np.int64)
            self.out_of_bag.append(oob)
            self.members.append(fit_model(self.spec, conc, feats, y, self.cfg, seed=self.cfg.seed + i, weights=w))
        self.bag_members = list(self.members)
        if refit:
            self.refit_members(conc, feats, y)
        return self

    def refit_members(self, conc: np.ndarray, feats: np.ndarray, y: np.ndarray) -> DrugEnsemble:
        """With ``cfg.refit_full`` (and out-of-bag lines to have chosen from), replace ``members`` by each
        bootstrap member fitted again on every row, same seed, for as many epochs (at least 10) as its
        out-of-bag lines chose; ``bag_members`` keep the bootstrap fits. Otherwise nothing changes."""
        if self.cfg.refit_full and any(len(o) for o in self.out_of_bag):
            if self.cfg.threads:
                torch.set_num_threads(self.cfg.threads)
            self.members = [
                fit_model(
                    self.spec,
                    conc,
                    feats,
                    y,
                    replace(self.cfg, epochs=max(int(m.stopped_epoch), 10), early_stopping=False),
                    seed=self.cfg.seed + i,
                )
                for i, m in enumerate(self.bag_members)
            ]
        return self

    def predict_members(self, conc: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """(n_members, n, n_outputs)."""
        return np.stack([predict_model(m, conc, feats) for m in self.members])

    def predict_out_of_bag(self, conc: np.ndarray, feats: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """(n, n_outputs) mean over the members whose bootstrap resample left out each row's group
        (training rows predicted by members that did not see their line); NaN where every member
        saw it. Members stop early on these same groups, so this error is slightly optimistic."""
        total = np.zeros((len(conc), len(self.spec.outputs)))
        count = np.zeros(len(conc))
        for m, oob in zip(self.bag_members, self.out_of_bag, strict=True):
            rows = np.isin(groups, oob)
            if rows.any():
                total[rows] += predict_model(m, conc[rows], feats[rows])
                count[rows] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count[:, None] > 0, total / count[:, None], np.nan)

    def predict(self, conc: np.ndarray, feats: np.ndarray, q: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, n_outputs) and central ``q`` interval (2, n, n_outputs) over members."""
        p = self.predict_members(conc, feats)
        lo, hi = (1 - q) / 2, 1 - (1 - q) / 2
        return p.mean(0), np.quantile(p, [lo, hi], axis=0)

    def offtarget_scores(self) -> np.ndarray:
        """(n_drugs, n_nodes) member-mean off-target efficacy."""
        return np.mean([m.offtarget_scores() for m in self.members], axis=0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "cfg": {k: v for k, v in self.cfg.__dict__.items()},
            "n_features": self.members[0].n_features if self.members else 0,
            "members": [copy.deepcopy(m.state_dict()) for m in self.members],
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> DrugEnsemble:
        ens = cls(DrugModelSpec.from_json(d["spec"]), DrugFitConfig(**d["cfg"]))
        for sd in d["members"]:
            m = DrugResponseModel(ens.spec, int(d["n_features"]), ens.cfg)
            m.load_state_dict(sd)
            m.eval()
            ens.members.append(m)
            ens.bag_members.append(m)
            ens.out_of_bag.append(np.zeros(0, dtype=np.int64))  # not stored: the fit's lines are gone
        return ens


def rank_of_planted(scores: np.ndarray, planted: list[tuple[int, int]]) -> list[int]:
    """1-based rank of each planted (drug, node) among that drug's off-target scores (ties: worst)."""
    out = []
    for d, n in planted:
        s = scores[d]
        out.append(int((s >= s[n]).sum()) if math.isfinite(s[n]) else len(s))
    return out
