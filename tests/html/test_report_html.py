"""The report page: self-contained, escaped, labelled, and tolerant of missing figures."""

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pruning.formats import encode_sparse_npz, storage_report
from pruning.html import render_report_html
from pruning.html.magnitudes import magnitude_histogram
from tests.html.report_factory import EVIL_NAME, make_report, make_weights

CHARTS = ["chart-sparsity", "chart-weights", "chart-latency", "chart-storage", "chart-training"]


@pytest.fixture(scope="module")
def weights() -> tuple[dict[str, Any], dict[str, Any]]:
    return make_weights()


@pytest.fixture(scope="module")
def page(weights: tuple[dict[str, Any], dict[str, Any]]) -> str:
    before, after = weights
    return render_report_html(make_report(after), before, after, "Report for <i>model</i>")


def svgs(page: str) -> list[ET.Element]:
    """Each inline SVG parsed as XML: this also proves every chart is well-formed."""
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def test_page_loads_nothing_from_the_network(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "url(" not in page
    assert re.findall(r'\b(?:src|href)="(?!#)', page) == []
    assert "default-src 'none'" in page


def test_urls_in_report_strings_stay_plain_text() -> None:
    report = {"sparsity": {"layers": [{"name": "https://example.invalid/w", "sparsity": 0.5}]}}
    page = render_report_html(report, None, None, "t")
    assert re.findall(r'\b(?:src|href)="(?!#)', page) == []
    assert ">https://example.invalid/w<" in page  # a label, never a link


def test_strings_from_the_report_are_escaped(page: str) -> None:
    assert "<script>" not in page and "alert(" in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;.weight" in page
    assert "<i>model</i>" not in page and "Report for &lt;i&gt;model&lt;/i&gt;" in page
    assert "ds_&lt;b&gt;eval&lt;/b&gt;" in page


def test_every_plot_is_present_and_labelled_for_screen_readers(page: str) -> None:
    charts = {svg.get("id", ""): svg for svg in svgs(page)}
    assert sorted(charts) == sorted(CHARTS)
    for chart_id, svg in charts.items():
        title, desc = svg[0], svg[1]
        assert title.tag == "title" and title.text, chart_id
        assert desc.tag == "desc" and desc.text, chart_id
        assert svg.get("role") == "img"
        assert svg.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"


@pytest.mark.parametrize(
    ("chart_id", "labels"),
    [
        ("chart-sparsity", ["sparsity (share of weights that are zero)", "target 80%"]),
        ("chart-weights", ["weights (log scale)", "|weight| (nonzero)", "= 0"]),
        ("chart-latency", ["ms", "batch 1", "batch 32", "dense", "pruned"]),
        ("chart-storage", ["bytes", "dense float32", "sparse_npz_zstd"]),
        ("chart-training", ["step", "loss", "sparsity"]),
    ],
)
def test_axes_are_labelled(page: str, chart_id: str, labels: list[str]) -> None:
    (svg,) = [s for s in svgs(page) if s.get("id") == chart_id]
    texts = {t.text for t in svg.iter("text")}
    for label in labels:
        assert label in texts, (chart_id, label)


def test_every_layer_is_in_the_table_and_the_chart(page: str) -> None:
    for name in ["conv1.weight", "fc.weight", EVIL_NAME]:
        escaped = name.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        assert page.count(f">{escaped}<") >= 2, name


def test_a_report_with_nothing_renders_not_measured() -> None:
    page = render_report_html({}, None, None, "empty")
    for what in ["no per-layer sparsity", "the weights were not given", "no latency results"]:
        assert f"Not measured: {what}" in page
    for what in ["no fidelity figures", "no storage figures", "no timings"]:
        assert f"Not measured: {what}" in page
    assert "<svg" not in page and 'id="training"' not in page


def test_malformed_values_render_instead_of_crashing() -> None:
    report: dict[str, Any] = {
        "sparsity": {"target": "high", "achieved": float("nan"), "layers": [7, {"name": None}]},
        "storage": {"dense_bytes": 100, "formats": {"csr": "big", "bitmask": {"bytes": 40}}},
        "latency": {"results": [{"batch_size": 1, "dense_ms": {"p50": 1.0}}, "x"], "threads": True},
        "quality": {"fidelity": {"output_cosine": None}, "metric": {"name": "mse", "dense": 0.1}},
        "timings": {"load_s": "slow"},
        "training": {"curve": [{"step": 1, "loss": "x"}, {"step": 2, "loss": 0.5}, None]},
    }
    page = render_report_html(report, {}, {"w": np.zeros((3, 3), np.float32)}, "t")
    assert "not measured" in page and 'id="chart-storage"' in page and 'id="chart-training"' in page
    svgs(page)


def test_many_layers_chart_the_largest_and_table_all() -> None:
    layers = [
        {"name": f"block{i}.weight", "parameters": 100 + i, "nonzeros": 10, "sparsity": 0.9}
        for i in range(150)
    ]
    page = render_report_html({"sparsity": {"layers": layers}}, None, None, "t")
    (chart,) = [s for s in svgs(page) if s.get("id") == "chart-sparsity"]
    labels = [t.text for t in chart.iter("text") if (t.text or "").startswith("block")]
    assert labels == [f"block{i}.weight" for i in range(90, 150)]
    assert "Showing the 60 largest of 150 tensors" in page
    assert page.count(">block0.weight<") == 1  # in the table only


def test_the_training_section_appears_only_with_a_curve(
    weights: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report = make_report(weights[1])
    del report["training"]
    page = render_report_html(report, None, None, "t")
    assert 'id="training"' not in page and 'href="#training"' not in page


def test_an_older_report_with_evaluation_fidelity_leads_with_it_beside_the_synthetic_one(
    weights: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report = make_report(weights[1])  # quality.fidelity without a source: synthetic inputs
    on_data = {"output_cosine": 0.9411, "max_abs_diff": 2.5, "top1_agreement": 0.955}
    report["quality"]["metric"]["fidelity"] = {**on_data, "samples": 397}
    page = render_report_html(report, None, None, "t")
    assert "top-1 agreement 95.5%, on 397 samples of evaluation data" in page
    assert "On synthetic inputs" in page and "On 397 samples of evaluation data" in page
    assert "0.9411" in page and "0.9971" in page

    del report["quality"]["metric"]["fidelity"]
    assert "top-1 agreement 98.1%, on synthetic inputs" in render_report_html(
        report, None, None, "t"
    )


def test_magnitude_histogram_counts_every_weight(
    weights: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    before, after = weights
    hist = magnitude_histogram(before, after)
    assert hist is not None and hist.before is not None and hist.after is not None
    total = sum(w.size for w in before.values())
    assert sum(hist.before.bins) + hist.before.zeros == hist.before.total == total
    assert sum(hist.after.bins) + hist.after.zeros == total
    assert hist.after.zeros == sum(int((w == 0).sum()) for w in after.values())
    assert hist.edges[-1] == max(float(np.abs(w).max()) for w in before.values())


def test_storage_report_from_the_formats_package_renders_with_its_floor(
    weights: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    _, after = weights
    encode_sparse_npz(after, tmp_path / "w.npz")
    storage = storage_report(after, {"sparse_npz": tmp_path / "w.npz"})
    report = copy.deepcopy(make_report(after)) | {"storage": storage}
    page = render_report_html(report, None, None, "t")
    (chart,) = [s for s in svgs(page) if s.get("id") == "chart-storage"]
    texts = {t.text or "" for t in chart.iter("text")}
    assert {"csr", "bitmask", "sparse_npz", "sparse_npz_zip", "sparse_npz_zstd"} <= texts
    assert any(t.startswith("entropy floor") for t in texts)
    assert "How each figure was obtained" in page


def test_layers_are_shown_by_node_name_first_and_tensor_name_second() -> None:
    layer = {
        "name": "onnx::MatMul_782",
        "node": "/encoder/layer.0/attention/self/query/MatMul",
        "op_type": "MatMul",
        "parameters": 256,
        "nonzeros": 128,
        "sparsity": 0.5,
    }
    page = render_report_html({"sparsity": {"layers": [layer]}}, None, None, "t")
    (chart,) = [s for s in svgs(page) if s.get("id") == "chart-sparsity"]
    assert layer["node"] in [t.text for t in chart.iter("text")]
    row = re.search(r"<tr><th scope=\"row\">(.*?)</tr>", page.split("Every pruned tensor")[1])
    assert row is not None
    cells = re.findall(r">([^<]+)</t[hd]>", row.group(0))
    assert cells[:3] == [layer["node"], layer["name"], "MatMul"]


def test_skipped_tensors_are_listed_with_their_reason() -> None:
    layer = {"name": "fc.weight", "parameters": 10, "nonzeros": 5, "sparsity": 0.5}
    skipped = {"tensor": "pooler.dense.weight", "node": "pooler.dense", "reason": "dead weight"}
    report = {"sparsity": {"achieved": 0.5, "layers": [layer]}, "skipped": [skipped]}
    page = render_report_html(report, None, None, "t")
    assert "over the 1 pruned tensors; 1 selected tensors were skipped" in page
    table = page.split("Selected tensors left as they are")[1]
    assert all(f">{text}<" in table for text in skipped.values())
