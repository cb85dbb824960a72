"""Segment-wise calibration of an ONNX graph (the walk is ``pruning.calibration.segments``):
a segment is a sub-model of consecutive nodes whose inputs are the tensors live at its start
and whose outputs are those read after its end, built with the weights current when it runs
(one ONNX Runtime session per segment)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.onnx_capture import CALIBRATION_THREADS, OnnxLayerInputs
from pruning.calibration.segments import Group, SegmentWalk, State
from pruning.models.base import Array
from pruning.models.onnx_model import session_for


def segmentable(inputs: OnnxLayerInputs) -> bool:
    """Cuts need every read to be a node input: subgraphs (If, Loop, Scan) read outer
    tensors implicitly, so such graphs keep the whole-model capture (as do layers whose
    input is itself a constant)."""
    graph_kinds = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    graph = inputs.model.proto.graph
    constants = {init.name for init in graph.initializer}
    sources = {s for name in inputs.geometry for s in inputs.sources(name)}
    subgraphs = any(a.type in graph_kinds for node in graph.node for a in node.attribute)
    return not subgraphs and not sources & constants


class OnnxSegments(SegmentWalk):
    def __init__(
        self, inputs: OnnxLayerInputs, names: Sequence[str], threads: int = CALIBRATION_THREADS
    ) -> None:
        self.inputs, self.threads = inputs, threads
        self.proto = inputs.model.proto
        self.nodes = list(self.proto.graph.node)
        self.initializers = {init.name: init for init in self.proto.graph.initializer}
        first_read: dict[Hashable, int] = {}
        for index, node in enumerate(self.nodes):
            for name in node.input:
                first_read.setdefault(name, index)
        super().__init__(first_read, {n: inputs.sources(n) for n in names}, names)

    def groups(self, data: CalibrationData) -> Iterator[Group]:
        """Each group's layers and input, in graph order; prune a group before the next."""
        states: list[State] = [{k: v for k, v in feeds.items()} for feeds, _ in data.batches()]
        return self.walk(states)

    def stacked(self, name: str, uses: Sequence[Any]) -> torch.Tensor:
        return self.inputs.stacked(name, uses)

    def advance(self, states: list[State], start: int, stop: int) -> list[State]:
        """Run nodes ``[start, stop)`` on each chunk; keep what is read from ``stop`` on."""
        live = self._read_from(stop)
        segment = self.nodes[start:stop]
        produced = {out for node in segment for out in node.output if out}
        outputs = sorted(produced & live)
        if outputs:
            session = session_for(self._model(segment, states[0], outputs), self.threads)
            wanted = [name for name in self._reads(segment) if name not in produced]
            for state in states:
                got = session.run(outputs, {name: state[name] for name in wanted})
                state.update(zip(outputs, got, strict=True))
        return [{k: v for k, v in state.items() if k in live} for state in states]

    def _read_from(self, index: int) -> set[str]:
        return {name for node in self.nodes[index:] for name in node.input if name}

    def _reads(self, segment: Sequence[onnx.NodeProto]) -> list[str]:
        seen = {name for node in segment for name in node.input if name}
        return sorted(seen - self.initializers.keys())

    def _model(self, segment: Sequence[onnx.NodeProto], state: State, outputs: list[str]) -> bytes:
        produced = {out for node in segment for out in node.output if out}
        feeds = [name for name in self._reads(segment) if name not in produced]
        graph = onnx.helper.make_graph(
            list(segment),
            "segment",
            [_value_info(name, state[name]) for name in feeds],
            [onnx.helper.make_empty_tensor_value_info(name) for name in outputs],
            self._weights(segment),
        )
        model = onnx.helper.make_model(
            graph, opset_imports=self.proto.opset_import, ir_version=self.proto.ir_version
        )
        model.functions.extend(self.proto.functions)
        serialized: bytes = model.SerializeToString()
        return serialized

    def _weights(self, segment: Sequence[onnx.NodeProto]) -> list[onnx.TensorProto]:
        """The initializers the segment reads, pruned ones with their values as they are now."""
        current = {t.name: t.values for t in self.inputs.model.prunable()}
        used = sorted({n for node in segment for n in node.input if n in self.initializers})
        return [
            numpy_helper.from_array(current[n], n) if n in current else self.initializers[n]
            for n in used
        ]


def _value_info(name: str, value: Array) -> onnx.ValueInfoProto:
    array = np.asarray(value)
    elem = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    return onnx.helper.make_tensor_value_info(name, elem, None)
