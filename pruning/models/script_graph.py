"""What a TorchScript module's forward graph does with its parameters: which ones it reads,
and which operator reads each first. Submodule calls are inlined first, so a parameter shows
as a chain of ``prim::GetAttr`` from ``self`` (``encoder.layer.0.query.weight``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def inlined(module: torch.jit.ScriptModule) -> Any:
    graph = getattr(module.forward, "graph").copy()  # noqa: B009  (a ScriptMethod attribute)
    torch._C._jit_pass_inline(graph)
    return graph


def attribute_path(node: Any) -> str | None:
    """``encoder.query.weight`` for the last ``prim::GetAttr`` of a chain from ``self``."""
    chain = []
    source = node
    while source.kind() == "prim::GetAttr":
        chain.append(source.s("name"))
        source = source.inputsAt(0).node()
    return ".".join(reversed(chain)) or None


def first_readers(module: torch.jit.ScriptModule) -> dict[str, str]:
    """Parameter path -> the kind of the first operator of ``forward()`` that reads it.

    Dead code is dropped first: a traced model records only what ran, but a scripted one
    may compute a pooler whose result nothing returns, and that weight is as unused."""
    graph = inlined(module)
    torch._C._jit_pass_dce(graph)
    found: dict[str, str] = {}
    for node in _all_nodes(graph.block()):
        if node.kind() != "prim::GetAttr":
            continue
        readers = [use.user.kind() for use in node.output().uses()]
        reader = next((kind for kind in readers if kind != "prim::GetAttr"), None)
        path = attribute_path(node)
        if reader is not None and path is not None:
            found.setdefault(path, reader)
    return found


def _all_nodes(block: Any) -> Iterator[Any]:
    """Nodes in order, descending into the blocks of ``prim::If`` and ``prim::Loop``."""
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _all_nodes(inner)
