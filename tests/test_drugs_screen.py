"""Screen engine, reports and CLI: efficacy vs toxicity, windows, HDF5, heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tme_sim.cli.drugs import drugs_app, parse_doses
from tme_sim.config.drugs import load_library
from tme_sim.errors import ConfigError, OutputError, TMEError
from tme_sim.screening.report import iso_efficacy, read_hdf5, summary_rows, write_all
from tme_sim.screening.screen import build_screen, load_screen, run_screen

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "tme_sim" / "scenarios" / "drugs.toml"
SCREEN = ROOT / "tme_sim" / "scenarios" / "screens" / "tnf_toxicity.toml"


def dependency_screen(**over):
    """Tumor needs the NF-kB pathway (cIAP and NFkB equally); the hepatocyte needs NFkB but not
    cIAP; the lymphocyte needs BCL2."""
    data = {
        "library": "unused.toml",
        "tumor_kill": 0.5,
        "healthy_kill": 0.2,
        "cell_types": [
            {
                "name": "tumor",
                "role": "tumor",
                "model": "dependency",
                "essential": {"cIAP": 1.0, "NFkB": 1.0},
            },
            {"name": "hepatocyte", "role": "healthy", "model": "dependency", "essential": {"NFkB": 1.0}},
            {"name": "lymphocyte", "role": "healthy", "model": "dependency", "essential": {"BCL2": 0.8}},
        ],
    }
    data.update(over)
    return build_screen(data, source="test.toml", library=load_library(LIB))


def test_equal_tumor_kill_different_toxicity_dependency_model():
    scr = dependency_screen()
    res = run_screen(scr, ["birinapant", "tpca1"], synergy_methods=["bliss"])
    (pair,) = res.pairs
    # the grid is in multiples of each IC50: single agents kill the tumor equally...
    np.testing.assert_allclose(pair.kill["tumor"][:, 0], pair.kill["tumor"][0, :], atol=1e-12)
    # ...but only the NF-kB inhibitor harms hepatocytes
    assert np.all(pair.kill["hepatocyte"][:, 0] == 0)
    assert pair.kill["hepatocyte"][-1, 0] == 0 and pair.kill["hepatocyte"][0, -1] > 0.9
    assert np.all(pair.kill["lymphocyte"] == 0)
    # same pathway hit twice = independent anti-nodes on the chain: Bliss-additive
    assert pair.synergy["tumor"]["bliss"].score == pytest.approx(0.0, abs=1e-12)


def test_screen_quantities_and_window_known_answer():
    scr = dependency_screen()
    d = np.array([0.0, 1.0, 1e6])  # none, IC50-ish, saturating
    res = run_screen(scr, ["birinapant", "venetoclax"], {"birinapant": d, "venetoclax": d})
    (p,) = res.pairs
    # tumor: only birinapant matters; lymphocyte: venetoclax (weight 0.8)
    np.testing.assert_allclose(p.efficacy[:, 0], [0, 0.5, 1.0], atol=1e-5)
    np.testing.assert_allclose(p.toxicity["lymphocyte"][0], [0, 0.8 * 5**-1.2 / (1 + 5**-1.2), 0.8], rtol=1e-5)
    np.testing.assert_allclose(p.selective, p.efficacy - p.toxicity_max)
    expected = (p.efficacy >= 0.5) & (p.toxicity["lymphocyte"] <= 0.2) & (p.toxicity["hepatocyte"] <= 0.2)
    np.testing.assert_array_equal(p.window, expected)
    assert p.window_fraction == pytest.approx(expected.mean())
    assert expected.sum() == 4  # birinapant 1 or 1e6 nM with venetoclax 0 or 1 nM
    iso = iso_efficacy(p, 0.9)
    assert iso["doses"] == (1e6, 0.0) and iso["toxicity"]["lymphocyte"] == 0.0
    assert res.n_points == 9


def test_three_drugs_share_points_across_pairs():
    scr = dependency_screen()
    g = np.array([0.0, 1.0, 10.0, 100.0])
    res = run_screen(
        scr, ["birinapant", "venetoclax", "tpca1"], dict.fromkeys(["birinapant", "venetoclax", "tpca1"], g)
    )
    assert [p.label for p in res.pairs] == ["birinapant+venetoclax", "birinapant+tpca1", "venetoclax+tpca1"]
    assert res.n_points == 3 * 9 + 3 * 3 + 1
    a, b, _ = res.pairs
    np.testing.assert_array_equal(a.death["tumor"][:, 0], b.death["tumor"][:, 0])  # shared margin
    rows = summary_rows(res)
    assert rows[0]["pair"] == "birinapant+venetoclax" and "zip_tumor" in rows[0]


def test_screen_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no cell type with role"):
        dependency_screen(cell_types=[{"name": "h", "role": "healthy", "model": "dependency", "essential": {"A": 1}}])
    with pytest.raises(ConfigError, match=r"test.toml: cell_types.0: essential.A: must be in"):
        dependency_screen(cell_types=[{"name": "t", "role": "tumor", "model": "dependency", "essential": {"A": 2}}])
    with pytest.raises(ConfigError, match="unknown synergy method"):
        dependency_screen(synergy=["chou"])
    with pytest.raises(ConfigError, match="at least two drugs"):
        run_screen(dependency_screen(), ["birinapant"])
    with pytest.raises(ConfigError, match="unknown drug 'nope'"):
        run_screen(dependency_screen(), ["birinapant", "nope"])
    with pytest.raises(ConfigError, match="doses must start at 0"):
        run_screen(dependency_screen(), ["birinapant", "tpca1"], {"tpca1": np.array([1.0, 2.0])})
    with pytest.raises(ConfigError, match="screen config not found"):
        load_screen(tmp_path / "x.toml")
    bad = tmp_path / "s.toml"
    bad.write_text(
        'library = "missing.toml"\n[[cell_types]]\nname = "t"\nrole = "tumor"\nmodel = "dependency"\n'
        "essential = { cIAP = 1.0 }\n"
    )
    with pytest.raises(ConfigError, match=r"missing\.toml: drug library file not found"):
        load_screen(bad)


def test_parse_doses():
    g = parse_doses("0,1,10 uM", ["a", "b"])
    np.testing.assert_allclose(g["a"], [0, 1000, 10000])
    g = parse_doses("a=log:1 nM:100 nM:4;b=0 nM, 5 nM", ["a", "b"])
    np.testing.assert_allclose(g["a"], [0, 1, 10, 100])
    np.testing.assert_allclose(g["b"], [0, 5])
    for bad in ("0,1,10", "1,2 nM", "0,2,1 nM", "log:1 nM:1 nM:3", "c=0,1 nM", "0,1 m"):
        with pytest.raises(ConfigError):
            parse_doses(bad, ["a", "b"])


def test_hdf5_and_heatmaps_round_trip(tmp_path):
    scr = dependency_screen()
    res = run_screen(scr, ["birinapant", "tpca1"])
    files = write_all(res, tmp_path / "out")
    assert set(files) == {"hdf5", "birinapant+tpca1", "iso_efficacy", "diagonal"}
    for f in files.values():
        assert f.is_file() and f.stat().st_size > 0
    data = read_hdf5(files["hdf5"])
    g = data["pairs"]["birinapant+tpca1"]
    np.testing.assert_array_equal(g["kill"]["hepatocyte"], res.pairs[0].kill["hepatocyte"])
    assert g["synergy"]["tumor"]["zip"]["score"] == pytest.approx(res.pairs[0].synergy["tumor"]["zip"].score)
    np.testing.assert_array_equal(g["window"], res.pairs[0].window)
    assert list(data["cell_types"]) == ["tumor", "hepatocyte", "lymphocyte"]
    with pytest.raises(OutputError, match="exists"):
        write_all(res, tmp_path / "out")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(OutputError):
        read_hdf5(tmp_path / "junk.h5")


@pytest.fixture(scope="module")
def boolean_result():
    pytest.importorskip("tme_sim.intracellular.boolean")
    scr = load_screen(SCREEN)
    for m in scr.cell_types:
        m.cells_per_dose = 96
    g = np.r_[0.0, np.geomspace(1 / 30, 30, 5)]
    return run_screen(
        scr,
        ["birinapant", "venetoclax", "tpca1"],
        {"birinapant": g * 1.0, "venetoclax": g * 5.0, "tpca1": g * 20.0},  # multiples of IC50
        synergy_methods=["bliss"],
    )


def test_boolean_equal_tumor_kill_different_toxicity(boolean_result):
    """birinapant+venetoclax and venetoclax+tpca1 kill the tumor alike (cIAP and NF-kB sit on
    the same survival chain) but only the NF-kB inhibitor kills hepatocytes, whose NF-kB does
    not depend on cIAP."""
    bv, _, vt = boolean_result.pairs
    tumor_bv = bv.kill["tumor"]  # rows birinapant, cols venetoclax
    tumor_vt = vt.kill["tumor"].T  # rows tpca1, cols venetoclax
    assert np.abs(tumor_bv - tumor_vt).max() < 0.2  # stochastic, 96 cells per dose
    assert abs(tumor_bv.mean() - tumor_vt.mean()) < 0.05
    assert tumor_bv[-1, 0] > 0.95 and tumor_vt[-1, 0] > 0.95
    hep_bv, hep_vt = bv.kill["hepatocyte"], vt.kill["hepatocyte"].T
    assert hep_bv.max() < 0.05
    assert hep_vt[-1, :].min() > 0.9
    # the therapeutic window exists only for the cIAP combination
    assert bv.window_fraction > 0.05 and vt.window_fraction == 0.0
    # venetoclax with an NF-kB pathway inhibitor is synergistically toxic to lymphocytes
    assert bv.synergy["lymphocyte"]["bliss"].score > 0.1
    assert np.all(bv.kill["fibroblast"] == 0)


def test_cli_screen_and_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "scr"
    args = ["screen", "-c", str(SCREEN), "--drugs", "birinapant,tpca1", "--doses", "0,1,30 nM"]
    args += ["--cells-per-dose", "16", "--out", str(out), "--synergy", "bliss,hsa", "--no-plots"]
    r = runner.invoke(drugs_app, args)
    assert r.exit_code == 0, r.output
    assert "birinapant+tpca1" in r.output and (out / "screen.h5").is_file()
    assert not (out / "heatmap_birinapant+tpca1.png").exists()
    r = runner.invoke(drugs_app, args)
    assert isinstance(r.exception, TMEError) and "exists" in str(r.exception)
    r = runner.invoke(drugs_app, ["screen", "-c", str(SCREEN), "--drugs", "birinapant,zzz"])
    assert isinstance(r.exception, ConfigError) and "unknown drug 'zzz'" in str(r.exception)
    r = runner.invoke(drugs_app, ["pk", "--library", str(LIB), "--drugs", "venetoclax", "--points", "3"])
    assert r.exit_code == 0 and "venetoclax" in r.output


def test_shipped_screen_configs_load():
    dep = load_screen(ROOT / "tme_sim" / "scenarios" / "screens" / "dependency_demo.toml")
    assert [m.role for m in dep.cell_types].count("tumor") == 1
    res = run_screen(dep, ["birinapant", "tpca1", "tasonermin"], synergy_methods=["hsa"])
    assert len(res.pairs) == 3
    pytest.importorskip("tme_sim.intracellular.boolean")
    tnf = load_screen(SCREEN)
    assert [m.name for m in tnf.cell_types] == ["tumor", "hepatocyte", "lymphocyte", "fibroblast"]


def test_best_prefers_lowest_dose_among_ties():
    from tme_sim.screening.screen import PairResult

    z = np.zeros((3, 3))
    sel = np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    d = np.array([0.0, 1.0, 2.0])
    p = PairResult(("a", "b"), (d, d), {}, {}, z, {}, z, sel, z.astype(bool))
    assert p.best() == (1, 0)
