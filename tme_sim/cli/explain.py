"""``tme explain ARTIFACT --input IFNG=1``: what carries a signaling surrogate's response (see
:mod:`tme_sim.training.explain`). Mounted by the main CLI as ``tme explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from tme_sim.errors import ConfigError


def explain_command(
    artifact: Annotated[Path, typer.Argument(help="A signaling or hybrid surrogate artifact (.pt).")],
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE (code or gene symbol); others are 0.")
    ] = None,
    baseline: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE of the baseline the response is measured from (default: 0).")
    ] = None,
    output: Annotated[
        list[str] | None, typer.Option("--output", "-o", help="Outputs to explain (default: the most changed).")
    ] = None,
    top: Annotated[int, typer.Option(help="Nodes, edges and outputs shown per table.")] = 5,
    knockout: Annotated[
        list[str] | None, typer.Option("--knockout", "-k", help="Node to knock out (repeatable; all at once).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the tables as JSON.")] = None,
) -> None:
    """List the nodes and edges that carry the response of each output, and knock-out effects."""
    from tme_sim.intracellular.neural.artifact import load_artifact
    from tme_sim.training.explain import explain, knockout_effect, node_lookup, parse_assignments

    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    sur = load_artifact(artifact, device="cpu")
    u = np.zeros(len(sur.input_names))
    for name, v in parse_assignments(input or [], "--input").items():
        u[sur.input_index(name)] = v
    u0 = np.zeros_like(u)
    for name, v in parse_assignments(baseline or [], "--baseline").items():
        u0[sur.input_index(name)] = v
    ex = explain(sur.model, u, u0)
    lab = sur.label
    nn = ex.node_names
    outs = (
        [sur.output_index(o) for o in output]
        if output
        else [int(i) for i in np.argsort(-np.abs(ex.delta_y), kind="stable")[:top]]
    )
    given = ", ".join(f"{lab(sur.input_names[i])}={u[i]:g}" for i in np.flatnonzero(u)) or "none"
    base_txt = ", ".join(baseline) if baseline else "no input"
    lines = [f"{artifact}: inputs {given}; response measured from the baseline ({base_txt})"]
    if sur.kind == "hybrid":
        lines.append("hybrid model: explained through its prior-knowledge network part")
    report: dict[str, Any] = {"artifact": str(artifact), "inputs": dict(zip(sur.input_names, u.tolist(), strict=True))}
    report["outputs"] = {}
    for m in outs:
        path, weakest = ex.main_path(m)
        share = weakest / abs(ex.delta_y[m]) if ex.delta_y[m] != 0 else float("nan")
        lines.append(f"\n{lab(sur.output_names[m])}: {ex.y[m]:.3f} ({ex.delta_y[m]:+.3f} from the baseline)")
        if path:
            lines.append(
                f"  main path: {' -> '.join(lab(nn[i]) for i in path)} "
                f"(its weakest edge carries {weakest:.3g}, {100 * share:.0f} % of the change)"
            )
        else:
            lines.append("  main path: none (no changed input reaches this output)")
        tn = ex.top_nodes(m, top)
        te = ex.top_edges(m, top)
        lines.append("  nodes carrying it: " + ", ".join(f"{lab(nn[i])} {f:+.3g}" for i, f in tn))
        lines.append(
            "  edges carrying it: " + ", ".join(f"{lab(nn[ex.src[e]])}->{lab(nn[ex.dst[e]])} {f:+.3g}" for e, f in te)
        )
        report["outputs"][sur.output_names[m]] = {
            "y": float(ex.y[m]),
            "delta": float(ex.delta_y[m]),
            "main_path": [nn[i] for i in path],
            "nodes": [[nn[i], f] for i, f in tn],
            "edges": [[nn[ex.src[e]], nn[ex.dst[e]], f] for e, f in te],
        }
    if knockout:
        find = node_lookup(nn, dict(sur.meta.get("names", {})))
        ids = [find(k) for k in knockout]
        y, yk = knockout_effect(sur.model, u, ids)
        order = outs if output else [int(i) for i in np.argsort(-np.abs(yk - y), kind="stable")[:top]]
        ko_name = "+".join(lab(nn[i]) for i in ids)
        lines.append(f"\nknock-out of {ko_name} at these inputs (exact re-solve):")
        lines.append(f"  {'output':<12} {'intact':>8} {'knock-out':>10} {'effect':>8}")
        for m in order:
            lines.append(f"  {lab(sur.output_names[m]):<12} {y[m]:>8.3f} {yk[m]:>10.3f} {yk[m] - y[m]:>+8.3f}")
        report["knockout"] = {
            "nodes": [nn[i] for i in ids],
            "effect": {sur.output_names[m]: float(yk[m] - y[m]) for m in range(len(y))},
        }
    typer.echo("\n".join(lines))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=1))
        typer.echo(f"wrote {json_out}")
