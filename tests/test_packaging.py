"""The built wheel is a complete install: shipped scenarios, networks, models and drug libraries
are inside it, and a fresh environment runs a copied scenario from an unrelated folder.

The fresh venv gets only the wheel (``--no-deps``); its dependencies come from this test
environment's site-packages through a ``.pth`` line, so nothing is downloaded (torch is big).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tme_sim import __version__

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", reason="the test extra installs setuptools (wheel built without isolation)")
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", dist], cwd=ROOT)
    (found,) = dist.glob("tme_sim-*.whl")
    return found


def test_wheel_holds_the_package_data_license_and_version(wheel):
    assert f"tme_sim-{__version__}-" in wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "tme_sim/scenarios/tumor_immune.toml",
        "tme_sim/scenarios/drugs.toml",
        "tme_sim/scenarios/networks/tnf_cellfate.bnd",
        "tme_sim/scenarios/networks/tnf_cellfate.cfg",
        "tme_sim/scenarios/models/macrophage_ligand_screen.pt",
        "tme_sim/scenarios/sweeps/spheroid_grid.toml",
        "tme_sim/scenarios/screens/tnf_toxicity.toml",
    ):
        assert shipped in names, shipped
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_fresh_install_copies_and_runs_a_scenario_from_an_unrelated_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # dependencies, after the wheel
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = run([py, "-c", "import tme_sim; print(tme_sim.__file__)"], cwd=work, env=env).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel's copy, not the source tree
    tme = venv / "bin" / "tme"
    assert run([tme, "--version"], cwd=work, env=env).stdout.strip() == f"tme-sim {__version__}"
    copied = run([tme, "scenarios", "copy", "tumor_immune", "."], cwd=work, env=env)
    assert (work / "tumor_immune.toml").is_file() and (work / "models" / "macrophage_ligand_screen.pt").is_file()
    assert "run it with" in copied.stdout
    res = run([tme, "run", "tumor_immune", "--duration", "12 min", "-q", "--out", "out.h5"], cwd=work, env=env)
    assert "wrote out.h5" in res.stdout
    info = run([tme, "info", "out.h5"], cwd=work, env=env).stdout
    assert "complete" in info and "macrophage" in info
    code = "from tme_sim.io import read_stored_scenario as r; print(r('out.h5')['name'])"
    stored = run([py, "-c", code], cwd=work, env=env).stdout
    assert stored.strip() == "tumor_immune"
