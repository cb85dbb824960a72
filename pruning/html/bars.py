"""Bar charts: one bar per row (layers, formats), and dense-vs-pruned latency panels."""

from collections.abc import Sequence
from dataclasses import dataclass

from pruning.html import svg
from pruning.html.svg import MUTED, Format, Linear, line, rect, text

WIDTH = 1100
DENSE = "#94a3b8"
PRUNED = "#2563eb"
MARK = "#dc2626"
LABEL_CHARS = 44


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str  # drawn right of the bar: the figure in words
    color: str = PRUNED


@dataclass(frozen=True)
class Marker:
    """A vertical reference line across all bars (the target, the entropy floor)."""

    value: float
    label: str


def hbar_chart(
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[Bar],
    *,
    x_max: float,
    x_format: Format,
    x_label: str,
    markers: Sequence[Marker] = (),
    unit: float = 1.0,
) -> str:
    row, top, left, right = 24, 34, 330, WIDTH - 190
    height = top + row * len(bars) + 56
    scale = Linear(0, x_max, left, right, unit)
    bottom = top + row * len(bars)
    parts = [svg.x_axis(scale, bottom + 4, top - 6, x_format, x_label)]
    # Markers under the bars, so the figures written beside the bars stay readable.
    parts.extend(_marker(m, scale, top - 6, bottom + 4) for m in markers)
    parts.extend(_bar_row(bar, scale, top + i * row, row) for i, bar in enumerate(bars))
    return svg.document(chart_id, WIDTH, height, title, description, "".join(parts))


def _bar_row(bar: Bar, scale: Linear, y: float, row: float) -> str:
    tooltip = f"{bar.label}: {bar.note}"
    end = scale(min(bar.value, scale.hi))
    return "".join(
        [
            text(scale.start - 10, y + row / 2 + 4, _shorten(bar.label), text_anchor="end"),
            rect(scale.start, y + 4, end - scale.start, row - 8, tooltip, fill=bar.color, rx=2),
            text(end + 8, y + row / 2 + 4, bar.note, fill=MUTED, class_="halo"),
        ]
    )


def _marker(marker: Marker, scale: Linear, top: float, bottom: float) -> str:
    x = scale(marker.value)
    anchor = "end" if x > (scale.start + scale.end) / 2 else "start"
    offset = -6 if anchor == "end" else 6
    return line(x, top, x, bottom, stroke=MARK, stroke_width=2, stroke_dasharray="6 4") + text(
        x + offset,
        top - 8,
        marker.label,
        fill=MARK,
        text_anchor=anchor,
        font_weight=600,
        class_="halo",
    )


def _shorten(label: str) -> str:
    # Keep the end: "…layer4.1.conv2.weight" says more than "model.backbone.encoder…".
    return (
        label
        if len(label) <= LABEL_CHARS
        else "\N{HORIZONTAL ELLIPSIS}" + label[-LABEL_CHARS + 1 :]
    )


@dataclass(frozen=True)
class LatencyPanel:
    batch_size: int
    dense: tuple[float, float]  # p50, p95 in ms
    pruned: tuple[float, float]
    speedup_text: str


def latency_chart(
    chart_id: str, title: str, description: str, panels: Sequence[LatencyPanel]
) -> str:
    """One panel per batch size, each on its own scale: batch 1 and batch 64 differ by orders."""
    per_row = min(len(panels), 4)
    panel_w, panel_h = (WIDTH - 20) / per_row, 280
    rows = (len(panels) + per_row - 1) // per_row
    parts = [
        _latency_panel(p, 10 + (i % per_row) * panel_w, (i // per_row) * panel_h, panel_w, panel_h)
        for i, p in enumerate(panels)
    ]
    parts.append(_legend(90, rows * panel_h + 18))
    return svg.document(chart_id, WIDTH, rows * panel_h + 34, title, description, "".join(parts))


def _latency_panel(panel: LatencyPanel, x0: float, y0: float, w: float, h: float) -> str:
    top, bottom, left = y0 + 56, y0 + h - 44, x0 + 80
    scale = Linear(0, svg.nice_max(max(panel.dense[1], panel.pruned[1], 1e-9)), bottom, top)
    parts = [
        text(
            x0 + w / 2, y0 + 20, f"batch {panel.batch_size}", text_anchor="middle", font_weight=700
        ),
        text(x0 + w / 2, y0 + 38, panel.speedup_text, text_anchor="middle", fill=MUTED),
        svg.y_axis(scale, left, x0 + w - 20, _ms_tick, "ms"),
    ]
    slot = (x0 + w - 20 - left) / 2
    for i, (name, (p50, p95), color) in enumerate(
        [("dense", panel.dense, DENSE), ("pruned", panel.pruned, PRUNED)]
    ):
        centre = left + slot * (i + 0.5)
        parts.append(_latency_bar(name, p50, p95, color, centre, min(slot * 0.5, 90), scale))
        parts.append(text(centre, bottom + 20, name, text_anchor="middle"))
    return "".join(parts)


def _latency_bar(
    name: str, p50: float, p95: float, color: str, centre: float, width: float, scale: Linear
) -> str:
    tooltip = f"{name}: p50 {p50:.4g} ms, p95 {p95:.4g} ms"
    bar = rect(
        centre - width / 2, scale(p50), width, scale(0) - scale(p50), tooltip, fill=color, rx=2
    )
    whisker = line(centre, scale(p50), centre, scale(p95), stroke="#0f172a", stroke_width=1.5)
    cap = line(centre - 8, scale(p95), centre + 8, scale(p95), stroke="#0f172a", stroke_width=1.5)
    return bar + whisker + cap


def _legend(x: float, y: float) -> str:
    items = [(DENSE, "dense"), (PRUNED, "pruned")]
    parts = []
    for i, (color, label) in enumerate(items):
        parts.append(rect(x + i * 95, y - 11, 14, 14, fill=color, rx=2))
        parts.append(text(x + i * 95 + 20, y, label))
    return "".join(parts)


def _ms_tick(value: float) -> str:
    return f"{value:g}"
