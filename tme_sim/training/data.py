"""Training data for surrogates: LEMBAS tables, AnnData ``.h5ad``, CSV, and prior-knowledge networks.

Formats
-------
* **LEMBAS tables** (Nilsson et al. 2022): an inputs TSV (rows = conditions, columns = ligand/drug
  node codes, values = input activity, usually 0/1), an outputs TSV (the same conditions, columns =
  transcription-factor node codes, values = activity), a network TSV (columns ``source``,
  ``target`` and either ``stimulation``/``inhibition`` (0/1) or ``sign`` (+1/-1/0)) and an
  optional annotation TSV (``code``, ``name``, ...) that maps node codes to gene symbols.
* **AnnData** ``.h5ad``: ``obs`` columns are the inputs (numeric), ``X`` (conditions × outputs) the
  outputs, ``var_names`` the output names, ``obs_names`` the conditions. Needs ``anndata``.
* **CSV**: one row per condition; the first column is the condition name; input columns are
  named ``in:<name>`` (or listed with ``input_columns``), every other column is an output.

Every malformed or missing file raises :class:`~tme_sim.errors.DataError` with a one-line message
naming the file and, where it applies, the row and column.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tme_sim.errors import DataError

#: LEMBAS file names inside a data folder (see :func:`load_lembas_folder`).
LEMBAS_FILES = {
    "inputs": "ligandScreen-Ligands.tsv",
    "outputs": "ligandScreen-TFs.tsv",
    "network": "ligandScreen-Model.tsv",
    "annotation": "ligandScreen-Annotation.tsv",
}


def shared_data_dir() -> Path:
    """Folder of shared (not shipped) data: ``$TME_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("TME_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def expand_path(p: str) -> str:
    """Expand ``${TME_SHARED_DATA}`` / ``$TME_SHARED_DATA`` (see :func:`shared_data_dir`) and ``~``."""
    d = str(shared_data_dir())
    return os.path.expanduser(p.replace("${TME_SHARED_DATA}", d).replace("$TME_SHARED_DATA", d))


def lembas_dir() -> Path:
    """The macrophage ligand-screen folder under :func:`shared_data_dir`."""
    return shared_data_dir() / "lembas-ligand-screen"


@dataclass
class Dataset:
    """Conditions × inputs and conditions × outputs, float32, with names and provenance."""

    inputs: np.ndarray  # (n_conditions, n_inputs) float32
    outputs: np.ndarray  # (n_conditions, n_outputs) float32
    input_names: list[str]
    output_names: list[str]
    condition_names: list[str]
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inputs = np.ascontiguousarray(self.inputs, dtype=np.float32)
        self.outputs = np.ascontiguousarray(self.outputs, dtype=np.float32)
        n = len(self.condition_names)
        if self.inputs.shape != (n, len(self.input_names)):
            raise DataError(f"inputs have shape {self.inputs.shape}, expected ({n}, {len(self.input_names)})")
        if self.outputs.shape != (n, len(self.output_names)):
            raise DataError(f"outputs have shape {self.outputs.shape}, expected ({n}, {len(self.output_names)})")

    @property
    def n(self) -> int:
        return len(self.condition_names)

    def subset(self, rows: np.ndarray) -> Dataset:
        """The conditions at ``rows`` (indices)."""
        rows = np.asarray(rows)
        return Dataset(
            self.inputs[rows],
            self.outputs[rows],
            list(self.input_names),
            list(self.output_names),
            [self.condition_names[i] for i in rows],
            list(self.sources),
        )

    def sha256(self) -> str:
        """Hash of names and values (identifies the training data in artifacts)."""
        h = hashlib.sha256()
        for names in (self.input_names, self.output_names, self.condition_names):
            h.update("\x1f".join(names).encode())
            h.update(b"\x1e")
        h.update(self.inputs.tobytes())
        h.update(self.outputs.tobytes())
        return h.hexdigest()


@dataclass
class PriorNetwork:
    """A signed directed graph: edge ``e`` goes from ``src[e]`` to ``dst[e]`` with ``sign[e]``.

    ``sign`` is +1 (activating), -1 (inhibiting) or 0 (unknown/both). ``names`` maps node codes to
    readable names (gene symbols) where an annotation was given.
    """

    node_names: list[str]
    src: np.ndarray  # (n_edges,) int64
    dst: np.ndarray  # (n_edges,) int64
    sign: np.ndarray  # (n_edges,) int8
    source: str = ""
    names: dict[str, str] = field(default_factory=dict)

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.node_names)}

    def sha256(self) -> str:
        h = hashlib.sha256("\x1f".join(self.node_names).encode())
        for a in (self.src, self.dst, self.sign):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()


def _need_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: {what} file not found")
    return p


def _read_table(path: Path, sep: str, index_col: int | None = 0) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep=sep, index_col=index_col)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse table ({msg})") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{path}: table has no data rows or no columns")
    return df


def _numeric(df: pd.DataFrame, path: Path) -> np.ndarray:
    """The table's values as float64; names the first bad cell (row, column) otherwise."""
    if df.index.has_duplicates:
        dup = df.index[df.index.duplicated()][0]
        raise DataError(f"{path}: duplicate row {dup!r}")
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()][0]
        raise DataError(f"{path}: duplicate column {dup!r}")
    conv = df.apply(pd.to_numeric, errors="coerce")
    bad = conv.isna().to_numpy() | ~np.isfinite(conv.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: row {df.index[r]!r}, column {df.columns[c]!r}: not a finite number ({df.iat[r, c]!r})"
        )
    return conv.to_numpy(dtype=np.float64)


def _some(names: list[str], shown: int = 10) -> str:
    """``'a', 'b', ... (+N more)``: every name up to ``shown``."""
    more = f" (+{len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(map(repr, names[:shown])) + more


def load_lembas(inputs_tsv: str | os.PathLike, outputs_tsv: str | os.PathLike) -> Dataset:
    """Load a LEMBAS ligand table and TF-activity table (same conditions, in any order)."""
    pin, pout = _need_file(inputs_tsv, "inputs"), _need_file(outputs_tsv, "outputs")
    din, dout = _read_table(pin, "\t"), _read_table(pout, "\t")
    xin, xout = _numeric(din, pin), _numeric(dout, pout)
    rows_in = [str(r) for r in din.index]
    rows_out = [str(r) for r in dout.index]
    missing = [r for r in rows_in if r not in set(rows_out)]
    extra = [r for r in rows_out if r not in set(rows_in)]
    parts = []
    if missing:
        parts.append(f"{_some(missing)} of {pin.name} {'has' if len(missing) == 1 else 'have'} no row here")
    if extra:
        parts.append(f"{_some(extra)} {'is' if len(extra) == 1 else 'are'} not in {pin.name}")
    if parts:
        raise DataError(f"{pout}: condition(s) {'; '.join(parts)}")
    pos = {r: i for i, r in enumerate(rows_out)}
    order = np.array([pos[r] for r in rows_in])
    return Dataset(
        xin,
        xout[order],
        [str(c) for c in din.columns],
        [str(c) for c in dout.columns],
        rows_in,
        [str(pin), str(pout)],
    )


def load_annotation(path: str | os.PathLike) -> dict[str, str]:
    """Node code → name (gene symbol) from an annotation TSV with columns ``code`` and ``name``."""
    p = _need_file(path, "annotation")
    df = _read_table(p, "\t", index_col=None)
    for col in ("code", "name"):
        if col not in df.columns:
            raise DataError(f"{p}: missing column {col!r} (have: {', '.join(map(str, df.columns))})")
    out: dict[str, str] = {}
    for i, (code, name) in enumerate(zip(df["code"], df["name"], strict=True)):
        if pd.isna(code):
            raise DataError(f"{p}: row {i + 2}: empty code")
        out[str(code)] = str(code) if pd.isna(name) else str(name)
    return out


def _read_sif(p: Path) -> pd.DataFrame:
    """A SIF network as a ``source``/``target``/``sign`` table (errors name the line)."""
    rows = []
    for i, line in enumerate(p.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        if len(parts) != 3:
            raise DataError(f"{p}: line {i}: expected 'source sign target', got {line.strip()!r}")
        rows.append((parts[0], parts[1], parts[2]))
    if not rows:
        raise DataError(f"{p}: no edges")
    return pd.DataFrame(rows, columns=["source", "sign", "target"])


def load_network(path: str | os.PathLike, annotation: str | os.PathLike | None = None) -> PriorNetwork:
    """Load a signed directed network TSV (``source``, ``target``, signs; see module docstring),
    or a ``.sif`` file (whitespace-separated ``source sign target`` lines, sign 1/-1, no header)."""
    p = _need_file(path, "network")
    if p.suffix.lower() == ".sif":
        df = _read_sif(p)
    else:
        df = _read_table(p, "\t", index_col=None)
    for col in ("source", "target"):
        if col not in df.columns:
            raise DataError(f"{p}: missing column {col!r} (have: {', '.join(map(str, df.columns))})")
    if "stimulation" in df.columns and "inhibition" in df.columns:
        parts = []
        for col in ("stimulation", "inhibition"):
            v = pd.to_numeric(df[col], errors="coerce")
            bad = v.isna() | ~v.isin([0, 1])
            if bad.any():
                i = int(np.argmax(bad.to_numpy()))
                raise DataError(f"{p}: row {i + 2}, column {col!r}: expected 0 or 1, got {df[col].iat[i]!r}")
            parts.append(v.to_numpy(dtype=np.int64))
        sign = parts[0] - parts[1]
    elif "sign" in df.columns:
        v = pd.to_numeric(df["sign"], errors="coerce")
        bad = v.isna() | ~v.isin([-1, 0, 1])
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{p}: row {i + 2}, column 'sign': expected -1, 0 or 1, got {df['sign'].iat[i]!r}")
        sign = v.to_numpy(dtype=np.int64)
    else:
        raise DataError(f"{p}: needs columns 'stimulation' and 'inhibition', or 'sign'")
    for col in ("source", "target"):
        if df[col].isna().any():
            i = int(np.argmax(df[col].isna().to_numpy()))
            raise DataError(f"{p}: row {i + 2}, column {col!r}: empty node name")
    srcn = df["source"].astype(str).to_numpy()
    dstn = df["target"].astype(str).to_numpy()
    nodes = sorted(set(srcn) | set(dstn))
    idx = {n: i for i, n in enumerate(nodes)}
    src = np.array([idx[s] for s in srcn], dtype=np.int64)
    dst = np.array([idx[t] for t in dstn], dtype=np.int64)
    # duplicate edges: keep the first (weights would be redundant)
    key = src * len(nodes) + dst
    _, first = np.unique(key, return_index=True)
    first.sort()
    names = load_annotation(annotation) if annotation is not None else {}
    return PriorNetwork(nodes, src[first], dst[first], sign[first].astype(np.int8), str(p), names)


def load_h5ad(path: str | os.PathLike, input_columns: list[str] | None = None) -> Dataset:
    """Load an AnnData file: numeric ``obs`` columns (or ``input_columns``) = inputs, ``X`` = outputs."""
    p = _need_file(path, "AnnData")
    try:
        import anndata
    except ImportError:
        raise DataError(f"{p}: reading .h5ad needs the 'anndata' package (pip install anndata)") from None
    try:
        ad = anndata.read_h5ad(p)
    except Exception as exc:  # h5py/anndata raise many types for a broken file
        raise DataError(f"{p}: cannot read AnnData ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    obs = ad.obs
    cols = (
        list(input_columns)
        if input_columns is not None
        else [c for c in obs.columns if pd.api.types.is_numeric_dtype(obs[c])]
    )
    if not cols:
        raise DataError(f"{p}: obs has no numeric columns to use as inputs")
    for c in cols:
        if c not in obs.columns:
            raise DataError(f"{p}: obs has no column {c!r}")
    xin = _numeric(obs[cols].set_axis([str(c) for c in cols], axis=1), p)
    x = ad.X
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    xout = _numeric(pd.DataFrame(x, index=[str(i) for i in ad.obs_names], columns=[str(v) for v in ad.var_names]), p)
    return Dataset(
        xin, xout, [str(c) for c in cols], [str(v) for v in ad.var_names], [str(i) for i in ad.obs_names], [str(p)]
    )


def load_csv(path: str | os.PathLike, input_columns: list[str] | None = None) -> Dataset:
    """Load a CSV: first column = condition, ``in:<name>`` (or ``input_columns``) = inputs, rest = outputs."""
    p = _need_file(path, "CSV")
    df = _read_table(p, ",")
    if input_columns is None:
        cols_in = [c for c in df.columns if str(c).startswith("in:")]
        names_in = [str(c)[3:] for c in cols_in]
    else:
        for c in input_columns:
            if c not in df.columns:
                raise DataError(f"{p}: no column {c!r}")
        cols_in = list(input_columns)
        names_in = [str(c) for c in cols_in]
    if not cols_in:
        raise DataError(f"{p}: no input columns (name them 'in:<input>')")
    cols_out = [c for c in df.columns if c not in set(cols_in)]
    if not cols_out:
        raise DataError(f"{p}: no output columns")
    xin = _numeric(df[cols_in], p)
    xout = _numeric(df[cols_out], p)
    return Dataset(xin, xout, names_in, [str(c) for c in cols_out], [str(r) for r in df.index], [str(p)])


def load_dataset(
    path: str | os.PathLike,
    *,
    outputs: str | os.PathLike | None = None,
    input_columns: list[str] | None = None,
) -> Dataset:
    """Load training data by file type.

    ``path`` may be a LEMBAS folder (see :data:`LEMBAS_FILES`), an inputs TSV (then ``outputs`` is
    the TF TSV), an ``.h5ad`` or a ``.csv`` file.
    """
    p = Path(path)
    if p.is_dir():
        return load_lembas(p / LEMBAS_FILES["inputs"], p / LEMBAS_FILES["outputs"])
    suffix = p.suffix.lower()
    if suffix == ".h5ad":
        return load_h5ad(p, input_columns)
    if suffix == ".csv":
        return load_csv(p, input_columns)
    if suffix in (".tsv", ".txt"):
        if outputs is None:
            raise DataError(f"{p}: a TSV of inputs needs the outputs TSV too (--outputs)")
        return load_lembas(p, outputs)
    if not p.exists():
        raise DataError(f"{p}: data file or folder not found")
    raise DataError(f"{p}: unknown data format {suffix!r} (expected a folder, .tsv, .h5ad or .csv)")


def check_fits_network(data: Dataset, net: PriorNetwork, data_name: str = "data") -> None:
    """Raise :class:`DataError` if inputs or outputs of ``data`` are not nodes of ``net`` (all named at once)."""
    nodes = set(net.node_names)
    parts = []
    for kind, names in (("input", data.input_names), ("output", data.output_names)):
        bad = [n for n in names if n not in nodes]
        if len(bad) == 1:
            parts.append(f"{kind} {bad[0]!r} is not a node")
        elif bad:
            parts.append(f"{len(bad)} {kind}s are not nodes ({', '.join(map(repr, bad))})")
    if parts:
        raise DataError(f"{data_name}: {'; '.join(parts)} of the network {net.source}")
