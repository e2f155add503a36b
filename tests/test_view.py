"""`tme view` and `tme run --view` in a real headless Chromium (Debian's chromium, driven by Playwright).

Each test starts the server on localhost, loads the page, moves the slider, takes screenshots and
checks what is drawn: the page's Bokeh models (cells shown = cells in the file at that snapshot) and
the screenshots' pixels (cells, the field's colour map, the curves). Set ``TME_VIEW_SCREENSHOTS=DIR``
to keep the screenshots for a look.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tme_sim import io

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra installs it)")

SMALL_FLAGSHIP = [
    "--set", 'domain.size=["500 um", "500 um"]',
    "--set", 'initial_cells.0.center=["250 um", "250 um"]',
    "--set", "initial_cells.0.radius=150 um",
    "--set", 'vessels.exclude_center=["250 um", "250 um"]',
    "--set", "vessels.exclude_radius=170 um",
    "--set", "output.interval=30 min",
]  # fmt: skip
SMALL_3D = [
    "--set", 'domain.size=["300 um", "300 um", "300 um"]',
    "--set", 'initial_cells.0.center=["150 um", "150 um", "150 um"]',
    "--set", "initial_cells.0.radius=70 um",
    "--set", "output.interval=15 min",
]  # fmt: skip


def tme(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tme_sim", *map(str, args)], capture_output=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = os.environ.get("TME_VIEW_SCREENSHOTS")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        return Path(d)
    return tmp_path_factory.mktemp("shots")


@pytest.fixture(scope="module")
def flagship_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("view") / "flagship.h5"
    res = tme("run", "tumor_immune", "--out", out, "--duration", "90 min", "-q", *SMALL_FLAGSHIP, timeout=600)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Served:
    """A `tme` server process (view or run --view) on a free port, stopped with SIGINT(s)."""

    def __init__(self, *args: object) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tme_sim", *map(str, args), "--port", str(self.port), "--no-show"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err_lines: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        wait_port(self.port, self.proc)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.err_lines.append(line)

    def wait_stderr(self, text: str, timeout: float = 120) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout and self.proc.poll() is None:
            if any(text in line for line in self.err_lines):
                return
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not printed: {''.join(self.err_lines)}")

    def stop(self, then_wait_for: str | None = None) -> tuple[int, str, str]:
        """SIGINT; with ``then_wait_for``, wait for that text on stderr and send a second SIGINT."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        if then_wait_for is not None:
            self.wait_stderr(then_wait_for)
            self.proc.send_signal(signal.SIGINT)
        out = self.proc.stdout.read()
        self.proc.wait(timeout=120)
        time.sleep(0.2)
        return self.proc.returncode, out, "".join(self.err_lines)


JS_MODEL = """([name, attr]) => { const m = Bokeh.documents[0].get_model_by_name(name); return m[attr]; }"""
JS_CELLS = "() => { const c = Bokeh.documents[0].get_model_by_name('cells'); return c ? c.data.x.length : 0; }"
JS_REGION = """(name) => {
  const d = Bokeh.documents[0];
  const m = d.get_model_by_name(name);
  for (const rv of Bokeh.index.roots) {
    const v = rv.owner.find_one(m);
    if (v) { const r = v.el.getBoundingClientRect(); const f = v.frame.bbox;
             return [r.left + f.left, r.top + f.top, f.width, f.height]; }
  }
  return null;
}"""
JS_CELL_XY = """(i) => {
  const d = Bokeh.documents[0];
  const m = d.get_model_by_name('domain'), c = d.get_model_by_name('cells');
  for (const rv of Bokeh.index.roots) {
    const v = rv.owner.find_one(m);
    if (v) { const r = v.el.getBoundingClientRect();
             return [r.left + v.frame.x_scale.compute(c.data.x[i]), r.top + v.frame.y_scale.compute(c.data.y[i]),
                     c.data.id[i]]; }
  }
  return null;
}"""


def open_page(browser, port: int):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(f"http://localhost:{port}/", timeout=60_000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    page.wait_for_function(f"() => ({JS_CELLS})() > 0", timeout=120_000)
    page.wait_for_timeout(800)  # let the canvas paint
    return page


def region_pixels(png: bytes, box: list[float]) -> np.ndarray:
    """The RGB pixels of a screenshot inside ``box`` = [left, top, width, height] (CSS px = device px)."""
    import io as _io

    from PIL import Image

    img = np.asarray(Image.open(_io.BytesIO(png)).convert("RGB")).astype(int)
    x0, y0, w, h = (round(v) for v in box)
    return img[y0 + 2 : y0 + h - 2, x0 + 2 : x0 + w - 2].reshape(-1, 3)


def near(pixels: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(pixels - np.array(rgb)).sum(axis=1) < tol).sum())


def viridis_pixels(pixels: np.ndarray) -> int:
    """Pixels whose colour lies on the viridis map (the field drawn under the cells)."""
    from bokeh.palettes import Viridis256

    pal = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in Viridis256])
    sample = pixels[:: max(1, len(pixels) // 20000)]
    d = np.abs(sample[:, None, :] - pal[None]).sum(axis=2).min(axis=1)
    return int((d < 12).sum() * max(1, len(pixels) // 20000))


def test_view_of_a_file_draws_cells_field_and_curves(flagship_file, browser, shots):
    server = Served("view", flagship_file)
    try:
        page = open_page(browser, server.port)
        n = len(io.snapshot_times(flagship_file))
        assert page.evaluate(JS_MODEL, ["time_slider", "value"]) == n - 1  # opens on the last snapshot
        assert page.evaluate(JS_CELLS) == len(io.read_cells(flagship_file, -1))
        status = page.evaluate(JS_MODEL, ["status", "text"])
        assert f"complete, {n} snapshots" in status
        last = page.screenshot(path=str(shots / "view_last.png"))

        dom = page.evaluate(JS_REGION, "domain")
        px = region_pixels(last, dom)
        tumor = np.array([0xC0, 0x39, 0x2B])
        reddish = int(((px[:, 0] > px[:, 1] + 50) & (px[:, 0] > px[:, 2] + 40)).sum())
        assert reddish > 2000, "tumor cells not drawn"
        assert viridis_pixels(px) > 0.05 * len(px), "field (viridis) not visible under the cells"
        pop = region_pixels(last, page.evaluate(JS_REGION, "population"))
        assert near(pop, tuple(tumor)) > 50, "tumor population curve not drawn"
        ev = region_pixels(last, page.evaluate(JS_REGION, "events"))
        assert near(ev, (0x1F, 0x77, 0xB4)) > 50, "event curves not drawn"

        # move the slider with the keyboard, as a user would
        handle = page.locator(".noUi-handle").first
        handle.focus()
        page.keyboard.press("Home")
        page.wait_for_function(f"() => ({JS_CELLS})() === {len(io.read_cells(flagship_file, 0))}", timeout=30_000)
        assert page.evaluate(JS_MODEL, ["time_slider", "value"]) == 0
        page.wait_for_timeout(500)
        first = page.screenshot(path=str(shots / "view_first.png"))
        assert first != last
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => ({JS_CELLS})() === {len(io.read_cells(flagship_file, 1))}", timeout=30_000)

        # click a cell: its state and its history appear
        x, y, _cell_id = page.evaluate(JS_CELL_XY, 0)
        page.mouse.click(x, y)
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('cell_info').text.includes('<b>cell ')", timeout=30_000
        )
        info = page.evaluate(JS_MODEL, ["cell_info", "text"])
        assert "volume" in info and "<b>cell " in info
        clicked = int(info.split("<b>cell ")[1].split("<")[0])
        hist = io.read_cells(flagship_file, snapshot=None)
        assert clicked in set(hist["id"])
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / "view_clicked.png"))

        # colour by a state column: one colour bar for the cells, the same fixed field scale
        page.locator("select").first.select_option("pdl1")
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('value_bar').visible === true", timeout=30_000
        )
        js_fills = """() => { const r = Bokeh.documents[0].get_model_by_name('cell_glyphs');
                      return [r.glyph.fill_color, r.nonselection_glyph.fill_color].map(c => c.field); }"""
        # the server's changes arrive as separate patches: wait for both glyphs, then check them
        with contextlib.suppress(sync_api.TimeoutError):
            page.wait_for_function(f"() => ({js_fills})().every(f => f === 'value')", timeout=10_000)
        fills = page.evaluate(js_fills)
        assert fills == ["value", "value"]  # selected and unselected cells alike
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / "view_pdl1.png"))
        page.close()
    finally:
        _rc, _, err = server.stop()
    assert "Traceback" not in err, err


def test_view_of_a_3d_run_shows_z_slices(browser, shots, tmp_path):
    out = tmp_path / "s3d.h5"
    res = tme("run", "spheroid_3d", "--out", out, "--duration", "30 min", "-q", *SMALL_3D, timeout=600)
    assert res.returncode == 0, res.stderr
    server = Served("view", out)
    try:
        page = open_page(browser, server.port)
        assert page.evaluate(JS_MODEL, ["z_slider", "visible"]) is True
        mid = page.evaluate(JS_CELLS)
        page.screenshot(path=str(shots / "view_3d_mid.png"))
        handles = page.locator(".noUi-handle")
        z_handle = handles.nth(1)
        z_handle.focus()
        page.keyboard.press("Home")  # the bottom plane: through the edge of the spheroid, fewer cells
        page.wait_for_function(f"() => ({JS_CELLS})() < {mid}", timeout=30_000)
        page.screenshot(path=str(shots / "view_3d_bottom.png"))
        page.close()
    finally:
        server.stop()


def test_live_run_shows_progress_in_the_page(browser, shots, tmp_path):
    out = tmp_path / "live.h5"
    server = Served(
        "run", "spheroid", "--out", out, "--duration", "30 d", "-q", "--view",
        "--set", "output.interval=20 min", "--set", 'domain.size=["400 um", "400 um"]',
        "--set", 'initial_cells.0.center=["200 um", "200 um"]', "--set", "initial_cells.0.radius=100 um",
    )  # fmt: skip
    try:
        page = open_page(browser, server.port)
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('status').text.includes('RUNNING')", timeout=60_000
        )
        end0 = page.evaluate(JS_MODEL, ["time_slider", "end"])
        page.wait_for_function(
            f"() => Bokeh.documents[0].get_model_by_name('time_slider').end > {end0}", timeout=120_000
        )  # new snapshots arrive while the page is open
        status = page.evaluate(JS_MODEL, ["status", "text"])
        assert "RUNNING t = " in status and "%" in status
        page.screenshot(path=str(shots / "view_live.png"))
    finally:
        rc, _, err = server.stop(then_wait_for="still serving")
    assert rc == 130, err
    assert "Traceback" not in err and "SystemError" not in err, err
    assert "still serving" in err
    info = tme("info", out)
    assert "INCOMPLETE" in info.stdout and info.returncode == 0
    assert Path(str(out) + ".ckpt").exists()
    try:
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('status').text.includes('stopped')", timeout=2000
        )
    except Exception:
        pass
