"""The learned-sparsity section (issue 16): the density the method learned over training,
the gap to the target the projection closed, and the sparsity it learned per layer."""

from collections.abc import Mapping
from typing import Any

from pruning.html import values as v
from pruning.html.curves import LOSS, SPARSITY, Curve, training_chart
from pruning.html.layout import figure, section
from pruning.html.tables import table


def learned_section(report: Mapping[str, Any]) -> str | None:
    """None unless the job ran a learned method."""
    learned = v.block(v.block(report, "training"), "learned")
    if not learned:
        return None
    points = v.rows(learned, "trajectory")
    target = v.number(learned.get("target_density"))
    curves = [
        Curve(
            f"Learned density (target {v.percent(target)})",
            "density",
            _series(points, "density"),
            SPARSITY,
            1.0,
            True,
        )
    ]
    multiplier = _series(points, "multiplier")
    if multiplier:
        curves.append(Curve("Lagrange multiplier", "multiplier", multiplier, LOSS))
    parts = []
    if curves[0].points:
        chart = training_chart(
            "chart-learned",
            "Learned density over training",
            "Line charts against the training step: the share of weights the method keeps, "
            "and the multiplier of its density constraint.",
            curves,
        )
        parts.append(
            figure(
                chart,
                "Density the method keeps at each logged step; after the projection "
                "the fixed mask is fine-tuned at the target.",
            )
        )
    projection = v.block(learned, "projection")
    lead = (
        f"{learned.get('method', '?')} learned a density of "
        f"{v.percent(learned.get('learned_density'))} against a target of {v.percent(target)} "
        f"(gap {v.decimal(learned.get('gap'))}); the projection by {projection.get('score', '?')} "
        f"revived {v.count(projection.get('revived'))} and dropped "
        f"{v.count(projection.get('dropped'))} weights."
    )
    layers = v.block(learned, "layers")
    rows = [
        [
            str(name),
            v.count(layer.get("weights")),
            v.percent(layer.get("learned_sparsity")),
            v.percent(layer.get("sparsity")),
        ]
        for name, layer in layers.items()
        if isinstance(layer, Mapping)
    ]
    parts.append(
        table(
            "Sparsity per layer: learned, and after the projection",
            ["Tensor", "Weights", "Learned", "Final"],
            rows,
        )
    )
    return section("learned", "Learned sparsity", lead, *parts)


def _series(points: list[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    pairs = [(v.number(p.get("step")), v.number(p.get(key))) for p in points]
    return [(s, y) for s, y in pairs if s is not None and y is not None]
