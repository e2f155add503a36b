"""Scenario validation: units converted at load time, errors name the file and the key."""

from pathlib import Path

import pytest

from tme_sim.config import load_scenario, parse_set_options, read_scenario
from tme_sim.errors import ConfigError
from tme_sim.units import parse_duration, to_unit

SPHEROID = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "spheroid.toml"


def test_units_convert_at_load_time():
    sc = load_scenario(SPHEROID, {"domain.dx": '"0.02 mm"', "time.mechanics_dt": '"6 s"'})
    assert sc.domain.dx == pytest.approx(20.0)
    assert sc.time.mechanics_dt == pytest.approx(0.1)
    assert sc.duration == pytest.approx(3 * 24 * 60)
    assert sc.cell_types["tumor"].volume.radius == pytest.approx(8.4127, rel=1e-4)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"domain.dx": "20"}, "domain.dx: missing unit"),
        ({"domain.dx": '"20 kg"'}, "domain.dx: wrong unit"),
        (
            {"cell_types.tumor.mechanics.repulsion": '"10 um"'},
            "cell_types.tumor.mechanics.repulsion: wrong unit",
        ),
        ({"cell_types.tumor.colour": '"red"'}, "cell_types.tumor.colour: unknown key"),
        ({"time.mechanics_dt": '"0.015 min"'}, "whole multiple"),
        ({"time.diffusion_dt": '"0.25 min"'}, "time.diffusion_dt larger than time.mechanics_dt must be a whole"),
        ({"time.diffusion_dt": '"0.7 min"'}, "divide time.phenotype_dt"),  # 6 min is not 0.7 min × k
        ({"initial_cells.0.type": '"fibroblast"'}, "unknown cell type 'fibroblast'"),
        ({"cell_types.tumor.mechanics.chemotaxis": '{substrate = "CXCL9"}'}, "not in [substrates]"),
        (
            {"cell_types.tumor.mechanics.chemotaxis": "{sensitivities = {oxygen = 1.0, CXCL9 = -1.0}}"},
            "chemotaxis.sensitivities: 'CXCL9' not in [substrates]",
        ),
        (
            {"cell_types.tumor.mechanics.chemotaxis": '{substrate = "oxygen", sensitivities = {oxygen = 1.0}}'},
            "either substrate (with direction) or sensitivities",
        ),
        ({"cell_types.tumor.mechanics.chemotaxis": "{bias = 0.5}"}, "either substrate (with direction)"),
        (
            {"cell_types.tumor.mechanics.chemotaxis": '{sensitivities = {oxygen = 1.0}, direction = "down"}'},
            "a negative weight goes down",
        ),
        ({"cell_types.tumor.mechanics.chemotaxis": "{sensitivities = {oxygen = nan}}"}, "finite number"),
        ({"cell_types.tumor.mechanics.chemotaxis": "{sensitivities = {}}"}, "at least one substrate"),
        ({"duration": '"-1 h"'}, "duration: '-1 h' is negative; must be >= 0"),
    ],
)
def test_bad_values_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError) as exc:
        load_scenario(SPHEROID, overrides)
    msg = str(exc.value)
    assert fragment in msg and str(SPHEROID) in msg and "\n" not in msg


def test_diffusion_step_may_be_a_multiple_of_the_mechanics_step():
    sc = load_scenario(SPHEROID, {"time.diffusion_dt": '"0.5 min"', "time.mechanics_dt": '"0.1 min"'})
    assert sc.time.diffusion_dt == 0.5


def test_toml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[domain\nsize = 1\n')
    with pytest.raises(ConfigError, match=r"bad.toml: TOML syntax error.*line 2"):
        load_scenario(bad)


def test_set_options_parse_and_reject_malformed():
    assert parse_set_options(["a.b=1 um", "c = 2"]) == {"a.b": "1 um", "c": "2"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_options(["nonsense"])


def test_duration_parsing():
    assert parse_duration("5d") == 7200
    assert parse_duration("90 min") == 90
    assert parse_duration("1.5h") == 90
    with pytest.raises(ValueError):
        to_unit("3 um", "min")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_extends_merges_tables_and_replaces_other_values(tmp_path: Path):
    base = tmp_path / "base.toml"
    base.write_text(SPHEROID.read_text())
    child = _write(
        tmp_path / "child.toml",
        'extends = "base.toml"\nname = "child"\n[domain]\ndx = "25 um"\n'
        '[cell_types.tumor.mechanics]\nspeed = "2 um/min"\n'
        '[[initial_cells]]\ntype = "tumor"\nshape = "disc"\ncenter = ["100 um", "100 um"]\nradius = "30 um"\n',
    )
    ref = load_scenario(SPHEROID)
    sc = load_scenario(child)
    assert sc.name == "child" and sc.domain.dx == 25.0
    assert sc.domain.size == ref.domain.size  # the rest of [domain] comes from the base
    assert sc.cell_types["tumor"].mechanics.speed == 2.0
    assert sc.cell_types["tumor"].cycle == ref.cell_types["tumor"].cycle
    assert len(sc.initial_cells) == 1 and sc.initial_cells[0].radius == 30.0  # arrays replace
    doc, text = read_scenario(child)
    assert "extends" not in doc and "# ==== extends base.toml ====" in text


def test_errors_in_an_extending_scenario_name_its_file_and_key(tmp_path: Path):
    _write(tmp_path / "base.toml", SPHEROID.read_text())
    child = _write(tmp_path / "child.toml", 'extends = "base.toml"\n[domain]\nsise = 3\n')
    with pytest.raises(ConfigError, match=r"child.toml: .*domain.sise: unknown key"):
        load_scenario(child)
    bad = _write(tmp_path / "bad.toml", "extends = 3\n")
    with pytest.raises(ConfigError, match="extends: expected the file name of a base scenario"):
        load_scenario(bad)
