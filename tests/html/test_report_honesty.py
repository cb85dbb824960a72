"""What the page claims: uniform histograms that bin as numpy does, speedups called gains
only outside the noise, and each storage figure labelled with how it was obtained."""

import copy
from typing import Any

import numpy as np
import pytest

from pruning.html import render_report_html
from pruning.html.latency_section import speed_card
from pruning.html.magnitudes import BINS, magnitude_histogram, uniform_counts
from pruning.html.values import TIMES
from tests.html.report_factory import make_report, make_weights


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_bins_count_as_numpy_with_explicit_edges_up_to_edge_rounding(
    dtype: type, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(50_000) * 3
    values[rng.random(values.size) < 0.6] = 0.0
    array = values.astype(dtype)
    magnitudes = np.abs(array.astype(np.float64))
    top = float(magnitudes.max())
    edges = np.linspace(0.0, top, BINS + 1)
    # A value within rounding of an inner edge may land on either side of it: leave those out.
    distance = np.abs(magnitudes[:, None] - edges[None, 1:-1]).min(axis=1)
    clear = distance > 1e-6 * top
    counts, zeros = uniform_counts(array[clear], top)
    nonzero = magnitudes[clear]
    expected = np.histogram(nonzero[nonzero > 0], bins=edges)[0]
    assert counts.tolist() == expected.tolist()
    assert zeros == int((nonzero == 0).sum())


def test_histogram_totals_hold_for_values_on_the_edges() -> None:
    edges_hit = np.linspace(0.0, 2.0, BINS + 1).astype(np.float32)  # every edge, exactly
    after = {"w": np.concatenate([edges_hit, -edges_hit, np.zeros(7, np.float32)])}
    hist = magnitude_histogram(None, after)
    assert hist is not None and hist.after is not None
    assert sum(hist.after.bins) + hist.after.zeros == hist.after.total == after["w"].size
    assert hist.after.zeros == 2 + 7  # 0.0 and -0.0 from the edges, and the zeros


def _report_with(verdict: str, speedup: float, ci: list[float] | None) -> dict[str, Any]:
    _, after = make_weights()
    report = copy.deepcopy(make_report(after))
    (first, *_) = report["latency"]["results"]
    report["latency"]["results"] = [
        {**first, "speedup": speedup, "speedup_ci95": ci, "verdict": verdict}
    ]
    return report


def test_a_speedup_inside_the_noise_is_not_presented_as_a_gain() -> None:
    report = _report_with("within noise", 1.01, [0.98, 1.04])
    _, value, detail = speed_card(report)
    assert value == "No gain shown" and "1.01" in detail and "within noise" in detail
    page = render_report_html(report, None, None, "t")
    assert f"1.01{TIMES} faster" not in page
    assert "within noise, not a gain" in page


def test_a_speedup_whose_interval_excludes_one_is_a_gain_with_its_interval() -> None:
    report = _report_with("faster", 1.31, [1.27, 1.35])
    assert speed_card(report)[1:] == (f"1.31{TIMES}", "batch 1, median, 95% CI 1.27 to 1.35")
    assert f"1.31{TIMES} faster" in render_report_html(report, None, None, "t")


def test_too_few_iterations_are_not_judged_and_the_page_says_why() -> None:
    report = _report_with("too few iterations", 1.4, None)
    report["latency"]["warnings"] = ["batch 1: 3 iterations in the budget are too few"]
    page = render_report_html(report, None, None, "t")
    assert speed_card(report)[1] == "No gain shown"
    assert "not judged: too few iterations" in page and "3 iterations in the budget" in page


def test_each_storage_figure_says_how_it_was_obtained_in_the_table() -> None:
    _, after = make_weights()
    report = copy.deepcopy(make_report(after))
    report["storage"]["obtained"] = {
        "csr": "computed from counts",
        "file": "measured",
        "file_zip": "estimated from a sample",
    }
    page = render_report_html(report, None, None, "t")
    assert ">estimated from a sample<" in page and ">computed from counts<" in page
    assert "estimated</text>" in page or "· estimated" in page  # the chart's bar says so too
