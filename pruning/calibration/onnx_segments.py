"""Segment-wise calibration of an ONNX graph: each layer costs one segment's forward pass.

The graph (its nodes are topologically sorted, as ONNX requires) is cut before the first node
that reads each group of layers; layers reading the same tensor (q, k and v) form one group
and one cut. The calibration batch runs through segment 1, the caller prunes the layers of
group 1, segment 2 is built with those pruned weights and run from the state at the cut, and
so on: every node runs once, with the weights current when its segment runs, which is what
the sequential scheme of SparseGPT (Frantar & Alistarh 2023, sec. 3) asks for. The state at
a cut is every tensor produced before it and read after it (the residual stream, attention
masks, graph inputs read later), not only the layer input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.onnx_capture import CALIBRATION_THREADS, OnnxLayerInputs
from pruning.models.base import Array
from pruning.models.onnx_model import session_for

State = dict[str, Array]  # tensor name -> value, for one chunk of the calibration batch
Group = tuple[list[str], list[torch.Tensor]]  # layer names, their shared input per chunk


def segmentable(inputs: OnnxLayerInputs) -> bool:
    """Cuts need every read to be a node input: subgraphs (If, Loop, Scan) read outer
    tensors implicitly, so such graphs keep the whole-model capture."""
    graph_kinds = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    nodes = inputs.model.proto.graph.node
    return not any(a.type in graph_kinds for node in nodes for a in node.attribute)


@dataclass(frozen=True)
class _Cut:
    at: int  # index of the first node that reads the group's input
    source: str  # the tensor the group's layers read
    names: list[str]


class OnnxSegments:
    def __init__(
        self, inputs: OnnxLayerInputs, names: Sequence[str], threads: int = CALIBRATION_THREADS
    ) -> None:
        self.inputs, self.threads = inputs, threads
        self.proto = inputs.model.proto
        self.nodes = list(self.proto.graph.node)
        self.initializers = {init.name: init for init in self.proto.graph.initializer}
        self.cuts = self._cuts(names)

    def groups(self, data: CalibrationData) -> Iterator[Group]:
        """Each group's layers and input, in graph order; prune a group before the next."""
        states: list[State] = [dict(feeds) for feeds, _ in data.batches()]
        start = 0
        for cut in self.cuts:
            states = self._advance(states, start, cut.at)
            start = cut.at
            yield cut.names, [torch.from_numpy(np.asarray(s[cut.source])) for s in states]

    def _cuts(self, names: Sequence[str]) -> list[_Cut]:
        first_read: dict[str, int] = {}
        for index, node in enumerate(self.nodes):
            for name in node.input:
                first_read.setdefault(name, index)
        by_source: dict[str, list[str]] = {}
        for name in sorted(names, key=lambda n: first_read[n]):
            by_source.setdefault(self.inputs.source(name), []).append(name)
        cuts = [_Cut(first_read[src], src, group) for src, group in by_source.items()]
        return sorted(cuts, key=lambda c: c.at)

    def _advance(self, states: list[State], start: int, stop: int) -> list[State]:
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
