"""Inline SVG charts, written by hand: line charts with bands, threshold lines and event markers,
and horizontal bar charts with threshold ticks.

Why not matplotlib: a report must render a run with 100k logged steps in well under five
seconds and must not need a plotting stack to be installed; downsampled polylines in inline
SVG are small, crisp at any zoom, need no network and no JavaScript.

Example:
    >>> chart = SvgChart("loss", y_label="loss")
    >>> chart.line([(0, 1.0), (10, 0.5)], label="train/loss")
    >>> chart.markers([(5, 0.8, "spike", "#c00")])
    >>> svg = chart.render()
    >>> svg.startswith("<svg") and "polyline" in svg and "spike" in svg
    True
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from secure_train.core.require import require_int

__all__ = ["SvgChart"]

PALETTE = ("#1f6feb", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599", "#5c940d", "#c2255c")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 and float(v).is_integer():
        return f"{v / 1e6:g}M" if a >= 1e6 else f"{v / 1e3:g}k"
    if a >= 1e4 or a < 1e-3:
        return f"{v:.1e}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out: list[float] = []
    v = start
    while v <= hi + 1e-12 * abs(hi) and len(out) < 12:
        out.append(round(v, 12))
        v += step
    return out


class SvgChart:
    """One line chart (or, through :meth:`bars`, a bar chart) as an inline ``<svg>`` string.

    Args:
        title: shown above the plot (and as the SVG's ``<title>``).
        width, height: pixels.
        x_label, y_label: axis labels.
        log_y: logarithmic y axis (values <= 0 are dropped).
        chart_id: ``id`` attribute of the ``<svg>`` element.
    """

    def __init__(
        self,
        title: str,
        *,
        width: int = 620,
        height: int = 230,
        x_label: str = "step",
        y_label: str = "",
        log_y: bool = False,
        chart_id: str | None = None,
    ) -> None:
        require_int(self, "width", width, minimum=1)
        require_int(self, "height", height, minimum=1)
        self.title, self.width, self.height = title, width, height
        self.x_label, self.y_label, self.log_y, self.chart_id = x_label, y_label, log_y, chart_id
        self._lines: list[dict[str, Any]] = []
        self._bands: list[dict[str, Any]] = []
        self._hlines: list[dict[str, Any]] = []
        self._markers: list[tuple[float, float, str, str]] = []
        self._labels: list[str] = []

    # -- content ---------------------------------------------------------------------------
    def line(
        self,
        points: list[tuple[float, float]],
        *,
        label: str,
        color: str | None = None,
        dash: str | None = None,
        width: float = 1.4,
    ) -> None:
        """A polyline through ``points`` (already downsampled)."""
        color = color or PALETTE[len(self._lines) % len(PALETTE)]
        self._lines.append({"points": points, "label": label, "color": color, "dash": dash, "width": width})

    def band(
        self,
        lower: list[tuple[float, float]],
        upper: list[tuple[float, float]],
        *,
        label: str,
        color: str | None = None,
    ) -> None:
        """A shaded area between two series over the same steps."""
        color = color or PALETTE[(len(self._lines) + len(self._bands)) % len(PALETTE)]
        self._bands.append({"lower": lower, "upper": upper, "label": label, "color": color})

    def hline(self, y: float, *, label: str, color: str = "#c92a2a", dash: str = "6 4") -> None:
        """A horizontal reference line (a budget, a threshold)."""
        self._hlines.append({"y": y, "label": label, "color": color, "dash": dash})

    def markers(self, points: list[tuple[float, float, str, str]], labels: list[str] | None = None) -> None:
        """Event markers ``(x, y, text, color)``: ``text`` shows on hover, ``labels`` (default
        ``text``) beside the first dozen markers."""
        self._markers.extend(points)
        self._labels.extend(labels if labels is not None else [p[2] for p in points])

    @property
    def empty(self) -> bool:
        return not (any(ln["points"] for ln in self._lines) or self._bands)

    # -- geometry ------------------------------------------------------------------------
    def _ty(self, v: float) -> float:
        return math.log10(v) if self.log_y else v

    def _extent(self) -> tuple[float, float, float, float]:
        xs: list[float] = []
        ys: list[float] = []
        for ln in self._lines:
            xs += [p[0] for p in ln["points"]]
            ys += [p[1] for p in ln["points"]]
        for b in self._bands:
            for p in b["lower"] + b["upper"]:
                xs.append(p[0])
                ys.append(p[1])
        xs += [m[0] for m in self._markers]
        ys += [m[1] for m in self._markers if math.isfinite(m[1])]
        ys += [h["y"] for h in self._hlines]
        if self.log_y:
            ys = [y for y in ys if y > 0]
        ys = [self._ty(y) for y in ys if math.isfinite(y)]
        if not xs:
            xs = [0.0, 1.0]
        if not ys:
            ys = [0.0, 1.0]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = (y1 - y0) * 0.06
        return x0, x1, y0 - pad, y1 + pad

    def render(self) -> str:
        """The ``<svg>`` element (with an accessible ``<title>``)."""
        w, h = self.width, self.height
        left, right, top, bottom = 58, 14, 26, 38
        pw, ph = w - left - right, h - top - bottom
        x0, x1, y0, y1 = self._extent()

        def sx(x: float) -> float:
            return left + (x - x0) / (x1 - x0) * pw

        def sy(y: float) -> float:
            return top + ph - (self._ty(y) - y0) / (y1 - y0) * ph

        def ok(y: float) -> bool:
            return math.isfinite(y) and (y > 0 or not self.log_y)

        ident = f' id="{escape(self.chart_id)}"' if self.chart_id else ""
        out = [
            f'<svg{ident} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'role="img" class="chart"><title>{escape(self.title)}</title>',
            f'<text x="{left}" y="16" class="ct">{escape(self.title)}</text>',
            f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot"/>',
        ]
        for t in _ticks(y0, y1):
            y = top + ph - (t - y0) / (y1 - y0) * ph
            label = _fmt(10**t) if self.log_y else _fmt(t)
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="tk" text-anchor="end">{label}</text>')
        for t in _ticks(x0, x1, 6):
            x = sx(t)
            out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" class="tk" text-anchor="middle">{_fmt(t)}</text>')
        out.append(
            f'<text x="{left + pw / 2:.0f}" y="{h - 6}" class="al" text-anchor="middle">{escape(self.x_label)}</text>'
        )
        if self.y_label:
            out.append(
                f'<text x="12" y="{top + ph / 2:.0f}" class="al" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + ph / 2:.0f})">{escape(self.y_label)}</text>'
            )
        for b in self._bands:
            pts = [(sx(x), sy(y)) for x, y in b["upper"] if ok(y)]
            pts += [(sx(x), sy(y)) for x, y in reversed(b["lower"]) if ok(y)]
            if pts:
                coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                out.append(
                    f'<polygon points="{coords}" fill="{b["color"]}" fill-opacity="0.18" stroke="none">'
                    f"<title>{escape(b['label'])}</title></polygon>"
                )
        for ln in self._lines:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ln["points"] if ok(y))
            dash = f' stroke-dasharray="{ln["dash"]}"' if ln["dash"] else ""
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{ln["color"]}" '
                f'stroke-width="{ln["width"]}"{dash}><title>{escape(ln["label"])}</title></polyline>'
            )
        for hl in self._hlines:
            if not ok(hl["y"]):
                continue
            y = sy(hl["y"])
            out.append(
                f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{hl["color"]}" '
                f'stroke-dasharray="{hl["dash"]}" stroke-width="1.4"/>'
            )
            out.append(
                f'<text x="{left + pw - 4}" y="{y - 4:.1f}" class="tk" text-anchor="end" '
                f'fill="{hl["color"]}">{escape(hl["label"])}</text>'
            )
        last_label_x = -1e9  # labels at least 110 px apart; every marker keeps its hover text
        for i, (x, y, text, color) in enumerate(self._markers[:200]):
            py = sy(y) if ok(y) else top + 8
            px = sx(x)
            out.append(
                f'<g class="marker"><circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{color}" '
                f'stroke="#fff" stroke-width="1.5"><title>{escape(text)}</title></circle>'
            )
            if i < 12 and px - last_label_x > 110 and self._labels[i]:
                last_label_x = px
                label = self._labels[i]
                anchor = "end" if px + 8 + 5.6 * len(label) > left + pw else "start"
                dx = -8 if anchor == "end" else 8
                out.append(
                    f'<text x="{px + dx:.1f}" y="{py - 6 - (i % 2) * 10:.1f}" class="mk" '
                    f'text-anchor="{anchor}" fill="{color}">{escape(label)}</text>'
                )
            out.append("</g>")
        legend = [(ln["label"], ln["color"]) for ln in self._lines] + [(b["label"], b["color"]) for b in self._bands]
        lx = left + 6
        for label, color in legend[:6]:
            out.append(f'<rect x="{lx}" y="{top + 5}" width="10" height="3" fill="{color}"/>')
            out.append(f'<text x="{lx + 13}" y="{top + 10}" class="lg">{escape(label)}</text>')
            lx += 20 + 6 * min(len(label), 34)
        out.append("</svg>")
        return "".join(out)

    @staticmethod
    def bars(title: str, rows: list[dict[str, Any]], *, width: int = 620, chart_id: str | None = None) -> str:
        """Horizontal bars, one row each: ``{"label", "value", "threshold"?, "ok"?, "note"?}``.

        Each row has its own scale (``0 .. 1.15 * max(value, threshold)``), so checks with
        different units share one chart; the threshold is a black tick.
        """
        row_h, top, label_w = 24, 26, 190
        h = top + row_h * max(1, len(rows)) + 10
        bar_w = width - label_w - 90
        ident = f' id="{escape(chart_id)}"' if chart_id else ""
        out = [
            f'<svg{ident} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {h}" width="{width}" '
            f'height="{h}" role="img" class="chart"><title>{escape(title)}</title>',
            f'<text x="8" y="16" class="ct">{escape(title)}</text>',
        ]
        for i, row in enumerate(rows):
            y = top + i * row_h
            value = float(row.get("value") or 0.0)
            threshold = row.get("threshold")
            scale = max(abs(value), abs(float(threshold)) if threshold is not None else 0.0, 1e-12) * 1.15
            color = {True: "#2f9e44", False: "#c92a2a"}.get(row.get("ok"), "#1f6feb")  # type: ignore[arg-type]
            bw = max(1.0, abs(value) / scale * bar_w)
            tip = escape(
                f"{row['label']}: {_fmt(value)}"
                + (f" (threshold {_fmt(float(threshold))})" if threshold is not None else "")
            )
            out.append(
                f'<text x="{label_w - 6}" y="{y + 15}" class="tk" text-anchor="end">{escape(row["label"])}</text>'
            )
            out.append(
                f'<rect x="{label_w}" y="{y + 4}" width="{bw:.1f}" height="14" fill="{color}" rx="2">'
                f"<title>{tip}</title></rect>"
            )
            note = _fmt(value) + (f"  {row['note']}" if row.get("note") else "")
            out.append(f'<text x="{label_w + bw + 5:.1f}" y="{y + 15}" class="tk">{escape(note)}</text>')
            if threshold is not None:
                tx = label_w + abs(float(threshold)) / scale * bar_w
                out.append(
                    f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y + 1}" y2="{y + 21}" stroke="#000" '
                    f'stroke-width="2"><title>threshold {escape(_fmt(float(threshold)))}</title></line>'
                )
        out.append("</svg>")
        return "".join(out)
