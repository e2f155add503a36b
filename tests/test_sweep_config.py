"""Sweep files: schema, units, checks against the base scenario, one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tme_sim.errors import ConfigError
from tme_sim.sweep.config import load_sweep

ROOT = Path(__file__).resolve().parents[1]
SPHEROID = ROOT / "tme_sim" / "scenarios" / "spheroid.toml"


def write(tmp_path: Path, body: str, name: str = "sw.toml") -> Path:
    p = tmp_path / name
    p.write_text(f'scenario = "{SPHEROID.as_posix()}"\n' + body, encoding="utf-8")
    return p


GRID = """
design = "grid"
replicates = 2
seed = 7
duration = "6 min"

[fixed]
"output.interval" = "6 min"

[parameters."cell_types.tumor.cycle.ki67_positive_duration"]
low = "10 h"
high = "20 h"
num = 3

[parameters."cell_types.tumor.death.apoptosis_rate"]
values = ["1e-5 1/min", "0.0006 1/h"]
"""


def test_valid_grid_resolves_units(tmp_path):
    sw = load_sweep(write(tmp_path, GRID))
    assert sw.design == "grid" and sw.replicates == 2 and sw.seed == 7
    k67, apo = sw.parameters
    assert k67.unit == "h" and (k67.low, k67.high, k67.num) == (10.0, 20.0, 3)
    # every value of a parameter is converted to the unit of its first value
    assert apo.unit == "1/min"
    assert apo.values == pytest.approx((1e-5, 0.0006 / 60))
    assert k67.override(15.0) == "15 h"
    assert sw.base_overrides() == {"output.interval": "6 min", "duration": "6 min"}
    assert sw.scenario_types == {"tumor": "tumor"}
    assert sw.name == "sw"


def test_relative_scenario_path(tmp_path):
    d = tmp_path / "sweeps"
    d.mkdir()
    (tmp_path / "base.toml").write_text(SPHEROID.read_text(), encoding="utf-8")
    p = d / "x.toml"
    p.write_text('scenario = "../base.toml"\n' + GRID.replace('scenario = ""', ""), encoding="utf-8")
    assert load_sweep(p).scenario == (tmp_path / "base.toml").resolve()


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ("bogus = 1\n" + GRID, "bogus: unknown key"),
        (GRID.replace("num = 3", "num = 3\nstep = 2"), "step: unknown key"),
        (GRID.replace('"grid"', '"factorial"'), "design: unknown design 'factorial'"),
        (GRID.replace('"20 h"', '"20 blargs"'), "unknown unit 'blargs'"),
        (GRID.replace('"20 h"', '"20 um"'), "wrong unit in '20 um'"),
        (GRID.replace('"20 h"', '"20"'), "missing unit in '20'"),
        (GRID.replace("cycle.ki67_positive_duration", "cycle.ki67_duration"), "cycle.ki67_duration"),
        (GRID.replace("tumor.death", "tumour.death"), "not a key of scenario spheroid.toml"),
        (GRID.replace('"output.interval"', '"output.intervall"'), "fixed.output.intervall"),
        (GRID.replace("num = 3", ""), "needs 'num'"),
        (GRID.replace('low = "10 h"', 'low = "30 h"'), "'high' must be greater than 'low'"),
        ('metrics = ["final_cells", "happiness"]\n' + GRID, "metrics[1]: unknown metric 'happiness'"),
        (GRID.replace('"6 min"\n', '"soon"\n', 1), "duration"),
        (GRID.replace('design = "grid"', 'design = "sobol"\nsamples = 6'), "power of two"),
        (GRID.replace('design = "grid"', 'design = "lhs"'), "samples: design 'lhs' needs 'samples'"),
        (GRID.replace('"1e-5 1/min", "0.0006 1/h"', '"1e-5 1/min", "3 um"'), "values[1]: wrong unit"),
    ],
)
def test_bad_sweep_files_raise_one_line_config_error(tmp_path, body, expect):
    p = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_sweep(p)
    msg = str(err.value)
    assert expect in msg
    assert str(p) in msg and "\n" not in msg


def test_scenario_rejects_value_names_parameter(tmp_path):
    # a unit the scenario field cannot take is caught by the scenario's own validation, and the
    # message names the sweep file and the parameter
    body = GRID.replace('"cell_types.tumor.death.apoptosis_rate"', '"time.phenotype_dt"').replace(
        '"1e-5 1/min", "0.0006 1/h"', '"6 min", "6.05 min"'
    )
    p = write(tmp_path, body)
    with pytest.raises(ConfigError, match=r"sw\.toml: parameters\.time\.phenotype_dt: .*whole multiple"):
        load_sweep(p)


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="no such sweep file"):
        load_sweep(tmp_path / "nope.toml")
    p = tmp_path / "s.toml"
    p.write_text('scenario = "missing.toml"\n' + GRID, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.toml: scenario: no such scenario file .*missing\.toml"):
        load_sweep(p)
    p.write_text("design = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_sweep(p)


def test_list_design(tmp_path):
    body = """
design = "list"
[[points]]
"cell_types.tumor.cycle.entry_rate" = "0.003 1/min"
"cell_types.tumor.volume.radius" = "8 um"
[[points]]
"cell_types.tumor.cycle.entry_rate" = "0.3 1/h"
"cell_types.tumor.volume.radius" = "9 um"
"""
    sw = load_sweep(write(tmp_path, body))
    assert sw.points == ((0.003, 8.0), (0.005, 9.0))
    bad = body.replace('"9 um"', '"9 um"\n"seed" = 3')
    with pytest.raises(ConfigError, match=r"points\[1\]\.seed: every point must set the same keys"):
        load_sweep(write(tmp_path, bad))


def test_metric_options_must_name_scenario_types(tmp_path):
    p = write(tmp_path, GRID + '\n[metric_options]\ntcell_types = ["cd8"]\n')
    with pytest.raises(ConfigError, match=r"metric_options\.tcell_types: no cell type 'cd8'"):
        load_sweep(p)


def test_rule_parameters_are_unit_checked_against_the_scenario(tmp_path):
    # free-form rule parameters are not typed by the scenario schema: the sweep checks them itself
    immune = ROOT / "tme_sim" / "scenarios" / "tumor_immune.toml"
    p = tmp_path / "i.toml"
    body = f'scenario = "{immune.as_posix()}"\ndesign = "grid"\n[parameters."cell_types.cd8_t_cell.params.kill_rate"]\n'
    p.write_text(body + 'values = ["0.05 1/min", "6 1/h"]\n', encoding="utf-8")
    assert load_sweep(p).parameters[0].values == pytest.approx((0.05, 0.1))
    p.write_text(body + 'values = ["0.05 um"]\n', encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"params\.kill_rate: wrong unit 'um': the scenario value is '[0-9.e-]+ 1/min'"
    ):
        load_sweep(p)
    p.write_text(body.replace("kill_rate", "kill_rates") + 'values = ["0.05 1/min"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"params\.kill_rates: not a key of scenario tumor_immune\.toml"):
        load_sweep(p)
