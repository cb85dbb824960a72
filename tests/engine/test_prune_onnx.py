"""prune() on ONNX: the artifact keeps the graph, runs, and the report describes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from pruning import DataMismatch, LayerPatternUnmatched, PruneResult, prune
from tests.engine.factories import (
    EmbeddingClassifier,
    export_onnx,
    fast_spec,
    make_convnet,
    make_mlp,
    run_onnx,
)


def weights(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


@pytest.fixture
def convnet_onnx(tmp_path: Path) -> Path:
    return export_onnx(make_convnet(), tmp_path / "convnet.onnx")


def test_pruned_onnx_keeps_graph_signature_and_runs_in_onnxruntime(
    convnet_onnx: Path, tmp_path: Path
) -> None:
    result = prune(convnet_onnx, fast_spec(), tmp_path / "out")
    before, after = onnx.load(str(convnet_onnx)), onnx.load(str(result.artifacts["model"]))
    assert [(n.op_type, list(n.input)) for n in after.graph.node] == [
        (n.op_type, list(n.input)) for n in before.graph.node
    ]
    assert after.graph.input == before.graph.input
    assert after.graph.output == before.graph.output
    assert after.opset_import == before.opset_import
    onnx.checker.check_model(after)
    out = run_onnx(result.artifacts["model"], np.ones((3, 3, 16, 16), np.float32))
    assert out.shape == (3, 10)


def test_only_selected_weights_change(convnet_onnx: Path, tmp_path: Path) -> None:
    result = prune(convnet_onnx, fast_spec(layers={"exclude": ["7.*"]}), tmp_path / "out")
    before, after = weights(convnet_onnx), weights(result.artifacts["model"])
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert changed == {"0.weight", "3.weight"}
    assert result.report["sparsity"]["excluded"] == ["7.weight"]


def test_report_matches_the_saved_artifact(convnet_onnx: Path, tmp_path: Path) -> None:
    result = prune(convnet_onnx, fast_spec(scope="layerwise"), tmp_path / "out")
    saved = weights(result.artifacts["model"])
    layers = result.report["sparsity"]["layers"]
    for layer in layers:
        values = saved[layer["name"]]
        assert layer["nonzeros"] == np.count_nonzero(values)
        assert layer["shape"] == list(values.shape)
        assert abs(layer["parameters"] * 0.8 - (layer["parameters"] - layer["nonzeros"])) <= 0.5
    selected = sum(layer["parameters"] for layer in layers)
    assert result.report["sparsity"]["achieved"] == pytest.approx(
        1 - sum(layer["nonzeros"] for layer in layers) / selected
    )
    json.dumps(result.report, allow_nan=False)


def test_report_storage_matches_artifact_file_size(convnet_onnx: Path, tmp_path: Path) -> None:
    result = prune(convnet_onnx, fast_spec(), tmp_path / "out")
    storage = result.report["storage"]
    formats = storage["formats"]
    assert formats["file"] == result.artifacts["model"].stat().st_size
    assert formats["dense_file"] == convnet_onnx.stat().st_size
    assert formats["file_zip"] < formats["dense_file_zip"]  # zeros compress
    layers = result.report["sparsity"]["layers"]
    assert storage["dense_bytes"] == 4 * sum(layer["parameters"] for layer in layers)
    nnz = sum(layer["nonzeros"] for layer in layers)
    rows = sum(layer["shape"][0] + 1 for layer in layers)
    # Encoded from the arrays, with indices no wider than int32: at most the textbook figure.
    assert 4 * nnz < formats["csr"] <= 8 * nnz + 4 * rows
    assert set(storage["method"]) >= {"csr", "bitmask", "file", "file_zip"}


def test_requested_sparse_outputs_are_written_and_sized_as_on_disk(
    convnet_onnx: Path, tmp_path: Path
) -> None:
    spec = fast_spec(outputs=["model", "sparse_npz", "onnx_sparse"])
    result = prune(convnet_onnx, spec, tmp_path / "out")
    formats = result.report["storage"]["formats"]
    for name in ("sparse_npz", "onnx_sparse"):
        assert formats[name] == result.artifacts[name].stat().st_size
    assert result.artifacts["report_html"].read_text().startswith("<!DOCTYPE html>")
    assert "onnx_sparse" in result.report["storage"]


def test_latency_is_measured_per_batch_size_and_a_fixed_batch_is_skipped(
    tmp_path: Path,
) -> None:
    fixed = export_onnx(make_mlp(), tmp_path / "fixed.onnx", dynamic_batch=False)  # batch 2
    spec = fast_spec(latency={"batch_sizes": [2, 8], "warmup": 0, "iterations": 2})
    latency = prune(fixed, spec, tmp_path / "out").report["latency"]
    assert latency["runtime"].startswith("onnxruntime ")
    assert [r["batch_size"] for r in latency["results"]] == [2]
    assert latency["results"][0]["dense_ms"]["p50"] > 0
    assert latency["skipped"] == [
        {"batch_size": 8, "reason": "input 'x' has a fixed batch dimension of 2"}
    ]


def test_fidelity_compares_outputs_on_seeded_inputs(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    gentle = prune(path, fast_spec(sparsity=0.1), tmp_path / "a").report["quality"]
    harsh = prune(path, fast_spec(sparsity=0.95), tmp_path / "b").report["quality"]
    assert gentle["metric"] is None
    assert gentle["fidelity"]["output_cosine"] > harsh["fidelity"]["output_cosine"]
    assert 0.0 <= harsh["fidelity"]["top1_agreement"] <= 1.0
    assert gentle["fidelity"]["inputs"]["samples"] == 16


def test_overrides_apply_their_own_fraction(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    spec = fast_spec(sparsity=0.5, layers={"overrides": {"2.*": 0.25}})
    layers = {x["name"]: x for x in prune(path, spec, tmp_path / "o").report["sparsity"]["layers"]}
    assert layers["2.weight"]["parameters"] - layers["2.weight"]["nonzeros"] == round(0.25 * 640)
    assert layers["2.weight"]["target"] == 0.25
    assert layers["0.weight"]["parameters"] - layers["0.weight"]["nonzeros"] == round(0.5 * 2048)


def test_unmatched_pattern_is_rejected_with_its_name(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    with pytest.raises(LayerPatternUnmatched, match="classifier") as err:
        prune(path, fast_spec(layers={"overrides": {"classifier*": 0.5}}), tmp_path / "o")
    assert err.value.code == "layer_pattern_unmatched"
    assert "0.weight" in err.value.message  # lists what is available
    assert not (tmp_path / "o").exists()  # refused before any work


def test_input_shapes_that_contradict_the_model_are_a_data_mismatch(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    with pytest.raises(DataMismatch):
        prune(path, fast_spec(input_shapes={"x": [1, 31]}), tmp_path / "o")


def test_progress_goes_through_the_stages_in_order(tmp_path: Path) -> None:
    events: list[tuple[str, float, Any]] = []
    path = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    result = prune(path, fast_spec(), tmp_path / "o", progress=lambda *e: events.append(e))
    assert isinstance(result, PruneResult)
    stages = list(dict.fromkeys(stage for stage, _, _ in events))
    assert stages == ["load", "prune", "save", "fidelity", "latency", "report"]
    fractions = [f for _, f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert set(result.report["timings"]) >= {"load_s", "prune_s", "retrain_s", "total_s"}


def test_token_ids_are_drawn_across_the_embedding_and_embeddings_stay_dense(
    tmp_path: Path,
) -> None:
    path = export_onnx(EmbeddingClassifier().eval(), tmp_path / "emb.onnx")
    result = prune(path, fast_spec(sparsity=0.5), tmp_path / "out")
    fidelity = result.report["quality"]["fidelity"]
    assert fidelity["inputs"]["dtypes"] == {"x": "int64"}
    assert "[0, 50)" in fidelity["inputs"]["fill"]["x"]
    assert [x["name"] for x in result.report["sparsity"]["layers"]] == ["head.weight"]
    before, after = weights(path), weights(result.artifacts["model"])
    assert np.array_equal(before["embed.weight"], after["embed.weight"])


def test_a_layer_pruned_away_entirely_is_reported_as_a_warning(tmp_path: Path) -> None:
    mlp = make_mlp()
    with torch.no_grad():
        mlp[2].weight.mul_(1e-3)  # a classifier initialised far smaller than the layer before
    model = export_onnx(mlp, tmp_path / "mlp.onnx")
    report = prune(model, fast_spec(sparsity=0.8), tmp_path / "out").report
    warnings = report["sparsity"]["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("2.weight: all 640 weights are zero")
    layerwise = prune(model, fast_spec(sparsity=0.8, scope="layerwise"), tmp_path / "lw")
    assert layerwise.report["sparsity"]["warnings"] == []


def test_the_report_page_is_titled_with_the_uploaded_model_name(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "model.onnx")  # a worker's generic copy
    result = prune(path, fast_spec(), tmp_path / "out", model_name="mnist <mlp>.onnx")
    page = result.artifacts["report_html"].read_text()
    assert "<title>Shears report: mnist &lt;mlp&gt;.onnx</title>" in page
