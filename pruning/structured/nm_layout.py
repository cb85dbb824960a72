"""Which weights hold their input dimension on axis 0 (``in x out``), for N:M groups.

ONNX: MatMul's constant B and Gemm's B without ``transB`` are ``in x out``; Gemm's A with
``transA`` too; ConvTranspose weights are ``in x out/g x kh x kw``. Conv, Gemm with
``transB=1`` (torch Linear) and a constant MatMul A are ``out x in``. TorchScript: Linear and
Conv are ``out x in``; ConvTranspose is ``in x out``.
"""

from __future__ import annotations

from typing import Any

from pruning.models.base import ModelAdapter
from pruning.structured.graph import attribute


def input_on_axis0(model: ModelAdapter) -> set[str]:
    proto: Any = getattr(model, "proto", None)
    if proto is None:  # TorchScript: the module kind tells
        return {t.name for t in model.prunable() if "ConvTranspose" in t.op}
    columns: set[str] = set()
    for node in proto.graph.node:
        inputs = list(node.input)
        if node.op_type == "MatMul" and len(inputs) > 1:
            columns.add(inputs[1])
        elif node.op_type == "Gemm":
            if not attribute(node, "transB", 0) and len(inputs) > 1:
                columns.add(inputs[1])
            if attribute(node, "transA", 0):
                columns.add(inputs[0])
        elif node.op_type == "ConvTranspose" and len(inputs) > 1:
            columns.add(inputs[1])
    return columns
