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
from typing import Annotated, Any

import numpy as np
import typer

from tme_sim.errors import ConfigError, TMEError
from tme_sim.scenarios import packaged
from tme_sim.training.distill import DEFAULT_EPOCHS as DISTILL_EPOCHS
from tme_sim.training.distill import DEFAULT_HIDDEN as DISTILL_HIDDEN
from tme_sim.training.distill import DEFAULT_LAYERS as DISTILL_LAYERS
from tme_sim.training.distill import DEFAULT_LR as DISTILL_LR

train_app = typer.Typer(
    name="train",
    help="Train (default), cross-validate (cv) or distill neural intracellular surrogates.",
    invoke_without_command=True,
    add_completion=False,
)


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
):
    from tme_sim.training.data import LEMBAS_FILES, lembas_dir, load_dataset, load_network

    data = _expand(data) or str(lembas_dir())
    dpath = Path(data)
    if network is None and dpath.is_dir() and (dpath / LEMBAS_FILES["network"]).is_file():
        network = str(dpath / LEMBAS_FILES["network"])
    if annotation is None and dpath.is_dir() and (dpath / LEMBAS_FILES["annotation"]).is_file():
        annotation = str(dpath / LEMBAS_FILES["annotation"])
    ds = load_dataset(dpath, outputs=_expand(outputs), input_columns=input_columns)
    net = None
    if network is not None:
        net = load_network(_expand(network), _expand(annotation))
    elif model in ("signaling", "hybrid"):
        raise ConfigError(f"a {model} model needs --network (or a LEMBAS data folder that contains it)")
    return ds, net


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    data: Annotated[str | None, typer.Option(help="LEMBAS folder, inputs TSV, .h5ad or .csv.")] = None,
    outputs: Annotated[str | None, typer.Option(help="Outputs TSV (when --data is an inputs TSV).")] = None,
    network: Annotated[str | None, typer.Option(help="Network TSV (signaling model).")] = None,
    annotation: Annotated[str | None, typer.Option(help="Annotation TSV (code -> gene symbol).")] = None,
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
            "stored in the artifact (checked: data hash and settings must match) and shown by `tme info`."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a surrogate on all conditions and save it as an artifact (with a report .json/.png)."""
    if ctx.invoked_subcommand is not None:
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
    try:
        tcfg = TrainConfig.model_validate({**tcfg.model_dump(), **upd})
    except Exception as exc:
        raise ConfigError(f"train options: {str(exc).splitlines()[-1].strip()}") from None
    dpath = data or dcfg.path or None
    ds, net = _load_inputs(
        dpath,
        outputs or dcfg.outputs,
        network or dcfg.network,
        annotation or dcfg.annotation,
        tcfg.model,
        dcfg.input_columns,
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
    data: Annotated[str | None, typer.Option(help="LEMBAS folder (default: the shared ligand screen).")] = None,
    outputs: Annotated[str | None, typer.Option(help="Outputs TSV (when --data is an inputs TSV).")] = None,
    network: Annotated[str | None, typer.Option(help="Network TSV.")] = None,
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated: signaling, mlp, hybrid. The baselines mean (per-output training mean), ridge "
            "(alpha by nested CV) and mlp (settings fixed in advance) always run beside them."
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
    """Cross-validate on held-out conditions and print the table (pooled r, median TF r, scrambled r, s/fold)."""
    from tme_sim.training.cv import cross_validate, format_table, write_report
    from tme_sim.training.train import TrainConfig, load_train_toml

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
        if nm == "mlp":
            upd.update({"lr": 3e-3, "epochs": mlp_epochs, "patience": mlp_epochs})
            if base.model != "mlp":  # the baseline: fixed in advance, not the recipe's selection note
                upd["selection_note"] = None
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
    ds, net = _load_inputs(data, outputs, network, None, "mlp" if names == ["mlp"] else "signaling")
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


@train_app.command("distill")
def distill_command(
    bnd: Annotated[Path, typer.Option(help="MaBoSS .bnd file.")] = packaged("networks/tnf_cellfate.bnd"),
    cfg: Annotated[Path, typer.Option(help="MaBoSS .cfg file.")] = packaged("networks/tnf_cellfate.cfg"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Artifact to write.")] = packaged(
        "models/tnf_fate_surrogate.pt"
    ),
    trajectories: Annotated[int, typer.Option(help="Boolean trajectories per condition.")] = 400,
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
            bnd, cfg, archs, folds=cv_folds, seeds=cv_seeds, trajectories=trajectories, seed=seed, epochs=epochs, lr=lr
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
        hidden=hidden,
        layers=layers,
        epochs=epochs,
        lr=lr,
        quiet=quiet,
    )
    typer.echo(json.dumps(rep["summary"], indent=1))
    typer.echo(f"wrote {out}")


def main() -> None:  # pragma: no cover - ``python -m tme_sim.cli.train``
    try:
        train_app(standalone_mode=False)
    except TMEError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
