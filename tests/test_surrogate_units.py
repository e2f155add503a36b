"""A surrogate input's ``K`` may carry a unit: it is converted to the unit of the substrate it is
compared with (issue #22: no bare numbers where units are promised)."""

from __future__ import annotations

import pytest

from tme_sim.errors import ConfigError
from tme_sim.intracellular.factory import build_intracellular
from tme_sim.scenarios import packaged

ARTIFACT = packaged("models/macrophage_ligand_screen.pt")


def _build(k, signal: str = "IFNG", units: dict[str, str] | None = None):
    raw = {
        "kind": "surrogate",
        "artifact": str(ARTIFACT),
        "dt": "30 min",
        "inputs": [{"signal": signal, "input": "IFNG", "K": k}],
        "outputs": [{"behavior": "polarization", "up": ["STAT6"], "down": ["STAT1"]}],
    }
    return build_intracellular(
        raw,
        ARTIFACT.parent,
        "cell_types.macrophage.intracellular",
        substrate_names=[signal],
        substrate_units={"IFNG": "ng/mL"} if units is None else units,
    )


@pytest.mark.skipif(not ARTIFACT.is_file(), reason="shipped macrophage artifact missing")
def test_k_with_a_unit_is_converted_to_the_substrate_unit():
    assert _build("5 ng/mL").config.inputs[0].K == pytest.approx(5.0)
    assert _build("500 pg/mL").config.inputs[0].K == pytest.approx(0.5)
    assert _build(5.0).config.inputs[0].K == pytest.approx(5.0)  # bare: already in the signal's unit
    assert _build("5 ng/mL", units={}).config.inputs[0].K == pytest.approx(5.0)  # registry unit of IFNG


@pytest.mark.skipif(not ARTIFACT.is_file(), reason="shipped macrophage artifact missing")
@pytest.mark.parametrize(
    ("k", "signal", "units", "message"),
    [
        ("5 mmHg", "IFNG", None, "K of input IFNG"),  # wrong dimension for ng/mL
        ("5 ng/mL", "my_ligand", {}, "needs a substrate signal"),  # no unit known (not a registry name)
        (-1.0, "IFNG", None, "> 0"),
        ("0 ng/mL", "IFNG", None, "> 0"),
    ],
)
def test_bad_k_is_a_one_line_config_error(k, signal, units, message):
    with pytest.raises(ConfigError) as err:
        _build(k, signal=signal, units=units)
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("cell_types.macrophage.intracellular.")
