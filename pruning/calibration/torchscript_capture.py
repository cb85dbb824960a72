"""Layer inputs of a TorchScript model. Submodule calls inside TorchScript code never pass
through Python, so forward hooks do not fire; instead the forward graph is inlined, the value
feeding each ``aten::linear`` / ``aten::conv2d`` / ``aten::_convolution`` is made a graph
output, everything after it is dropped (dead-code elimination) and the graph is run as a
function of the module. Parameters are read when it runs: pruned weights are seen at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from pruning.calibration.geometry import LayerGeometry, conv_geometry
from pruning.errors import Unsupported
from pruning.models.base import Array
from pruning.models.script_graph import attribute_path, inlined
from pruning.models.torchscript_model import TorchScriptModel

Capture = Callable[[Mapping[str, Array]], dict[str, torch.Tensor]]
_CONVS = ("aten::conv2d", "aten::_convolution")


class TorchScriptLayerInputs:
    def __init__(self, model: TorchScriptModel, input_names: Sequence[str]) -> None:
        self.model = model
        self.input_names = list(input_names)
        self.geometry: dict[str, LayerGeometry] = {}
        # Weights whose inputs cannot be captured, and why: the engine leaves them as they
        # are (reported as skipped) instead of failing the job.
        self.unscorable: dict[str, str] = {}
        shapes = {t.name: t.values.shape for t in model.prunable()}
        for node in inlined(model.module).nodes():
            name = weight_name(node)
            if name in shapes and name not in self.unscorable:
                reason = self._add_use(node, name, shapes[name][2:])
                if reason is not None:
                    self.unscorable[name] = reason
        for name in shapes:
            if name not in self.geometry and name not in self.unscorable:
                self.unscorable[name] = (
                    "forward() does not apply it with aten::linear or a 2-D convolution, so "
                    "its inputs cannot be captured"
                )
        for name in self.unscorable:
            self.geometry.pop(name, None)

    def _add_use(self, node: Any, name: str, kernel: tuple[int, ...]) -> str | None:
        try:
            geometry = _geometry(node, kernel)
        except Unsupported as exc:
            return exc.message
        if self.geometry.setdefault(name, geometry) != geometry:
            return "it is applied as different operations"
        return None

    def open(self, names: Sequence[str], threads: int = 1) -> Capture:
        """A function from feeds to the inputs of the layers ``names``, current weights; a
        weight used more than once gets the inputs of all its uses, stacked."""
        graph = inlined(self.model.module)
        uses = layer_uses(graph, names)
        order = list(dict.fromkeys(v for values in uses.values() for v in values))
        return_tuple(graph, order)
        torch._C._jit_pass_dce(graph)
        function = torch._C._create_function_from_graph("shears_capture", graph)
        module = self.model.module._c

        def capture(feeds: Mapping[str, Array]) -> dict[str, torch.Tensor]:
            args = [torch.from_numpy(feeds[n]) for n in self.input_names]
            with torch.no_grad():
                out = dict(zip(order, function(module, *args), strict=True))
            return {n: self.stacked(n, [out[v] for v in uses[n]]) for n in names}

        return capture

    def stacked(self, name: str, uses: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.geometry[name].stack([x.detach() for x in uses], name)


def layer_uses(graph: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """The value each ``aten::linear`` / conv node of weight ``names`` reads, per weight, in
    graph order (several for a weight used more than once)."""
    wanted = set(names)
    uses: dict[str, list[Any]] = {name: [] for name in names}
    for node in graph.nodes():
        name = weight_name(node)
        if name in wanted:
            uses[name].append(node.inputsAt(0))
    return uses


def weight_name(node: Any) -> str | None:
    """``conv.weight`` for a linear/conv node whose weight is a module attribute."""
    if node.kind() != "aten::linear" and node.kind() not in _CONVS:
        return None
    return attribute_path(node.inputsAt(1).node())


def _geometry(node: Any, kernel: tuple[int, ...]) -> LayerGeometry:
    if node.kind() == "aten::linear":
        return LayerGeometry("linear")
    args = [_constant(v) for v in list(node.inputs())[3:]]
    stride, padding, dilation = args[0], args[1], args[2]
    groups = args[3] if node.kind() == "aten::conv2d" else args[5]
    transposed = node.kind() == "aten::_convolution" and args[3]
    if groups != 1 or transposed or not isinstance(padding, list) or len(kernel) != 2:
        raise Unsupported(
            "only 2-D, ungrouped, explicitly padded convolutions are calibrated", field="layers"
        )
    return conv_geometry(kernel, tuple(stride), tuple(padding), tuple(dilation))


def _constant(value: Any) -> Any:
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    return value.toIValue()


def return_tuple(graph: Any, values: Sequence[Any]) -> None:
    """Make ``graph`` return exactly ``values``, as one tuple, in place of its outputs."""
    tup = graph.create("prim::TupleConstruct", list(values))
    graph.appendNode(tup)
    tup.output().setType(torch._C.TupleType([v.type() for v in values]))
    for index in reversed(range(len(list(graph.outputs())))):
        graph.eraseOutput(index)
    graph.registerOutput(tup.output())
