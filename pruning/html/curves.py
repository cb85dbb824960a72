"""The weight-magnitude histogram and the training curves."""

from collections.abc import Sequence
from dataclasses import dataclass

from pruning.html import svg
from pruning.html.bars import DENSE, PRUNED, WIDTH
from pruning.html.magnitudes import Counts, MagnitudeHistogram
from pruning.html.svg import Linear, Log10, element, polyline, rect, text

LOSS = "#7c3aed"
SPARSITY = "#059669"


def histogram_chart(chart_id: str, title: str, description: str, hist: MagnitudeHistogram) -> str:
    height, top, bottom = 400, 70, 320
    series = [(c, color, name) for c, color, name in _series(hist) if c is not None]
    peak = max(max([*c.bins, c.zeros, 1]) for c, _, _ in series)
    y = Log10(0.6, svg.nice_max(peak * 1.5), bottom, top)
    x = Linear(0, hist.edges[-1], 250, WIDTH - 30)
    parts = [
        svg.y_axis(y, 110, WIDTH - 30, _count_tick, "weights (log scale)"),
        svg.x_axis(x, bottom, top, lambda v: f"{v:.3g}", "|weight| (nonzero)"),
        _zero_column(series, y, 130, 200, bottom),
    ]
    for k, (counts, color, name) in enumerate(series):
        parts.append(_bins(hist.edges, counts, color, name, x, y, k, len(series)))
    parts.append(_histogram_legend(series, 130, 24))
    return svg.document(chart_id, WIDTH, height, title, description, "".join(parts))


def _series(hist: MagnitudeHistogram) -> list[tuple[Counts | None, str, str]]:
    return [(hist.before, DENSE, "before"), (hist.after, PRUNED, "after")]


def _bins(
    edges: Sequence[float],
    counts: Counts,
    color: str,
    name: str,
    x: Linear,
    y: Log10,
    k: int,
    n: int,
) -> str:
    # Side by side within each bin, so neither series hides the other.
    parts = []
    for lo, hi, c in zip(edges, edges[1:], counts.bins, strict=False):
        if c == 0:
            continue
        width = (x(hi) - x(lo)) / n
        tooltip = f"{name}: {c:,} weights with |w| in [{lo:.3g}, {hi:.3g})"
        parts.append(
            rect(x(lo) + k * width, y(c), width - 0.5, y.start - y(c), tooltip, fill=color)
        )
    return "".join(parts)


def _zero_column(
    series: Sequence[tuple[Counts, str, str]], y: Log10, left: float, right: float, bottom: float
) -> str:
    width = (right - left) / max(len(series), 1)
    parts = [text((left + right) / 2, bottom + 18, "= 0", text_anchor="middle", font_weight=600)]
    for k, (counts, color, name) in enumerate(series):
        if counts.zeros:
            tooltip = f"{name}: {counts.zeros:,} weights exactly zero"
            x0 = left + k * width + 3
            parts.append(
                rect(x0, y(counts.zeros), width - 6, y.start - y(counts.zeros), tooltip, fill=color)
            )
    return "".join(parts)


def _histogram_legend(series: Sequence[tuple[Counts, str, str]], x: float, y: float) -> str:
    parts = []
    for k, (counts, color, name) in enumerate(series):
        share = counts.zeros / counts.total if counts.total else 0.0
        label = (
            f"{name} pruning: {counts.total:,} weights, {counts.zeros:,} exactly zero ({share:.1%})"
        )
        parts.append(rect(x, y + k * 22 - 11, 14, 14, fill=color, rx=2))
        parts.append(text(x + 22, y + k * 22, label))
    return "".join(parts)


def _count_tick(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


@dataclass(frozen=True)
class Curve:
    title: str
    label: str  # the y axis
    points: list[tuple[float, float]]  # (step, value)
    color: str
    y_max: float | None = None  # a fixed top (1 for a fraction); else from the data
    percent: bool = False


def training_chart(chart_id: str, title: str, description: str, curves: Sequence[Curve]) -> str:
    """One panel per curve, side by side, sharing the step axis."""
    panel_w, height = (WIDTH - 20) / max(len(curves), 1), 340
    parts = [_curve_panel(c, 10 + i * panel_w, panel_w, height) for i, c in enumerate(curves)]
    return svg.document(chart_id, WIDTH, height, title, description, "".join(parts))


def _curve_panel(curve: Curve, x0: float, w: float, h: float) -> str:
    steps = [p[0] for p in curve.points]
    values = [p[1] for p in curve.points]
    top, bottom, left, right = 46, h - 56, x0 + 90, x0 + w - 30
    x = Linear(min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1, left, right)
    y_top = curve.y_max if curve.y_max is not None else svg.nice_max(max(values))
    y = Linear(min(0.0, min(values)), y_top, bottom, top)
    fmt = (lambda v: f"{v:.0%}") if curve.percent else (lambda v: f"{v:.3g}")
    parts = [
        text(left, 24, curve.title, font_weight=700),
        svg.y_axis(y, left, right, fmt, curve.label),
        svg.x_axis(x, bottom, top, lambda v: f"{v:,.0f}", "step"),
        polyline([(x(s), y(v)) for s, v in curve.points], stroke=curve.color, stroke_width=2.5),
    ]
    if len(curve.points) <= 60:
        parts.extend(_dot(x(s), y(v), curve, s, v) for s, v in curve.points)
    return "".join(parts)


def _dot(cx: float, cy: float, curve: Curve, step: float, value: float) -> str:
    shown = f"{value:.1%}" if curve.percent else f"{value:.4g}"
    tooltip = element("title", svg.esc(f"step {step:,.0f}: {curve.label} {shown}"))
    return element("circle", tooltip, cx=f"{cx:.1f}", cy=f"{cy:.1f}", r=3.5, fill=curve.color)
