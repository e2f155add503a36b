"""Drug library: schema, unit conversion and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tme_sim.config.drugs import load_library, parse_library
from tme_sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "tme_sim" / "scenarios" / "drugs.toml"


def _drug(**over):
    d = {
        "targets": [{"node": "BCL2", "action": "inhibit"}],
        "ic50": "5 nM",
        "pk": {"volume": "10 L", "half_life": "2 h"},
        "molar_mass": "500 g/mol",
        "schedule": [{"kind": "bolus", "amount": "5 mg"}],
    }
    d.update(over)
    return {"drugs": {"x": d}}


def test_shipped_library_has_four_drugs_on_different_nodes():
    lib = load_library(LIB)
    assert len(lib.drugs) >= 4
    nodes = {t.node for d in lib.drugs.values() for t in d.targets}
    assert len(nodes) >= 4
    assert {"cIAP", "BCL2", "NFkB"} <= nodes
    actions = {t.action for d in lib.drugs.values() for t in d.targets}
    assert actions == {"inhibit", "activate"}


def test_units_are_converted():
    lib = parse_library(
        _drug(
            ic50="0.5 uM",
            diffusion="1e-6 cm**2/s",
            decay_rate="0.06 1/h",
            pk={"volume": "10 L", "clearance": "6 L/h"},
        )
    )
    d = lib.get("x")
    assert d.ic50 == pytest.approx(500.0)
    assert d.diffusion == pytest.approx(6000.0)  # um^2/min
    assert d.decay_rate == pytest.approx(0.001)
    assert d.pk.elimination_rate == pytest.approx(0.1 / 10.0)  # (6 L/h = 0.1 L/min) / 10 L
    assert d.to_nmol(d.schedule[0].amount) == pytest.approx(5e-3 / 500 * 1e9)  # 10 000 nmol
    assert d.potency(d.targets[0]) == (pytest.approx(500.0), 1.0)


def test_half_life_and_target_override():
    lib = parse_library(
        _drug(targets=[{"node": "BCL2", "ic50": "2 nM", "hill": 2.0}, {"node": "XIAP", "action": "inhibit"}])
    )
    d = lib.get("x")
    assert d.pk.elimination_rate == pytest.approx(math.log(2) / 120.0)
    assert d.potency(d.targets[0]) == (pytest.approx(2.0), 2.0)
    assert d.potency(d.targets[1]) == (pytest.approx(5.0), 1.0)


@pytest.mark.parametrize(
    ("over", "key", "text"),
    [
        ({"ic50": 5}, "drugs.x.ic50", "missing unit"),
        ({"ic50": "5 um"}, "drugs.x.ic50", "wrong unit"),
        ({"diffusion": "5 nM"}, "drugs.x.diffusion", "wrong unit"),
        ({"potency": "5 nM"}, "drugs.x.potency", "Extra inputs"),
        ({"schedule": [{"kind": "bolus", "amount": "5 L"}]}, "drugs.x.schedule.0.amount", "wrong unit"),
        ({"schedule": [{"kind": "oral", "amount": "5 mg"}]}, "drugs.x", "absorption_rate"),
        ({"molar_mass": None, "schedule": [{"kind": "bolus", "amount": "5 mg"}]}, "drugs.x", "molar_mass"),
        ({"schedule": [{"kind": "infusion", "rate": "1 mg/h"}]}, "drugs.x.schedule.0", "duration"),
        ({"schedule": [{"kind": "bolus", "amount": "1 mg", "count": 3}]}, "drugs.x.schedule.0", "every"),
        ({"targets": []}, "drugs.x.targets", "at least 1"),
        ({"ic50": None}, "drugs.x", "needs ic50"),
        ({"pk": {"volume": "10 L"}}, "drugs.x.pk", "clearance or half_life"),
        ({"entry": {"via": "faces", "faces": ["top"]}}, "drugs.x.entry", "unknown face"),
    ],
)
def test_bad_values_name_file_and_key(over, key, text):
    data = _drug(**over)
    data["drugs"]["x"] = {k: v for k, v in data["drugs"]["x"].items() if v is not None}
    with pytest.raises(ConfigError) as ei:
        parse_library(data, "lib.toml")
    msg = str(ei.value)
    assert msg.startswith(f"lib.toml: {key}")
    assert text in msg
    assert "\n" not in msg


def test_missing_file_bad_toml_unknown_drug(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_library(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[drugs.x\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_library(bad)
    with pytest.raises(ConfigError, match=r"unknown drug 'foo'; known: birinapant"):
        load_library(LIB).get("foo")
    with pytest.raises(ConfigError, match="no drugs"):
        parse_library({"drugs": {}})
    with pytest.raises(ConfigError, match="unknown top-level key"):
        parse_library({"drug": {}})
