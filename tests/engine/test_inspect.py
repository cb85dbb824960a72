"""inspect_model: format from content, validation, signature and prunable tensors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from pruning import InvalidModel, UnsupportedOperator, inspect_model
from tests.engine.factories import (
    EmbeddingClassifier,
    export_onnx,
    export_torchscript,
    make_convnet,
    make_mlp,
)


def test_inspect_detects_format_from_content(tmp_path: Path) -> None:
    onnx_named_pt = export_onnx(make_mlp(), tmp_path / "model.pt")
    script_named_onnx = export_torchscript(make_mlp(), tmp_path / "model.onnx")
    assert inspect_model(onnx_named_pt)["format"] == "onnx"
    assert inspect_model(script_named_onnx)["format"] == "torchscript"


def test_declared_format_must_agree_with_content(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "m.onnx")
    assert inspect_model(path, "onnx")["format"] == "onnx"
    with pytest.raises(InvalidModel, match="torchscript"):
        inspect_model(path, "torchscript")


def test_onnx_signature_and_prunable_weights(tmp_path: Path) -> None:
    info = inspect_model(export_onnx(make_convnet(), tmp_path / "c.onnx"))
    assert info["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 16, 16]}]
    assert info["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}]
    assert [(p["op"], p["shape"]) for p in info["prunable"]] == [
        ("Conv", [8, 3, 3, 3]),
        ("Conv", [16, 8, 3, 3]),
        ("Gemm", [10, 16]),
    ]
    assert info["parameters"] == sum(p.numel() for p in make_convnet().parameters()) + 16
    assert isinstance(info["opset"], int)


def test_embeddings_norms_and_biases_are_not_prunable(tmp_path: Path) -> None:
    model = EmbeddingClassifier().eval()
    onnx_info = inspect_model(export_onnx(model, tmp_path / "e.onnx"))
    script_info = inspect_model(export_torchscript(model, tmp_path / "e.pt"))
    assert [(p["op"], p["shape"]) for p in onnx_info["prunable"]] == [("Gemm", [4, 16])]
    assert [p["name"] for p in script_info["prunable"]] == ["head.weight"]
    assert onnx_info["inputs"][0]["dtype"] == "int64"


def test_traced_torchscript_reports_the_traced_input_shape(tmp_path: Path) -> None:
    info = inspect_model(export_torchscript(make_convnet(), tmp_path / "c.pt"))
    assert info["inputs"] == [{"name": "input", "dtype": "float32", "shape": [2, 3, 16, 16]}]
    assert [p["name"] for p in info["prunable"]] == ["0.weight", "3.weight", "7.weight"]
    assert info["opset"] is None


def test_scripted_torchscript_has_no_shape_unless_declared(tmp_path: Path) -> None:
    bare = inspect_model(export_torchscript(make_mlp(), tmp_path / "s.pt", how="script"))
    assert bare["inputs"] == [{"name": "input", "dtype": "float32", "shape": None}]
    declared = [{"name": "input", "dtype": "float32", "shape": ["batch", 32]}]
    path = export_torchscript(make_mlp(), tmp_path / "d.pt", how="script", inputs_json=declared)
    assert inspect_model(path)["inputs"] == declared


def test_inspect_refuses_external_data(tmp_path: Path) -> None:
    model = onnx.load(str(export_onnx(make_mlp(), tmp_path / "m.onnx")))
    onnx.save_model(
        model,
        str(tmp_path / "ext.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    with pytest.raises(InvalidModel, match="external data") as err:
        inspect_model(tmp_path / "ext.onnx")
    assert err.value.code == "invalid_model"


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01garbage bytes that are not a model" * 10, b"PK\x03\x04broken zip"],
    ids=["empty", "garbage", "broken-zip"],
)
def test_garbage_bytes_are_invalid_model(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(InvalidModel) as err:
        inspect_model(path)
    assert err.value.code == "invalid_model"


def test_a_numpy_dataset_given_as_a_model_is_called_a_dataset(tmp_path: Path) -> None:
    np.savez(tmp_path / "digits.npz", x=np.zeros((4, 8), np.float32), labels=np.arange(4))
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(InvalidModel, match=r"NumPy archive \(\.npz\) of arrays x, labels") as err:
        inspect_model(tmp_path / "digits.npz")
    assert "dataset, not a model" in err.value.message
    with pytest.raises(InvalidModel, match=r"NumPy array \(\.npy\).*dataset, not a model"):
        inspect_model(tmp_path / "x.npy")


def test_truncated_onnx_is_invalid_model(tmp_path: Path) -> None:
    data = export_onnx(make_mlp(), tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModel):
        inspect_model(tmp_path / "cut.onnx")


def test_torch_save_checkpoint_is_not_torchscript(tmp_path: Path) -> None:
    torch.save(make_mlp().state_dict(), tmp_path / "weights.pt")
    assert zipfile.is_zipfile(tmp_path / "weights.pt")
    with pytest.raises(InvalidModel, match=r"torch\.jit"):
        inspect_model(tmp_path / "weights.pt")


def test_unknown_operator_is_named(tmp_path: Path) -> None:
    model = onnx.load(str(export_onnx(make_mlp(), tmp_path / "m.onnx")))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type, relu.domain = "FancyRelu", "com.example"
    model.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    onnx.save_model(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(UnsupportedOperator, match="FancyRelu") as err:
        inspect_model(tmp_path / "custom.onnx")
    assert err.value.code == "unsupported_operator"


def test_nan_weights_are_refused_before_pruning(tmp_path: Path) -> None:
    from pruning import prune

    model = onnx.load(str(export_onnx(make_mlp(), tmp_path / "m.onnx")))
    init = next(i for i in model.graph.initializer if i.name == "0.weight")
    values = numpy_helper.to_array(init).copy()
    values[0, 0] = np.nan
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save_model(model, str(tmp_path / "nan.onnx"))
    with pytest.raises(InvalidModel, match="NaN"):
        prune(tmp_path / "nan.onnx", {"sparsity": 0.5, "latency": None}, tmp_path / "out")
