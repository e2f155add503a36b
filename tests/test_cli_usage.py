"""Command-line misuse corpus: every mistake is one `error:` line with exit 2, never a traceback;
--help and --version exit 0. Run in-process through `tme_sim.cli.main` (the console script's entry
point) for speed, and a sample through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tme_sim import __version__
from tme_sim.cli import main

ROOT = Path(__file__).resolve().parents[1]

# (arguments, exit status, a fragment of the one stderr line); "{tmp}" is a fresh folder
MISUSE = [
    (["run"], "Missing argument 'SCENARIO'"),
    (["run", "spheroid", "--seeed", "3"], "No such option: --seeed"),
    (["run", "spheroid", "--seed", "abc"], "'--seed': input should be a valid integer"),
    (["run", "spheroid", "--duration"], "requires an argument"),
    (["run", "spheroid", "--port", "99999"], "--port"),
    (["run", "nothere.toml", "--out", "{tmp}/x.h5"], "nothere.toml: no such file"),
    (["run", "spheroid", "--out", "{tmp}/x.h5", "--set", "domian.dx=20 um"], "did you mean 'domain'"),
    (["run", "spheroid", "--out", "{tmp}/x.h5", "--set", "nonsense"], "expected KEY=VALUE"),
    (["run", "spheroid", "--out", "{tmp}/x.h5", "--duration", "5 parsecs"], "--duration"),
    (["run", "spheroid", "--out", "{tmp}/x.h5", "--resume"], "no output to resume"),
    (["bogus"], "No such command 'bogus'"),
    (["rnu", "spheroid"], "No such command 'rnu'"),
    (["info"], "Missing argument 'PATH'"),
    (["info", "a.h5", "b.h5"], "unexpected extra argument"),
    (["info", "{tmp}/none.h5"], "no such file"),
    (["plot", "x.h5", "--snapshot", "one"], "'--snapshot': input should be a valid integer"),
    (["validate"], "Missing argument 'SCENARIO'"),
    (["validate", "spheroid", "--set", "time.diffusion_scheme=ladi"], "did you mean 'adi'"),
    (["view", "{tmp}/none.h5", "--no-show"], "no such file"),
    (["export", "x.h5"], "Missing option '--to'"),
    (["export", "x.h5", "--to", "xlsx"], "unknown format"),
    (["export", "{tmp}/none.h5", "--to", "csv"], "no such file"),
    (["compare"], "Missing argument 'runs'"),
    (["compare", "a.h5"], "Missing option '--out'"),
    (["drugs", "screen"], "Missing option '--drugs'"),
    (["drugs", "screen", "screens/tnf_toxicity.toml", "--drugs", "aspirin,tpca1", "--out", "{tmp}/s"], "aspirin"),
    (["drugs", "pk", "--drugs", "venetoclax", "--duration"], "requires an argument"),
    (["sweep"], "Missing argument 'SWEEP_FILE'"),
    (["sweep", "{tmp}/none.toml"], "none.toml: no such sweep file"),
    (["analyze", "{tmp}/nodir"], "nodir"),
    (["train", "--epochs", "many"], "'--epochs': input should be a valid integer"),
    (["scenarios", "copy"], "Missing argument 'NAME'"),
    (["scenarios", "copy", "tumor_imune", "{tmp}"], "did you mean 'tumor_immune'"),
    (["scenarios", "list", "--bogus"], "No such option: --bogus"),
    (["--bogus"], "No such option: --bogus"),
]

HELP = [[], ["--help"], ["run", "--help"], ["drugs"], ["drugs", "screen", "--help"], ["scenarios", "--help"]]


def call(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the entry point; a normal return is exit status 0, as for the console script."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def fill(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def test_corpus_is_large_enough():
    assert len(MISUSE) + len(HELP) + 2 >= 25


@pytest.mark.parametrize(("args", "fragment"), MISUSE, ids=[" ".join(a) or "(none)" for a, _ in MISUSE])
def test_misuse_is_one_line_exit_2(args, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = call(fill(args, tmp_path), capsys)
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err + out
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("args", HELP, ids=[" ".join(a) or "(none)" for a in HELP])
def test_help_exits_0(args, capsys):
    code, out, err = call(args, capsys)
    assert code == 0, err
    assert "Usage" in out and not err


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_exits_0_with_one_line(flag, capsys):
    code, out, err = call([flag], capsys)
    assert code == 0 and out.strip() == f"tme-sim {__version__}" and not err


def test_version_comes_from_one_place():
    """pyproject reads tme_sim.__version__ (dynamic); the installed metadata agrees."""
    from importlib.metadata import version

    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "tme_sim.__version__"' in text
    assert version("tme-sim") == __version__


def test_validate_lists_every_error_with_suggestions(capsys, tmp_path):
    code, _, err = call(
        ["validate", "spheroid", "--set", "domian.dx=20 um", "--set", "output.intervall=1 h",
         "--set", "time.diffusion_scheme=ladi"],
        capsys,
    )  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 4 and lines[-1] == "3 errors", err
    assert any("did you mean 'domain'" in x for x in lines)
    assert any("did you mean 'interval'" in x for x in lines)
    assert any("did you mean 'adi'" in x for x in lines)


@pytest.mark.parametrize(
    "args",
    [["run", "--seeed", "3", "spheroid"], ["run"], ["--version"], ["drugs", "screen", "x.toml", "--drugs", "a,b"]],
)
def test_console_script_the_same(args, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "tme_sim", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert "Traceback" not in res.stderr
    if args == ["--version"]:
        assert res.returncode == 0 and res.stdout.strip() == f"tme-sim {__version__}"
    else:
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
