"""The documentation site builds (`mkdocs build --strict`) and every code block in it runs.

Conventions in ``docs/*.md`` (each page's blocks run in order in one fresh folder):

* ```` ```bash ```` — run with bash (``set -euo pipefail``); ``tme`` is this environment's command.
  A ``<!-- docs-test: COMMANDS -->`` comment right before the block replaces it in the test with a
  short variant (for long runs);
* ```` ```python ```` — executed; the blocks of a page share one namespace;
* ```` ```toml ```` / ```` ```csv ```` — parsed (TOML);
* any block preceded by ``<!-- file: NAME -->`` is written to NAME (a scenario, a data table, a
  plugin module) instead of being run;
* ```` ```text ```` — example output, not run.

Any other language is an error, so no block goes untested by accident.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"(?:<!--\s*(docs-test|file):\s*(.*?)\s*-->\s*\n)?```(\w*)\n(.*?)\n```", re.S)
RUN_LANGS = {"bash", "python"}
DATA_LANGS = {"toml", "csv"}
SHOW_LANGS = {"text"}


def blocks(page: Path) -> list[tuple[str | None, str, str, str]]:
    """(marker, marker value, language, code) of each fenced block of ``page``."""
    return [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in FENCE.finditer(page.read_text())]


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert page.name in nav, f"{page.name}: add one line for it under nav in mkdocs.yml"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_code_blocks_have_known_languages(page):
    for _, _, lang, code in blocks(page):
        assert lang in RUN_LANGS | DATA_LANGS | SHOW_LANGS, f"{page.name}: block of language {lang!r}:\n{code[:200]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b[2] in RUN_LANGS for b in blocks(p))],
                         ids=lambda p: p.stem)  # fmt: skip
def test_code_blocks_run(page, tmp_path, monkeypatch):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for marker, value, lang, code in blocks(page):
        if marker == "file":  # a file the page's commands use: written (and parsed if TOML), not run itself
            (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / value).write_text(code + "\n")
            if lang == "toml":
                tomllib.loads(code)
            continue
        if lang == "toml":
            tomllib.loads(code)
        elif lang == "bash":
            script = value if marker == "docs-test" else code
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=900)  # fmt: skip
            assert res.returncode == 0, (
                f"{page.name}:\n{script}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"
            )
        elif lang == "python":
            exec(compile(code, f"{page.name}:python", "exec"), namespace)


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.fail("mkdocs is not installed: run the README's test command (it installs '.[test]')")
    res = subprocess.run([str(mkdocs), "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()
