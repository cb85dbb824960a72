"""Value ranges of a TorchScript module's tensor inputs, read from its inlined graph:
``aten::embedding(weight, ids)`` bounds ids by the weight's rows; a comparison, ``where``,
``mul``, ``sub``/``rsub`` or ``masked_fill`` marks a mask (reached through ``to``,
``unsqueeze``, ``view`` and friends, as ``attention_mask[:, None, None, :].to(dtype)``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import torch

from pruning.input_ranges import FREE, IndexUse, InputRange, decide

PASS_THROUGH = {
    "aten::to",
    "aten::type_as",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::reshape",
    "aten::view",
    "aten::flatten",
    "aten::expand",
    "aten::contiguous",
    "aten::clone",
    "aten::long",
    "aten::int",
    "aten::float",
    "aten::slice",
    "aten::select",
}
MASK_OPS = {
    "aten::eq",
    "aten::ne",
    "aten::lt",
    "aten::le",
    "aten::gt",
    "aten::ge",
    "aten::where",
    "aten::mul",
    "aten::mul_",
    "aten::sub",
    "aten::rsub",
    "aten::masked_fill",
    "aten::masked_fill_",
    "aten::logical_not",
    "aten::logical_and",
    "aten::logical_or",
    "aten::bitwise_not",
    "aten::__and__",
    "aten::__or__",
}


def torchscript_input_ranges(
    module: torch.jit.ScriptModule, names: list[str]
) -> dict[str, InputRange]:
    """A range for each input in ``names`` (forward's tensor arguments) the graph constrains;
    the caller knows the dtypes, so floats found here are ignored there."""
    try:
        graph = module.inlined_graph
        arguments = [a.name for a in getattr(module.forward, "schema").arguments[1:]]  # noqa: B009
        values = dict(zip(arguments, list(graph.inputs())[1:], strict=False))
        return {name: _range_of(values[name], module) for name in names if name in values}
    except Exception:  # the graph API is internal to torch: an unread graph means "no hint"
        return {}


def _range_of(value: Any, module: torch.jit.ScriptModule) -> InputRange:
    indexed: list[IndexUse] = []
    masked = False
    for node, index in _uses(value):
        kind = node.kind()
        if kind == "aten::embedding" and index == 1:
            table = node.inputsAt(0)
            name = _attribute_path(table) or table.debugName()
            indexed.append(IndexUse(name, _rows(table, module)))
        elif kind in MASK_OPS:
            masked = True
    return decide(indexed, masked) if indexed or masked else FREE


def _uses(value: Any) -> Iterator[tuple[Any, int]]:
    pending, seen = deque([value]), {value.unique()}
    while pending:
        for use in pending.popleft().uses():
            node, index = use.user, use.offset
            if node.kind() in PASS_THROUGH and index == 0:
                for out in node.outputs():
                    if out.unique() not in seen:
                        seen.add(out.unique())
                        pending.append(out)
            else:
                yield node, index


def _attribute_path(value: Any) -> str | None:
    """``emb.weight`` for a chain of ``prim::GetAttr`` from ``self``, else None."""
    path = []
    while value.node().kind() == "prim::GetAttr":
        path.append(value.node().s("name"))
        value = value.node().inputsAt(0)
    if not path or value.node().kind() != "prim::Param":
        return None
    return ".".join(reversed(path))


def _rows(table: Any, module: torch.jit.ScriptModule) -> int | None:
    path = _attribute_path(table)
    if path is None:
        return None
    found: Any = module
    for part in path.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, torch.Tensor) or found.dim() < 1:
        return None
    return int(found.shape[0])
