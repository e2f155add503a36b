"""``tme train``: train, cross-validate and distill neural surrogates (a typer sub-application).

Mounted by the main CLI as ``app.add_typer(train_app, name="train")``. Examples::

    # train on the ligand screen and save an artifact (+ report JSON/PNG next to it)
    tme train --data ../shared/data/lembas-ligand-screen --out outputs/macrophage.pt
    # the shipped macrophage artifact, reproduced by one command
    tme train --config scenarios/models/macrophage_ligand_screen.toml
    # cross-validation table (5 folds by condition, seeds 0,1,2, ridge baseline, scrambled control)
    tme train cv --models signaling,mlp
    # distil the TNF cell-fate Boolean network into a surrogate and report agreement
    tme train distill

Expected mistakes raise :class:`~tme_sim.errors.TMEError` (``error: ...``, exit status 2).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from tme_sim.errors import ConfigError, TMEError
from tme_sim.scenarios import packaged
from tme_sim.training.distill import DEFAULT_EPOCHS as DISTILL_EPOCHS
from tme_sim.training.distill import DEFAULT_HIDDEN as DISTILL_HIDDEN
from tme_sim.training.distill import DEFAULT_LAYERS as DISTILL_LAYERS
from tme_sim.training.distill import DEFAULT_LR as DISTILL_LR
from tme_sim.training.distill import DEFAULT_TEST_CONDITIONS as DISTILL_TEST
from tme_sim.training.distill import DEFAULT_TRAIN_CONDITIONS as DISTILL_TRAIN

if TYPE_CHECKING:
    from tme_sim.training.train import TrainConfig

train_app = typer.Typer(
    name="train",
    help="Train (default), cross-validate (cv) or distill neural intracellular surrogates.",
    invoke_without_command=True,
    add_completion=False,
)


def mlp_baseline_config(base: TrainConfig, epochs: int, threads: int | None = None) -> TrainConfig:
    """The ``mlp`` baseline row's settings: fixed in advance, independent of the recipe being scored.

    Only the seed, device and torch threads come from the recipe (``base``); everything else is the package default
    plus the baseline's own learning rate and epoch budget, so a recipe's choices (validation split,
    penalties, selection note) never leak into its baseline.
    """
    from tme_sim.training.train import TrainConfig

    update: dict[str, Any] = {"model": "mlp", "lr": 3e-3, "epochs": epochs, "patience": epochs}
    update.update({"seed": base.seed, "device": base.device, "selection_note": None})
    update["threads"] = threads if threads is not None else base.threads
    return TrainConfig().model_copy(update=update)


def _expand(p: str | None) -> str | None:
    """Expand ``$TME_SHARED_DATA`` (default ``<repo>/../shared/data``) and ``~`` in a path."""
    from tme_sim.training.data import expand_path

    return None if p is None else expand_path(p)


def _load_inputs(
    data: str | None,
    outputs: str | None,
    network: str | None,
    annotation: str | None,
    model: str,
    input_columns: list[str] | None = None,
    *,
    inputs: str | None = None,
    unmatched: str | None = None,
):
    """The data set and network (``None`` unless the model needs one), names aligned to its nodes.

    Prints one summary line when names were mapped or dropped (see :mod:`tme_sim.training.sources`).
    """
    from tme_sim.training.sources import load_source, resolve_source

    need = model in ("signaling", "hybrid")
    src = resolve_source(
        data,
        inputs=inputs,
        outputs=outputs,
        network=network,
        annotation=annotation,
        unmatched=unmatched,
        input_columns=input_columns,
        need_network=need,
    )
    ds, net, line = load_source(src, with_network=need)
    if line:
        typer.echo(line)
    return ds, net


class _PlainProgress:
    """Progress as plain lines on stdout (for logs: output redirected, not a terminal).

    A line is printed when the label changes, when ``completed`` reaches ``total``, and otherwise
    at most every ``every_s`` seconds.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int | None = None) -> int:
        self.tasks[len(self.tasks)] = {"description": description, "total": total, "completed": 0}
        print(f"[{time.perf_counter() - self.t0:7.0f} s] {description}: started", flush=True)
        return len(self.tasks) - 1

    def update(self, task: int, **kw: Any) -> None:
        t = self.tasks[task]
        old_label = t["description"].split(" loss ")[0]
        t.update({k: v for k, v in kw.items() if v is not None})
        now = time.perf_counter()
        done = t["total"] is not None and t["completed"] >= t["total"]
        changed = t["description"].split(" loss ")[0] != old_label
        if changed or done or now - self.last >= self.every_s:
            self.last = now
            total = "?" if t["total"] is None else t["total"]
            print(f"[{now - self.t0:7.0f} s] {t['description']}: {t['completed']}/{total}", flush=True)


def _progress(quiet: bool):
    """A rich progress bar on a terminal, plain lines otherwise (nothing when ``quiet``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not quiet and not sys.stdout.isatty():
        return _PlainProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    )


def train_and_save(
    cfg_train: Any,
    ds: Any,
    net: Any,
    out: Path,
    *,
    quiet: bool = False,
    command: str = "",
    cv: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one model on all of ``ds``, save the artifact and its report (JSON, PNG); ``cv``:
    the CV summary of this exact recipe (:func:`~tme_sim.training.cv.recipe_cv_summary`), stored
    in the report as ``cv``."""
    from tme_sim.intracellular.neural.artifact import save_artifact
    from tme_sim.intracellular.neural.networks import HybridSignaling, SignalingNetwork
    from tme_sim.training.cv import per_output_r, pooled_r
    from tme_sim.training.train import build_network, fit, handle_unseen_inputs, predict, train_summary

    model = build_network(cfg_train, ds, net)
    with _progress(quiet) as prog:
        task = prog.add_task(f"training {cfg_train.model}", total=cfg_train.epochs)

        def on_epoch(ep: int, loss: float) -> None:
            prog.update(task, completed=ep + 1, description=f"training {cfg_train.model} loss {loss:.4f}")

        res = fit(model, ds.inputs, ds.outputs, cfg_train, on_epoch=on_epoch)
    handle_unseen_inputs(model, ds.inputs, cfg_train)
    pred = predict(model, ds.inputs)
    report = {
        "command": command,
        "training": train_summary(cfg_train, res),
        "train_pooled_r": pooled_r(pred, ds.outputs),
        "train_median_r": float(np.nanmedian(per_output_r(pred, ds.outputs))),
        "data_sha256": ds.sha256(),
        "n_conditions": ds.n,
    }
    if cv is not None:
        report["cv"] = cv
    if isinstance(model, HybridSignaling):  # what build_network/fit decided from the data
        report["hybrid_logit_eps"] = model.logit_eps
        report["mlp_gated_inputs"] = [
            ds.input_names[i] for i in (model.gated_inputs if model.gated_inputs is not None else [])
        ]
    rnn = getattr(model, "rnn", model)  # a hybrid model's network part
    if isinstance(rnn, SignalingNetwork):
        report["steady_state_iterations"] = rnn.stats.forward_iterations
        report["steady_state_residual"] = rnn.stats.forward_residual
    names = dict(net.names) if net is not None else {}
    save_artifact(
        out,
        model,
        input_names=ds.input_names,
        output_names=ds.output_names,
        data_sha256=ds.sha256(),
        network_sha256=net.sha256() if net is not None else "",
        names=names,
        training=report,
    )
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    _plot_training(res.history, pred, ds.outputs, out.with_suffix(".png"))
    return report


def _plot_training(history: list[dict[str, float]], pred: np.ndarray, true: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    ep = [h["epoch"] for h in history]
    ax[0].semilogy(ep, [h["train_loss"] for h in history], label="train MSE")
    ax[0].semilogy(ep, [h["monitored"] for h in history], label="monitored (early stopping)")
    ax[0].set_xlabel("epoch")
    ax[0].legend(frameon=False)
    ax[1].scatter(true.ravel(), pred.ravel(), s=2, alpha=0.4)
    ax[1].set_xlabel("measured")
    ax[1].set_ylabel("fitted")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@train_app.callback()
def train(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Training TOML (\\[data], \\[train], out).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data folder, dataset.toml, inputs TSV, .h5ad or .csv (docs/omics.md).")
    ] = None,
    inputs: Annotated[str | None, typer.Option(help="Inputs TSV (instead of, or overriding, --data).")] = None,
    outputs: Annotated[str | None, typer.Option(help="Outputs TSV (when the inputs are a TSV).")] = None,
    network: Annotated[str | None, typer.Option(help="Network TSV (signaling model).")] = None,
    annotation: Annotated[str | None, typer.Option(help="Annotation TSV (code -> gene symbol).")] = None,
    unmatched: Annotated[
        str | None, typer.Option(help="Inputs/outputs that are not network nodes: drop (default) or error.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="signaling (default), hybrid or mlp.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: 1).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Artifact (.pt) to write.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing artifact.")] = False,
    cv_report: Annotated[
        Path | None,
        typer.Option(
            help="cv_report.json of `tme train cv` run with this same recipe on this same data: its table is "
            "stored in the artifact (checked: data hash and settings must match) and shown by `tme info`. "
            "For drug-response (viability) data it replaces running the CV."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a surrogate on all conditions and save it as an artifact (with a report .json/.png)."""
    if ctx.invoked_subcommand is not None:
        return
    from tme_sim.training.viability import detect_kind

    if data is not None and config is None and detect_kind(_expand(data)) == "viability":
        _viability_train(_expand(data), out, force, threads, epochs, cv_report, quiet)
        return
    from tme_sim.training.train import DataConfig, TrainConfig, load_train_toml

    if config is not None:
        tf = load_train_toml(config)
        dcfg, tcfg, out_cfg = tf.data, tf.train, tf.out
    else:
        dcfg, tcfg, out_cfg = DataConfig(path=data or ""), TrainConfig(), None
    upd: dict[str, Any] = {}
    for key, val in (("model", model), ("epochs", epochs), ("seed", seed), ("threads", threads)):
        if val is not None:
            upd[key] = val
    if threads is None and tcfg.threads is None:  # one thread per job: 2 on a busy machine can be 70x slower
        upd["threads"] = 1
    try:
        tcfg = TrainConfig.model_validate({**tcfg.model_dump(), **upd})
    except Exception as exc:
        raise ConfigError(f"train options: {str(exc).splitlines()[-1].strip()}") from None
    dpath = data or dcfg.path or None
    from tme_sim.training.midas import is_midas_folder

    if dpath and is_midas_folder(_expand(dpath) or ""):
        _phospho_train(
            _expand(dpath) or "", out or (Path(_expand(out_cfg) or "") if out_cfg else None), force, tcfg.seed
        )
        return
    ds, net = _load_inputs(
        dpath,
        outputs or dcfg.outputs,
        network or dcfg.network,
        annotation or dcfg.annotation,
        tcfg.model,
        dcfg.input_columns,
        inputs=inputs,
        unmatched=unmatched,
    )
    target = out or (Path(_expand(out_cfg)) if out_cfg else None)
    if target is None:
        raise ConfigError("no output: give --out model.pt (or 'out' in the training config)")
    from tme_sim.errors import OutputError

    if target.exists() and not force:
        raise OutputError(f"{target}: exists (use --force to overwrite)")
    cv = None
    if cv_report is not None:
        from tme_sim.training.cv import load_report, recipe_cv_summary

        if not cv_report.is_file():
            raise ConfigError(f"{cv_report}: CV report not found")
        try:
            cv = recipe_cv_summary(load_report(cv_report), tcfg, ds.sha256())
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--cv-report {cv_report}: {exc}") from None
    t0 = time.perf_counter()
    rep = train_and_save(tcfg, ds, net, target, quiet=quiet, command=" ".join(["tme train", *sys.argv[2:]]), cv=cv)
    typer.echo(
        f"wrote {target} ({tcfg.model}, {rep['training']['epochs']} epochs, "
        f"{time.perf_counter() - t0:.0f} s; fit r = {rep['train_pooled_r']:.3f})"
    )


@train_app.command("cv")
def cv_command(
    data: Annotated[
        str | None,
        typer.Option(help="Data folder, dataset.toml, inputs TSV, .h5ad or .csv (default: the shared ligand screen)."),
    ] = None,
    inputs: Annotated[str | None, typer.Option(help="Inputs TSV (instead of, or overriding, --data).")] = None,
    outputs: Annotated[str | None, typer.Option(help="Outputs TSV (when the inputs are a TSV).")] = None,
    network: Annotated[str | None, typer.Option(help="Network TSV.")] = None,
    annotation: Annotated[str | None, typer.Option(help="Annotation TSV (code -> gene symbol).")] = None,
    unmatched: Annotated[
        str | None, typer.Option(help="Inputs/outputs that are not network nodes: drop (default) or error.")
    ] = None,
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated: signaling, mlp, hybrid. The baselines mean (per-output training mean), ridge "
            "(alpha by nested CV) and mlp (settings fixed in advance) always run beside them. On a viability "
            "folder: rows of its table (default: all but 'drug-target boosted')."
        ),
    ] = "signaling",
    folds: Annotated[int, typer.Option(help="Number of folds (whole conditions held out).")] = 5,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds of the fold splits.")] = "0,1,2",
    scramble_seeds: Annotated[
        int, typer.Option(help="Seeds on which trained models also get the scrambled control (-1 = all).")
    ] = 1,
    epochs: Annotated[
        int | None,
        typer.Option(help="Maximum epochs of the signaling network (also in hybrid; default: the training default)."),
    ] = None,
    mlp_epochs: Annotated[
        int, typer.Option(help="Epochs of the dense MLP baseline (and of a hybrid model's MLP part).")
    ] = 2000,
    unseen_inputs: Annotated[
        str | None,
        typer.Option(
            help="Signaling and hybrid models, inputs absent from a fold's training data: keep, impute or substitute "
            "(default: the model's, TrainConfig.unseen_strategy: substitute for hybrid, keep for signaling)."
        ),
    ] = None,
    unseen_variants: Annotated[
        str,
        typer.Option(
            help="Comma-separated other --unseen-inputs strategies to score too, on the same trained "
            "signaling models (extra rows signaling/<strategy>; no extra training)."
        ),
    ] = "",
    threads: Annotated[
        int | None,
        typer.Option(help="torch threads per fit (default: 1; --jobs N runs N workers x 1 thread)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Training TOML whose \\[train] table to use.")
    ] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for cv_report.json and cv_report.png.")] = Path("outputs/cv"),
    jobs: Annotated[int, typer.Option(help="Folds fitted in parallel worker processes.")] = 1,
    protocol: Annotated[
        str,
        typer.Option(
            help="kfold: --folds folds over all conditions (the target protocol); paired: the LEMBAS "
            "paper's design, folds of 3 predictable conditions (ligand seen elsewhere), for comparison."
        ),
    ] = "kfold",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Cross-validate on held-out conditions and print the table (pooled r, median TF r, scrambled r, s/fold).

    A MIDAS phosphoprotein folder (``MD-*.csv`` or ``midas.toml``, e.g. ``hepatocytes-cno``) runs the
    leave-one-combination-out and leave-one-ligand-out CV of :mod:`tme_sim.training.phospho_cv` instead.
    """
    from tme_sim.training.midas import is_midas_folder

    if data is not None and is_midas_folder(_expand(data) or ""):
        _phospho_cv(_expand(data) or "", out_dir, seeds, quiet)
        return
    from tme_sim.training.cv import cross_validate, format_table, write_report
    from tme_sim.training.train import TrainConfig, load_train_toml
    from tme_sim.training.viability import detect_kind

    if data is not None and detect_kind(_expand(data)) == "viability":
        chosen = None if models == "signaling" else tuple(m.strip() for m in models.split(",") if m.strip())
        _viability_cv(_expand(data), out_dir, threads, folds, quiet, epochs, jobs, chosen)
        return

    if protocol not in ("kfold", "paired"):
        raise ConfigError(f"--protocol: unknown protocol {protocol!r} (known: kfold, paired)")
    base = load_train_toml(config).train if config is not None else TrainConfig()
    names = [m.strip() for m in models.split(",") if m.strip()]
    if names and "mlp" not in names:  # a baseline beside every model
        names.insert(0, "mlp")
    configs: dict[str, TrainConfig] = {}
    for nm in names:
        if nm not in ("signaling", "mlp", "hybrid"):
            raise ConfigError(f"--models: unknown model {nm!r} (known: signaling, mlp, hybrid)")
        upd: dict[str, Any] = {"model": nm}
        if nm == "mlp" and base.model != "mlp":
            configs[nm] = mlp_baseline_config(base, mlp_epochs, threads)
            continue
        if nm == "mlp":
            upd.update({"lr": 3e-3, "epochs": mlp_epochs, "patience": mlp_epochs})
        else:
            if nm == "hybrid":
                upd["mlp_epochs"] = mlp_epochs
            if epochs is not None:
                upd["epochs"] = epochs
            if unseen_inputs is not None:
                if unseen_inputs not in ("keep", "impute", "substitute"):
                    raise ConfigError(
                        f"--unseen-inputs: unknown choice {unseen_inputs!r} (known: keep, impute, substitute)"
                    )
                upd["unseen_inputs"] = unseen_inputs
        if threads is not None:
            upd["threads"] = threads
        configs[nm] = base.model_copy(update=upd)
    variants = [v.strip() for v in unseen_variants.split(",") if v.strip()]
    for v in variants:
        if v not in ("keep", "impute", "substitute"):
            raise ConfigError(f"--unseen-variants: unknown strategy {v!r} (known: keep, impute, substitute)")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    need = any(nm in ("signaling", "hybrid") for nm in names)
    ds, net = _load_inputs(
        data, outputs, network, annotation, "signaling" if need else "mlp", inputs=inputs, unmatched=unmatched
    )
    with _progress(quiet) as prog:
        task = prog.add_task("cross-validation", total=None)

        def progress(label: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=total, description=label)

        rep = cross_validate(
            ds,
            net,
            configs,
            k=folds,
            seeds=seed_list,
            progress=progress,
            scramble_seeds=None if scramble_seeds < 0 else scramble_seeds,
            jobs=jobs,
            protocol=protocol,
            unseen_variants=variants,
        )
    rep.command = " ".join(["tme train cv", *sys.argv[3:]])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(rep, out_dir / "cv_report.json", out_dir / "cv_report.png")
    typer.echo(format_table(rep))
    typer.echo(f"wrote {out_dir / 'cv_report.json'} and {out_dir / 'cv_report.png'}")


def _phospho_train(data: str, target: Path | None, force: bool, seed: int) -> None:
    """``tme train`` on a MIDAS folder: the phospho ensemble (:mod:`tme_sim.training.phospho`) as ``.npz``."""
    import torch

    from tme_sim.errors import OutputError
    from tme_sim.intracellular.neural.phospho import save_phospho
    from tme_sim.training.midas import load_midas
    from tme_sim.training.phospho import FloorConfig, train_phospho

    if target is None:
        raise ConfigError("no output: give --out model.npz")
    if target.suffix != ".npz":
        raise ConfigError(f"{target}: a phospho surrogate is written as .npz")
    if target.exists() and not force:
        raise OutputError(f"{target}: exists (use --force to overwrite)")
    torch.set_num_threads(1)
    t0 = time.process_time()
    sur = train_phospho(load_midas(data), FloorConfig(seed=seed))
    sur.meta["command"] = " ".join(["tme train", *sys.argv[2:]])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp.npz")
    save_phospho(tmp, sur)
    tmp.replace(target)
    typer.echo(
        f"wrote {target} (phospho ensemble of {len(sur.members)}, {time.process_time() - t0:.0f} CPU s; "
        f"fit r = {sur.meta['train_r']:.3f})"
    )


def _phospho_cv(data: str, out_dir: Path, seeds: str, quiet: bool) -> None:
    """``tme train cv`` on a MIDAS folder: every phospho model on both protocols, one report."""
    import torch

    from tme_sim.training.midas import load_midas
    from tme_sim.training.phospho_cv import cross_validate_phospho, format_phospho_table, write_phospho_report

    try:
        seed = int(seeds.split(",")[0])
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    torch.set_num_threads(1)
    ds = load_midas(data)
    with _progress(quiet) as prog:
        task = prog.add_task("cross-validation", total=None)

        def progress(label: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=total, description=label)

        rep = cross_validate_phospho(ds, seed=seed, progress=progress)
    rep["command"] = " ".join(["tme train", *sys.argv[2:]])
    path = write_phospho_report(rep, out_dir)
    typer.echo(format_phospho_table(rep))
    typer.echo(f"wrote {path} and {out_dir / 'cv_report.png'}")


def _viability_train(
    data: str,
    out: Path | None,
    force: bool,
    threads: int | None,
    epochs: int | None,
    cv_report: Path | None,
    quiet: bool,
) -> None:
    """``tme train`` on a viability folder: CV (or ``--cv-report``), then the ensemble on all data."""
    from tme_sim.errors import OutputError
    from tme_sim.training.viability import load_viability
    from tme_sim.training.viability_cv import viability_config
    from tme_sim.training.viability_train import train_viability

    if out is None:
        raise ConfigError("no output: give --out model.pt")
    if out.exists() and not force:
        raise OutputError(f"{out}: exists (use --force to overwrite)")
    rep = None
    if cv_report is not None:
        if not cv_report.is_file():
            raise ConfigError(f"{cv_report}: CV report not found")
        try:
            rep = json.loads(cv_report.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{cv_report}: not a JSON CV report") from None
    vd = load_viability(data)
    cfg = viability_config(threads=threads or 1)
    if epochs is not None:
        cfg.epochs = epochs
    with _progress(quiet) as prog:
        task = prog.add_task("viability cross-validation", total=None)

        def progress(label: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=total, description=label)

        summary = train_viability(vd, out, cfg, cv_report=rep, progress=progress)
    typer.echo(f"wrote {out} and {out.with_suffix('.json')} (fit r {summary['fit_pooled_r']:.3f}; with its CV report)")


def _viability_cv(
    data: str,
    out_dir: Path,
    threads: int | None,
    folds: int,
    quiet: bool,
    epochs: int | None = None,
    jobs: int = 1,
    models: tuple[str, ...] | None = None,
) -> None:
    """``tme train cv`` on a drug × dose × cell-line viability folder (whole lines held out);
    ``models``: the table's rows (default :data:`~tme_sim.training.viability_cv.DEFAULT_MODELS`)."""
    from tme_sim.training.viability import load_viability
    from tme_sim.training.viability_cv import (
        DEFAULT_MODELS,
        MODELS,
        cross_validate_viability,
        format_viability_table,
        viability_config,
    )

    unknown = [m for m in models or () if m not in MODELS]
    if unknown:
        raise ConfigError(f"--models: unknown viability model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})")
    vd = load_viability(data)
    cfg = viability_config(threads=threads or 1)
    if epochs is not None:
        cfg.epochs = epochs
    with _progress(quiet) as prog:
        task = prog.add_task("viability cross-validation", total=None)

        def progress(label: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=total, description=label)

        rep = cross_validate_viability(vd, cfg, models=models or DEFAULT_MODELS, k=folds, progress=progress, jobs=jobs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cv_report.json").write_text(json.dumps(rep.to_json(), indent=1))
    typer.echo(format_viability_table(rep))
    typer.echo(f"wrote {out_dir / 'cv_report.json'}")


@train_app.command("cv-merge")
def cv_merge_command(
    reports: Annotated[list[Path], typer.Argument(help="cv_report.json files of runs with different seeds.")],
    out_dir: Annotated[Path, typer.Option(help="Folder for the merged cv_report.json/.png.")] = Path("outputs/cv"),
) -> None:
    """Merge CV reports run separately (e.g. one process per seed) and print the combined table."""
    from tme_sim.training.cv import format_table, load_report, merge_reports, write_report

    for p in reports:
        if not p.is_file():
            raise ConfigError(f"{p}: CV report not found")
    try:
        parts = [load_report(p) for p in reports]
        rep = merge_reports(parts)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"cv-merge: {exc}") from None
    rep.command = "; ".join([*(r.command for r in parts if r.command), " ".join(["tme train cv-merge", *sys.argv[3:]])])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(rep, out_dir / "cv_report.json", out_dir / "cv_report.png")
    typer.echo(format_table(rep))


@train_app.command("intervals")
def intervals_command(
    data: Annotated[
        str | None,
        typer.Option(help="Data folder, dataset.toml, inputs TSV, .h5ad or .csv (default: the shared ligand screen)."),
    ] = None,
    inputs: Annotated[str | None, typer.Option(help="Inputs TSV (instead of, or overriding, --data).")] = None,
    outputs: Annotated[str | None, typer.Option(help="Outputs TSV (when the inputs are a TSV).")] = None,
    network: Annotated[str | None, typer.Option(help="Network TSV (signaling/hybrid).")] = None,
    annotation: Annotated[str | None, typer.Option(help="Annotation TSV (code -> gene symbol).")] = None,
    unmatched: Annotated[
        str | None, typer.Option(help="Inputs/outputs that are not network nodes: drop (default) or error.")
    ] = None,
    model: Annotated[str, typer.Option(help="ridge, mlp, signaling or hybrid.")] = "mlp",
    members: Annotated[int, typer.Option(help="Bootstrap members per fold.")] = 8,
    folds: Annotated[int, typer.Option(help="Folds holding out whole conditions.")] = 5,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (fold split and resamples).")] = "0",
    level: Annotated[float, typer.Option(help="Nominal interval coverage.")] = 0.8,
    epochs: Annotated[int | None, typer.Option(help="Epochs per member (default: mlp 2000, else training's).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Training TOML whose \\[train] table to use.")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
    at: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE: also fit the ensemble on all conditions and print the interval here."),
    ] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for intervals_report.json.")] = Path("outputs/intervals"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Prediction intervals from bootstrap ensembles: coverage on held-out conditions (calibrated vs raw spread)."""
    from tme_sim.training.train import TrainConfig, load_train_toml
    from tme_sim.training.uncertainty import format_intervals, interval_cv

    if model not in ("ridge", "mlp", "signaling", "hybrid"):
        raise ConfigError(f"--model: unknown model {model!r} (known: ridge, mlp, signaling, hybrid)")
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    cfg = None
    if model != "ridge":
        base = load_train_toml(config).train if config is not None else TrainConfig()
        upd: dict[str, Any] = {"model": model, "threads": threads}
        if model == "mlp":
            upd.update({"lr": 3e-3, "epochs": epochs or 2000, "patience": epochs or 2000})
        elif epochs is not None:
            upd["epochs"] = epochs
        cfg = base.model_copy(update=upd)
    ds, net = _load_inputs(data, outputs, network, annotation, model, inputs=inputs, unmatched=unmatched)
    reports = []
    with _progress(quiet) as prog:
        task = prog.add_task("intervals", total=None)

        def progress(label: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=total, description=label)

        for sd in seed_list:
            reports.append(
                interval_cv(ds, net, model, cfg, members=members, folds=folds, seed=sd, level=level, progress=progress)
            )
    for rep in reports:
        typer.echo(format_intervals(rep))
    if len(reports) > 1:
        cov = [r["calibrated"]["coverage"] for r in reports]
        typer.echo(f"calibrated coverage over seeds {seed_list}: mean {np.mean(cov):.3f} (min {min(cov):.3f})")
    if at:
        from tme_sim.training.data import load_annotation
        from tme_sim.training.explain import parse_assignments
        from tme_sim.training.sources import resolve_source
        from tme_sim.training.uncertainty import ensemble_interval

        src = resolve_source(data, inputs=inputs, outputs=outputs, network=network, annotation=annotation)
        labels = load_annotation(src.annotation) if src.annotation else {}
        names = {n.upper(): i for i, n in enumerate(ds.input_names)}
        names.update({labels[n].upper(): i for i, n in enumerate(ds.input_names) if n in labels})
        u = np.zeros((1, len(ds.input_names)), dtype=np.float32)
        for name, v in parse_assignments(at, "--at").items():
            if name.upper() not in names:
                raise ConfigError(f"--at: {name!r} is not an input of the data (inputs: {', '.join(ds.input_names)})")
            u[0, names[name.upper()]] = v
        mean, lo, hi = ensemble_interval(ds, net, model, cfg, u, members=members, seed=seed_list[0], level=level)
        typer.echo(
            f"{100 * level:.0f} % intervals at {', '.join(at)} (ensemble of {members} fitted on all conditions):"
        )
        for j in np.argsort(-np.abs(mean[0] - ds.outputs.mean(0)))[:20]:
            label = labels.get(ds.output_names[j], ds.output_names[j])
            typer.echo(f"  {label:<12} {mean[0, j]:>7.3f}  [{lo[0, j]:.3f}, {hi[0, j]:.3f}]")
        for r in reports:
            r["at"] = {
                "inputs": at,
                "mean": dict(zip(ds.output_names, mean[0].tolist(), strict=True)),
                "low": dict(zip(ds.output_names, lo[0].tolist(), strict=True)),
                "high": dict(zip(ds.output_names, hi[0].tolist(), strict=True)),
            }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "intervals_report.json").write_text(json.dumps(reports, indent=1))
    typer.echo(f"wrote {out_dir / 'intervals_report.json'}")


@train_app.command("distill")
def distill_command(
    bnd: Annotated[Path, typer.Option(help="MaBoSS .bnd file.")] = packaged("networks/tnf_cellfate.bnd"),
    cfg: Annotated[Path, typer.Option(help="MaBoSS .cfg file.")] = packaged("networks/tnf_cellfate.cfg"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Artifact to write.")] = packaged(
        "models/tnf_fate_surrogate.pt"
    ),
    trajectories: Annotated[int, typer.Option(help="Boolean trajectories per condition.")] = 400,
    train_conditions: Annotated[
        int, typer.Option(help="Training conditions sampled across the input space.")
    ] = DISTILL_TRAIN,
    test_conditions: Annotated[
        int, typer.Option(help="Held-out conditions (unseen levels, unseen mutation sets, both).")
    ] = DISTILL_TEST,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    hidden: Annotated[int, typer.Option(help="SiLU units per hidden layer.")] = DISTILL_HIDDEN,
    layers: Annotated[int, typer.Option(help="Hidden layers.")] = DISTILL_LAYERS,
    epochs: Annotated[int, typer.Option(help="Full-batch training epochs.")] = DISTILL_EPOCHS,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = DISTILL_LR,
    cv: Annotated[
        str | None,
        typer.Option(
            help="Instead of distilling: cross-validate these architectures on the training conditions "
            "only (comma-separated HIDDENxLAYERS, e.g. 8x1,16x2) with --epochs/--lr; print a table, write nothing."
        ),
    ] = None,
    cv_folds: Annotated[int, typer.Option(help="--cv: folds over the training conditions.")] = 4,
    cv_seeds: Annotated[int, typer.Option(help="--cv: training seeds averaged per architecture.")] = 3,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing artifact.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Distil the Boolean TNF cell-fate model into a surrogate; print fate agreement on held-out conditions.

    The default network and schedule were chosen by cross-validation on the training conditions
    (see surrogates/distill.py).
    """
    from tme_sim.errors import OutputError
    from tme_sim.training.distill import cross_validate, distill_tnf

    if cv is not None:
        archs = []
        for spec in cv.split(","):
            h, _, layer_count = spec.strip().lower().partition("x")
            if not (h.isdigit() and layer_count.isdigit()):
                raise ConfigError(f"--cv: {spec.strip()!r} is not HIDDENxLAYERS (e.g. 8x1)")
            archs.append((int(h), int(layer_count)))
        rows = cross_validate(
            bnd,
            cfg,
            archs,
            folds=cv_folds,
            seeds=cv_seeds,
            trajectories=trajectories,
            seed=seed,
            n_train=train_conditions,
            epochs=epochs,
            lr=lr,
        )
        typer.echo(f"{cv_folds}-fold CV on the training conditions, mean over {cv_seeds} training seeds")
        typer.echo(
            f"{'network':<10} {'epochs':>6} {'lr':>7} {'argmax':>7} {'decided':>7} {'within.1':>8} {'MAE':>7} {'s':>6}"
        )
        for r in rows:
            arch = f"{r['hidden']}x{r['layers']}"
            typer.echo(
                f"{arch:<10} {r['epochs']:>6} {r['lr']:>7g} {r['argmax_agreement']:>7.3f} "
                f"{r['argmax_agreement_decided']:>7.3f} {r['within_0.1']:>8.3f} {r['mean_abs_error']:>7.4f} "
                f"{r['seconds']:>6.0f}"
            )
        return
    if out.exists() and not force:
        raise OutputError(f"{out}: exists (use --force to overwrite)")
    rep = distill_tnf(
        bnd,
        cfg,
        out,
        trajectories=trajectories,
        seed=seed,
        n_train=train_conditions,
        n_test=test_conditions,
        hidden=hidden,
        layers=layers,
        epochs=epochs,
        lr=lr,
        quiet=quiet,
    )
    typer.echo(format_distill_summary(rep["summary"]))
    typer.echo(f"wrote {out} (the model scored above) and {out.with_suffix('.json')}")


def format_distill_summary(summary: dict[str, Any]) -> str:
    """The held-out agreement table of a distillation report (one row per held-out group)."""
    sur, eng = summary["surrogate_vs_engine"], summary["engine_vs_engine"]
    lines = [
        f"held-out conditions (absent from training), {summary['recipe']['trajectories']} trajectories each",
        f"{'group':<8} {'n':>5} {'argmax':>7} {'decided':>7} {'MAE':>7} {'max err':>7} {'engine argmax':>13}",
    ]
    for g, a in sur.items():
        lines.append(
            f"{g:<8} {a['n']:>5} {a['argmax_agreement']:>7.3f} {a['argmax_agreement_decided']:>7.3f} "
            f"{a['mean_abs_error']:>7.4f} {a['max_abs_error']:>7.3f} {eng[g]['argmax_agreement']:>13.3f}"
        )
    lines.append(
        "levels: input levels absent from training; combos: knock-out/-in sets absent from training; "
        "engine argmax: an independent engine estimate vs the reference (the noise ceiling)"
    )
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - ``python -m tme_sim.cli.train``
    try:
        train_app(standalone_mode=False)
    except TMEError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
