"""Artifacts beyond the pruned model: the sparse forms asked for in `outputs`, and the
self-contained HTML report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pruning.errors import Unsupported
from pruning.formats import encode_sparse_npz, write_onnx_sparse
from pruning.html import render_report_html
from pruning.html.magnitudes import MagnitudeHistogram
from pruning.models.base import Array

SPARSE_OUTPUTS = ("sparse_npz", "onnx_sparse")


@dataclass(frozen=True)
class SparseArtifacts:
    paths: dict[str, Path] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def check_outputs(requested: tuple[str, ...], model_format: str) -> None:
    """Refuse, before any work, an output the model's format cannot have."""
    if "onnx_sparse" in requested and model_format != "onnx":
        raise Unsupported(
            f"output 'onnx_sparse' needs an ONNX model; this one is {model_format}: "
            "ask for 'sparse_npz' instead",
            field="outputs",
        )


def write_sparse_outputs(
    requested: tuple[str, ...], artifact: Path, weights: Mapping[str, Array], out_dir: Path
) -> SparseArtifacts:
    written = SparseArtifacts()
    if "sparse_npz" in requested:
        path = out_dir / "model.sparse.npz"
        encode_sparse_npz(weights, path)
        written.paths["sparse_npz"] = path
    if "onnx_sparse" in requested:
        path = out_dir / "model.sparse.onnx"
        result = write_onnx_sparse(artifact, path)
        written.paths["onnx_sparse"] = path
        written.notes["onnx_sparse"] = result.to_dict()
    return written


def write_html_report(
    report: Mapping[str, Any],
    before: Mapping[str, Array],
    after: Mapping[str, Array],
    out_dir: Path,
    title: str,
    counted: MagnitudeHistogram | None = None,
) -> Path:
    path = out_dir / "report.html"
    page = render_report_html(report, before, after, title, counted)
    path.write_text(page, encoding="utf-8")
    return path
