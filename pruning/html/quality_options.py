"""The quality options' section: the metric against sparsity a search or sweep measured (an
SVG line with the budget drawn across), and the per-layer sparsity an allocation chose."""

from collections.abc import Mapping
from typing import Any

from pruning.html import svg
from pruning.html import values as v
from pruning.html.bars import DENSE, PRUNED, WIDTH
from pruning.html.layout import figure, note, section
from pruning.html.svg import Linear, element, line, polyline, text
from pruning.html.tables import table

WITHIN = "#059669"
OUTSIDE = "#dc2626"


def quality_options_section(report: Mapping[str, Any]) -> str | None:
    """None when the job used none of allocation, refine or a search."""
    parts = []
    search = v.block(report, "search")
    if search:
        parts += _search_parts(search)
    allocation = v.block(report, "allocation")
    if allocation:
        parts.append(_allocation_table(allocation))
    refine = v.block(report, "refine")
    if refine:
        parts.append(_refine_table(refine))
    if not parts:
        return None
    return section("search", "Sparsity choice", "", *parts)


def _search_parts(search: Mapping[str, Any]) -> list[str]:
    points = [
        (s, m, p.get("within_budget"))
        for p in v.rows(search, "curve")
        if (s := v.number(p.get("sparsity"))) is not None
        and (m := v.number(p.get("metric"))) is not None
    ]
    dense = v.number(search.get("dense_metric"))
    metric = str(search.get("metric", "metric"))
    parts = []
    if points and dense is not None:
        chart = metric_chart(points, dense, metric, v.number(search.get("max_drop")))
        caption = (
            f"{metric} after each of {len(points)} one-shot prunings from the dense model; "
            f"chosen sparsity {v.percent(search.get('chosen_sparsity'), 2)}"
        )
        parts.append(figure(chart, caption))
    fmt = v.percent if metric == "accuracy" else v.decimal
    rows = [
        [
            v.percent(p.get("sparsity"), 2),
            fmt(p.get("metric")),
            v.decimal(p.get("drop"), 4),
            _budget(p.get("within_budget")),
            v.seconds(p.get("time_s")),
        ]
        for p in v.rows(search, "curve")
    ]
    headers = ["Sparsity", metric, "Drop", "Within budget", "Time"]
    parts.append(table(f"{metric} against sparsity ({search.get('kind')})", headers, rows))
    parts.append(note(str(search.get("reused", ""))))
    return parts


Point = tuple[float, float, bool | None]  # sparsity, metric, within the budget (if any)


def metric_chart(points: list[Point], dense: float, metric: str, max_drop: float | None) -> str:
    height, top, bottom, left, right = 360, 40, 300, 110, WIDTH - 40
    xs = [p[0] for p in points]
    values = [p[1] for p in points] + [dense]
    x = Linear(0.0, max(1.0, max(xs)), left, right)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or 0.05
    y = Linear(lo - pad, hi + pad, bottom, top)
    ordered = sorted(points)
    parts = [
        svg.y_axis(y, left, right, lambda t: f"{t:.3g}", metric),
        svg.x_axis(x, bottom, top, lambda t: f"{t:.0%}", "sparsity"),
        line(left, y(dense), right, y(dense), stroke=DENSE, stroke_dasharray="6 4"),
        text(right - 4, y(dense) - 6, f"dense {dense:.4g}", text_anchor="end"),
        polyline([(x(s), y(m)) for s, m, _ in ordered], stroke=PRUNED, stroke_width=2.5),
    ]
    if max_drop is not None:
        budget = dense - max_drop if metric == "accuracy" else dense + max_drop
        parts.append(line(left, y(budget), right, y(budget), stroke=OUTSIDE))
        parts.append(text(left + 6, y(budget) - 6, f"budget {budget:.4g}"))
    for s, m, ok in ordered:
        tooltip = element("title", svg.esc(f"sparsity {s:.2%}: {metric} {m:.4g}"))
        color = PRUNED if ok is None else WITHIN if ok else OUTSIDE
        parts.append(
            element("circle", tooltip, cx=f"{x(s):.1f}", cy=f"{y(m):.1f}", r=5, fill=color)
        )
    title = f"{metric} against sparsity"
    description = "Dots: measured prunings; with a budget, green within it, red outside it."
    return svg.document("chart-search", WIDTH, height, title, description, "".join(parts))


def _budget(within: object) -> str:
    return "-" if within is None else "yes" if within else "no"


def _allocation_table(allocation: Mapping[str, Any]) -> str:
    rows = []
    for layer in v.rows(allocation, "layers"):
        score = layer.get("outlier_ratio", layer.get("output_error"))
        shown = (
            v.decimal(score, 4)
            if not isinstance(score, Mapping)
            else ", ".join(f"{float(k):.0%}: {float(e):.3g}" for k, e in score.items())
        )
        rows.append([str(layer.get("name")), v.percent(layer.get("sparsity"), 2), shown])
    caption = f"Allocation {allocation.get('kind')}: {allocation.get('score')}"
    return table(caption, ["Layer", "Sparsity", "Score"], rows)


def _refine_table(refine: Mapping[str, Any]) -> str:
    rows = [
        [
            str(layer.get("name")),
            v.decimal(layer.get("error_before"), 4),
            v.decimal(layer.get("error_after"), 4),
            str(layer.get("swaps", "")),
        ]
        for layer in v.rows(refine, "layers")
    ]
    caption = (
        f"Refinement {refine.get('kind')} (update {refine.get('update')}): {refine.get('error')}"
    )
    return table(caption, ["Layer", "Error before", "Error after", "Swaps"], rows)
