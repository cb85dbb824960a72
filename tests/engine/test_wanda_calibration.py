"""Wanda's one forward over the calibration samples: the column norms it takes from it (one
sum for layers reading one tensor), and the upload's outputs it keeps from the same forward
for the in-sample fidelity, which then runs only the pruned artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from pruning import prune
from pruning.calibration.capture import layer_inputs
from pruning.calibration.dense_outputs import DenseOutputs
from pruning.calibration.geometry import split_rows
from pruning.calibration.stats import column_sq_norms, sq_norms
from pruning.fidelity import CALIBRATION_PASS, SEPARATE_RUN
from pruning.methods.wanda import lowest_per_row
from tests.engine.factories import FAST_LATENCY
from tests.engine.test_fidelity import _cosine, _tokens, export_encoder_onnx
from tests.engine.test_segment_calibration import calibration, names, save


@pytest.mark.parametrize("form", ("onnx", "script"))
def test_layers_reading_one_tensor_get_the_norms_of_their_own_inputs(
    tmp_path: Path, form: str
) -> None:
    model = save("attention", form, tmp_path)
    inputs, data = layer_inputs(model, ["x", "mask"]), calibration()
    layers = names(model)
    norms = column_sq_norms(inputs, layers, data)
    capture = inputs.open(layers)
    for name in layers:
        rows = [inputs.geometry[name].rows(capture(feeds)[name]) for feeds, _ in data.batches()]
        expected = sq_norms([rows[0]])
        for batch in rows[1:]:  # batch by batch, as the job sums them
            expected = expected + sq_norms([batch])
        assert np.array_equal(norms[name].numpy(), expected.numpy()), name


def test_the_capture_keeps_the_outputs_a_separate_forward_of_the_upload_gives(
    tmp_path: Path,
) -> None:
    model = save("attention", "onnx", tmp_path)
    inputs, data = layer_inputs(model, ["x", "mask"]), calibration()
    kept, first_20 = DenseOutputs(limit=data.samples), DenseOutputs(limit=20)
    column_sq_norms(inputs, names(model), data, keep=kept)
    column_sq_norms(inputs, names(model), data, keep=first_20)
    session = ort.InferenceSession(str(tmp_path / "attention-onnx.onnx"))
    separate = np.concatenate([session.run(None, dict(feeds))[0] for feeds, _ in data.batches()])
    dense = kept.first(data.samples)
    assert dense is not None and np.array_equal(dense, separate)
    assert kept.first(data.samples + 1) is None  # never a figure on fewer samples than asked
    assert sum(len(b) for b in first_20.batches) == 20  # batches of 16: 16, then 4 of 16
    head = first_20.first(20)
    assert head is not None and np.array_equal(head, separate[:20])


def _job(tmp_path: Path, method: str) -> dict[str, Any]:
    model = export_encoder_onnx(tmp_path / "encoder.onnx")
    data = tmp_path / "cal.npz"
    tokens = _tokens(24, seed=3)
    np.savez(data, input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    spec = {
        "method": {"name": method},
        "sparsity": 0.5,
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
        "calibration": {"dataset_id": "ds_cal", "samples": 16},
    }
    result = prune(model, spec, tmp_path / "out", datasets={"ds_cal": data})
    feeds = {k: v[:16] for k, v in tokens.items()}
    runs = [
        ort.InferenceSession(str(path)).run(None, feeds)[0]
        for path in (model, result.artifacts["model"])
    ]
    return {"report": result.report, "cosine": _cosine(*runs)}


def test_a_wanda_job_measures_fidelity_against_the_dense_outputs_of_its_capture(
    tmp_path: Path,
) -> None:
    job = _job(tmp_path, "wanda")
    headline = job["report"]["quality"]["fidelity"]
    block = job["report"]["calibration"]["fidelity"]
    assert headline["dense_outputs"] == block["dense_outputs"] == CALIBRATION_PASS
    assert headline["output_cosine"] == pytest.approx(job["cosine"], abs=1e-12)


def test_a_sparsegpt_job_runs_the_upload_for_its_dense_outputs(tmp_path: Path) -> None:
    """SparseGPT's forward runs segments with weights pruned along the way: no dense outputs."""
    job = _job(tmp_path, "sparsegpt")
    headline = job["report"]["quality"]["fidelity"]
    assert headline["dense_outputs"] == SEPARATE_RUN
    assert headline["output_cosine"] == pytest.approx(job["cosine"], abs=1e-12)


@pytest.mark.parametrize("fraction", (0.0, 0.3, 0.5, 0.77, 1.0))
@pytest.mark.parametrize("shape", ((7, 12), (40, 9), (1, 30)))
def test_the_selection_prunes_what_a_stable_sort_of_each_row_would(
    shape: tuple[int, int], fraction: float
) -> None:
    rng = np.random.default_rng(shape[0] * 100 + int(fraction * 10))
    scores = rng.integers(0, 4, size=shape).astype(np.float32)  # many ties at the threshold
    counts = split_rows(shape[0], shape[1], fraction)
    order = np.argsort(scores, axis=1, kind="stable")
    expected = np.zeros(shape, np.bool_)
    np.put_along_axis(expected, order, np.arange(shape[1])[None, :] < counts[:, None], axis=1)
    assert np.array_equal(lowest_per_row(scores, counts), expected)
    scores[0, 0] = np.nan  # a NaN score keeps the sort's place for it (last)
    np.put_along_axis(
        expected,
        np.argsort(scores, axis=1, kind="stable"),
        np.arange(shape[1])[None, :] < counts[:, None],
        axis=1,
    )
    assert np.array_equal(lowest_per_row(scores, counts), expected)
