"""A one-shot unstructured job with a data-free scorer, on an ONNX model, in bounded memory.

The in-memory engine holds the parsed model and a copy of every prunable weight; here the
graph is parsed without its weights (``layout``), each tensor is read through a mapping of
its own byte range (``mapped``), the cuts are chosen by the streaming selection of
``pruning.masks`` (one counting pass, exact, the NaN check riding on it: ``finite``), and
the output is the input copied in one pass with its pruned ranges pruned on the way
(``rewrite``), the report's figures counted on the way too (``tally``): the model is read
twice and written once. Memory is
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

from pruning.formats.sparse_npz_stream import SparseNpzWriter
from pruning.inputs import resolve_inputs
from pruning.layers import LayerPlan, plan_layers
from pruning.manifest import KnownDigests, job_manifest
from pruning.masks import Cut, select_cuts
from pruning.masks.cut import apply_cut_to_piece
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
from pruning.streaming.archived import MemberCrcs, archive_layout
from pruning.streaming.finite import CheckingScorer, check_finite
from pruning.streaming.layout import Layout, read_layout
from pruning.streaming.mapped import MappedTensor, Window, map_region
from pruning.streaming.rewrite import rewrite_file
from pruning.streaming.sparse_onnx import write_sparse_archive
from pruning.streaming.tally import Tally, sampling_stride
from pruning.tensors import FloatArray, WeightTensor
from shears_methods import names

STREAMED_METHODS = names(family="data_free")  # scores from the weights alone, slice by slice


class NotStreamable(Exception):
    """The model stores a prunable tensor in a way ranges cannot address (float16 in
    ``int32_data``): the in-memory engine takes the job."""


def streamable(spec: PruneSpec, archived: bool = True) -> bool:
    """What the streaming engine does: one-shot unstructured pruning, data-free scores, no
    retraining. ``onnx_sparse`` it writes tensor by tensor for an archive (``sparse_onnx``);
    a single file's is built whole and checked in ONNX Runtime by the in-memory engine."""
    return (
        spec.method.name in STREAMED_METHODS
        and spec.granularity == "unstructured"
        and spec.schedule.kind == "one_shot"
        and spec.retrain is None
        and spec.calibration is None
        and spec.search is None  # a search prunes the whole model again and again, in memory
        and (archived or "onnx_sparse" not in spec.outputs)
    )


@dataclass(frozen=True)
class _Written:
    artifact: Path
    tally: Tally
    sparse: dict[str, Path]
    archived: bool  # the artifact is already the archive (pruned inside a copy of it)
    notes: dict[str, Any]  # the storage report's notes on sparse outputs


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
    archived = archive_kind(call.model_path) is not None
    if not streamable(spec, archived) or detect_format(call.model_path, fmt) != OnnxModel.format:
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
    report["storage"].update(written.notes)
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
    scorer = make_scorer(spec.method.name, dict(spec.method.options))
    # The NaN check rides on the selection's counting pass: one read of the weights, not two.
    checking = CheckingScorer(scorer)
    window.scan_order([t.region for t in plan.selected])  # type: ignore[attr-defined]
    try:
        cuts = select_cuts(plan.selected, checking, spec.sparsity, spec.scope, plan.overrides)
        top = checking.finish(plan.selected)
        selected = {t.name for t in plan.selected}
        check_finite(t for t in tensors if t.name not in selected)
    finally:
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
    notes: dict[str, Any] = {}
    npz = SparseNpzWriter(out_dir / "model.sparse.npz") if "sparse_npz" in spec.outputs else None
    ties: dict[str, int] = {}

    def visit(name: str, start: int, piece: FloatArray) -> None:
        tensor, cut = selected[name], cuts[name]
        tally.before(name, tuple(tensor.shape), start, piece)
        left = ties.get(name, cut.ties) if start else cut.ties
        ties[name] = apply_cut_to_piece(tensor, scorer, cut, start, piece, left)
        tally.after(start, piece)

    inside = layout.archived  # pruned inside a copy of the upload's archive
    artifact = out_dir / f"model.{packaging}" if inside else out_dir / "model.onnx"
    zipped = inside and packaging == ZIP
    crcs = MemberCrcs(layout.model_file, layout, set(selected)) if zipped else None
    try:
        for source in layout.files():
            ranges = [
                (n, r) for n, r in layout.regions.items() if n in selected and r.file == source
            ]
            dest = artifact if source == layout.model_file else _dest(source, layout, out_dir)
            for name, region in ranges:
                if region.nbytes == 0:  # nothing to read: counted as it is
                    empty = np.zeros(region.shape, region.dtype)
                    tally.pruned(name, empty, empty)
            observers = [crcs] if crcs is not None and source == layout.model_file else []
            rewrite_file(source, dest, [(n, r) for n, r in ranges if r.nbytes], visit, observers)
            if npz is not None:  # in file order: the npz's `names` says which tensor is which
                for name, region in sorted(ranges, key=lambda item: item[1].offset):
                    npz.add(name, map_region(region, dest))
    except BaseException:
        if npz is not None:
            npz.abandon()
        raise
    if npz is not None:
        npz.close()
        sparse["sparse_npz"] = npz.path
    if "onnx_sparse" in spec.outputs and packaging is not None:

        def pruned_file(file: Path) -> Path:
            return artifact if file == layout.model_file else _dest(file, layout, out_dir)

        sparse["onnx_sparse"], notes["onnx_sparse"] = write_sparse_archive(
            layout, pruned_file, packaging, out_dir
        )
    if crcs is not None:
        crcs.seal(artifact)
    _count_others(layout, set(selected), tally)
    return _Written(artifact, tally, sparse, inside, notes)


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
