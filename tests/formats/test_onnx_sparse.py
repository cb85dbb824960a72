"""Pruned ONNX weights as sparse initializers: smaller files that ONNX Runtime runs the same."""

import copy
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pruning.formats import SparseFormatError, write_onnx_sparse
from tests.formats.factories import (
    MODELS,
    export_onnx,
    inputs,
    prune_smallest,
    run_onnx,
    sparse_matrix,
)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_sparse_model_runs_in_onnxruntime_with_the_same_outputs(
    model_name: str, tmp_path: Path
) -> None:
    make, input_shape = MODELS[model_name]
    pruned = export_onnx(prune_smallest(make()), input_shape, tmp_path / "pruned.onnx")

    result = write_onnx_sparse(pruned, tmp_path / "sparse.onnx")

    model = onnx.load(str(tmp_path / "sparse.onnx"))
    weights = sorted(n for n, p in make().named_parameters() if p.ndim >= 2)
    assert sorted(result.sparse) == weights
    assert sorted(s.values.name for s in model.graph.sparse_initializer) == weights
    assert all(name.endswith(".bias") for name in result.not_smaller)
    assert result.fallbacks == ()
    assert result.max_relative_error <= 1e-6
    x = inputs(input_shape, batch=5)
    want, got = run_onnx(pruned, x), run_onnx(tmp_path / "sparse.onnx", x)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    assert (tmp_path / "sparse.onnx").stat().st_size < 0.75 * pruned.stat().st_size


def test_initializers_also_listed_as_graph_inputs_can_go_sparse(tmp_path: Path) -> None:
    make, input_shape = MODELS["mlp"]
    pruned = export_onnx(prune_smallest(make()), input_shape, tmp_path / "pruned.onnx")
    model = onnx.load(str(pruned))
    for init in model.graph.initializer:  # what old exporters wrote: weights as inputs too
        model.graph.input.append(
            helper.make_tensor_value_info(init.name, init.data_type, init.dims)
        )
    onnx.save(model, str(tmp_path / "as_inputs.onnx"))
    feeds = {"x": inputs(input_shape)}

    result = write_onnx_sparse(tmp_path / "as_inputs.onnx", tmp_path / "sparse.onnx", feeds=feeds)

    assert len(result.sparse) == 3 and result.fallbacks == ()
    x = inputs(input_shape)
    assert np.array_equal(run_onnx(tmp_path / "sparse.onnx", x), run_onnx(pruned, x))


def test_a_model_onnxruntime_cannot_run_is_reported_as_such(tmp_path: Path) -> None:
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example.none")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.example.none", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(tmp_path / "m.onnx"))
    feeds = {"x": np.ones(2, np.float32)}
    with pytest.raises(SparseFormatError, match="cannot run the dense model"):
        write_onnx_sparse(tmp_path / "m.onnx", tmp_path / "sparse.onnx", feeds=feeds)
    assert not (tmp_path / "sparse.onnx").exists()


def test_dense_weights_stay_dense(tmp_path: Path) -> None:
    make, input_shape = MODELS["mlp"]
    dense = export_onnx(make(), input_shape, tmp_path / "dense.onnx")
    result = write_onnx_sparse(dense, tmp_path / "sparse.onnx")
    assert result.sparse == ()
    assert len(result.not_smaller) == 6


def _graph_model(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], out: str
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [64, 64])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_an_initializer_that_is_a_graph_output_stays_dense_with_a_reason(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(sparse_matrix((64, 64), 0.95), "w")
    model = _graph_model([], [weight], "w")
    model.graph.input.pop()  # x is unused: the model only returns its weight
    onnx.save(model, str(tmp_path / "m.onnx"))

    result = write_onnx_sparse(tmp_path / "m.onnx", tmp_path / "sparse.onnx", feeds={})

    assert result.sparse == ()
    (fallback,) = result.fallbacks
    assert fallback.name == "w" and "graph output" in fallback.reason


def test_a_tensor_onnxruntime_cannot_load_as_sparse_falls_back_with_its_reason(
    tmp_path: Path,
) -> None:
    # ORT 1.32 cannot densify sparse 4-bit initializers; the float weight beside it can go.
    float_weight = sparse_matrix((64, 64), 0.95, seed=1)
    int4_weight = np.round(sparse_matrix((64, 64), 0.95, seed=2) * 3).astype(ml_dtypes.int4)
    nodes = [
        helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "qf"], ["y"]),
    ]
    inits = [numpy_helper.from_array(float_weight, "w"), numpy_helper.from_array(int4_weight, "q")]
    onnx.save(_graph_model(nodes, inits, "y"), str(tmp_path / "m.onnx"))

    result = write_onnx_sparse(tmp_path / "m.onnx", tmp_path / "sparse.onnx")

    assert result.sparse == ("w",)
    (fallback,) = result.fallbacks
    assert fallback.name == "q"
    assert "could not load" in fallback.reason and "SparseTensorProtoToDense" in fallback.reason
    x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    want = run_onnx(tmp_path / "m.onnx", x)
    assert np.allclose(run_onnx(tmp_path / "sparse.onnx", x), want, rtol=1e-6, atol=1e-6)


def test_result_serialises_for_the_report(tmp_path: Path) -> None:
    make, input_shape = MODELS["mlp"]
    pruned = export_onnx(prune_smallest(copy.deepcopy(make())), input_shape, tmp_path / "p.onnx")
    summary = write_onnx_sparse(pruned, tmp_path / "sparse.onnx").to_dict()
    assert summary["runtime"].startswith("onnxruntime ")
    assert summary["path"] == str(tmp_path / "sparse.onnx")
    assert "dense" in summary["note"]
