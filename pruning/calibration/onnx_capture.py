"""Layer inputs of an ONNX model: the tensors feeding each weight's node are exposed as extra
graph outputs and read from ONNX Runtime, so any model ORT can run can be calibrated (the
approach of ORT's own quantization calibrator). The session is built from the current
weights, so a layer pruned a moment ago shapes the inputs of the layers after it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from pruning.calibration.dense_outputs import DenseOutputs
from pruning.calibration.geometry import LayerGeometry, conv_geometry
from pruning.errors import Unsupported
from pruning.models.base import Array
from pruning.models.onnx_model import OnnxModel, session_for

Capture = Callable[[Mapping[str, Array]], dict[str, torch.Tensor]]
# Calibration forwards are throughput, not a latency figure: ONNX Runtime's default of one
# thread per physical core (0) halves them on two cores against the one thread of latency.
CALIBRATION_THREADS = 0


class OnnxLayerInputs:
    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        self._sources: dict[str, list[str]] = {}  # weight -> the tensor each use reads
        self.geometry: dict[str, LayerGeometry] = {}
        # Weights whose inputs have no layout calibration understands, and why: the engine
        # leaves them as they are (reported as skipped) instead of failing the job.
        self.unscorable: dict[str, str] = {}
        prunable = {tensor.name for tensor in model.prunable()}
        for node in model.proto.graph.node:
            for weight in (name for name in node.input if name in prunable):
                reason = self._add_use(node, weight)
                if reason is not None:
                    self.unscorable.setdefault(weight, reason)
        for weight in self.unscorable:
            self.geometry.pop(weight, None)
            self._sources.pop(weight, None)

    def _add_use(self, node: onnx.NodeProto, weight: str) -> str | None:
        """Record one use of ``weight``; the reason it cannot be calibrated, if any."""
        try:
            geometry = _geometry(node, weight)
        except Unsupported as exc:
            return exc.message
        if self.geometry.setdefault(weight, geometry) != geometry:
            return f"it is used by nodes that read it differently ({node.op_type} {node.name!r})"
        self._sources.setdefault(weight, []).append(node.input[0])
        return None

    def sources(self, name: str) -> list[str]:
        """The tensor read by each node that uses weight ``name``, in graph order: one for a
        layer, more for a weight used twice (a layer applied twice, tied weights)."""
        return self._sources[name]

    def open(
        self,
        names: Sequence[str],
        threads: int = CALIBRATION_THREADS,
        keep: DenseOutputs | None = None,
    ) -> Capture:
        """A function from feeds to the inputs of the layers ``names``, current weights; a
        weight used more than once gets the inputs of all its uses, stacked. With ``keep``,
        the model's first output of each run is appended to it (the same forward)."""
        proto = current_proto(self.model)
        graph_inputs = {i.name for i in proto.graph.input}
        present = {o.name for o in proto.graph.output}
        wanted = sorted({s for n in names for s in self._sources[n]} - graph_inputs)
        for source in wanted:
            if source not in present:
                proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(source))
        first = proto.graph.output[0].name
        fetched = wanted if keep is None else sorted({*wanted, first})
        session = session_for(proto.SerializeToString(), threads)

        def capture(feeds: Mapping[str, Array]) -> dict[str, torch.Tensor]:
            ran = session.run(fetched, dict(feeds)) if fetched else []
            got = dict(zip(fetched, ran, strict=True))
            if keep is not None:
                keep.add(np.asarray(got[first]))
            got.update({k: v for k, v in feeds.items() if k in graph_inputs})
            return {n: self.stacked(n, [got[s] for s in self._sources[n]]) for n in names}

        return capture

    def stacked(self, name: str, uses: Sequence[Array]) -> torch.Tensor:
        tensors = [torch.from_numpy(np.asarray(x)) for x in uses]
        return self.geometry[name].stack(tensors, name)


def current_proto(model: OnnxModel) -> onnx.ModelProto:
    """A copy of the graph holding the weights as they are now (pruned or not)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    inits = {init.name: init for init in proto.graph.initializer}
    for tensor in model.prunable():
        inits[tensor.name].CopyFrom(numpy_helper.from_array(tensor.values, tensor.name))
    return proto


def _geometry(node: onnx.NodeProto, weight: str) -> LayerGeometry:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    position = list(node.input).index(weight)
    if node.op_type == "Conv" and position == 1:
        return _conv(attrs)
    if node.op_type == "Gemm" and position == 1 and not attrs.get("transA", 0):
        return LayerGeometry("linear", transposed=not attrs.get("transB", 0))
    if node.op_type == "MatMul" and position == 1:
        return LayerGeometry("linear", transposed=True)
    raise Unsupported(
        f"{node.op_type} operand {position} has no input-feature layout that calibration "
        "understands",
        field="layers",
    )


def _conv(attrs: dict[str, object]) -> LayerGeometry:
    kernel = attrs.get("kernel_shape")
    if attrs.get("group", 1) != 1 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Unsupported(
            "grouped or auto-padded convolutions are not calibrated yet", field="layers"
        )
    if not isinstance(kernel, list) or len(kernel) != 2:
        raise Unsupported("only 2-D convolutions are calibrated", field="layers")
    return conv_geometry(
        tuple(kernel),
        tuple(attrs.get("strides", [1, 1])),  # type: ignore[arg-type]
        _pads(attrs.get("pads", [0, 0, 0, 0])),
        tuple(attrs.get("dilations", [1, 1])),  # type: ignore[arg-type]
    )


def _pads(pads: object) -> tuple[int, ...]:
    """ONNX pads are (begin_h, begin_w, end_h, end_w); ours (top, left, bottom, right)."""
    values = [int(p) for p in pads]  # type: ignore[attr-defined]
    return (values[0], values[1], values[2], values[3])
