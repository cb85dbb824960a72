"""An upload's ONNX model opened for inspection without its weights: the graph from
``layout``, the checker on that graph, and ONNX Runtime's probe only when the model fits the
measurement budget (the probe loads every weight; a model above the budget is never loaded
whole by a job either)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx

from pruning.measure_budget import over_budget
from pruning.models.onnx_archive import archive_kind, unpack
from pruning.models.onnx_model import OnnxModel, _check, _unpack_dir, session_for
from pruning.streaming.archived import archive_layout
from pruning.streaming.layout import INLINE_BYTES, Layout, read_layout

# Above this a single file is checked through its graph alone (see ``_check_graph``).
_CHECK_WHOLE_BYTES = 64 * 1024**2
_STAND_IN = "weights.bin"


def open_graph(path: Path, measure_bytes: int | None = None) -> OnnxModel:
    packaging = archive_kind(path)
    if packaging is not None and over_budget(path, measure_bytes) is not None:
        inside = archive_layout(path, packaging)  # no runtime will open it: not extracted
        if inside is not None:
            _check_graph(inside)
            return OnnxModel(inside.skeleton, path, packaging)
    model_file = unpack(path, _unpack_dir(), packaging) if packaging else path
    layout = read_layout(model_file, allow_external=packaging is not None)
    if packaging is None and model_file.stat().st_size > _CHECK_WHOLE_BYTES:
        _check_graph(layout)
    else:
        _check(model_file)
    if over_budget(model_file, measure_bytes) is None:
        session_for(model_file, threads=1)  # ONNX Runtime must be able to run it, or say why
    return OnnxModel(layout.skeleton, model_file, packaging)


def _check_graph(layout: Layout) -> None:
    """The checker on the graph, its tensors named as external data at their offsets in a
    sparse stand-in file of the model file's size: the C++ checker given the model file reads
    all of it (a 1 GB model cost a GB of memory at upload); given this it checks the graph,
    and the ranges' bounds were checked when ``layout`` was read. The stand-in is a file of
    our own (the upload is a hard link into the blob store, which the checker refuses as a
    possible attack), and sparse, so it takes no disk."""
    graph = onnx.ModelProto()
    graph.CopyFrom(layout.skeleton)
    for tensor in graph.graph.initializer:
        region = layout.regions.get(tensor.name)
        external = tensor.data_location == onnx.TensorProto.EXTERNAL
        if region is None or (region.nbytes <= INLINE_BYTES and not external):
            continue  # its data is in the graph
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (
            ("location", _STAND_IN),
            ("offset", str(region.offset)),
            ("length", str(region.nbytes)),
        ):
            tensor.external_data.add(key=key, value=value)
    with tempfile.TemporaryDirectory(prefix="shears-graph-") as folder:
        with open(Path(folder) / _STAND_IN, "wb") as stand_in:
            os.ftruncate(stand_in.fileno(), layout.model_file.stat().st_size)
        (Path(folder) / "graph.onnx").write_bytes(graph.SerializeToString())
        _check(Path(folder) / "graph.onnx")
