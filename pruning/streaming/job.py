"""A one-shot unstructured job with a data-free scorer, on an ONNX model, in bounded memory.

The in-memory engine holds the parsed model and a copy of every prunable weight; here the
graph is parsed without its weights (``layout``), each tensor is read through a mapping of
its own byte range (``mapped``), the cuts are chosen by the streaming selection of
``pruning.masks`` (one counting pass, exact), and the output is the input file rewritten
range by range (``rewrite``), the report's figures counted on the way (``tally``). Memory is
a few slices of scores plus the largest tensor's sparse encoding when a sparse npz is asked
for, whatever the model's size. The report has the in-memory engine's shape and figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from pruning.errors import InvalidModel
from pruning.formats.sparse_npz_stream import SparseNpzWriter
from pruning.inputs import resolve_inputs
from pruning.layers import LayerPlan, plan_layers
from pruning.manifest import KnownDigests, job_manifest
from pruning.masks import Cut, apply_cut, select_cuts
from pruning.measure_budget import over_budget
from pruning.methods import make_scorer
from pruning.methods.base import Scorer
from pruning.models import detect_format
from pruning.models.onnx_archive import ZIP, archive_kind, pack, unpack, unpacked_files
from pruning.models.onnx_model import PARAMETER_TYPES, OnnxModel, _unpack_dir
from pruning.outputs import check_outputs, write_html_report
from pruning.progress import Progress, ProgressCallback
from pruning.report import PrunedLayers
from pruning.spec import PruneSpec, parse_spec
from pruning.streaming.archived import archive_layout, seal_zip
from pruning.streaming.layout import Layout, read_layout
from pruning.streaming.mapped import MappedTensor, Window, map_region
from pruning.streaming.rewrite import rewrite_file
from pruning.streaming.tally import Tally, sampling_stride
from pruning.tensors import FloatArray, WeightTensor
from shears_methods import names

STREAMED_METHODS = names(family="data_free")  # scores from the weights alone, slice by slice
_CHECK = 1 << 20


class NotStreamable(Exception):
    """The model stores a prunable tensor in a way ranges cannot address (float16 in
    ``int32_data``): the in-memory engine takes the job."""


def streamable(spec: PruneSpec) -> bool:
    """What the streaming engine does: one-shot unstructured pruning, data-free scores, no
    retraining, and outputs it writes tensor by tensor (ONNX sparse initializers are not)."""
    return (
        spec.method.name in STREAMED_METHODS
        and spec.granularity == "unstructured"
        and spec.schedule.kind == "one_shot"
        and spec.retrain is None
        and spec.calibration is None
        and spec.search is None  # a search prunes the whole model again and again, in memory
        and "onnx_sparse" not in spec.outputs
    )


@dataclass(frozen=True)
class _Written:
    artifact: Path
    tally: Tally
    sparse: dict[str, Path]
    archived: bool  # the artifact is already the archive (pruned inside a copy of it)


@dataclass(frozen=True)
class StreamedCall:
    """``pruning.engine.prune``'s arguments, as the streaming engine takes them."""

    model_path: Path
    raw_spec: dict[str, Any]
    out_dir: Path
    progress: ProgressCallback | None
    datasets: Mapping[str, Path]
    model_name: str | None
    digests: KnownDigests | None
    measure_bytes: int | None


def prune_streamed(call: StreamedCall, fmt: str | None) -> Any:
    """``pruning.engine.prune``'s ``PruneResult`` for a job the streaming engine does (an
    ONNX model, a spec ``streamable`` accepts), else None: the in-memory engine does it."""
    spec = parse_spec(call.raw_spec)
    if not streamable(spec) or detect_format(call.model_path, fmt) != OnnxModel.format:
        return None
    try:
        return _prune_streamed(call, spec)
    except NotStreamable:
        return None


def _prune_streamed(call: StreamedCall, spec: PruneSpec) -> Any:
    from pruning import engine  # the report and benchmark steps, shared with the engine

    clock = engine._Clock()
    step = Progress(call.progress)
    model_path, datasets = call.model_path, call.datasets
    job, written = _prune_and_write(call, spec, step, clock, engine)
    measured = engine._benchmark(job, step)
    clock.lap("benchmark_s")
    measured["metric"] = engine._evaluate(job)
    if spec.evaluation is not None:
        clock.lap("evaluation_s")
    step("report")
    found = written.tally.census(job.pruned)
    delivered = job.artifact
    if job.packaging is not None and not written.archived:  # extracted: pack it again
        delivered = pack(job.artifact, job.packaging, job.artifact.with_suffix(f".{job.packaging}"))
    artifacts = {"model": delivered, **written.sparse}
    report = engine._report(job, measured, found, artifacts)
    report.update(job_manifest(model_path, call.raw_spec, datasets, call.digests))
    clock.lap("report_s")
    report["timings"] = clock.timings()
    title = f"Shears report: {call.model_name or job.original.name}"
    histogram = written.tally.histogram()
    html = write_html_report(report, {}, {}, job.artifact.parent, title, histogram)
    artifacts["report_html"] = html
    if delivered != job.artifact:  # the archive holds them: one copy of the weights on disk
        for loose in unpacked_files(job.artifact):
            loose.unlink()
    step("report", 1.0)
    return engine.PruneResult(artifacts=artifacts, report=report)


def _prune_and_write(
    call: StreamedCall, spec: PruneSpec, step: Progress, clock: Any, engine: Any
) -> tuple[Any, _Written]:
    step("load")
    path, out_dir = call.model_path, call.out_dir
    layout, packaging = _open(path, call.measure_bytes)
    model_file = layout.model_file
    model = OnnxModel(layout.skeleton, model_file, packaging)  # the graph's analysis only
    check_outputs(spec.outputs, model.format)
    inputs = resolve_inputs(
        model.signature.inputs, spec.input_shapes, model.exact_shapes, model.input_ranges()
    )
    window = Window()
    tensors = _mapped(model, layout, window)
    plan = plan_layers(tensors, spec.layers, model.skipped())
    clock.lap("load_s")
    step("prune", 0.0, {"layers": len(plan.selected)})
    top = _check_finite(tensors, {t.name for t in plan.selected})
    scorer = make_scorer(spec.method.name, dict(spec.method.options))
    cuts = select_cuts(plan.selected, scorer, spec.sparsity, spec.scope, plan.overrides)
    window.close()
    clock.lap("prune_s")
    step("save")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = _write(layout, plan, scorer, cuts, top, spec, out_dir, packaging)
    clock.lap("save_s")
    pruned = PrunedLayers(
        [t.name for t in plan.selected],
        plan.overrides,
        plan.excluded,
        plan.skipped,
        {t.name: (t.node, t.op_type) for t in plan.selected},
    )
    outputs = [o.name for o in model.signature.outputs]
    job = engine._Job(
        spec,
        OnnxModel,
        model_file,
        written.artifact,
        inputs,
        outputs,
        pruned,
        datasets=call.datasets,
        packaging=packaging,
        upload=path,
        measure_bytes=call.measure_bytes,
    )
    return job, written


def _open(path: Path, measure_bytes: int | None) -> tuple[Layout, str | None]:
    """The model's layout, and its archive kind. An archive whose model will not be loaded
    in a runtime (above the measurement budget) is pruned inside the archive itself; one
    that will is extracted, for the runtime to open."""
    packaging = archive_kind(path)
    if packaging is None:
        return read_layout(path, allow_external=False), None
    if over_budget(path, measure_bytes) is not None:
        direct = archive_layout(path, packaging)
        if direct is not None:
            return direct, packaging
    model_file = unpack(path, _unpack_dir(), packaging)
    return read_layout(model_file, allow_external=True), packaging


def _mapped(model: OnnxModel, layout: Layout, window: Window) -> list[WeightTensor]:
    tensors: list[WeightTensor] = []
    for info in model.prunable_info():
        region = layout.regions.get(info["name"])
        if region is None:
            raise NotStreamable(info["name"])
        tensors.append(
            MappedTensor(info["name"], info["op"], region, window, info["node"], info["op"])
        )
    return tensors


def _check_finite(tensors: list[WeightTensor], selected: set[str]) -> float:
    """``require_finite`` over mapped tensors, slice by slice; returns the largest |w| of the
    selected ones (the magnitude histogram's range)."""
    top = 0.0
    for t in tensors:
        flat = t.flat
        for start in range(0, flat.size, _CHECK):
            part = flat[start : start + _CHECK]
            high, low = float(np.max(part)), float(np.min(part))
            if not (np.isfinite(high) and np.isfinite(low)):
                raise InvalidModel(
                    f"weight {t.name!r} contains NaN or infinite values; "
                    "fix the model (e.g. re-export a checkpoint from before training diverged)"
                )
            if t.name in selected:
                top = max(top, high, -low)
    return top


def _write(
    layout: Layout,
    plan: LayerPlan,
    scorer: Scorer,
    cuts: dict[str, Cut],
    top: float,
    spec: PruneSpec,
    out_dir: Path,
    packaging: str | None,
) -> _Written:
    tally = Tally(top, every=sampling_stride(sum(t.numel for t in plan.selected)))
    selected = {t.name: t for t in plan.selected}
    sparse: dict[str, Path] = {}
    npz = SparseNpzWriter(out_dir / "model.sparse.npz") if "sparse_npz" in spec.outputs else None

    def visit(name: str, before: FloatArray, after: FloatArray) -> None:
        tensor = selected[name]
        writable = WeightTensor(name, tensor.op, after, tensor.node, tensor.op_type)
        apply_cut(writable, scorer, cuts[name])
        tally.pruned(name, before, after)
        if npz is not None:  # in file order: the npz's `names` says which tensor is which
            npz.add(name, after)

    inside = layout.archived  # pruned inside a copy of the upload's archive
    artifact = out_dir / f"model.{packaging}" if inside else out_dir / "model.onnx"
    try:
        for source in layout.files():
            ranges = [
                (n, r) for n, r in layout.regions.items() if n in selected and r.file == source
            ]
            dest = artifact if source == layout.model_file else _dest(source, layout, out_dir)
            rewrite_file(source, dest, ranges, visit)
    except BaseException:
        if npz is not None:
            npz.abandon()
        raise
    if npz is not None:
        npz.close()
        sparse["sparse_npz"] = npz.path
    if inside and packaging == ZIP:
        seal_zip(artifact, layout, set(selected))
    _count_others(layout, set(selected), tally)
    return _Written(artifact, tally, sparse, inside)


def _dest(source: Path, layout: Layout, out_dir: Path) -> Path:
    """Where a file of the model goes: the graph as model.onnx, data files under the names
    its locations give."""
    if source == layout.model_file:
        return out_dir / "model.onnx"
    return out_dir / source.relative_to(layout.model_file.parent)


def _count_others(layout: Layout, pruned: set[str], tally: Tally) -> None:
    """Every floating-point parameter left as it was, for the census's totals."""
    for init in layout.skeleton.graph.initializer:
        if init.data_type not in PARAMETER_TYPES or init.name in pruned:
            continue
        region = layout.regions.get(init.name)
        if region is not None:
            tally.other(init.name, map_region(region))
        elif init.data_location != onnx.TensorProto.EXTERNAL:
            tally.other(init.name, numpy_helper.to_array(init))
