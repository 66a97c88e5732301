"""Charts as inline SVG, drawn on the server: line charts and horizontal bars.

Contract: :func:`line_chart` and :func:`bar_chart` return markup (``markupsafe.Markup``)
of one ``<figure>``: a title, an ``<svg role="img">`` scaled by its ``viewBox`` (so it
fits any width), labelled axes with ticks, one ``<title>`` per point or bar (the exact
value on hover and for screen readers) and a legend as an HTML list that wraps on narrow
screens. Every text from the caller is escaped. Colours are classes (``s0``..``s7``) the
page's style sheet maps to colours that read in light and dark mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

WIDTH = 520
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 12, 46
PLOT_HEIGHT = 230
COLOURS = 8


@dataclass
class Series:
    """One line: ``points`` as (x, y); ``notes`` name each point in its tooltip."""

    name: str
    points: list[tuple[float, float]]
    notes: list[str] = field(default_factory=list)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``lo``..``hi`` (about ``count`` of them)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks, value = [], start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 10))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks covering ``lo``..``hi`` (both above 0)."""
    lo = max(lo, 1e-9)
    hi = max(hi, lo * 1.01)
    exponents = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
    candidates = [m * 10.0**e for e in exponents for m in (1, 2, 5)]
    first = max(c for c in candidates if c <= lo)
    last = min(c for c in candidates if c >= hi)
    return [c for c in candidates if first <= c <= last]


class _Scale:
    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        v = math.log10(max(value, 1e-9)) if self.log else value
        span = (self.hi - self.lo) or 1.0
        return self.start + (v - self.lo) / span * (self.end - self.start)


def _figure(title: str, svg: str, legend: Sequence[tuple[int, str]], kind: str) -> Markup:
    items = "".join(
        f'<li><span class="swatch s{i % COLOURS}" aria-hidden="true"></span>{escape(name)}</li>'
        for i, name in legend
    )
    legend_html = f'<ul class="legend">{items}</ul>' if len(legend) > 1 else ""
    return Markup(
        f'<figure class="chart" data-chart="{escape(kind)}"><figcaption>{escape(title)}'
        f"</figcaption>{svg}{legend_html}</figure>"
    )


def line_chart(title: str, x_label: str, y_label: str, series: Sequence[Series], *,
               x_log: bool = False, y_log: bool = False, y_range: tuple[float, float] | None = None,
               steps: bool = False, kind: str = "line") -> Markup:  # fmt: skip
    """A line chart of ``series`` (markers on each point unless ``steps``: then each
    series is drawn as a staircase through its points, which come in pairs)."""
    points = [p for s in series for p in s.points]
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: no data.</p>')
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = log_ticks(min(xs), max(xs)) if x_log else linear_ticks(min(xs), max(xs))
    if y_range is not None:
        y_ticks = linear_ticks(*y_range)
    else:
        y_ticks = log_ticks(min(ys), max(ys)) if y_log else linear_ticks(min(0.0, min(ys)), max(ys))
    height = TOP + PLOT_HEIGHT + BOTTOM
    sx = _Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT, x_log)
    sy = _Scale(y_ticks[0], y_ticks[-1], TOP + PLOT_HEIGHT, TOP, y_log)
    parts = [_axes(x_ticks, y_ticks, sx, sy, x_label, y_label, height)]
    for i, s in enumerate(series):
        cls = f"s{i % COLOURS}"
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        parts.append(f'<polyline class="line {cls}" points="{coords}"/>')
        if not steps:
            for n, (x, y) in enumerate(s.points):
                note = s.notes[n] if n < len(s.notes) else s.name
                parts.append(
                    f'<circle class="dot {cls}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4">'
                    f"<title>{escape(note)}: {escape(_fmt(x))} {escape(x_label)}, "
                    f"{escape(_fmt(y))} {escape(y_label)}</title></circle>"
                )
        else:
            parts.append(f"<title>{escape(s.name)}</title>")
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )
    return _figure(title, svg, [(i, s.name) for i, s in enumerate(series)], kind)


def _axes(x_ticks, y_ticks, sx, sy, x_label: str, y_label: str, height: int) -> str:
    bottom, top = TOP + PLOT_HEIGHT, TOP
    out = [f'<rect class="plot" x="{LEFT}" y="{top}" width="{WIDTH - RIGHT - LEFT}" '
           f'height="{PLOT_HEIGHT}"/>']  # fmt: skip
    for t in y_ticks:
        y = sy(t)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{escape(_fmt(t))}</text>')  # fmt: skip
    for t in x_ticks:
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
                   f"{escape(_fmt(t))}</text>")  # fmt: skip
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{height - 8}" '
               f'text-anchor="middle">{escape(x_label)}</text>')  # fmt: skip
    out.append(f'<text class="axis" transform="translate(15 {top + PLOT_HEIGHT / 2:.0f}) '
               f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')  # fmt: skip
    return "".join(out)


def bar_chart(title: str, x_label: str, bars: Sequence[tuple[str, float, int]], *,
              x_max: float = 100.0, kind: str = "bars") -> Markup:  # fmt: skip
    """Horizontal bars ``(label, value, colour index)``, each label above its bar, on an
    axis from 0 to ``x_max``."""
    if not bars:
        return Markup(f'<p class="muted">{escape(title)}: no data.</p>')
    row = 38
    left, right = 8, WIDTH - 56
    height = TOP + row * len(bars) + BOTTOM
    scale = _Scale(0.0, x_max, left, right, False)
    parts = []
    for t in linear_ticks(0.0, x_max):
        x = scale(t)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" '
                     f'y2="{TOP + row * len(bars)}"/><text class="tick" x="{x:.1f}" '
                     f'y="{TOP + row * len(bars) + 16}" text-anchor="middle">'
                     f"{escape(_fmt(t))}</text>")  # fmt: skip
    for n, (label, value, colour) in enumerate(bars):
        y = TOP + n * row
        width = max(1.0, scale(min(value, x_max)) - left)
        parts.append(
            f'<text class="tick label" x="{left}" y="{y + 13}">{escape(label)}</text>'
            f'<rect class="bar s{colour % COLOURS}" x="{left}" y="{y + 18}" '
            f'width="{width:.1f}" height="14"><title>{escape(label)}: {escape(_fmt(value))} '
            f"{escape(x_label)}</title></rect>"
            f'<text class="tick" x="{left + width + 5:.1f}" y="{y + 30}">'
            f"{escape(_fmt(value))}</text>"
        )
    parts.append(f'<text class="axis" x="{(left + right) / 2:.0f}" y="{height - 8}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')  # fmt: skip
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )
    return _figure(title, svg, [], kind)
