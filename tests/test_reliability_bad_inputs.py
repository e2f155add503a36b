"""Bad input: every malformed file of ``tests/bad_inputs/`` gives its one-line error and exit 2.

Table-driven: (bad file, command, expected message fragment). Each case runs the ``tme``
console-script entry point (``cli.main``) with that argv and asserts exit status 2, exactly one
line on stderr starting with ``error:`` and containing the fragment, no traceback anywhere, and
that no output was created. A few cases also run as real ``tme`` processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_inputs"
WRAPPER = BAD / "networks" / "wrapper.toml"
SCREEN = ROOT / "tme_sim" / "scenarios" / "screens" / "tnf_toxicity.toml"

# (file relative to tests/bad_inputs, expected fragment)
SCENARIOS = [
    ("scenarios/adi_in_3d.toml", "time.diffusion_scheme: 'adi' is for 2D domains"),
    ("scenarios/bad_shape.toml", "initial_cells.0.shape: Input should be 'disc'"),
    ("scenarios/boundary_bad_face.toml", "substrates.oxygen.boundary.left: unknown boundary face 'left'"),
    ("scenarios/chemotaxis_unknown_substrate.toml", "chemotaxis.substrate: 'IFNG' not in [substrates]"),
    ("scenarios/diffusion_scheme_unknown.toml", "time.diffusion_scheme: Input should be 'lod', 'adi' or 'implicit'"),
    ("scenarios/diffusion_table.toml", "substrates.oxygen.diffusion: expected a quantity string"),
    ("scenarios/domain_not_whole_voxels.toml", "is not a whole number of voxels of dx = 30 um"),
    ("scenarios/domain_one_size.toml", "domain.size: List should have at least 2 items"),
    ("scenarios/extends_cycle_a.toml", "extends: 'extends_cycle_a.toml' extends this file again (a cycle)"),
    ("scenarios/extends_cycle_b.toml", "extends: 'extends_cycle_b.toml' extends this file again (a cycle)"),
    ("scenarios/extends_missing.toml", "extends_missing.toml: extends:"),
    ("scenarios/extends_other_folder.toml", "must be a scenario in the same folder"),
    ("scenarios/dt_not_multiple.toml", "time.mechanics_dt must be a whole multiple of time.diffusion_dt"),
    ("scenarios/huge_grid.toml", "GiB (grid and cells) but only"),
    ("scenarios/lod_form_without_lod.toml", "time.lod_form: applies to diffusion_scheme 'lod' only"),
    ("scenarios/intracellular_bad_kind.toml", "intracellular.kind: expected one of rules, boolean, "),
    ("scenarios/missing_domain.toml", "domain: missing required key"),
    ("scenarios/missing_unit.toml", "domain.dx: missing unit"),
    ("scenarios/negative_duration.toml", "duration: '-5 min' is negative; must be >= 0"),
    ("scenarios/negative_dx.toml", "domain.dx: '-20 um' is negative; must be >= 0"),
    ("scenarios/new_substrate_no_params.toml", "substrates.drugx: not a known substrate; a new one needs unit"),
    ("scenarios/no_oxygen.toml", "substrates: 'oxygen' is required"),
    ("scenarios/not_utf8.toml", "not a UTF-8 text file"),
    ("scenarios/points_wrong_dim.toml", "initial_cells[0].points[0]: expected 2 coordinates"),
    ("scenarios/rate_wrong_unit.toml", "cell_types.tumor.cycle.entry_rate: wrong unit in '0.01 um'"),
    ("scenarios/secretion_unknown_substrate.toml", "cell_types.tumor.secretion.glucose: substrate not in"),
    ("scenarios/substrate_wrong_unit.toml", "substrates.oxygen.initial: wrong unit in '38 mM'"),
    ("scenarios/too_many_cells.toml", "needs about 1117.6 GiB (grid and cells)"),
    ("scenarios/toml_syntax.toml", "TOML syntax error: Expected ']' at the end of a table declaration (at line 4"),
    ("scenarios/unknown_initial_type.toml", "initial_cells[0].type: unknown cell type 'tumour'"),
    ("scenarios/unknown_key.toml", "domain.sise: unknown key"),
    ("scenarios/unknown_rules.toml", "cell_types.tumor.rules: unknown behaviour 'tumour' (known: cd8_t_cell"),
    ("scenarios/wrong_unit.toml", "domain.dx: wrong unit in '20 min'"),
]

NETWORKS = [
    ("networks/bnd_bad_logic.bnd", "bnd_bad_logic.bnd:25: syntax error: unexpected 'AND'"),
    ("networks/bnd_bad_rate.bnd", "bnd_bad_rate.bnd:25: unknown node 'fast' in rate_up of IKK"),
    ("networks/bnd_binary.bnd", "bnd_binary.bnd: cannot read"),
    ("networks/bnd_duplicate_node.bnd", "bnd_duplicate_node.bnd:26: node 'IKK' defined twice"),
    ("networks/bnd_empty.bnd", "bnd_empty.bnd:1: no Node block found"),
    ("networks/bnd_missing_brace.bnd", "bnd_missing_brace.bnd:26: syntax error"),
    ("networks/bnd_unknown_node.bnd", "bnd_unknown_node.bnd:25: unknown node 'RIP1ubx' in logic of IKK"),
    ("networks/cfg_bad_istate.cfg", "cfg_bad_istate.cfg:15: FADD.istate cannot use node 'FADD'"),
    ("networks/cfg_bad_value.cfg", "cfg_bad_value.cfg:3: $TransRate cannot use node 'one'"),
    ("networks/cfg_missing_semicolon.cfg", "cfg_missing_semicolon.cfg:6: syntax error: expected ';'"),
    ("networks/cfg_unknown_node.cfg", "cfg_unknown_node.cfg:15: unknown node 'FADDX'"),
]

SWEEPS = [
    ("sweeps/lhs_without_samples.toml", "samples: design 'lhs' needs 'samples'"),
    ("sweeps/missing_scenario.toml", "scenario: no such scenario file"),
    ("sweeps/parameter_wrong_unit.toml", "parameters.cell_types.tumor.cycle.entry_rate.high: wrong unit"),
    ("sweeps/toml_syntax.toml", "TOML syntax error"),
    ("sweeps/unknown_design.toml", "design: unknown design 'grd'"),
    ("sweeps/unknown_key.toml", "colour: unknown key"),
    ("sweeps/unknown_metric.toml", "metrics[0]: unknown metric 'final_cels'"),
    ("sweeps/unknown_parameter_key.toml", "parameters.cell_types.tumor.cycle.entry_rat: not a key of scenario"),
    ("sweeps/zero_replicates.toml", "replicates: Input should be greater than or equal to 1"),
]

TRAINING = [
    ("training/csv_duplicate_row.csv", "duplicate row 'c1'"),
    ("training/csv_infinite.csv", "row 'c2', column 'TF1': not a finite number"),
    ("training/csv_no_inputs.csv", "no input columns (name them 'in:<input>')"),
    ("training/csv_no_rows.csv", "table has no data rows or no columns"),
    ("training/csv_non_numeric.csv", "row 'c2', column 'TF1': not a finite number ('abc')"),
    ("training/csv_ragged.csv", "cannot parse table"),
    ("training/data.xlsx", "unknown data format '.xlsx'"),
    ("training/not_anndata.h5ad", "cannot read AnnData"),
]

DRUGS = [
    ("drugs/bad_action.toml", "drugs.birinapant.targets.0.action: Input should be 'inhibit' or 'activate'"),
    ("drugs/ic50_wrong_unit.toml", "drugs.birinapant.ic50: wrong unit in '1 mg'"),
    ("drugs/missing_ic50.toml", "drugs.birinapant: target 'cIAP' (inhibit) needs ic50"),
    ("drugs/negative_hill.toml", "drugs.birinapant.hill: Input should be greater than 0"),
    ("drugs/pk_missing_elimination.toml", "drugs.birinapant.pk: give exactly one of clearance or half_life"),
    ("drugs/schedule_bad_kind.toml", "drugs.birinapant.schedule.0.kind: Input should be 'bolus'"),
    ("drugs/toml_syntax.toml", "invalid TOML"),
    ("drugs/unknown_key.toml", "drugs.birinapant.hil"),
]


def _cases() -> list:
    cases = []
    for rel, frag in SCENARIOS:
        cases.append(
            pytest.param(["run", "{bad}", "--out", "{out}.h5", "-q"], rel, frag, "{out}.h5", id=f"run-{Path(rel).stem}")
        )
        cases.append(pytest.param(["validate", "{bad}"], rel, frag, None, id=f"validate-{Path(rel).stem}"))
    for rel, frag in NETWORKS:
        key = "bnd" if rel.endswith(".bnd") else "cfg"
        cases.append(
            pytest.param(
                [
                    "run",
                    str(WRAPPER),
                    "--set",
                    f"cell_types.tumor.intracellular.{key}={Path(rel).name}",
                    "--out",
                    "{out}.h5",
                    "-q",
                ],
                rel,
                frag,
                "{out}.h5",
                id=f"network-{Path(rel).stem}",
            )
        )
    for rel, frag in SWEEPS:
        cases.append(
            pytest.param(
                ["sweep", "{bad}", "--out", "{out}", "--no-progress"], rel, frag, "{out}", id=f"sweep-{Path(rel).stem}"
            )
        )
    for rel, frag in TRAINING:
        cases.append(
            pytest.param(
                ["train", "--data", "{bad}", "--model", "mlp", "--out", "{out}.pt", "-q"],
                rel,
                frag,
                "{out}.pt",
                id=f"train-{Path(rel).stem}",
            )
        )
    cases.append(
        pytest.param(
            ["train", "--config", "{bad}", "--out", "{out}.pt", "-q"],
            "training/train_unknown_key.toml",
            "train.epoch",
            "{out}.pt",
            id="train-config-unknown-key",
        )
    )
    for rel, frag in DRUGS:
        cases.append(
            pytest.param(
                [
                    "drugs",
                    "screen",
                    "--drugs",
                    "birinapant,tpca1",
                    "--config",
                    str(SCREEN),
                    "--library",
                    "{bad}",
                    "--out",
                    "{out}",
                ],
                rel,
                frag,
                "{out}",
                id=f"drugs-{Path(rel).stem}",
            )
        )
    cases.append(
        pytest.param(
            [
                "drugs",
                "screen",
                "--drugs",
                "birinapant,tpca1",
                "--config",
                str(SCREEN),
                "--library",
                "{bad}",
                "--out",
                "{out}",
            ],
            "drugs/unknown_target_node.toml",
            "cIAPX",
            "{out}",
            id="drugs-unknown_target_node",
        )
    )
    # mistakes on the command line rather than in a file
    ok = "scenarios/../../data/tiny_spheroid.toml"
    cases += [
        pytest.param(
            ["run", "{bad}", "--out", "{out}.h5", "--set", "duration"],
            ok,
            "--set 'duration': expected KEY=VALUE",
            "{out}.h5",
            id="cli-set-without-value",
        ),
        pytest.param(
            ["run", "{bad}", "--out", "{out}.h5", "--duration", "soon"],
            ok,
            "--duration 'soon'",
            "{out}.h5",
            id="cli-bad-duration",
        ),
        pytest.param(
            ["run", "{bad}", "--out", "{out}.h5", "--set", "domain.dx=3 min"],
            ok,
            "domain.dx: wrong unit in '3 min'",
            "{out}.h5",
            id="cli-set-wrong-unit",
        ),
        pytest.param(
            ["run", "{bad}", "--out", "{out}.h5"],
            "scenarios/no_such_file.toml",
            "no_such_file.toml: no such file",
            "{out}.h5",
            id="cli-missing-scenario",
        ),
        pytest.param(
            ["info", "{bad}"], "scenarios/toml_syntax.toml", "not a readable HDF5 file", None, id="info-not-hdf5"
        ),
        pytest.param(
            ["run", "{bad}", "--out", "{out}.h5", "--resume"],
            ok,
            "no output to resume",
            "{out}.h5",
            id="cli-resume-nothing",
        ),
    ]
    return cases


def _fill(argv: list[str], bad: Path, out: Path) -> list[str]:
    return [a.replace("{bad}", str(bad)).replace("{out}", str(out)) for a in argv]


def _invoke(argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from tme_sim import cli

    monkeypatch.setattr(sys, "argv", ["tme", *argv])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_corpus_size() -> None:
    files = [p for p in BAD.rglob("*") if p.is_file() and p.name != "wrapper.toml"]
    assert len(files) >= 30
    listed = {r for r, _ in SCENARIOS + NETWORKS + SWEEPS + TRAINING + DRUGS}
    listed |= {"training/train_unknown_key.toml", "drugs/unknown_target_node.toml"}
    files = [p for p in files if not str(p.relative_to(BAD)).startswith("corpus")]  # test_bad_input_corpus.py
    on_disk = {str(p.relative_to(BAD)) for p in files}
    assert on_disk == listed, on_disk ^ listed  # every corpus file is exercised


@pytest.mark.parametrize(("argv", "rel", "fragment", "created"), _cases())
def test_bad_input_gives_one_line_error_and_exit_2(
    argv: list[str],
    rel: str,
    fragment: str,
    created: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # anything written to a default place would land here
    out = tmp_path / "out"
    bad = BAD / rel
    code, stdout, stderr = _invoke(_fill(argv, bad, out), capsys, monkeypatch)
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert fragment in lines[0], lines[0]
    if created is not None:
        assert not Path(created.replace("{out}", str(out))).exists()
        assert not Path(created.replace("{out}", str(out)) + ".ckpt").exists()
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_existing_output_is_never_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    sc = ROOT / "tests" / "data" / "tiny_spheroid.toml"
    code, _, stderr = _invoke(["run", str(sc), "--out", str(out), "-q", "--duration", "1 min"], capsys, monkeypatch)
    assert code == 2 and stderr.startswith("error: ") and "--force" in stderr
    assert out.read_bytes() == b"precious"
    code, _, stderr = _invoke(
        ["run", str(sc), "--out", str(out), "-q", "--duration", "1 min", "--force"], capsys, monkeypatch
    )
    assert code == 0, stderr
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_debug_flag_shows_the_traceback(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from tme_sim import cli
    from tme_sim.errors import ConfigError

    monkeypatch.setattr(sys, "argv", ["tme", "--debug", "validate", str(BAD / "scenarios/unknown_key.toml")])
    with pytest.raises(ConfigError, match=r"domain\.sise: unknown key"):
        cli.main()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["validate", str(BAD / "scenarios/huge_grid.toml")], "GiB"),
        (
            ["validate", str(WRAPPER), "--set", "cell_types.tumor.intracellular.bnd=bnd_unknown_node.bnd"],
            "unknown node 'RIP1ubx'",
        ),
        (
            [
                "drugs",
                "screen",
                "--drugs",
                "birinapant,tpca1",
                "--config",
                str(SCREEN),
                "--library",
                str(BAD / "drugs/negative_hill.toml"),
            ],
            "hill",
        ),
    ],
)
def test_real_tme_process(argv: list[str], fragment: str, tmp_path: Path) -> None:
    """The installed console script, as a user runs it: status 2, one stderr line, nothing written."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run(
        [sys.executable, "-c", "from tme_sim.cli import main; main()", *argv],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ") and fragment in p.stderr, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert list(tmp_path.iterdir()) == []
