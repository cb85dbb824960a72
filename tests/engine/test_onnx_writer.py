"""The model file is written one initializer at a time, and reads back as the same model."""

from pathlib import Path

import onnx
import pytest

from pruning.models.onnx_model import write_model
from tests.engine.factories import export_onnx, make_convnet, make_mlp


@pytest.mark.parametrize("make", [make_mlp, make_convnet], ids=["mlp", "convnet"])
def test_a_model_written_piecewise_reads_back_as_the_same_model(
    make: object, tmp_path: Path
) -> None:
    proto = onnx.load(str(export_onnx(make(), tmp_path / "m.onnx")))  # type: ignore[operator]
    proto.metadata_props.add(key="note", value="x" * 300)  # a field after the graph's number
    write_model(proto, tmp_path / "w.onnx")
    back = onnx.load(str(tmp_path / "w.onnx"))
    assert back == proto
    assert back.SerializeToString() == proto.SerializeToString()
    onnx.checker.check_model(str(tmp_path / "w.onnx"))


def test_a_model_without_initializers_is_written_too(tmp_path: Path) -> None:
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    proto = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [value], [out]))
    write_model(proto, tmp_path / "w.onnx")
    assert onnx.load(str(tmp_path / "w.onnx")) == proto
