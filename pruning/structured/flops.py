"""Multiply-accumulate work of an ONNX model, counted from the shapes one ONNX Runtime run
gives (exporters compute attention shapes at run time, which static inference cannot see):
2 * M * N * K for every MatMul and Gemm, 2 * outputs * (C_in / group) * kernel for Conv.
Elementwise ops, Softmax and norms are left out (a few percent of a transformer's work)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from pruning.models.onnx_model import session_for

COUNTED = ("MatMul", "Gemm", "Conv")


def count_flops(proto: onnx.ModelProto, feeds: Mapping[str, Any]) -> int:
    nodes = [n for n in proto.graph.node if n.op_type in COUNTED and n.domain in ("", "ai.onnx")]
    if not nodes:
        return 0
    names = sorted({n.input[0] for n in nodes} | {n.output[0] for n in nodes})
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    known = {o.name for o in probe.graph.output} | {i.name for i in probe.graph.input}
    inits = {i.name: list(i.dims) for i in probe.graph.initializer}
    wanted = [n for n in names if n not in inits]
    for name in wanted:
        if name not in known:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = session_for(probe.SerializeToString(), threads=1)
    outputs = [o.name for o in session.get_outputs()]
    values = session.run([n for n in wanted if n in outputs], dict(feeds))  # all, normally
    fetched = [n for n in wanted if n in outputs]
    shapes = {n: list(np.shape(v)) for n, v in zip(fetched, values, strict=True)}
    shapes.update({n: list(feeds[n].shape) for n in feeds})
    shapes.update(inits)
    total = 0
    for node in nodes:
        out = shapes.get(node.output[0])
        if out is None:
            continue
        outputs_count = int(np.prod(out, dtype=np.int64))
        if node.op_type == "Conv":
            weight = shapes.get(node.input[1]) or [0, 0]
            total += 2 * outputs_count * int(np.prod(weight[1:], dtype=np.int64))
            continue
        a = shapes.get(node.input[0]) or [0]
        trans_a = any(x.name == "transA" and x.i for x in node.attribute)
        inner = a[-2] if node.op_type == "Gemm" and trans_a else a[-1]
        total += 2 * outputs_count * int(inner)
    return total
