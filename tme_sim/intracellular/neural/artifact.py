"""Saved surrogate artifacts: a trained model plus the metadata needed to use it safely.

An artifact is one ``torch.save`` file holding plain Python data and tensors only (it loads with
``weights_only=True``, so loading never runs pickled code)::

    format            "tme-sim-surrogate"
    format_version    1
    model_kind        "signaling" | "mlp" | "hybrid" | "signaling_ensemble"
    model_config      constructor keyword arguments of the module
    state_dict        the module's tensors
    input_names       model inputs (e.g. ligand node codes), in column order
    output_names      model outputs (e.g. TF node codes), in column order
    node_names        the network's nodes (signaling models; [] otherwise)
    names             code -> readable name (gene symbols), for name resolution and reports
    output_labels     optional: what the outputs mean ("activity", "probability")
    package_version   tme_sim version that wrote it; torch_version likewise
    data_sha256       hash of the training data (:meth:`tme_sim.training.data.Dataset.sha256`)
    network_sha256    hash of the prior-knowledge network (signaling models)
    weights_sha256    hash of ``state_dict`` (:func:`weights_sha256`); a mismatch on loading means
                      the file was corrupted or edited (artifacts written before it have none)
    training          free-form dict: training config, CV summary, command line, timings

:func:`load_artifact` refuses anything else with :class:`~tme_sim.errors.ArtifactError`, and
:meth:`Surrogate.input_index` / :meth:`Surrogate.output_index` refuse names the model does not have.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tme_sim import __version__
from tme_sim.errors import ArtifactError
from tme_sim.intracellular.neural.ensemble import SignalingEnsemble
from tme_sim.intracellular.neural.networks import DenseMLP, HybridSignaling, SignalingNetwork

FORMAT = "tme-sim-surrogate"
FORMAT_VERSION = 1
MODEL_KINDS = {
    "signaling": SignalingNetwork,
    "mlp": DenseMLP,
    "hybrid": HybridSignaling,
    "signaling_ensemble": SignalingEnsemble,
}


def package_version() -> str:
    return str(__version__)


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_kind(model: torch.nn.Module) -> str:
    for kind, cls in MODEL_KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"not a surrogate model: {type(model).__name__}")


def save_artifact(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    input_names: list[str],
    output_names: list[str],
    data_sha256: str,
    network_sha256: str = "",
    names: dict[str, str] | None = None,
    output_labels: str = "activity",
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` (parent folders are created)."""
    kind = model_kind(model)
    if len(input_names) != model.n_inputs or len(output_names) != model.n_outputs:
        raise ValueError("input/output names do not match the model's sizes")
    node_names = list(getattr(model, "node_names", []))
    names = dict(names or {})
    keep = set(input_names) | set(output_names)
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_kind": kind,
        "model_config": model.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "input_names": list(input_names),
        "output_names": list(output_names),
        "node_names": node_names,
        "names": {k: v for k, v in names.items() if k in keep or k in set(node_names)},
        "output_labels": output_labels,
        "package_version": package_version(),
        "torch_version": str(torch.__version__),
        "data_sha256": data_sha256,
        "network_sha256": network_sha256,
        "training": _plain(training or {}),
    }
    blob["weights_sha256"] = weights_sha256(blob["state_dict"])
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, p)
    return p


def weights_sha256(state: dict[str, Any]) -> str:
    """SHA-256 of a ``state_dict``: names, dtypes, shapes and bytes of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _plain(obj: Any) -> Any:
    """Convert to types ``torch.load(weights_only=True)`` accepts (dict/list/str/float/int/bool/None)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


@dataclass
class Surrogate:
    """A loaded artifact: the model (eval mode, on ``device``) and its metadata."""

    model: torch.nn.Module
    meta: dict[str, Any]
    path: Path
    device: torch.device

    @property
    def kind(self) -> str:
        return str(self.meta["model_kind"])

    @property
    def input_names(self) -> list[str]:
        return list(self.meta["input_names"])

    @property
    def output_names(self) -> list[str]:
        return list(self.meta["output_names"])

    def label(self, code: str) -> str:
        """Readable name of a node code (gene symbol where known)."""
        return str(self.meta.get("names", {}).get(code, code))

    def _index(self, name: str, names: list[str], what: str) -> int:
        if name in names:
            return names.index(name)
        labels = [self.label(c) for c in names]
        hits = [i for i, lab in enumerate(labels) if lab.upper() == name.upper()]
        if len(hits) == 1:
            return hits[0]
        shown = ", ".join(sorted(set(labels)))
        if len(shown) > 300:
            shown = shown[:300] + ", ..."
        raise ArtifactError(f"{self.path}: model has no {what} {name!r} (has: {shown})")

    def input_index(self, name: str) -> int:
        """Column of input ``name`` (a code such as ``P01579`` or a symbol such as ``IFNG``)."""
        return self._index(name, self.input_names, "input")

    def output_index(self, name: str) -> int:
        """Column of output ``name`` (code or symbol)."""
        return self._index(name, self.output_names, "output")

    def predict(self, u: np.ndarray, *, chunk: int | None = None, fast: bool | None = None) -> np.ndarray:
        """Outputs (B, n_out) float32 for inputs ``u`` (B, n_in).

        ``fast`` (default: True on CPU, False on CUDA): use the CPU inference paths of
        :mod:`.inference` — :class:`~.inference.FastMLP` for dense models,
        the numba steady-state kernel :class:`~tme_sim.intracellular.neural.inference.FastSignaling` for signaling
        models (same fixed point and ``tol``; outputs within ~1e-2 of the torch forward at the
        model's ``tol``, see that module) and for the network part of hybrid models (whose linear
        path is added in numpy, :class:`FastHybrid`). They read the module's weights once and are rebuilt
        when a parameter changes in place. ``fast=False``: the torch module, ``chunk`` rows per
        call (default 8192 for signaling models — each row holds all node states — and 65536
        for dense models).
        """
        u = np.asarray(u, dtype=np.float32)
        if u.ndim != 2 or u.shape[1] != len(self.input_names):
            raise ValueError(f"inputs must be (B, {len(self.input_names)}), got {u.shape}")
        if fast is None:
            fast = self.device.type == "cpu"
        if fast:
            return self.fast_runner()(u)
        if chunk is None:
            chunk = 65536 if self.kind == "mlp" else 8192
        out = np.empty((u.shape[0], len(self.output_names)), dtype=np.float32)
        with torch.inference_mode():
            for a in range(0, u.shape[0], chunk):
                ut = torch.from_numpy(u[a : a + chunk]).to(self.device)
                out[a : a + chunk] = self.model(ut).float().cpu().numpy()
        return out

    def fast_runner(self) -> Any:
        """The cached fast CPU runner of this model (:mod:`tme_sim.intracellular.neural.inference`), rebuilt when
        the model's parameters, input map or MLP gate have changed since it was made."""
        from tme_sim.intracellular.neural.inference import FastMLP, FastSignaling

        key = (
            tuple((id(p), p._version) for p in self.model.parameters()),
            tuple((id(b), b._version) for b in self.model.buffers()),
            id(getattr(self.model, "input_map", None)),
            id(getattr(self.model, "gated_inputs", None)),
            getattr(self.model, "tol", None),
            getattr(self.model, "max_iter", None),
        )
        cached = self.__dict__.get("_fast")
        if cached is not None and cached[0] == key:
            return cached[1]
        if self.kind == "signaling":
            runner: Any = FastSignaling(self.model)
        elif self.kind == "signaling_ensemble":
            runner = FastEnsemble(self.model)
        elif self.kind == "hybrid":
            runner = FastHybrid(self.model)
        else:
            runner = FastMLP(self.model)
        self.__dict__["_fast"] = (key, runner)
        return runner


class FastHybrid:
    """Fast CPU inference of a :class:`~tme_sim.intracellular.neural.networks.HybridSignaling`: the numba
    steady-state kernel (:class:`~tme_sim.intracellular.neural.inference.FastSignaling`) for its network, its MLP
    part (if any) by :class:`~tme_sim.intracellular.neural.inference.FastMLP`, its linear path in numpy, mixed by
    :meth:`~.networks.HybridSignaling.combine` (with its MLP gate). Keyword arguments of ``__call__``
    (``extra_nodes``/``extra_drive``) go to the network part."""

    def __init__(self, model: HybridSignaling, **kw: Any) -> None:
        from tme_sim.intracellular.neural.inference import FastMLP, FastSignaling

        self.model = model
        self.rnn = FastSignaling(model.rnn, **kw)
        self.mlp = FastMLP(model.mlp) if model.mlp is not None else None
        imap = model.input_map  # read once, like the weights (a new map means a new runner)
        self.input_map = None if imap is None else imap.cpu().numpy().astype(np.float32)

    @property
    def info(self) -> Any:
        return self.rnn.info

    def __call__(self, u: np.ndarray, **kw: Any) -> np.ndarray:
        u = np.asarray(u, dtype=np.float32)
        share = self.model.mlp_share(u) if self.mlp is not None else None
        if self.input_map is not None:
            u = np.ascontiguousarray(u @ self.input_map)
        mlp = self.mlp(u) if self.mlp is not None else None
        out = self.model.combine(self.model.linear_numpy(u), self.rnn(u, **kw), mlp, share)
        return np.asarray(out, dtype=np.float32)


class FastEnsemble:
    """Fast CPU inference of a :class:`~tme_sim.intracellular.neural.ensemble.SignalingEnsemble`: the numba
    steady-state kernel (:class:`~tme_sim.intracellular.neural.inference.FastSignaling`) for each member, outputs
    averaged. Keyword arguments of ``__call__`` (``extra_nodes``/``extra_drive``: node indices of the
    shared graph) go to every member."""

    def __init__(self, model: SignalingEnsemble, **kw: Any) -> None:
        from tme_sim.intracellular.neural.inference import FastSignaling

        self.model = model
        self.members = [FastSignaling(m, **kw) for m in model.members]

    @property
    def info(self) -> Any:
        return self.members[0].info

    def __call__(self, u: np.ndarray, **kw: Any) -> np.ndarray:
        out = self.members[0](u, **kw)
        for m in self.members[1:]:
            out = out + m(u, **kw)
        return np.asarray(out / len(self.members), dtype=np.float32)


def _signaling_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        **cfg,
        "src": np.asarray(cfg["src"]),
        "dst": np.asarray(cfg["dst"]),
        "sign": np.asarray(cfg["sign"]),
        "input_nodes": np.asarray(cfg["input_nodes"]),
        "output_nodes": np.asarray(cfg["output_nodes"]),
        "prescale": None,
        "baseline_state": None,
    }


def network_from_config(kind: str, config: dict[str, Any]) -> torch.nn.Module:
    """Rebuild an (untrained) module from ``model_kind`` and ``model_config``."""
    if kind not in MODEL_KINDS:
        raise ArtifactError(f"unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS)})")
    cfg = dict(config)
    if kind == "hybrid":
        cfg = {**cfg, "signaling": _signaling_kwargs(dict(cfg["signaling"]))}
    if kind == "signaling":
        cfg = _signaling_kwargs(cfg)
    if kind == "signaling_ensemble":
        cfg = {"members": [_signaling_kwargs(dict(m)) for m in cfg["members"]]}
    return MODEL_KINDS[kind](**cfg)


def load_artifact(path: str | os.PathLike, device: str | torch.device | None = None) -> Surrogate:
    """Load and validate an artifact; ``device`` defaults to CUDA when present, else CPU."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: surrogate artifact not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-artifact file
        raise ArtifactError(f"{p}: not a readable surrogate artifact ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ArtifactError(f"{p}: not a tme-sim surrogate artifact")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{p}: artifact format version {blob.get('format_version')!r}, this tme-sim reads {FORMAT_VERSION}"
        )
    _check_blob(p, blob)
    try:
        model = network_from_config(blob["model_kind"], blob["model_config"])
    except ArtifactError as exc:
        raise ArtifactError(f"{p}: {exc}") from None
    except (TypeError, KeyError, ValueError, IndexError, RuntimeError, AttributeError) as exc:
        raise ArtifactError(
            f"{p}: model_config does not build a {blob['model_kind']!r} model ({type(exc).__name__})"
        ) from None
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise ArtifactError(f"{p}: weights do not fit the model ({str(exc).splitlines()[0][:160]})") from None
    if model.n_inputs != len(blob["input_names"]) or model.n_outputs != len(blob["output_names"]):
        raise ArtifactError(f"{p}: input/output names do not match the model's sizes")
    dev = torch.device(device) if device is not None else default_device()
    model = model.to(dev).eval()
    return Surrogate(model=model, meta=blob, path=p, device=dev)


def describe_artifact(path: str | os.PathLike) -> str:
    """A plain-text description of an artifact (``tme info MODEL.pt``): what it is, what it was
    trained on and with which command, and the cross-validation table of its exact recipe (the
    ``cv`` entry of its training report; a note when it has none)."""
    s = load_artifact(path, device="cpu")
    meta, tr = s.meta, s.meta.get("training", {}) or {}
    lines = [
        f"{s.path}: {s.kind} surrogate, {len(s.input_names)} inputs -> {len(s.output_names)} outputs",
        f"  data sha256 {meta.get('data_sha256', '')[:16]}, "
        f"network sha256 {meta.get('network_sha256', '')[:16] or '-'}",
        f"  written by tme-sim {meta.get('package_version', '?')} (torch {meta.get('torch_version', '?')})",
    ]
    if tr.get("command"):
        lines.append(f"  trained with: {tr['command']}")
    if "train_pooled_r" in tr:
        lines.append(f"  fit on its training data: pooled r {tr['train_pooled_r']:.3f} (not a held-out score)")
    cv = tr.get("cv")
    if not cv:
        lines.append("  cross-validation: none recorded for this recipe (no held-out score)")
        return "\n".join(lines)
    lines.append(
        f"  cross-validation of this recipe ({cv.get('protocol', '?')} protocol, {cv.get('k', '?')} folds, "
        f"seeds {cv.get('seeds', [])}, {cv.get('n_conditions', '?')} conditions; data sha256 matches: "
        f"{'yes' if cv.get('data_sha256') == meta.get('data_sha256') else 'NO'}):"
    )
    if cv.get("command"):
        lines.append(f"    command: {cv['command']}")
    lines.append(f"    {'model':<12} {'pooled r':>9} {'median TF r':>12} {'seen r':>7} {'unseen r':>9} {'s/fold':>7}")
    for row in cv.get("table", []):
        lines.append(
            f"    {row['model']:<12} {row['pooled_r']:>9.3f} {row['median_r']:>12.3f} {row['seen_r']:>7.3f} "
            f"{row['unseen_r']:>9.3f} {row['seconds_per_fold']:>7.1f}"
        )
    for nm, how in (cv.get("selection") or {}).items():
        lines.append(f"    settings of {nm}: {how}")
    return "\n".join(lines)


def _check_blob(p: Path, blob: dict[str, Any]) -> None:
    """Types of the metadata, the weights' checksum (when stored) and finiteness; ArtifactError names the key."""
    for key in ("model_kind", "model_config", "state_dict", "input_names", "output_names"):
        if key not in blob:
            raise ArtifactError(f"{p}: artifact lacks {key!r}")
    if not isinstance(blob["model_kind"], str) or not isinstance(blob["model_config"], dict):
        raise ArtifactError(f"{p}: model_kind must be a string and model_config a table")
    for key in ("input_names", "output_names"):
        names = blob[key]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ArtifactError(f"{p}: {key} must be a non-empty list of names")
    state = blob["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ArtifactError(f"{p}: state_dict must map names to tensors")
    stored = blob.get("weights_sha256")
    if stored is not None and stored != weights_sha256(state):
        raise ArtifactError(f"{p}: weights checksum mismatch (the file was corrupted or edited after training)")
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ArtifactError(f"{p}: weight {k!r} holds NaN or infinite values")
