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
from pruning.models.torchscript_model import TorchScriptModel

Capture = Callable[[Mapping[str, Array]], dict[str, torch.Tensor]]
_CONVS = ("aten::conv2d", "aten::_convolution")


class TorchScriptLayerInputs:
    def __init__(self, model: TorchScriptModel, input_names: Sequence[str]) -> None:
        self.model = model
        self.input_names = list(input_names)
        self.geometry: dict[str, LayerGeometry] = {}
        shapes = {t.name: t.values.shape for t in model.prunable()}
        for node in _inlined(model.module).nodes():
            name = _weight_name(node)
            if name in shapes and name not in self.geometry:
                self.geometry[name] = _geometry(node, name, shapes[name][2:])
        missing = [t.name for t in model.prunable() if t.name not in self.geometry]
        if missing:
            raise Unsupported(
                f"layer {missing[0]!r} is not used by aten::linear or a 2-D convolution in "
                "forward(), so its inputs cannot be captured; exclude it with layers.exclude",
                field="layers",
            )

    def open(self, names: Sequence[str], threads: int = 1) -> Capture:
        graph = _inlined(self.model.module)
        wanted = set(names)
        values: dict[str, Any] = {}
        for node in graph.nodes():
            name = _weight_name(node)
            if name in wanted and name not in values:
                values[name] = node.inputsAt(0)
        order = list(values)
        tup = graph.create("prim::TupleConstruct", [values[n] for n in order])
        graph.appendNode(tup)
        tup.output().setType(torch._C.TupleType([values[n].type() for n in order]))
        graph.eraseOutput(0)
        graph.registerOutput(tup.output())
        torch._C._jit_pass_dce(graph)
        function = torch._C._create_function_from_graph("shears_capture", graph)
        module = self.model.module._c

        def capture(feeds: Mapping[str, Array]) -> dict[str, torch.Tensor]:
            args = [torch.from_numpy(feeds[n]) for n in self.input_names]
            with torch.no_grad():
                out = function(module, *args)
            return {n: t.detach() for n, t in zip(order, out, strict=True)}

        return capture


def _inlined(module: torch.jit.ScriptModule) -> Any:
    graph = getattr(module.forward, "graph").copy()  # noqa: B009  (a ScriptMethod attribute)
    torch._C._jit_pass_inline(graph)
    return graph


def _weight_name(node: Any) -> str | None:
    """``conv.weight`` for a linear/conv node whose weight is a module attribute."""
    if node.kind() != "aten::linear" and node.kind() not in _CONVS:
        return None
    chain = []
    source = node.inputsAt(1).node()
    while source.kind() == "prim::GetAttr":
        chain.append(source.s("name"))
        source = source.inputsAt(0).node()
    return ".".join(reversed(chain)) or None


def _geometry(node: Any, name: str, kernel: tuple[int, ...]) -> LayerGeometry:
    if node.kind() == "aten::linear":
        return LayerGeometry("linear")
    args = [_constant(v) for v in list(node.inputs())[3:]]
    stride, padding, dilation = args[0], args[1], args[2]
    groups = args[3] if node.kind() == "aten::conv2d" else args[5]
    transposed = node.kind() == "aten::_convolution" and args[3]
    if groups != 1 or transposed or not isinstance(padding, list) or len(kernel) != 2:
        raise Unsupported(
            f"layer {name!r}: only 2-D, ungrouped, explicitly padded convolutions are "
            "calibrated; exclude it with layers.exclude",
            field="layers",
        )
    return conv_geometry(kernel, tuple(stride), tuple(padding), tuple(dilation))


def _constant(value: Any) -> Any:
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    return value.toIValue()
