"""Drug-dose × cell-line viability data (the LEMBAS/Fröhlich format), omics features and baselines.

A viability folder holds (default file names; any other names through a ``dataset.toml`` in the
folder or a TOML passed instead of the folder, see :data:`VIABILITY_FILES`):

* ``viability`` — conditions × 1 (relative viability, ≈1 = untreated);
* ``drugs`` — conditions × drugs, each drug's dose as ``log10(c + 1)`` (``dose_scale = "log10p1"``,
  the LEMBAS convention) or the concentration itself (``dose_scale = "linear"``);
* ``cell_lines`` — conditions × lines, one-hot;
* ``expression`` — genes × lines (z-scored), ``mutations`` — mutation calls × lines (0/1, optional);
* ``drug_targets`` — ``source`` (drug), ``target`` (node) edges; ``readouts`` — ``source`` (node),
  ``target`` (output) with ``stimulation``/``inhibition``; ``network`` (+ ``annotation``, code →
  gene symbol, which names the expression rows);
* ``folds`` — conditions × 1 integer fold (optional; the published split).

:func:`detect_kind` recognises a folder by its files (``viability`` and ``drug_targets`` present).
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tme_sim.errors import DataError
from tme_sim.training.data import PriorNetwork, _numeric, _read_table, load_network
from tme_sim.training.drug_models import DrugModelSpec

#: default file names of a viability folder (keys of the ``[files]`` table of ``dataset.toml``)
VIABILITY_FILES = {
    "viability": "viability.tsv",
    "drugs": "drug.tsv",
    "cell_lines": "cellLine.tsv",
    "expression": "cellLineRKPMZscored_subset.tsv",
    "mutations": "mutations.tsv",
    "drug_targets": "drugLayer.tsv",
    "readouts": "viabilityLayer.tsv",
    "network": "ligandScreen-Model.tsv",
    "annotation": "ligandScreen-Annotation.tsv",
    "folds": "CVtest.tsv",
}
OPTIONAL = {"mutations", "folds", "annotation"}
DATASET_TOML = "dataset.toml"


def _dataset_toml(path: Path) -> tuple[Path, dict[str, Any]]:
    """(root folder, parsed TOML or {}) for a folder or a dataset TOML file."""
    toml_path = path if path.is_file() and path.suffix == ".toml" else path / DATASET_TOML
    if not toml_path.is_file():
        return path, {}
    try:
        d = tomllib.loads(toml_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{toml_path}: not valid TOML ({exc})") from None
    root = Path(d.get("root", ".")) if "root" in d else Path(".")
    root = root if root.is_absolute() else toml_path.parent / root
    return root, d


def detect_kind(path: str | os.PathLike) -> str | None:
    """``"viability"`` when ``path`` (folder or dataset TOML) holds a viability data set, else the TOML's
    ``kind`` or ``None`` (not a drug data set: the ligand-screen and other trainers handle it)."""
    p = Path(path)
    if not p.exists():
        return None
    root, d = _dataset_toml(p)
    if "kind" in d:
        return str(d["kind"])
    files = {**VIABILITY_FILES, **d.get("files", {})}
    if root.is_dir() and (root / files["viability"]).is_file() and (root / files["drug_targets"]).is_file():
        return "viability"
    return None


@dataclass
class ViabilityData:
    """Conditions of single drugs (or combinations) at doses on cell lines, with omics and network.

    ``conc`` (n, n_drugs) concentrations (data unit); ``dose`` (n, n_drugs) as given (log10(c+1));
    ``line`` (n,) index into ``line_names``; ``y`` (n,) viability; ``expression`` (n_lines, n_genes);
    ``mutations`` (n_lines, n_mutations); ``folds`` (n,) or None.
    """

    conc: np.ndarray
    dose: np.ndarray
    line: np.ndarray
    y: np.ndarray
    drug_names: list[str]
    line_names: list[str]
    expression: np.ndarray
    gene_names: list[str]
    mutations: np.ndarray
    mutation_names: list[str]
    targets: list[tuple[str, str]]
    readouts: list[tuple[str, str, int]]
    network: PriorNetwork
    folds: np.ndarray | None
    condition_names: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)

    def sha256(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for a in (self.conc, self.line, self.y, self.expression, self.mutations):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        h.update("\x1f".join(self.drug_names + self.line_names).encode())
        return h.hexdigest()

    def drug_dose_key(self) -> np.ndarray:
        """(n,) int id of each condition's drug × dose combination (its row of ``dose``)."""
        _, inv = np.unique(np.round(self.dose, 6), axis=0, return_inverse=True)
        return inv.ravel()

    def spec(self, offtarget_nodes: list[str] | None = None) -> DrugModelSpec:
        """The model structure: drugs, network nodes, known targets, read-out layer. Off-target
        candidates default to every node that is a known target of some drug of the panel (nodes
        known to bind such drugs): one viability read-out cannot place an off-target among all
        network nodes."""
        if offtarget_nodes is None:
            offtarget_nodes = sorted({t for _, t in self.targets})
        net = self.network
        nodes = list(net.node_names)
        edges = [(nodes[a], nodes[b], int(s)) for a, b, s in zip(net.src, net.dst, net.sign, strict=True)]
        outputs = sorted({o for _, o, _ in self.readouts})
        return DrugModelSpec(
            list(self.drug_names), nodes, list(self.targets), edges, list(self.readouts), outputs, offtarget_nodes
        )


def _edges(path: Path, what: str) -> pd.DataFrame:
    df = _read_table(path, "\t", index_col=None)
    for col in ("source", "target"):
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r} ({what})")
    return df


def load_viability(path: str | os.PathLike) -> ViabilityData:
    """Load a viability folder (or dataset TOML); see the module docstring for the files."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: data folder not found")
    root, d = _dataset_toml(p)
    names = dict(VIABILITY_FILES)
    for k, v in d.get("files", {}).items():
        if k not in VIABILITY_FILES:
            raise DataError(f"{p}: [files] has unknown key {k!r} (known: {', '.join(VIABILITY_FILES)})")
        names[k] = str(v)
    files: dict[str, Path | None] = {}
    for k, fn in names.items():
        fp = root / fn
        if not fp.is_file():
            if k in OPTIONAL:
                files[k] = None
                continue
            raise DataError(f"{fp}: {k} file not found")
        files[k] = fp
    scale = str(d.get("dose_scale", "log10p1"))
    if scale not in ("log10p1", "linear"):
        raise DataError(f"{p}: dose_scale must be 'log10p1' or 'linear', got {scale!r}")
    fv, fd, fc = files["viability"], files["drugs"], files["cell_lines"]
    assert fv is not None and fd is not None and fc is not None
    dv, dd, dc = _read_table(fv, "\t"), _read_table(fd, "\t"), _read_table(fc, "\t")
    y = _numeric(dv, fv)[:, 0]
    rows = [str(r) for r in dv.index]
    for df, fp in ((dd, fd), (dc, fc)):
        if [str(r) for r in df.index] != rows:
            raise DataError(f"{fp}: rows differ from the conditions of {fv.name} (same rows, same order needed)")
    dose = _numeric(dd, fd)
    if (dose < 0).any():
        raise DataError(f"{fd}: negative dose")
    conc = 10.0**dose - 1.0 if scale == "log10p1" else dose
    onehot = _numeric(dc, fc)
    if not np.all(onehot.sum(1) == 1):
        r = int(np.argmax(onehot.sum(1) != 1))
        raise DataError(f"{fc}: row {rows[r]!r} does not name exactly one cell line")
    line_names = [str(c) for c in dc.columns]
    fe = files["expression"]
    assert fe is not None
    de = _read_table(fe, "\t")
    if de.index.has_duplicates:  # a gene listed twice (e.g. two probes): average its rows
        de = de.apply(pd.to_numeric, errors="coerce").groupby(level=0, sort=False).mean()
    missing = [ln for ln in line_names if ln not in de.columns]
    if missing:
        raise DataError(f"{fe}: no column for cell line {missing[0]!r}")
    expr = _numeric(de[line_names], fe).T
    if files["mutations"] is not None:
        fm = files["mutations"]
        dm = _read_table(fm, "\t")
        miss = [ln for ln in line_names if ln not in dm.columns]
        if miss:
            raise DataError(f"{fm}: no column for cell line {miss[0]!r}")
        mut, mut_names = _numeric(dm[line_names], fm).T, [str(r) for r in dm.index]
    else:
        mut, mut_names = np.zeros((len(line_names), 0)), []
    ft, fr, fn_ = files["drug_targets"], files["readouts"], files["network"]
    assert ft is not None and fr is not None and fn_ is not None
    net = load_network(fn_, files["annotation"])
    drug_names = [str(c) for c in dd.columns]
    dt = _edges(ft, "drug → target")
    targets = []
    for s, t in zip(dt["source"].astype(str), dt["target"].astype(str), strict=True):
        if s not in drug_names:
            raise DataError(f"{ft}: drug {s!r} is not a column of {fd.name}")
        if (s, t) not in targets:
            targets.append((s, t))
    dr = _edges(fr, "read-out layer")
    sign = (
        dr["stimulation"].to_numpy(int) - dr["inhibition"].to_numpy(int)
        if "stimulation" in dr.columns and "inhibition" in dr.columns
        else np.ones(len(dr), dtype=int)
    )
    readouts = [
        (str(a), str(b), int(np.sign(s) or 1)) for a, b, s in zip(dr["source"], dr["target"], sign, strict=True)
    ]
    # targets and read-out nodes absent from the network become isolated nodes of it
    extra = sorted(({t for _, t in targets} | {a for a, _, _ in readouts}) - set(net.node_names))
    if extra:
        net = PriorNetwork(list(net.node_names) + extra, net.src, net.dst, net.sign, net.source, net.names)
    folds = None
    if files["folds"] is not None:
        ff = files["folds"]
        df_ = _read_table(ff, "\t")
        if [str(r) for r in df_.index] != rows:
            raise DataError(f"{ff}: rows differ from the conditions of {fv.name}")
        folds = _numeric(df_, ff)[:, 0].astype(np.int64)
    genes = [str(g) for g in de.index]
    return ViabilityData(
        conc=conc,
        dose=dose,
        line=onehot.argmax(1),
        y=y,
        drug_names=drug_names,
        line_names=line_names,
        expression=expr,
        gene_names=genes,
        mutations=mut,
        mutation_names=mut_names,
        targets=targets,
        readouts=readouts,
        network=net,
        folds=folds,
        condition_names=rows,
        sources={k: str(v) for k, v in files.items() if v is not None},
    )


def mutation_genes(names: list[str]) -> list[str]:
    """Gene of each mutation call name (``MUT_MutAA[V600E]-BRAF`` → ``BRAF``; else the name)."""
    return [n.rsplit("-", 1)[-1] if "-" in n else n for n in names]


@dataclass
class OmicsFeatures:
    """Per-line features fitted on training lines only: ``n_components`` expression principal
    components, one flag per mutated gene (any call), and the expression of the model's target and
    read-out genes; every column standardised with the training lines' mean and s.d."""

    n_components: int = 20
    genes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def fit(self, data: ViabilityData, train_lines: np.ndarray) -> OmicsFeatures:
        x = data.expression[train_lines]
        mu = x.mean(0)
        _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
        k = min(self.n_components, len(s))
        self.state = {"mu": mu, "vt": vt[:k], "s": s[:k] / math.sqrt(max(len(train_lines) - 1, 1))}
        f = self._raw(data)
        self.state["f_mu"] = f[train_lines].mean(0)
        sd = f[train_lines].std(0)
        self.state["f_sd"] = np.where(sd > 1e-9, sd, 1.0)
        return self

    def _raw(self, data: ViabilityData) -> np.ndarray:
        st = self.state
        pcs = (data.expression - st["mu"]) @ st["vt"].T / np.where(st["s"] > 0, st["s"], 1.0)
        mg = mutation_genes(data.mutation_names)
        ug = sorted(set(mg))
        mflags = (
            np.stack([data.mutations[:, [i for i, g in enumerate(mg) if g == u]].max(1) for u in ug], 1)
            if ug
            else np.zeros((len(data.line_names), 0))
        )
        gi = {g: i for i, g in enumerate(data.gene_names)}
        gx = (
            np.stack([data.expression[:, gi[g]] for g in self.genes if g in gi], 1)
            if any(g in gi for g in self.genes)
            else np.zeros((len(data.line_names), 0))
        )
        return np.column_stack([pcs, (mflags > 0).astype(float), gx])

    def transform(self, data: ViabilityData) -> np.ndarray:
        """(n_lines, n_features), clipped to ±3 s.d. (a rare mutation or an outlying line must not
        give one line an extreme input)."""
        return np.clip((self._raw(data) - self.state["f_mu"]) / self.state["f_sd"], -3.0, 3.0)
