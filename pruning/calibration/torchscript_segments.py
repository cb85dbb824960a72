"""Segment-wise calibration of a TorchScript model (the walk is ``pruning.calibration.segments``).
Forward hooks never fire inside TorchScript code, so the inlined forward graph is cut
instead: a segment is a copy of the graph whose values live at its start become function
inputs, whose values read after its end become the output tuple, and dead-code elimination
drops everything else. Constants and attribute reads (``prim::GetAttr``, so the weights as
they are now) are recomputed by each segment rather than passed, so only data crosses a cut.
Values are keyed by their debug name, which a graph copy keeps."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import torch

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.segments import Group, SegmentWalk, State
from pruning.calibration.torchscript_capture import (
    TorchScriptLayerInputs,
    layer_uses,
    return_tuple,
    weight_name,
)
from pruning.models.script_graph import inlined

_RECOMPUTED = ("prim::Constant", "prim::GetAttr")


def script_segmentable(inputs: TorchScriptLayerInputs, names: Sequence[str]) -> bool:
    """Every use of the layers is a node of the top-level block (none inside ``prim::If`` or
    ``prim::Loop``), so a cut before it exists, and the calibration data feeds every
    argument of ``forward``; otherwise the whole-model capture is used."""
    graph = inlined(inputs.model.module)
    if len(list(graph.inputs())) != len(inputs.input_names) + 1:  # self, then the inputs
        return False
    wanted = set(names)
    nested = (inner for node in graph.nodes() for block in node.blocks() for inner in _nodes(block))
    return not any(weight_name(node) in wanted for node in nested)


class ScriptSegments(SegmentWalk):
    def __init__(self, inputs: TorchScriptLayerInputs, names: Sequence[str]) -> None:
        self.inputs = inputs
        graph = inlined(inputs.model.module)
        self.nodes = list(graph.nodes())
        self.arguments = [v.debugName() for v in list(graph.inputs())[1:]]
        first_read: dict[Hashable, int] = {}
        self.producer: dict[str, int] = {}  # value -> index of the node that computes it
        for index, node in enumerate(self.nodes):
            for value in _reads(node):
                first_read.setdefault(value, index)
            if node.kind() not in _RECOMPUTED:
                self.producer.update((v.debugName(), index) for v in node.outputs())
        uses = {n: [v.debugName() for v in vs] for n, vs in layer_uses(graph, names).items()}
        super().__init__(first_read, uses, names)

    def groups(self, data: CalibrationData) -> Iterator[Group]:
        """Each group's layers and input, in graph order; prune a group before the next."""
        states: list[State] = []
        for feeds, _ in data.batches():
            args = [torch.from_numpy(feeds[n]) for n in self.inputs.input_names]
            states.append(dict(zip(self.arguments, args, strict=True)))
        return self.walk(states)

    def stacked(self, name: str, uses: Sequence[Any]) -> torch.Tensor:
        return self.inputs.stacked(name, uses)

    def snapshot(self, states: list[State]) -> list[State]:
        """In-place operators of later segments (``x += ...``) would change kept tensors."""
        return [{k: _cloned(v) for k, v in state.items()} for state in states]

    def advance(self, states: list[State], start: int, stop: int) -> list[State]:
        live = {v for node in self.nodes[stop:] for v in _reads(node)}
        crossing = sorted(str(k) for k in states[0])
        produced = sorted(v for v, i in self.producer.items() if start <= i < stop and v in live)
        if produced:
            function = self._segment(start, stop, crossing, produced)
            module = self.inputs.model.module._c
            with torch.no_grad():
                for state in states:
                    out = function(module, *[state[k] for k in crossing])
                    state.update(zip(produced, out, strict=True))
        return [{k: v for k, v in state.items() if k in live} for state in states]

    def _segment(self, start: int, stop: int, crossing: list[str], produced: list[str]) -> Any:
        """A function of (module, *crossing) returning ``produced``: a copy of the forward
        graph in which the crossing values are inputs and only nodes ``[start, stop)`` (and
        the constants and attribute reads they use) remain."""
        graph = inlined(self.inputs.model.module)
        nodes = list(graph.nodes())
        values = {v.debugName(): v for node in nodes for v in node.outputs()}
        values.update((v.debugName(), v) for v in graph.inputs())
        for name in crossing:
            argument = graph.addInput()
            argument.setType(values[name].type())
            values[name].replaceAllUsesWith(argument)
        return_tuple(graph, [values[name] for name in produced])
        # Explicitly, not by dead-code elimination alone: an in-place operator outside the
        # segment (``x += ...``) mutates an input, which DCE must keep.
        outside = nodes[stop:][::-1] + nodes[:start][::-1]
        for node in outside:
            if node.kind() not in _RECOMPUTED:
                node.destroy()
        torch._C._jit_pass_dce(graph)
        for index in reversed(range(1, len(self.arguments) + 1)):
            graph.eraseInput(index)  # the model's own arguments reach it as crossing values
        return torch._C._create_function_from_graph("shears_segment", graph)


def _nodes(block: Any) -> Iterator[Any]:
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)


def _reads(node: Any) -> Iterator[str]:
    """Values read by a top-level node, including inside its blocks."""
    for value in node.inputs():
        yield value.debugName()
    for block in node.blocks():
        for inner in _nodes(block):
            yield from (value.debugName() for value in inner.inputs())
        yield from (value.debugName() for value in block.returnNode().inputs())


def _cloned(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value
