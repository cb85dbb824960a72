"""Original model + sparse npz of its pruned weights = the pruned model, output for output."""

import copy
import re
from pathlib import Path

import numpy as np
import pytest

from pruning.formats import ModelMismatch, encode_sparse_npz, rebuild_model
from tests.formats.factories import (
    MODELS,
    export_onnx,
    export_torchscript,
    inputs,
    prune_smallest,
    run_onnx,
    run_torchscript,
    weights,
)

EXPORTERS = {"onnx": (export_onnx, run_onnx), "torchscript": (export_torchscript, run_torchscript)}


@pytest.mark.parametrize("model_format", sorted(EXPORTERS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_rebuilt_model_gives_the_pruned_models_outputs_exactly(
    model_name: str, model_format: str, tmp_path: Path
) -> None:
    make, input_shape = MODELS[model_name]
    export, run = EXPORTERS[model_format]
    dense = make()
    pruned = prune_smallest(copy.deepcopy(dense))
    original = export(dense, input_shape, tmp_path / "dense.model")
    reference = export(pruned, input_shape, tmp_path / "pruned.model")
    encode_sparse_npz(weights(pruned), tmp_path / "weights.npz")

    rebuilt = rebuild_model(
        original,
        tmp_path / "weights.npz",
        tmp_path / "rebuilt.model",
        model_format,  # type: ignore[arg-type]
    )

    x = inputs(input_shape)
    assert np.array_equal(run(rebuilt, x), run(reference, x))
    assert not np.array_equal(run(original, x), run(reference, x))


@pytest.mark.parametrize("model_format", sorted(EXPORTERS))
def test_a_tensor_the_model_lacks_is_refused(model_format: str, tmp_path: Path) -> None:
    make, input_shape = MODELS["mlp"]
    export, _ = EXPORTERS[model_format]
    original = export(make(), input_shape, tmp_path / "dense.model")
    encode_sparse_npz({"not.a.weight": np.zeros((2, 2), np.float32)}, tmp_path / "w.npz")
    with pytest.raises(ModelMismatch, match=re.escape("not.a.weight")):
        rebuild_model(original, tmp_path / "w.npz", tmp_path / "out.model", model_format)  # type: ignore[arg-type]
    assert not (tmp_path / "out.model").exists()


def test_a_tensor_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    make, input_shape = MODELS["mlp"]
    original = export_onnx(make(), input_shape, tmp_path / "dense.onnx")
    encode_sparse_npz({"0.weight": np.zeros((16, 64), np.float32)}, tmp_path / "w.npz")
    with pytest.raises(ModelMismatch, match=r"float32\[16, 64\] in the npz"):
        rebuild_model(original, tmp_path / "w.npz", tmp_path / "out.onnx", "onnx")
