"""Untrusted inputs (issue #25): private kernel cache, names that are not paths, confined input files,
bounded unit expressions, a read-only home."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tme_sim.config import load_scenario
from tme_sim.errors import ConfigError
from tme_sim.intracellular.boolean import engine
from tme_sim.paths import ALLOW_ENV, confined_path, safe_file_name
from tme_sim.runner import default_output_path, run_scenario
from tme_sim.units import to_unit

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_spheroid.toml"


@pytest.fixture
def confined(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run without the test suite's ``TME_ALLOW_OUTSIDE_PATHS=1`` (see conftest.py)."""
    monkeypatch.delenv(ALLOW_ENV, raising=False)


# ------------------------------------------------------------------ kernel cache
def test_world_writable_cache_dir_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    (shared / "boolean").mkdir(parents=True)
    os.chmod(shared, 0o777)
    os.chmod(shared / "boolean", 0o777)
    monkeypatch.setenv("TME_SIM_CACHE_DIR", str(shared))
    engine._SESSION.clear()
    source = "VALUE = 42\n"
    # the attacker plants a module under the exact name the kernel would get, and a marker it would write
    import hashlib

    import numba

    digest = hashlib.sha256((source + numba.__version__).encode()).hexdigest()[:24]
    marker = tmp_path / "pwned"
    (shared / "boolean" / f"bn_{digest}.py").write_text(f"open({str(marker)!r}, 'w').close()\nVALUE = 42\n")
    d = engine.cache_dir()
    assert not d.is_relative_to(shared)
    st = d.stat()
    assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    mod = engine.load_kernels(source)
    assert mod.VALUE == 42 and not marker.exists()
    assert Path(mod.__file__).parent == d


def test_cache_dir_owned_by_someone_else_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give a folder to another user")
    other = tmp_path / "other"
    (other / "boolean").mkdir(parents=True)
    os.chown(other, 65534, 65534)
    os.chown(other / "boolean", 65534, 65534)
    monkeypatch.setenv("TME_SIM_CACHE_DIR", str(other))
    engine._SESSION.clear()
    assert not engine.cache_dir().is_relative_to(other)


def test_unwritable_home_falls_back_to_a_private_unpredictable_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")  # nothing can be created below it, even as root
    monkeypatch.delenv("TME_SIM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    engine._SESSION.clear()
    d = engine.cache_dir()
    import tempfile

    predictable = Path(tempfile.gettempdir()) / f"tme_sim_boolean_{os.getuid()}"
    assert d != predictable and d.name.startswith("tme_sim_boolean_")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.stat().st_uid == os.getuid()
    engine._SESSION.clear()


def test_read_only_home_does_not_break_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "TME_SIM_CACHE_DIR")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "tme_sim", "validate", str(TINY)], capture_output=True, text=True,
                       env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: tiny_spheroid")


# ------------------------------------------------------------------ names and paths
@pytest.mark.parametrize("name", ["../../../../x", "/abs/x", "a/b", "..", ".hidden", "", "x" * 200, "a\\b", "a\x00b"])
def test_names_never_become_paths(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot be used as a file name"):
        safe_file_name(name, "name")


def test_scenario_name_traversal_is_refused_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = tmp_path / "evil.toml"
    sc.write_text(TINY.read_text().replace('name = "tiny_spheroid"', 'name = "../../../../escaped"'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"name: '\.\./\.\./\.\./\.\./escaped' cannot be used as a file name"):
        run_scenario(sc, duration="1 min")
    assert not list(tmp_path.rglob("escaped*")) and not (tmp_path / "outputs").exists()
    ok = load_scenario(TINY)
    assert default_output_path(ok) == Path("outputs") / "tiny_spheroid.h5"


def test_sweep_name_traversal_is_refused() -> None:
    from types import SimpleNamespace

    from tme_sim.sweep.execute import default_out_dir

    for name in ("../../x", "/tmp/x"):
        with pytest.raises(ConfigError, match="cannot be used as a file name"):
            default_out_dir(SimpleNamespace(name=name))


def test_input_files_are_confined_to_the_scenario_folder(tmp_path: Path, confined: None) -> None:
    base = tmp_path / "project"
    (base / "nets").mkdir(parents=True)
    (base / "nets" / "a.bnd").write_text("Node A { logic = A; }")
    assert confined_path("nets/a.bnd", base, "intracellular.bnd") == (base / "nets" / "a.bnd").resolve()
    for bad in ("/etc/passwd", "../outside.bnd", "nets/../../outside.bnd"):
        with pytest.raises(ConfigError, match="is outside the scenario's folder"):
            confined_path(bad, base, "intracellular.bnd")
    (base / "link.bnd").symlink_to("/etc/passwd")
    with pytest.raises(ConfigError, match="is outside the scenario's folder"):
        confined_path("link.bnd", base, "intracellular.bnd")


def test_etc_passwd_as_a_network_is_refused_without_reading_it(tmp_path: Path, confined: None) -> None:
    sc = tmp_path / "bool.toml"
    text = (
        TINY.read_text()
        + '\n[cell_types.tumor.intracellular]\nkind = "boolean"\nbnd = "/etc/passwd"\ncfg = "/etc/passwd"\n'
    )
    sc.write_text(text)
    with pytest.raises(ConfigError) as info:
        run_scenario(sc, tmp_path / "o.h5", duration="1 min")
    msg = str(info.value)
    assert "outside the scenario's folder" in msg and "root:" not in msg and "x:0:0" not in msg
    assert not (tmp_path / "o.h5").exists()


def test_allow_outside_paths_flag_lifts_the_confinement(tmp_path: Path, confined: None) -> None:
    from tme_sim.cli.main import main

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ConfigError):
        confined_path(outside / "x.bnd", tmp_path / "project", "k")
    main(["validate", str(TINY), "--allow-outside-paths"])
    assert confined_path(outside / "x.bnd", tmp_path / "project", "k") == (outside / "x.bnd").resolve()


def test_shipped_screens_may_use_the_shipped_folder(confined: None) -> None:
    shipped = ROOT / "tme_sim" / "scenarios"
    assert confined_path("../drugs.toml", shipped / "screens", "drugs.library") == (shipped / "drugs.toml").resolve()


# ------------------------------------------------------------------ unit expressions
@pytest.mark.parametrize(
    "text",
    ["9**9**9 um", "9**(9**9) um", "(9**9)**9**9 um", "2**100 um", "um^9", "1 " + "m*" * 60 + "m", "nan um", "inf um",
     "1e308*1e308 um", "-inf um"],
)  # fmt: skip
def test_unit_expressions_are_bounded_and_finite(text: str) -> None:
    with pytest.raises(ValueError, match=r"not allowed|too long|not a finite number"):
        to_unit(text, "um")


def test_ordinary_units_still_parse() -> None:
    assert to_unit("20 um", "um") == 20.0
    assert to_unit("600 um**2/min", "um**2/min") == 600.0
    assert to_unit("1 um^3", "um**3") == 1.0
    assert to_unit("2**-2 um", "um") == 0.25


# ------------------------------------------------------------------ screens and sweeps name files too
def test_screen_files_are_confined_to_the_screen_folder(tmp_path: Path, confined: None) -> None:
    """A screen's network, cfg, artifact and library, like a scenario's, stay in its folder tree."""
    from tme_sim.screening.screen import load_screen

    shipped = (ROOT / "tme_sim" / "scenarios" / "screens" / "tnf_toxicity.toml").read_text()
    project = tmp_path / "project"
    project.mkdir()
    (project / "drugs.toml").write_text((ROOT / "tme_sim" / "scenarios" / "drugs.toml").read_text())
    bnd = (ROOT / "tme_sim" / "scenarios" / "networks" / "tnf_cellfate.bnd").resolve()
    text = shipped.replace('library = "../drugs.toml"', 'library = "drugs.toml"')
    text = re.sub(r'network = "[^"]+"', f'network = "{bnd}"', text)
    (project / "screen.toml").write_text(text)
    with pytest.raises(ConfigError, match="outside the scenario's folder"):
        load_screen(project / "screen.toml")
    (project / "screen.toml").write_text(shipped)  # library = "../drugs.toml": outside too
    with pytest.raises(ConfigError, match="library"):
        load_screen(project / "screen.toml")


def test_sweep_scenario_is_confined_to_the_sweep_folder(tmp_path: Path, confined: None) -> None:
    from tme_sim.sweep.config import load_sweep

    shipped = (ROOT / "tme_sim" / "scenarios" / "sweeps" / "spheroid_grid.toml").read_text()
    (tmp_path / "sweep.toml").write_text(shipped.replace('"../spheroid.toml"', f'"{TINY}"'))
    with pytest.raises(ConfigError, match="outside the scenario's folder"):
        load_sweep(tmp_path / "sweep.toml")
