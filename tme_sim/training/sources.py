"""Where a training data set's files are, and how its input/output names meet the network's nodes.

A data set is named in one of three ways (``tme train`` and ``tme train cv``):

* ``--data DIR``: a folder. If it holds ``dataset.toml``, that file names the files; otherwise
  the LEMBAS names are looked for: ``<prefix>-Ligands.tsv`` (inputs), ``<prefix>-TFs.tsv``
  (outputs), ``<prefix>-Model.tsv`` (network) and, optionally, ``<prefix>-Annotation.tsv``, for
  any one prefix (the ligand screen's is ``ligandScreen``).
* ``--data dataset.toml``: a small TOML naming the files (paths relative to the TOML's folder)::

      inputs = "ligands.tsv"      # conditions x inputs TSV (or a .csv/.h5ad holding the outputs too)
      outputs = "tf_activity.tsv" # conditions x outputs TSV (when inputs is a TSV)
      network = "network.tsv"     # source, target and stimulation/inhibition or sign
      annotation = "nodes.tsv"    # optional: code -> name, used to map names to nodes
      unmatched = "drop"          # names that match no network node: drop (default) or error
      [map]                       # optional: data name -> network node
      NFKB = "P19838"

* ``--data FILE`` (inputs TSV, CSV or ``.h5ad``) or ``--inputs/--outputs/--network/--annotation``
  options, which also override what a folder or TOML names.

Every missing file is listed in one :class:`~tme_sim.errors.DataError`.

:func:`align_to_network` then matches the data's input and output names to network nodes: exact
node code, the ``[map]`` table, the annotation's gene symbol (case-insensitive, when unique) or
the node code ignoring case. Names left unmatched are dropped with one summary line, or listed all
at once in an error (``unmatched = "error"``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tme_sim.errors import DataError
from tme_sim.training.data import (
    Dataset,
    PriorNetwork,
    expand_path,
    lembas_dir,
    load_dataset,
    load_network,
)

#: the file name a data folder may hold to name its files
DATASET_TOML = "dataset.toml"
#: file-name endings of a LEMBAS data folder, by role
LEMBAS_SUFFIXES = {
    "inputs": "-Ligands.tsv",
    "outputs": "-TFs.tsv",
    "network": "-Model.tsv",
    "annotation": "-Annotation.tsv",
}
UNMATCHED_CHOICES = ("drop", "error")
_TOML_KEYS = {"inputs", "outputs", "network", "annotation", "unmatched", "map", "input_columns"}


@dataclass
class DataSource:
    """The files of one data set and how to meet the network (see the module docstring)."""

    inputs: str | None
    outputs: str | None = None
    network: str | None = None
    annotation: str | None = None
    unmatched: str = "drop"
    mapping: dict[str, str] = field(default_factory=dict)
    input_columns: list[str] | None = None
    origin: str = ""


def _rel(value: object, base: Path, key: str, origin: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DataError(f"{origin}: '{key}' must be a file name (a non-empty string)")
    v = Path(expand_path(value))
    return str(v if v.is_absolute() else base / v)


def read_dataset_toml(path: str | os.PathLike) -> DataSource:
    """A :class:`DataSource` from a ``dataset.toml`` (relative paths against its folder)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: dataset TOML not found")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: {str(exc).splitlines()[0]}") from None
    unknown = sorted(set(raw) - _TOML_KEYS)
    if unknown:
        raise DataError(f"{p}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOML_KEYS))})")
    base = p.parent
    mapping = raw.get("map", {})
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise DataError(f'{p}: [map] must be a table of data name = "network node"')
    cols = raw.get("input_columns")
    if cols is not None and not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
        raise DataError(f"{p}: input_columns must be a list of column names")
    src = DataSource(
        inputs=_rel(raw.get("inputs"), base, "inputs", str(p)),
        outputs=_rel(raw.get("outputs"), base, "outputs", str(p)),
        network=_rel(raw.get("network"), base, "network", str(p)),
        annotation=_rel(raw.get("annotation"), base, "annotation", str(p)),
        unmatched=str(raw.get("unmatched", "drop")),
        mapping={str(k): v for k, v in mapping.items()},
        input_columns=cols,
        origin=str(p),
    )
    if src.inputs is None:
        raise DataError(f"{p}: 'inputs' (the inputs file) is required")
    _check_unmatched(src.unmatched, str(p))
    return src


def _check_unmatched(value: str, origin: str) -> None:
    if value not in UNMATCHED_CHOICES:
        raise DataError(f"{origin}: unmatched must be one of {', '.join(UNMATCHED_CHOICES)}, got {value!r}")


def _discover_folder(folder: Path) -> DataSource:
    """The LEMBAS files of ``folder`` (any one ``<prefix>``), missing roles left as ``None``."""
    found: dict[str, str | None] = {}
    for role, suffix in LEMBAS_SUFFIXES.items():
        hits = sorted(folder.glob(f"*{suffix}"))
        if len(hits) > 1:
            raise DataError(
                f"{folder}: several {role} files ({', '.join(h.name for h in hits)}); "
                f"name the files in {folder / DATASET_TOML}"
            )
        found[role] = str(hits[0]) if hits else None
    return DataSource(found["inputs"], found["outputs"], found["network"], found["annotation"], origin=str(folder))


def resolve_source(
    data: str | None,
    *,
    inputs: str | None = None,
    outputs: str | None = None,
    network: str | None = None,
    annotation: str | None = None,
    unmatched: str | None = None,
    input_columns: list[str] | None = None,
    need_network: bool = False,
) -> DataSource:
    """Where the data set's files are (see the module docstring); options override what ``data`` names.

    ``data`` ``None`` (and no ``inputs``) means the shared ligand screen. Raises one
    :class:`DataError` listing every missing file (the network only when ``need_network``).
    """
    data = expand_path(data) if data else None
    if data is None and inputs is None:
        data = str(lembas_dir())
    if data is None:
        src = DataSource(None, origin="options")
    else:
        p = Path(data)
        if p.suffix.lower() == ".toml":
            src = read_dataset_toml(p)
        elif p.is_dir():
            src = read_dataset_toml(p / DATASET_TOML) if (p / DATASET_TOML).is_file() else _discover_folder(p)
        else:
            src = DataSource(str(p), origin=str(p))
    for key, val in (("inputs", inputs), ("outputs", outputs), ("network", network), ("annotation", annotation)):
        if val is not None:
            setattr(src, key, expand_path(val))
    if unmatched is not None:
        _check_unmatched(unmatched, "--unmatched")
        src.unmatched = unmatched
    if input_columns is not None:
        src.input_columns = input_columns
    missing = []
    folder = Path(src.origin).is_dir()
    for role in ("inputs", "outputs", "network", "annotation"):
        val = getattr(src, role)
        if val is None:
            if folder and (role in ("inputs", "outputs") or (role == "network" and need_network)):
                missing.append(f"{role} (*{LEMBAS_SUFFIXES[role]})")
            elif role == "network" and need_network:
                missing.append("network (--network)")
        elif not Path(val).exists():
            missing.append(f"{role} {val}")
    if missing:
        hint = f"; or name the files in {Path(src.origin) / DATASET_TOML}" if folder else ""
        raise DataError(f"{src.origin or 'data'}: missing {', '.join(missing)}{hint}")
    return src


def load_source(src: DataSource, *, with_network: bool = True) -> tuple[Dataset, PriorNetwork | None, str | None]:
    """Load the data set (and network, if named and ``with_network``) and align names to nodes.

    Returns ``(dataset, network or None, summary line or None)``; see :func:`align_to_network`.
    """
    assert src.inputs is not None
    suffix = Path(src.inputs).suffix.lower()
    outputs = src.outputs if suffix in (".tsv", ".txt") else None
    ds = load_dataset(src.inputs, outputs=outputs, input_columns=src.input_columns)
    if src.network is None or not with_network:
        return ds, None, None
    net = load_network(src.network, src.annotation)
    ds, line = align_to_network(ds, net, mapping=src.mapping, unmatched=src.unmatched)
    return ds, net, line


def _matcher(net: PriorNetwork, mapping: dict[str, str]):
    nodes = set(net.node_names)
    bad = sorted(f"{k} -> {v}" for k, v in mapping.items() if v not in nodes)
    if bad:
        raise DataError(f"[map]: not nodes of the network {net.source}: {', '.join(bad)}")
    by_symbol: dict[str, list[str]] = {}
    for code, name in net.names.items():
        if code in nodes:
            by_symbol.setdefault(name.upper(), []).append(code)
    by_lower: dict[str, list[str]] = {}
    for n in net.node_names:
        by_lower.setdefault(n.lower(), []).append(n)

    def match(name: str) -> tuple[str | None, str]:
        if name in mapping:
            return mapping[name], "map"
        if name in nodes:
            return name, "node"
        hits = by_symbol.get(name.upper(), [])
        if len(hits) == 1:
            return hits[0], "symbol"
        hits = by_lower.get(name.lower(), [])
        if len(hits) == 1:
            return hits[0], "case"
        return None, ""

    return match


def align_to_network(
    ds: Dataset, net: PriorNetwork, *, mapping: dict[str, str] | None = None, unmatched: str = "drop"
) -> tuple[Dataset, str | None]:
    """``ds`` with input/output names replaced by the network nodes they match (module docstring).

    Unmatched names are dropped (``unmatched="drop"``) or all listed in one :class:`DataError`
    (``"error"``). Returns the aligned data set and one summary line (``None`` when every name was
    a node already).
    """
    _check_unmatched(unmatched, "unmatched")
    match = _matcher(net, mapping or {})
    keep: dict[str, list[int]] = {}
    new_names: dict[str, list[str]] = {}
    renamed: dict[str, int] = {}
    dropped: dict[str, list[str]] = {}
    for kind, names in (("input", ds.input_names), ("output", ds.output_names)):
        keep[kind], new_names[kind], dropped[kind], renamed[kind] = [], [], [], 0
        for i, n in enumerate(names):
            node, how = match(n)
            if node is None:
                dropped[kind].append(n)
                continue
            keep[kind].append(i)
            new_names[kind].append(node)
            renamed[kind] += how != "node"
        dup = sorted({m for m in new_names[kind] if new_names[kind].count(m) > 1})
        if dup:
            raise DataError(f"several {kind}s map to the same network node(s): {', '.join(dup)}")
    if unmatched == "error" and (dropped["input"] or dropped["output"]):
        parts = [f"{k}s {', '.join(map(repr, v))}" for k, v in dropped.items() if v]
        raise DataError(
            f"not nodes of the network {net.source}: {'; '.join(parts)} (map them in [map] or use --unmatched drop)"
        )
    for kind in ("input", "output"):
        if not keep[kind]:
            raise DataError(f"no {kind} of the data is a node of the network {net.source}")
    if not any(dropped.values()) and not any(renamed.values()):
        return ds, None
    out = Dataset(
        ds.inputs[:, np.array(keep["input"])],
        ds.outputs[:, np.array(keep["output"])],
        new_names["input"],
        new_names["output"],
        list(ds.condition_names),
        list(ds.sources),
    )
    parts = []
    for kind, names in (("input", ds.input_names), ("output", ds.output_names)):
        s = f"{kind}s {len(keep[kind])}/{len(names)} matched"
        if renamed[kind]:
            s += f" ({renamed[kind]} by name or [map])"
        if dropped[kind]:
            shown = ", ".join(dropped[kind][:8]) + (", ..." if len(dropped[kind]) > 8 else "")
            s += f", {len(dropped[kind])} dropped ({shown})"
        parts.append(s)
    return out, f"network nodes: {'; '.join(parts)}"
