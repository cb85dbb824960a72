"""A model with a symbolic sequence axis takes the length its job's data has: no
input_shapes are needed when calibration data gives the per-sample shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pruning import prune
from pruning.calibration.data_shapes import array_shapes
from pruning.errors import InvalidSpec
from tests.engine.bert_factories import HIDDEN, calibration_npz, onnx_bert
from tests.engine.factories import fast_spec

LENGTH = 9  # not the export's example length: the data decides


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return onnx_bert(tmp_path_factory.mktemp("bert") / "bert.onnx", None, sequence_axis=True)


def sequence_data(path: Path, samples: int = 12) -> Path:
    x = np.random.default_rng(3).standard_normal((samples, LENGTH, HIDDEN)).astype(np.float32)
    np.savez(path, x=x)
    return path


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_a_symbolic_sequence_axis_takes_its_length_from_the_calibration_data(
    model: Path, tmp_path: Path, method: str
) -> None:
    data = sequence_data(tmp_path / "calibration.npz")
    spec = fast_spec(
        method={"name": method},
        sparsity=0.5,
        scope="layerwise",
        calibration={"dataset_id": "ds", "samples": 12},
    )
    report = prune(model, spec, tmp_path / "out", datasets={"ds": data}).report
    inputs = report["latency"]["inputs"]
    assert inputs["shapes"] == {"x": ["batch", LENGTH, HIDDEN]}
    assert "calibration data 'ds'" in inputs["source"]
    synthetic = report["quality"]["synthetic_fidelity"]
    assert synthetic["measured"] and synthetic["inputs"]["shapes"]["x"][1] == LENGTH
    assert report["quality"]["fidelity"]["source"] == "calibration data"


def test_given_input_shapes_still_win_over_the_data(model: Path, tmp_path: Path) -> None:
    data = sequence_data(tmp_path / "calibration.npz")
    spec = fast_spec(
        method={"name": "wanda"},
        sparsity=0.5,
        calibration={"dataset_id": "ds", "samples": 12},
        input_shapes={"x": [1, LENGTH, HIDDEN]},
    )
    report = prune(model, spec, tmp_path / "out", datasets={"ds": data}).report
    assert report["latency"]["inputs"]["source"] == "input_shapes"


def test_without_input_shapes_or_data_a_symbolic_axis_is_an_invalid_spec(
    model: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSpec, match="symbolic dimension 'sequence'") as err:
        prune(model, fast_spec(sparsity=0.5), tmp_path / "out")
    assert err.value.field == "input_shapes"
    assert "calibration or evaluation data" in str(err.value)


def test_data_of_another_rank_does_not_size_the_axis(model: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=np.zeros((4, HIDDEN), np.float32))
    spec = fast_spec(method={"name": "wanda"}, calibration={"dataset_id": "ds", "samples": 4})
    with pytest.raises(InvalidSpec, match="symbolic dimension"):
        prune(model, spec, tmp_path / "out", datasets={"ds": flat})


def test_array_shapes_are_read_from_the_headers(tmp_path: Path) -> None:
    path = calibration_npz(tmp_path / "c.npz", samples=5)
    assert array_shapes(path) == {"x": (5, 6, HIDDEN)}
    (tmp_path / "not.npz").write_bytes(b"not a zip")
    assert array_shapes(tmp_path / "not.npz") == {}
