"""ONNX adapter: weights are initializers feeding Conv, Gemm or MatMul; the pruned model is
the uploaded graph with new initializer values (same nodes, names, opset and signature)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from pruning.errors import DataMismatch, InvalidModel, UnsupportedModel, UnsupportedOperator
from pruning.input_ranges import InputRange
from pruning.models.base import Array, ModelAdapter, Runner
from pruning.models.onnx_ranges import onnx_input_ranges
from pruning.tensors import Dim, Signature, TensorSpec, WeightTensor

# Which inputs of an operator are its weight (ONNX operator specs: Conv's W is input 1;
# Gemm computes A*B and MatMul A@B, either side may be the constant).
WEIGHT_OPERANDS: dict[str, tuple[int, ...]] = {
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Gemm": (0, 1),
    "MatMul": (0, 1),
}
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
PARAMETER_TYPES = FLOAT_TYPES | {onnx.TensorProto.BFLOAT16}
DEFAULT_DOMAINS = ("", "ai.onnx")


class OnnxModel(ModelAdapter):
    format: ClassVar[str] = "onnx"
    suffix: ClassVar[str] = ".onnx"
    runtime: ClassVar[str] = f"onnxruntime {ort.__version__}"
    exact_shapes: ClassVar[bool] = True

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        self._inits = {init.name: init for init in proto.graph.initializer}
        self._prunable_ops = _prunable_operands(proto.graph, self._inits)
        self._weights: list[WeightTensor] | None = None
        self.signature = _signature(proto.graph, set(self._inits))
        self.opset = next(
            (o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), None
        )

    @classmethod
    def load(cls, path: Path, probe_runtime: bool = True) -> OnnxModel:
        proto = read_model(path)
        _check(path)
        if probe_runtime:  # ONNX Runtime must be able to run it, or say why
            session_for(path, threads=1)
        return cls(proto)

    def parameter_count(self) -> int:
        return sum(
            _numel(i) for i in self.proto.graph.initializer if i.data_type in PARAMETER_TYPES
        )

    def prunable_info(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "shape": list(self._inits[name].dims), "op": op}
            for name, op in self._prunable_ops.items()
        ]

    def prunable(self) -> list[WeightTensor]:
        if self._weights is None:
            # to_array returns a read-only view of the protobuf bytes: copy before masking.
            self._weights = [
                WeightTensor(name, op, np.array(numpy_helper.to_array(self._inits[name])))
                for name, op in self._prunable_ops.items()
            ]
        return self._weights

    def input_ranges(self) -> dict[str, InputRange]:
        return onnx_input_ranges(self.proto.graph)

    def store_weights(self) -> None:
        """The prunable arrays (copies, see ``prunable``) into the graph's initializers, for
        code that reads the graph itself (channel surgery) and for ``save``."""
        for tensor in self._weights or []:
            self._inits[tensor.name].CopyFrom(numpy_helper.from_array(tensor.values, tensor.name))

    def save(self, out_dir: Path) -> Path:
        self.store_weights()
        out = out_dir / f"model{self.suffix}"
        out.write_bytes(self.proto.SerializeToString())
        return out

    @classmethod
    def iter_parameters(cls, path: Path) -> Iterator[tuple[str, Array]]:
        proto = read_model(path)
        for init in proto.graph.initializer:
            if init.data_type in PARAMETER_TYPES:
                yield init.name, numpy_helper.to_array(init)

    @classmethod
    def open_runner(cls, path: Path, threads: int, input_names: list[str]) -> Runner:
        return OnnxRunner(session_for(path, threads))


class OnnxRunner:
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        try:
            return [np.asarray(out) for out in self.session.run(None, dict(feeds))]
        except Exception as exc:  # ORT's InvalidArgument / Fail for shapes it cannot take
            shapes = {name: list(value.shape) for name, value in feeds.items()}
            raise DataMismatch(f"the model failed on inputs {shapes}: {_first_line(exc)}") from exc

    def close(self) -> None:
        del self.session


def read_model(path: Path) -> onnx.ModelProto:
    """The file's ModelProto, parsed from a memory map: the file's bytes are never copied into
    the process besides the parsed message itself (a 1 GB model costs 1 GB, not 2)."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise InvalidModel("the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return parse_model(view)
                finally:
                    view.release()
    except OSError as exc:
        raise InvalidModel(f"cannot read the model file: {exc.strerror}") from exc


def parse_model(data: bytes | memoryview) -> onnx.ModelProto:
    """Bytes to ModelProto; external data is refused before anything resolves a path."""
    if not len(data):
        raise InvalidModel("the file is empty")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InvalidModel(
            f"the file is neither an ONNX model nor a TorchScript archive ({exc}); "
            "upload a .onnx exported with torch.onnx.export or a torch.jit.save archive"
        ) from exc
    if proto.ir_version <= 0 or not proto.graph.node:
        raise InvalidModel(
            "the file is not an ONNX model (no IR version or no graph nodes); "
            "upload a .onnx exported with torch.onnx.export or a torch.jit.save archive"
        )
    _refuse_external_data(proto.graph)
    return proto


def session_for(model: bytes | Path, threads: int) -> ort.InferenceSession:
    """A session on serialized bytes or on a file (which ONNX Runtime reads itself, so the
    caller holds no copy)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind classes (Fail, InvalidGraph, ...)
        proto = read_model(model) if isinstance(model, Path) else parse_model(model)
        raise _runtime_error(proto, exc) from exc


def _runtime_error(proto: onnx.ModelProto, exc: Exception) -> Exception:
    detail = _first_line(exc)
    unknown = [n for n in proto.graph.node if not _known_operator(n)]
    if unknown:
        node = unknown[0]
        return UnsupportedOperator(
            f"operator {node.op_type!r} (domain {node.domain or 'ai.onnx'!r}) is not supported "
            f"by {OnnxModel.runtime}; replace it with standard ONNX operators before upload"
        )
    if "NOT_IMPLEMENTED" in str(exc) or type(exc).__name__ == "NotImplemented":
        return UnsupportedOperator(f"{OnnxModel.runtime} cannot run an operator: {detail}")
    return InvalidModel(f"{OnnxModel.runtime} cannot load the model: {detail}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _known_operator(node: onnx.NodeProto) -> bool:
    return node.domain == "com.microsoft" or onnx.defs.has(node.op_type, node.domain)


def _check(path: Path) -> None:
    """By path: the checker reads the file in C++; given a ModelProto it would first serialize
    a copy in Python, seconds and another model's worth of memory for a large one."""
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # ValidationError
        raise InvalidModel(f"the ONNX checker rejects the model: {exc}") from exc


def _refuse_external_data(graph: onnx.GraphProto) -> None:
    for tensor in _all_tensors(graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise InvalidModel(
                f"tensor {tensor.name!r} is stored as external data, which Shears refuses "
                "(it would read other files); re-save with all tensors inside the file: "
                "onnx.save_model(model, path, save_as_external_data=False)"
            )


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            yield from _attribute_tensors(attr)


def _attribute_tensors(attr: onnx.AttributeProto) -> Iterator[onnx.TensorProto]:
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    if attr.HasField("sparse_tensor"):
        yield attr.sparse_tensor.values
        yield attr.sparse_tensor.indices
    for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
        yield from _all_tensors(graph)


def _prunable_operands(
    graph: onnx.GraphProto, inits: Mapping[str, onnx.TensorProto]
) -> dict[str, str]:
    """Initializer name -> op, for float initializers (rank >= 2) used only as a weight."""
    weights: dict[str, str] = {}
    other_uses: set[str] = {o.name for o in graph.output}
    for node in graph.node:
        operands = WEIGHT_OPERANDS.get(node.op_type, ()) if node.domain in DEFAULT_DOMAINS else ()
        for index, name in enumerate(node.input):
            if index in operands and name in inits:
                weights.setdefault(name, node.op_type)
            else:
                other_uses.add(name)  # e.g. a Gather of a tied embedding: not prunable
        for attr in node.attribute:
            other_uses.update(_names_used_by_subgraphs(attr))
    return {
        name: op
        for name, op in weights.items()
        if name not in other_uses
        and len(inits[name].dims) >= 2
        and inits[name].data_type in FLOAT_TYPES
    }


def _names_used_by_subgraphs(attr: onnx.AttributeProto) -> Iterable[str]:
    for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
        for node in graph.node:
            yield from node.input
            for inner in node.attribute:
                yield from _names_used_by_subgraphs(inner)


def _signature(graph: onnx.GraphProto, initializers: set[str]) -> Signature:
    inputs = [v for v in graph.input if v.name not in initializers]
    return Signature(inputs=_specs(inputs, "input"), outputs=_specs(graph.output, "output"))


def _specs(values: Sequence[onnx.ValueInfoProto], role: str) -> list[TensorSpec]:
    specs = []
    for value in values:
        if not value.type.HasField("tensor_type"):
            raise UnsupportedModel(
                f"{role} {value.name!r} is not a tensor ({value.type.WhichOneof('value')}); "
                "Shears runs models whose inputs and outputs are tensors"
            )
        tensor_type = value.type.tensor_type
        specs.append(TensorSpec(value.name, _dtype(tensor_type.elem_type), _shape(tensor_type)))
    return specs


def _dtype(elem_type: int) -> str | None:
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type).name)


def _shape(tensor_type: onnx.TypeProto.Tensor) -> list[Dim] | None:
    if not tensor_type.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in tensor_type.shape.dim
    ]


def _numel(init: onnx.TensorProto) -> int:
    return int(np.prod(init.dims, dtype=np.int64)) if init.dims else 1
