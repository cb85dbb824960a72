"""N:M masks: exactly n zeros in every group of m consecutive weights along the input
dimension, for any scorer, in the layout each operator stores its weight."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from pruning import prune
from pruning.masks.nm import nm_mask, prune_nm
from pruning.methods import MagnitudeScorer, RandomScorer
from pruning.tensors import WeightTensor
from tests.engine.factories import FAST_LATENCY, export_onnx, make_convnet, make_mlp
from tests.engine.structured_factories import matmul_mlp


def _tensor(shape: tuple[int, ...], seed: int = 0) -> WeightTensor:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return WeightTensor("w", "Gemm", values)


def _zeros_per_group(matrix: np.ndarray, m: int) -> np.ndarray:
    """Zeros in each run of m along the last axis of an (outputs, inputs) matrix."""
    return (matrix.reshape(matrix.shape[0], -1, m) == 0).sum(axis=-1)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8), (1, 2)])
@pytest.mark.parametrize("scorer", [MagnitudeScorer(), RandomScorer(seed=3)])
def test_every_group_of_m_inputs_has_exactly_n_zeros(n: int, m: int, scorer) -> None:
    tensor = _tensor((16, 32))
    [layer] = prune_nm([tensor], scorer, n, m)
    assert layer.pruned
    assert (_zeros_per_group(tensor.values, m) == n).all()


def test_magnitude_keeps_the_largest_of_each_group() -> None:
    tensor = WeightTensor("w", "Gemm", np.array([[0.1, -3.0, 2.0, -0.2, 5, 6, 7, 0.5]], np.float32))
    prune_nm([tensor], MagnitudeScorer(), 2, 4)
    assert tensor.values.tolist() == [[0.0, -3.0, 2.0, 0.0, 0.0, 6.0, 7.0, 0.0]]


def test_conv_groups_run_over_in_channels_times_kernel_of_each_output_channel() -> None:
    tensor = _tensor((8, 4, 3, 3))  # 36 inputs per output channel
    prune_nm([tensor], MagnitudeScorer(), 2, 4)
    assert (_zeros_per_group(tensor.values.reshape(8, 36), 4) == 2).all()


def test_in_by_out_weights_are_grouped_down_their_columns() -> None:
    tensor = _tensor((32, 6))  # MatMul B: 32 inputs x 6 outputs
    prune_nm([tensor], MagnitudeScorer(), 2, 4, columns={"w"})
    assert (_zeros_per_group(tensor.values.T, 4) == 2).all()


def test_a_layer_whose_inputs_do_not_divide_by_m_is_left_dense_with_the_reason() -> None:
    tensor = _tensor((8, 27))
    original = tensor.values.copy()
    [layer] = prune_nm([tensor], MagnitudeScorer(), 2, 4)
    assert not layer.pruned and "27 is not a multiple of m=4" in (layer.reason or "")
    np.testing.assert_array_equal(tensor.values, original)


def test_ties_go_to_the_earlier_weight_so_masks_are_deterministic() -> None:
    tensor = WeightTensor("w", "Gemm", np.ones((2, 4), np.float32))
    mask, _ = nm_mask(tensor, MagnitudeScorer(), 2, 4)
    assert mask is not None and mask.tolist() == [[True, True, False, False]] * 2


def test_only_2_4_layers_of_tensor_core_shape_qualify_for_sparse_tensor_cores() -> None:
    big, small = _tensor((64, 128)), _tensor((10, 128))
    layers = prune_nm([big, small], MagnitudeScorer(), 2, 4)
    assert [layer.tensor_core_ready(2, 4) for layer in layers] == [True, False]
    assert not prune_nm([_tensor((64, 128))], MagnitudeScorer(), 1, 4)[0].tensor_core_ready(1, 4)


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _spec() -> dict:
    return {
        "sparsity": 0.5,
        "granularity": {"kind": "n:m", "n": 2, "m": 4},
        "latency": FAST_LATENCY,
    }


def test_prune_writes_2_4_into_a_gemm_model_and_reports_it(tmp_path: Path) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")  # Gemm, transB=1: (out, in)
    result = prune(model, _spec(), tmp_path / "out")
    weights = _initializers(result.artifacts["model"])
    assert (_zeros_per_group(weights["0.weight"], 4) == 2).all()
    assert (_zeros_per_group(weights["2.weight"], 4) == 2).all()
    structure = result.report["structure"]
    assert structure["kind"] == "n:m" and all(layer["pruned"] for layer in structure["layers"])
    assert "sparse tensor cores" in result.report["latency"]["explanation"]


def test_prune_groups_matmul_weights_along_axis_0(tmp_path: Path) -> None:
    result = prune(matmul_mlp(tmp_path / "mm.onnx"), _spec(), tmp_path / "out")
    weights = _initializers(result.artifacts["model"])
    assert (_zeros_per_group(weights["w1"].T, 4) == 2).all()  # w1 is (12 in, 20 out)
    assert (_zeros_per_group(weights["w2"].T, 4) == 2).all()


def test_prune_reports_which_conv_layers_were_left_dense(tmp_path: Path) -> None:
    result = prune(export_onnx(make_convnet(), tmp_path / "c.onnx"), _spec(), tmp_path / "out")
    layers = {layer["name"]: layer for layer in result.report["structure"]["layers"]}
    first = next(iter(layers.values()))  # 3 in-channels x 3 x 3 = 27 inputs
    assert not first["pruned"] and "multiple of m=4" in first["reason"]
    assert sum(layer["pruned"] for layer in layers.values()) == len(layers) - 1
