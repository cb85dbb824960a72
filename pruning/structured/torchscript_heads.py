"""``nn.MultiheadAttention`` in a TorchScript archive keeps its heads, and the report says why.

Removing heads makes the attention's inner width (heads x head_dim) smaller than the model
width, and this module cannot express that once compiled:

- scripted, its forward is ``F.multi_head_attention_forward`` (or, in eval, the fused
  ``_native_multi_head_attention``): ``head_dim = embed_dim // num_heads`` with ``embed_dim``
  read from the query, and the packed ``in_proj_weight`` must have 3 x embed_dim rows
  ("expected `qkv_weight` first dim to be 3x embed_dim"), so cutting its rows and setting
  ``num_heads`` gives a model that fails;
- traced, the graph hardcodes ``num_heads`` as a constant of ``aten::div`` (head_dim) and
  ``aten::mul`` (batch x heads in the ``aten::view`` sizes), and splits the packed projection
  with ``aten::unflatten(..., [3, aten::size(query, -1)])``: the widths come from the query,
  not from the weights, so the cut weights fail at the unflatten.

A TorchScript archive cannot swap the module for one with a separate inner width, so heads of
these modules are removed on an ONNX export of the model instead (both torch.onnx exporters'
graphs are cut by :mod:`pruning.structured.heads`).
"""

from __future__ import annotations

from typing import Any

MULTIHEAD = "MultiheadAttention"


def multihead_attention_units(module: Any) -> list[dict[str, Any]]:
    """One refused head unit per ``nn.MultiheadAttention`` in ``module`` (a ScriptModule)."""
    units = []
    for name, child in module.named_modules():
        if str(getattr(child, "original_name", "")) != MULTIHEAD:
            continue
        layer = name or "<model>"
        heads = _head_count(child)
        units.append(
            {
                "kind": "head",
                "layer": layer,
                "units": None,
                "kept": None,
                "heads": heads,
                "reason": _reason(layer, child, heads),
            }
        )
    return units


def _scripted(child: Any) -> bool:
    return hasattr(child, "num_heads")


def _head_count(child: Any) -> int | None:
    if _scripted(child):
        return int(child.num_heads)
    # traced: head_dim = aten::div(aten::size(query, -1), <num_heads constant>)
    for node in child.graph.nodes():
        if node.kind() != "aten::div" or not node.output().debugName().startswith("head_dim"):
            continue
        divisor = list(node.inputs())[1]
        if divisor.node().kind() == "prim::Constant":
            value = divisor.toIValue()  # an int, or a 0-d tensor in a traced graph
            return int(value.item() if hasattr(value, "item") else value)
    return None


def _reason(layer: str, child: Any, heads: int | None) -> str:
    count = f"num_heads={heads}" if heads is not None else "num_heads"
    if _scripted(child):
        where = (
            "its scripted forward (F.multi_head_attention_forward / _native_multi_head_attention)"
            " takes head_dim = embed_dim // num_heads from the query width and needs "
            "in_proj_weight of 3 x embed_dim rows"
        )
    else:
        where = (
            f"its traced graph hardcodes {count} in aten::div and aten::mul and splits "
            "in_proj_weight's output with aten::unflatten(.., [3, aten::size(query, -1)])"
        )
    return (
        f"nn.MultiheadAttention {layer!r} ({count}): {where}, so fewer heads cannot run "
        "without changing the model width; heads are removed on an ONNX export of the model"
    )
