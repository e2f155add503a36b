"""The page of ``tme view`` (a Bokeh document built per browser session).

Layout: a status line; controls (time slider, play, colour by, field, z plane in 3D, cell
opacity); the domain (field image on a fixed colour scale over the run, cells as discs of their
true radius); the population and cumulative event curves with a marker at the shown time; the
state of the clicked cell and its history over the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColorBar,
    ColumnDataSource,
    Div,
    HoverTool,
    LinearColorMapper,
    Select,
    Slider,
    Span,
    TapTool,
)
from bokeh.palettes import Category10_10, Plasma256, Viridis256
from bokeh.plotting import figure

from tme_sim.view.data import Source

DEAD_COLORS = {"apoptotic": "#f1948a", "necrotic": "#5d4037", "lysed": "#a1887f"}
NO_FIELD = "(none)"


def _field_frame(source: Source, k: int, species: str, z_index: int) -> np.ndarray | None:
    data = source.field(k, species) if species != NO_FIELD else None
    if data is None:
        return None
    z = min(max(z_index, 0), data.shape[0] - 1)
    return np.ascontiguousarray(data[z], dtype=np.float64)


class ViewApp:
    """One browser session's document: widgets, figures and their callbacks on a :class:`Source`."""

    def __init__(self, source: Source, doc: Any) -> None:
        self.source = source
        self.doc = doc
        self.version = -1
        self.selected_id: int | None = None
        meta = source.meta
        self.meta = meta
        lx, ly = meta["size"][0], meta["size"][1]
        self.nz = max(1, round(meta["size"][2] / meta["dx"])) if meta["dim"] == 3 else 1
        default_field = "oxygen" if "oxygen" in meta["substrates"] else (meta["substrates"] or [NO_FIELD])[0]

        self.status = Div(text="", name="status", styles={"font-size": "14px"})
        self.slider = Slider(start=0, end=1, value=0, step=1, title="snapshot", name="time_slider", width=420)
        self.play = Button(label="▶ play", name="play", width=80)
        self.color_by = Select(title="colour cells by", value="type", options=["type"], name="color_by", width=200)
        self.field_select = Select(
            title="field", value=default_field, options=[NO_FIELD, *meta["substrates"]], name="field", width=160
        )
        self.z_slider = Slider(
            start=0, end=max(self.nz - 1, 1), value=self.nz // 2, step=1, title="z plane", name="z_slider",
            width=200, visible=meta["dim"] == 3,
        )  # fmt: skip
        self.opacity = Slider(start=0.1, end=1.0, value=0.6, step=0.05, title="cell opacity", width=160)

        # --- the domain: field image under translucent cells
        self.field_mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.value_mapper = LinearColorMapper(palette=Plasma256, low=0, high=1, nan_color="#bbbbbb")
        self.img = ColumnDataSource({"image": [np.zeros((1, 1))], "x": [0], "y": [0], "dw": [lx], "dh": [ly]})
        self.cells = ColumnDataSource(self._empty_cells(), name="cells")
        aspect = ly / lx
        self.domain = figure(
            width=640, height=int(560 * aspect) + 40, match_aspect=True, x_range=(0, lx), y_range=(0, ly),
            x_axis_label="x (µm)", y_axis_label="y (µm)", tools="pan,wheel_zoom,box_zoom,reset,save", name="domain",
            output_backend="canvas",
        )  # fmt: skip
        self.domain.grid.visible = False
        self.image_renderer = self.domain.image(
            image="image",
            x="x",
            y="y",
            dw="dw",
            dh="dh",
            source=self.img,
            color_mapper=self.field_mapper,
            level="image",
        )
        self.cell_renderer = self.domain.circle(
            x="x", y="y", radius="radius", source=self.cells, fill_color="color", line_color="line",
            fill_alpha=0.6, line_alpha=0.9, line_width=0.5, legend_field="label", name="cell_glyphs",
            selection_line_color="black", selection_line_width=2.5, nonselection_fill_alpha=0.45,
        )  # fmt: skip
        self.domain.add_tools(TapTool(renderers=[self.cell_renderer]))
        self.domain.add_tools(
            HoverTool(renderers=[self.cell_renderer], tooltips=[("id", "@id"), ("type", "@type"), ("", "@value")])
        )
        self.domain.legend.location = "top_left"
        self.domain.legend.label_text_font_size = "8pt"
        self.domain.legend.background_fill_alpha = 0.7
        self.field_bar = ColorBar(color_mapper=self.field_mapper, title="", width=12, name="field_bar")
        self.value_bar = ColorBar(color_mapper=self.value_mapper, title="", width=12, visible=False, name="value_bar")
        self.domain.add_layout(self.field_bar, "right")
        self.domain.add_layout(self.value_bar, "right")

        # --- curves
        self.pop_source = ColumnDataSource({"xs": [], "ys": [], "color": [], "label": []})
        self.population = figure(
            width=460, height=250, title="live cells per type", x_axis_label="time (h)", y_axis_label="cells",
            tools="pan,wheel_zoom,reset,save", name="population",
        )  # fmt: skip
        self.population.multi_line(
            xs="xs", ys="ys", line_color="color", legend_field="label", line_width=2, source=self.pop_source
        )
        self.population.legend.location = "top_left"
        self.population.legend.label_text_font_size = "7pt"
        self.ev_source = ColumnDataSource({"xs": [], "ys": [], "color": [], "label": []})
        self.events = figure(
            width=460, height=250, title="events so far", x_axis_label="time (h)", y_axis_label="count",
            tools="pan,wheel_zoom,reset,save", name="events",
        )  # fmt: skip
        self.events.multi_line(
            xs="xs", ys="ys", line_color="color", legend_field="label", line_width=2, source=self.ev_source
        )
        self.events.legend.location = "top_left"
        self.events.legend.label_text_font_size = "7pt"
        self.now_spans = [Span(location=0, dimension="height", line_dash="dashed") for _ in range(2)]
        self.population.add_layout(self.now_spans[0])
        self.events.add_layout(self.now_spans[1])

        # --- the clicked cell
        self.cell_info = Div(text="<i>click a cell to see its state and history</i>", name="cell_info", width=460)
        self.history_var = Select(title="history of", value="volume", options=["volume"], name="history_var")
        self.hist_source = ColumnDataSource({"t": [], "v": []})
        self.history = figure(
            width=460, height=220, title="clicked cell", x_axis_label="time (h)", tools="pan,wheel_zoom,reset,save",
            name="history",
        )  # fmt: skip
        self.history.line("t", "v", source=self.hist_source, line_width=2)
        self.history.scatter("t", "v", source=self.hist_source, size=5)
        self.history_now = Span(location=0, dimension="height", line_dash="dashed")
        self.history.add_layout(self.history_now)

        controls = row(self.slider, self.play, self.color_by, self.field_select, self.z_slider, self.opacity)
        side = column(self.population, self.events, self.cell_info, self.history_var, self.history)
        doc.add_root(column(self.status, controls, row(self.domain, side), name="root"))
        doc.title = f"tme view — {meta.get('scenario', '')}"

        self.slider.on_change("value_throttled", lambda a, o, n: self.redraw())
        self.slider.on_change("value", lambda a, o, n: self.redraw())
        self.color_by.on_change("value", lambda a, o, n: self.redraw())
        self.field_select.on_change("value", lambda a, o, n: self.redraw())
        self.z_slider.on_change("value", lambda a, o, n: self.redraw())
        self.opacity.on_change("value", lambda a, o, n: self._set_opacity())
        self.history_var.on_change("value", lambda a, o, n: self.update_history())
        self.cells.selected.on_change("indices", self._on_select)
        self.play.on_click(self._toggle_play)
        self._play_cb = None
        self.refresh(force=True)
        doc.add_periodic_callback(self.refresh, 700)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _empty_cells() -> dict[str, list]:
        return {k: [] for k in ("x", "y", "radius", "color", "line", "label", "id", "type", "value")}

    def _cell_glyphs(self) -> list:
        """The cell glyph and its selected/unselected copies (a selection draws those instead)."""
        r = self.cell_renderer
        return [g for g in (r.glyph, r.selection_glyph, r.nonselection_glyph) if g is not None and g != "auto"]

    def _set_glyphs(self, **props: Any) -> None:
        for g in self._cell_glyphs():
            g.update(**props)

    def _set_opacity(self) -> None:
        self.cell_renderer.glyph.fill_alpha = self.opacity.value
        if self.cell_renderer.nonselection_glyph not in (None, "auto"):
            self.cell_renderer.nonselection_glyph.fill_alpha = 0.75 * self.opacity.value

    def _toggle_play(self) -> None:
        if self._play_cb is None:
            self.play.label = "❚❚ pause"
            self._play_cb = self.doc.add_periodic_callback(self._advance, 500)
        else:
            self.doc.remove_periodic_callback(self._play_cb)
            self._play_cb = None
            self.play.label = "▶ play"

    def _advance(self) -> None:
        n = self.source.n_snapshots()
        self.slider.value = (int(self.slider.value) + 1) % max(n, 1)

    # ------------------------------------------------------------------ updates
    def refresh(self, force: bool = False) -> None:
        """Follow the source: new snapshots extend the slider (and are shown when it was at the end)."""
        src = self.source
        self.status.text = self._status_text()
        if not force and src.version == self.version:
            return
        self.version = src.version
        n = src.n_snapshots()
        if n == 0:
            return
        at_end = int(self.slider.value) >= int(self.slider.end) or force
        self.slider.end = max(n - 1, 1)
        self.slider.disabled = n < 2
        options = ["type", *src.numeric_columns()]
        if options != list(self.color_by.options):
            self.color_by.options = options
            self.history_var.options = [c for c in options if c != "type"]
        self.update_curves()
        if at_end and int(self.slider.value) != n - 1:
            self.slider.value = n - 1  # triggers redraw
        else:
            self.redraw()

    def _status_text(self) -> str:
        m, p = self.meta, self.source.progress
        n = self.source.n_snapshots()
        head = f"<b>{m.get('scenario', '')}</b> · {m.get('dim')}D · {m.get('source', '')}"
        if p.get("running"):
            start, total, now = p.get("start", 0.0), p.get("duration", 0.0), p.get("time", 0.0)
            frac = (now - start) / max(total - start, 1e-9)
            state = f"RUNNING t = {now / 60:.1f} h of {total / 60:.1f} h ({100 * min(frac, 1):.0f}%), {n} snapshots"
        else:
            state = f"{p.get('state', '')}, {n} snapshots"
        return f"{head} · <span id='run-state'>{state}</span>"

    def _k(self) -> int:
        n = self.source.n_snapshots()
        return min(max(int(self.slider.value), 0), n - 1)

    def redraw(self) -> None:
        src = self.source
        if src.n_snapshots() == 0:
            return
        k = self._k()
        t = float(src.times()[k])
        self.slider.title = f"snapshot {k} — t = {t / 60:.2f} h"
        for span in self.now_spans:
            span.location = t / 60
        self.history_now.location = t / 60
        self._draw_field(k)
        self._draw_cells(k)
        if self.selected_id is not None:
            self._show_cell_state(k)

    def _draw_field(self, k: int) -> None:
        species = self.field_select.value
        frame = _field_frame(self.source, k, species, int(self.z_slider.value))
        lx, ly = self.meta["size"][0], self.meta["size"][1]
        if frame is None:
            self.image_renderer.visible = False
            self.field_bar.visible = False
            return
        lo, hi = self.source.field_range(species)
        self.field_mapper.update(low=lo, high=hi)
        self.field_bar.title = f"{species} ({self.meta['units'].get(species, '')})"
        self.img.data = {"image": [frame], "x": [0], "y": [0], "dw": [lx], "dh": [ly]}
        self.image_renderer.visible = True
        self.field_bar.visible = True

    def _draw_cells(self, k: int) -> None:
        df = self.source.cells(k)
        if self.meta["dim"] == 3 and len(df):
            zc = (int(self.z_slider.value) + 0.5) * self.meta["dx"]
            df = df[np.abs(df["z"].to_numpy() - zc) < df["radius"].to_numpy()]
        colors = self.meta["colors"]
        types = df["type"].astype(str).to_numpy()
        death = df["death"].astype(str).to_numpy()
        alive = death == "alive"
        by = self.color_by.value
        type_color = np.array([colors.get(t, "#777777") for t in types], dtype=object)
        if by == "type":
            fill = np.where(alive, type_color, [DEAD_COLORS.get(d, "#999999") for d in death])
            label = np.where(alive, types, death)
            value = np.zeros(len(df))
            line = np.full(len(df), "#222222", dtype=object)
            self._set_glyphs(fill_color="color")
            self.value_bar.visible = False
        else:
            value = df[by].to_numpy(dtype=float) if by in df else np.full(len(df), np.nan)
            lo, hi = self.source.column_range(by)
            self.value_mapper.update(low=lo, high=hi)
            self._set_glyphs(fill_color={"field": "value", "transform": self.value_mapper})
            self.value_bar.title = by
            self.value_bar.visible = True  # last, so a client that sees the bar also has the new glyphs
            fill = type_color
            label = types  # the legend names types by their outline colour
            line = type_color
        self.cells.data = {
            "x": df["x"].to_numpy(),
            "y": df["y"].to_numpy(),
            "radius": df["radius"].to_numpy(),
            "color": list(fill),
            "line": list(line),
            "label": list(label),
            "id": df["id"].to_numpy(),
            "type": list(types),
            "value": value,
        }
        for g in (self.cell_renderer.glyph, self.cell_renderer.nonselection_glyph):  # selection keeps its black ring
            if g not in (None, "auto"):
                g.line_color = "line"
        self.cell_renderer.glyph.line_width = 0.5 if by == "type" else 1.5
        if self.cell_renderer.nonselection_glyph not in (None, "auto"):
            self.cell_renderer.nonselection_glyph.line_width = self.cell_renderer.glyph.line_width
        if self.selected_id is not None:
            idx = np.flatnonzero(df["id"].to_numpy() == self.selected_id)
            self.cells.selected.indices = [int(i) for i in idx[:1]]

    def update_curves(self) -> None:
        pop = self.source.population()
        colors = self.meta["colors"]
        xs, ys, cs, ls = [], [], [], []
        if len(pop):
            for name, df in pop.groupby("type", sort=False):
                xs.append(list(df["time"].to_numpy() / 60))
                ys.append(list(df["live"].to_numpy()))
                cs.append(colors.get(str(name), "#777777"))
                ls.append(str(name))
        self.pop_source.data = {"xs": xs, "ys": ys, "color": cs, "label": ls}
        ev = self.source.event_counts()
        xs, ys, cs, ls = [], [], [], []
        for i, kind in enumerate(ev.columns):
            if len(ev) and ev[kind].to_numpy().max() > 0:
                xs.append(list(ev.index.to_numpy() / 60))
                ys.append(list(ev[kind].to_numpy()))
                cs.append(Category10_10[i % 10])
                ls.append(str(kind))
        self.ev_source.data = {"xs": xs, "ys": ys, "color": cs, "label": ls}

    # ------------------------------------------------------------------ the clicked cell
    def _on_select(self, attr: str, old: list[int], new: list[int]) -> None:
        if not new:
            return
        ids = self.cells.data["id"]
        cell_id = int(ids[new[0]])
        if cell_id == self.selected_id:
            return
        self.selected_id = cell_id
        self._show_cell_state(self._k())
        self.update_history()

    def _show_cell_state(self, k: int) -> None:
        df = self.source.cells(k)
        rows = df[df["id"] == self.selected_id]
        if rows.empty:
            self.cell_info.text = f"<b>cell {self.selected_id}</b>: not present at this time (divided away or removed)"
            return
        r = rows.iloc[0]
        cells = []
        for c, v in r.items():
            if c == "snapshot" or (isinstance(v, float | np.floating) and np.isnan(v)):
                continue
            text = f"{float(v):.4g}" if isinstance(v, float | np.floating) else str(v)
            cells.append(f"<td style='color:#555'>{c}</td><td><b>{text}</b></td>")
        rows_html = "".join(
            "<tr>" + "".join(cells[i : i + 2]) + "</tr>" for i in range(0, len(cells), 2)
        )  # two name/value pairs per row
        self.cell_info.text = (
            f"<b>cell {self.selected_id}</b> ({r['type']}, {r['death']}) at t = {float(r['time']) / 60:.2f} h"
            "<div style='max-height:230px;overflow-y:auto;border:1px solid #ddd'>"
            f"<table style='font-size:11px;border-spacing:6px 1px' id='cell-state'>{rows_html}</table></div>"
        )

    def update_history(self) -> None:
        if self.selected_id is None:
            return
        h = self.source.history(self.selected_id)
        var = self.history_var.value
        if var not in h:
            self.hist_source.data = {"t": [], "v": []}
            return
        v = pd.to_numeric(h[var], errors="coerce").to_numpy(dtype=float)
        self.hist_source.data = {"t": list(h["time"].to_numpy() / 60), "v": list(v)}
        self.history.title.text = f"cell {self.selected_id}: {var}"


def make_document(source: Source):
    """A Bokeh ``FunctionHandler`` callback building the page for ``source``."""

    def build(doc: Any) -> None:
        if source.meta and source.n_snapshots():
            ViewApp(source, doc)
            return
        # a live run still building its model: a placeholder until its first snapshot is in
        waiting = Div(text="starting the run…", name="starting")
        doc.add_root(waiting)
        holder: dict[str, Any] = {}

        def check() -> None:
            if source.meta and source.n_snapshots():
                doc.remove_periodic_callback(holder["cb"])
                doc.remove_root(waiting)
                ViewApp(source, doc)

        holder["cb"] = doc.add_periodic_callback(check, 500)

    return build
