"""An upload's ONNX model opened for inspection without its weights: the graph from
``layout``, the checker by path, and ONNX Runtime's probe only when the model fits the
measurement budget (the probe loads every weight; a model above the budget is never loaded
whole by a job either)."""

from __future__ import annotations

from pathlib import Path

from pruning.measure_budget import over_budget
from pruning.models.onnx_archive import archive_kind, unpack
from pruning.models.onnx_model import OnnxModel, _check, _unpack_dir, session_for
from pruning.streaming.layout import read_layout


def open_graph(path: Path, measure_bytes: int | None = None) -> OnnxModel:
    packaging = archive_kind(path)
    model_file = unpack(path, _unpack_dir(), packaging) if packaging else path
    layout = read_layout(model_file, allow_external=packaging is not None)
    _check(model_file)
    if over_budget(model_file, measure_bytes) is None:
        session_for(model_file, threads=1)  # ONNX Runtime must be able to run it, or say why
    return OnnxModel(layout.skeleton, model_file, packaging)
