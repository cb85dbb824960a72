"""The header cards lead with what was measured on real data, and show nothing that could
not show a difference (or a speedup inside the noise) as a result."""

import re
from typing import Any

from pruning.html import render_report_html
from pruning.html.values import size
from tests.html.report_factory import make_report, make_weights

ARROW = "\N{RIGHTWARDS ARROW}"
CARD = re.compile(
    r'<div class="card"><div class="label">(.*?)</div><div class="value[^"]*">(.*?)</div>'
    r'<div class="detail">(.*?)</div></div>'
)


def cards(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return CARD.findall(render_report_html(report, None, None, "t"))


def report_with(fidelity: dict[str, Any], metric: bool = True) -> dict[str, Any]:
    report = make_report(make_weights()[1])
    report["quality"]["fidelity"] = fidelity
    if not metric:
        report["quality"]["metric"] = None
    return report


ON_EVALUATION = {
    "measured": True,
    "source": "evaluation data",
    "output_cosine": 0.71502,
    "max_abs_diff": 3.2,
    "top1_agreement": None,
    "samples": 397,
}
SYNTHETIC = {**ON_EVALUATION, "source": "synthetic inputs", "output_cosine": 0.96, "samples": 16}


def test_an_evaluation_leads_the_cards_with_its_metric_dense_to_pruned() -> None:
    report = report_with(ON_EVALUATION)
    report["quality"]["synthetic_fidelity"] = SYNTHETIC
    (label, value, _), fidelity, *rest = cards(report)
    assert (label, value) == ("Accuracy", f"91.2% {ARROW} 90.4%")
    assert fidelity[:2] == ("Output cosine", "0.7150")
    assert "397 samples of evaluation data" in fidelity[2]
    assert "0.9600" not in "".join(map(str, rest))  # the synthetic figure is not a card


def test_fidelity_on_synthetic_inputs_comes_after_the_other_cards_and_says_so() -> None:
    labels = cards(report_with(SYNTHETIC, metric=False))
    assert [label for label, _, _ in labels][-1] == "Output cosine"
    assert labels[-1][2].endswith("on 16 samples of synthetic inputs")


def test_fidelity_not_measured_shows_the_reason_instead_of_a_number() -> None:
    reason = "the dense model gives the same output for all 16 samples of the synthetic inputs"
    fidelity = {
        "measured": False,
        "source": "synthetic inputs",
        "reason": reason,
        "output_cosine": None,
        "max_abs_diff": None,
        "top1_agreement": None,
    }
    report = report_with(fidelity, metric=False)
    card = next(c for c in cards(report) if c[0] == "Output cosine")
    assert card[1] == "not measured" and reason in card[2]
    page = render_report_html(report, None, None, "t")
    assert f"Not measured: fidelity on synthetic inputs: {reason}" in page
    assert "1.0000" not in page


def test_the_size_card_is_the_delivered_file_not_the_smallest_format() -> None:
    report = report_with(SYNTHETIC, metric=False)
    report["engine"] = {"format": "onnx"}
    formats = report["storage"]["formats"]
    formats["dense_file"] = formats["file"] * 2
    card = next(c for c in cards(report) if c[0] == "Delivered file")
    assert card[1] == size(formats["file"]) != size(min(formats.values()))
    assert card[2].startswith("pruned onnx model, 50.0% of the upload")
    assert "Smallest format" not in render_report_html(report, None, None, "t")


def test_a_speedup_only_within_noise_is_not_a_gain_in_the_cards() -> None:
    report = report_with(SYNTHETIC, metric=False)
    report["latency"]["results"] = [
        r for r in report["latency"]["results"] if r["verdict"] == "within noise"
    ]
    speed = next(c for c in cards(report) if c[0] == "Speedup")
    assert speed[1] == "No gain shown" and "within noise" in speed[2]
