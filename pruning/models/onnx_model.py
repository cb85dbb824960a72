"""ONNX adapter: weights are initializers feeding Conv, Gemm or MatMul; the pruned model is
the uploaded graph with new initializer values (same nodes, names, opset and signature)."""

from __future__ import annotations

import atexit
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from pruning.errors import DataMismatch, InvalidModel, UnsupportedModel, UnsupportedOperator
from pruning.input_ranges import InputRange
from pruning.models.base import Array, ModelAdapter, Runner
from pruning.models.onnx_archive import archive_kind, check_locations, folder_members, unpack
from pruning.models.onnx_ranges import onnx_input_ranges
from pruning.models.onnx_tensors import external_tensors
from pruning.tensors import Dim, Signature, SkippedTensor, TensorSpec, WeightTensor

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

    def __init__(
        self, proto: onnx.ModelProto, source: Path | None = None, packaging: str | None = None
    ) -> None:
        self.proto = proto
        self.source, self.packaging = source, packaging
        self._inits = {init.name: init for init in proto.graph.initializer}
        self._prunable_ops, self._skipped = _prunable_operands(proto.graph, self._inits)
        self._weights: list[WeightTensor] | None = None
        self.signature = _signature(proto.graph, set(self._inits))
        self.opset = next(
            (o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), None
        )

    @classmethod
    def load(cls, path: Path, probe_runtime: bool = True) -> OnnxModel:
        packaging = archive_kind(path)
        if packaging is not None:
            path = unpack(path, _unpack_dir(), packaging)
        proto = read_model(path, allow_external=packaging is not None)
        _check(path)
        if probe_runtime:  # ONNX Runtime must be able to run it, or say why
            session_for(path, threads=1)
        return cls(proto, path, packaging)

    def parameter_count(self) -> int:
        return sum(
            _numel(i) for i in self.proto.graph.initializer if i.data_type in PARAMETER_TYPES
        )

    def prunable_info(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "shape": list(self._inits[name].dims), "op": use.op, "node": use.node}
            for name, use in self._prunable_ops.items()
        ]

    def prunable(self) -> list[WeightTensor]:
        if self._weights is None:
            # to_array returns a read-only view of the protobuf bytes: copy before masking.
            self._weights = [
                WeightTensor(
                    name,
                    use.op,
                    np.array(numpy_helper.to_array(self._inits[name])),
                    use.node,
                    use.op,
                )
                for name, use in self._prunable_ops.items()
            ]
        return self._weights

    def input_ranges(self) -> dict[str, InputRange]:
        return onnx_input_ranges(self.proto.graph)

    def skipped(self) -> list[SkippedTensor]:
        return list(self._skipped)

    def store_weights(self) -> None:
        """The prunable arrays (copies, see ``prunable``) into the graph's initializers, for
        code that reads the graph itself (channel surgery) and for ``save``."""
        for tensor in self._weights or []:
            self._inits[tensor.name].CopyFrom(numpy_helper.from_array(tensor.values, tensor.name))

    def save(self, out_dir: Path) -> Path:
        self.store_weights()
        out = out_dir / f"model{self.suffix}"
        if self.packaging is None:
            write_model(self.proto, out)
            return out
        # The upload's layout: the graph and one data file beside it (packed by the engine).
        onnx.save_model(
            self.proto,
            str(out),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=f"model{self.suffix}.data",
        )
        return out

    @classmethod
    def iter_parameters(cls, path: Path) -> Iterator[tuple[str, Array]]:
        proto = read_model(path, allow_external=True)
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


def read_model(path: Path, allow_external: bool = False) -> onnx.ModelProto:
    """The file's ModelProto, parsed from a memory map: the file's bytes are never copied into
    the process besides the parsed message itself (a 1 GB model costs 1 GB, not 2).
    ``allow_external``: a model unpacked from an archive (or written by us) whose tensors
    live in data files beside it; their locations are checked, then the data is loaded."""
    proto = _read_graph(path, allow_external)
    if allow_external and next(external_tensors(proto.graph), None) is not None:
        check_locations(proto, "", folder_members(path.parent))
        onnx.load_external_data_for_model(proto, str(path.parent))
    return proto


def write_model(proto: onnx.ModelProto, path: Path) -> None:
    """The model's bytes, written one initializer at a time: what ``SerializeToString`` gives,
    except that the graph's initializers come after its other fields (protobuf readers take
    fields in any order). Serializing the whole model at once needs a second copy of every
    weight in memory, which a job's address-space limit does not leave for a 1 GB model."""
    head = onnx.ModelProto()
    for field, value in proto.ListFields():
        if field.name != "graph":
            _copy_field(head, field.name, value, field)
    body = onnx.GraphProto()
    for field, value in proto.graph.ListFields():
        if field.name != "initializer":
            _copy_field(body, field.name, value, field)
    inits = proto.graph.initializer
    sizes = [init.ByteSize() for init in inits]
    graph_bytes = body.SerializeToString()
    graph_size = len(graph_bytes) + sum(len(_INITIALIZER_KEY) + len(_varint(n)) + n for n in sizes)
    with path.open("wb") as out:
        out.write(head.SerializeToString())
        if proto.HasField("graph"):
            out.write(_GRAPH_KEY + _varint(graph_size) + graph_bytes)
            for init, size in zip(inits, sizes, strict=True):
                out.write(_INITIALIZER_KEY + _varint(size))
                out.write(init.SerializeToString())


# Wire-format keys, (field number << 3) | 2 (length-delimited): ModelProto.graph is field 7,
# GraphProto.initializer field 5 (onnx.proto).
_GRAPH_KEY = bytes([7 << 3 | 2])
_INITIALIZER_KEY = bytes([5 << 3 | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _copy_field(target: Any, name: str, value: Any, field: Any) -> None:
    if field.is_repeated:
        getattr(target, name).extend(value)
    elif field.message_type is not None:
        getattr(target, name).CopyFrom(value)
    else:
        setattr(target, name, value)


def _unpack_dir() -> Path:
    """Under TMPDIR: the worker's child has its work dir's tmp/ there, removed with it."""
    folder = Path(tempfile.mkdtemp(prefix="shears-onnx-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _read_graph(path: Path, allow_external: bool) -> onnx.ModelProto:
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise InvalidModel("the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return parse_model(view, allow_external)
                finally:
                    view.release()
    except OSError as exc:
        raise InvalidModel(f"cannot read the model file: {exc.strerror}") from exc


def parse_model(data: bytes | memoryview, allow_external: bool = False) -> onnx.ModelProto:
    """Bytes to ModelProto; external data is refused before anything resolves a path, unless
    the caller checks its locations (``pruning.models.onnx_archive``)."""
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
    if not allow_external:
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
    tensor = next(external_tensors(graph), None)
    if tensor is not None:
        raise InvalidModel(
            f"tensor {tensor.name!r} is stored as external data, which a lone .onnx "
            "file cannot carry; upload the .onnx file and "
            "its data files together as one .zip or .tar, or re-save with all tensors "
            "inside the file: onnx.save_model(model, path, save_as_external_data=False)"
        )


@dataclass(frozen=True)
class _Use:
    op: str
    node: str  # _node_label: what a user finds in a graph viewer


def _prunable_operands(
    graph: onnx.GraphProto, inits: Mapping[str, onnx.TensorProto]
) -> tuple[dict[str, _Use], list[SkippedTensor]]:
    """Initializer name -> its first use, for float initializers (rank >= 2) used only as a
    weight by nodes that reach an output; and the weight-like initializers nothing reads."""
    live = _live_nodes(graph)
    weights: dict[str, _Use] = {}
    dead: dict[str, str] = {}  # weight -> the first node reading it, none of whose outputs count
    other_uses: set[str] = {o.name for o in graph.output}
    for index, node in enumerate(graph.node):
        operands = WEIGHT_OPERANDS.get(node.op_type, ()) if node.domain in DEFAULT_DOMAINS else ()
        for position, name in enumerate(node.input):
            if position not in operands or name not in inits:
                other_uses.add(name)  # e.g. a Gather of a tied embedding: not prunable
            elif index in live:
                weights.setdefault(name, _Use(node.op_type, _node_label(node)))
            else:
                dead.setdefault(name, _node_label(node))
        for attr in node.attribute:
            other_uses.update(_names_used_by_subgraphs(attr))

    def weight_like(name: str) -> bool:
        return len(inits[name].dims) >= 2 and inits[name].data_type in FLOAT_TYPES

    prunable = {n: use for n, use in weights.items() if n not in other_uses and weight_like(n)}
    skipped = [
        SkippedTensor(name, dead.get(name, ""), _unused_reason(dead.get(name)))
        for name in inits
        if weight_like(name) and name not in weights and name not in other_uses
    ]
    return prunable, skipped


def _node_label(node: onnx.NodeProto) -> str:
    """The node's name; unnamed nodes (allowed by ONNX) by their first output."""
    return node.name or (node.output[0] if node.output else node.op_type)


def _unused_reason(node: str | None) -> str:
    if node is None:
        return "no node of the graph reads it: dead weight, the outputs do not depend on it"
    return (
        f"read only by node {node!r}, whose result reaches no graph output: dead weight, "
        "the outputs do not depend on it"
    )


def _live_nodes(graph: onnx.GraphProto) -> set[int]:
    """Indices of the nodes some graph output depends on (ONNX keeps nodes in topological
    order, so one walk from the end finds them)."""
    needed = {o.name for o in graph.output}
    live: set[int] = set()
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if any(out in needed for out in node.output):
            live.add(index)
            needed.update(node.input)
            for attr in node.attribute:
                needed.update(_names_used_by_subgraphs(attr))
    return live


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
