"""The latency section and header card: medians with their 95% intervals, and a speedup
called a gain only when its interval lies above 1.0 (pruning/latency.py's `verdict`)."""

from collections.abc import Mapping
from typing import Any

from pruning.html import values as v
from pruning.html.bars import LatencyPanel, latency_chart
from pruning.html.layout import figure, missing, note, section
from pruning.html.tables import table

HEADING = "Latency, dense vs pruned"
_VERDICT_WORDS = {
    "faster": "faster",
    "slower": "slower",
    "within noise": "within noise, not a gain",
    "too few iterations": "not judged: too few iterations",
}


def latency_section(report: Mapping[str, Any]) -> str:
    latency = v.block(report, "latency")
    results = v.rows(latency, "results")
    panels = [p for p in (_panel(r) for r in results) if p is not None]
    if not panels:
        return section("latency", HEADING, _lead(latency), missing("no latency results"))
    chart = latency_chart(
        "chart-latency",
        "Latency, dense vs pruned, per batch size",
        "For each batch size, bars of median latency in milliseconds for the dense and the "
        "pruned model, with whiskers up to the 95th percentile.",
        panels,
    )
    caption = (
        "Each batch size has its own scale. Bars: median; whiskers: p95. A speedup counts as "
        "a gain only when its 95% interval lies above 1.0."
    )
    parts = [figure(chart, caption)]
    parts += [note(str(text)) for text in [latency.get("note"), *_warnings(latency)] if text]
    parts.append(_latency_table(results))
    return section("latency", HEADING, _lead(latency), *parts)


def speed_card(report: Mapping[str, Any]) -> tuple[str, str, str]:
    """The best speedup that is a gain; otherwise what the first batch size showed, in words
    that do not read as a gain."""
    results = v.rows(v.block(report, "latency"), "results")
    if not results:
        return "Speedup", v.NOT_MEASURED, ""
    gains = [r for r in results if r.get("verdict") == "faster"]
    if gains:
        best = max(gains, key=lambda r: v.number(r.get("speedup")) or 0.0)
        detail = f"batch {v.count(best.get('batch_size'))}, median, 95% CI {_interval(best)}"
        return "Speedup", v.speedup(best.get("speedup")), detail
    first = results[0]
    value = "Slower" if first.get("verdict") == "slower" else "No gain shown"
    detail = (
        f"batch {v.count(first.get('batch_size'))}: median {v.speedup(first.get('speedup'))}, "
        f"{_words(first)}"
    )
    return "Speedup", value, detail


def _lead(latency: Mapping[str, Any]) -> str:
    if not latency:
        return ""
    lead = (
        f"Runtime {latency.get('runtime', v.NOT_MEASURED)}, "
        f"{v.count(latency.get('threads'))} thread(s); times per call."
    )
    budget, spent = v.number(latency.get("budget_s")), v.number(latency.get("spent_s"))
    if budget is not None:
        lead += (
            f" Timed until the 95% intervals were within "
            f"{v.percent(latency.get('tolerance'))} of the medians or the {v.seconds(budget)} "
            f"budget ran out ({v.seconds(spent)} spent)."
        )
    return lead


def _warnings(latency: Mapping[str, Any]) -> list[str]:
    found = latency.get("warnings")
    return [str(w) for w in found] if isinstance(found, list) else []


def _panel(result: Mapping[str, Any]) -> LatencyPanel | None:
    dense, pruned = v.block(result, "dense_ms"), v.block(result, "pruned_ms")
    figures = [v.number(m.get(q)) for m in (dense, pruned) for q in ("p50", "p95")]
    batch = v.number(result.get("batch_size"))
    if batch is None or any(f is None for f in figures):
        return None
    d50, d95, p50, p95 = (f or 0.0 for f in figures)
    speedup = v.number(result.get("speedup"))
    words = "speedup not measured" if speedup is None else f"{v.speedup(speedup)} {_words(result)}"
    return LatencyPanel(int(batch), (d50, max(d95, d50)), (p50, max(p95, p50)), words)


def _words(result: Mapping[str, Any]) -> str:
    return _VERDICT_WORDS.get(str(result.get("verdict")), "not judged: no interval")


def _interval(result: Mapping[str, Any], key: str = "speedup_ci95") -> str:
    bounds = result.get(key)
    if not isinstance(bounds, list) or len(bounds) != 2:
        return "none"
    low, high = (v.number(b) for b in bounds)
    if low is None or high is None:
        return "none"
    return f"{low:.3g} to {high:.3g}"


def _median(times: Mapping[str, Any]) -> str:
    return f"{v.milliseconds(times.get('p50'))} [{_interval(times, 'ci95')}]"


def _latency_table(results: list[Mapping[str, Any]]) -> str:
    rows = []
    for r in results:
        dense, pruned = v.block(r, "dense_ms"), v.block(r, "pruned_ms")
        rows.append(
            [
                v.count(r.get("batch_size")),
                _median(dense),
                v.milliseconds(dense.get("p95")),
                _median(pruned),
                v.milliseconds(pruned.get("p95")),
                f"{v.speedup(r.get('speedup'))} [{_interval(r)}]",
                _words(r),
                f"{v.count(r.get('iterations'))}, {r.get('stopped', v.NOT_MEASURED)}",
            ]
        )
    headers = [
        "Batch size",
        "Dense median [95% CI]",
        "Dense p95",
        "Pruned median [95% CI]",
        "Pruned p95",
        "Speedup [95% CI]",
        "Verdict",
        "Iterations, stopped by",
    ]
    return table("Latency per batch size", headers, rows, 0)
