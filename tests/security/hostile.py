"""Factories for hostile uploads: each builds a file an attacker (or a broken exporter) could
send, small on disk, built with the real onnx/torch/numpy libraries."""

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = 16


def _mlp_graph(nodes: list[onnx.NodeProto], inits: list[TensorProto]) -> onnx.GraphProto:
    """`nodes` feed tensor `h` [batch, 16]; then y = h @ W (W: a prunable initializer)."""
    weight = numpy_helper.from_array(np.ones((FEATURES, 4), dtype=np.float32), "W")
    return helper.make_graph(
        [*nodes, helper.make_node("MatMul", ["h", "W"], ["y"])],
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight, *inits],
    )


def _model(graph: onnx.GraphProto, domains: dict[str, int] | None = None) -> bytes:
    opsets = [helper.make_opsetid("", 17)]
    opsets += [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


def plain_onnx() -> bytes:
    return _model(_mlp_graph([helper.make_node("Identity", ["x"], ["h"])], []))


def truncated_onnx() -> bytes:
    data = plain_onnx()
    return data[: len(data) // 2]


def external_data_onnx(location: str) -> bytes:
    """The weight's bytes are said to live in the file `location` (path traversal, an
    absolute path, a symlink name): CVE-2022-25882 / CVE-2024-27318 family."""
    graph = _mlp_graph([helper.make_node("Identity", ["x"], ["h"])], [])
    weight = graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(FEATURES * 16))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return _model(graph)


def mismatched_shape_onnx() -> bytes:
    """Declares W as [16, 4] but carries the bytes of 2 floats."""
    graph = _mlp_graph([helper.make_node("Identity", ["x"], ["h"])], [])
    graph.initializer[0].raw_data = np.ones(2, dtype=np.float32).tobytes()
    return _model(graph)


def foreign_domain_onnx() -> bytes:
    node = helper.make_node("Exfiltrate", ["x"], ["h"], domain="com.attacker.ops")
    return _model(_mlp_graph([node], []), domains={"com.attacker.ops": 1})


def memory_bomb_onnx(elements_per_sample: int = 1 << 28) -> bytes:
    """Under 1 kB on disk; running it expands every sample to `elements_per_sample` floats
    (1 GiB each by default) before averaging them back. Its shape depends on the input, so
    no runtime can fold it away when the model is opened."""
    shape = numpy_helper.from_array(
        np.array([1, elements_per_sample // FEATURES, FEATURES], dtype=np.int64), "big"
    )
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes"], ["x3"]),
        helper.make_node("Expand", ["x3", "big"], ["huge"]),
        helper.make_node("ReduceMean", ["huge"], ["h"], axes=[1], keepdims=0),  # opset 17
    ]
    return _model(_mlp_graph(nodes, [shape, axes]))


class _Payload:
    """Unpickling this runs `code`: what a malicious `__reduce__` does."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (self.code,))


def marker_code(marker: Path) -> str:
    """Code that records where it ran: the pid and whether any Shears secret was visible."""
    return (
        "import os, json; "
        f"open({str(marker)!r}, 'w').write(json.dumps({{'pid': os.getpid(), "
        "'env': sorted(k for k in os.environ if k.startswith('SHEARS_'))}))"
    )


def torchscript_with_pickle_payload(archive: Path, marker: Path) -> bytes:
    """A real TorchScript archive whose `data.pkl` is replaced by a `__reduce__` payload."""
    payload = pickle.dumps(_Payload(marker_code(marker)), protocol=2)
    out = io.BytesIO()
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename.endswith("/data.pkl"):
                data = payload
            target.writestr(member, data)
    return out.getvalue()


def npz_bomb(unpacked_bytes: int) -> bytes:
    """An `.npz` whose one array is zeros: a few hundred kB that unpack to `unpacked_bytes`."""
    header = io.BytesIO()
    rows = unpacked_bytes // (FEATURES * 4)
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (rows, FEATURES)}
    )
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        zeros = bytes(1 << 20)
        for _ in range(rows * FEATURES * 4 // len(zeros)):
            member.write(zeros)
    return out.getvalue()


def npz_with_lying_sizes(declared: int = 64) -> bytes:
    """An `.npz` whose central directory claims `declared` bytes for a much larger member."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((4096, FEATURES), dtype=np.float32))
    data = bytearray(buffer.getvalue())
    # Patch the uncompressed size in the central directory entry (offset 24 in it).
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    return bytes(data)
