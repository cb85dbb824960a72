"""``prune()``: load, prune, save, then measure the saved artifact and report."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pruning.calibration.data_shapes import data_shapes
from pruning.calibration.dense_outputs import DenseOutputs
from pruning.calibration.run import needs_calibration, prune_calibrated, unscorable
from pruning.context import JobContext
from pruning.device import compute_device
from pruning.errors import Unsupported
from pruning.evaluation import evaluate
from pruning.fidelity import (
    DATA_SAMPLES,
    headline,
    measure_fidelity,
    measure_on_calibration,
    seconds_per_sample,
)
from pruning.formats import storage_report
from pruning.inputs import InputPlan, resolve_inputs
from pruning.latency import measure_latency
from pruning.layers import LayerPlan, plan_layers
from pruning.manifest import KnownDigests, job_manifest
from pruning.masks import prune_in_place
from pruning.measure_budget import over_budget, unmeasured
from pruning.methods import make_scorer
from pruning.models import ModelAdapter, open_model
from pruning.models.base import Array, require_finite
from pruning.models.onnx_archive import pack, unpacked_files
from pruning.outputs import check_outputs, write_html_report, write_sparse_outputs
from pruning.progress import Progress, ProgressCallback
from pruning.quality_pass import QualityPass, search_sparsity
from pruning.report import ArtifactCensus, PrunedLayers, census, sparsity_section
from pruning.spec import PruneSpec, parse_spec
from pruning.streaming.job import StreamedCall, prune_streamed
from pruning.structured.channel_masks import ChannelMasks, mask_channels
from pruning.structured.hardware import explain, explain_no_gain
from pruning.structured.headline import structured_headline
from pruning.structured.prune import StructuredOutcome, cut_masked_channels, prune_structured
from pruning.training.distill import prune_then_distill
from pruning.training.learned import is_learned
from pruning.training.learned.run import train_learned
from pruning.training.run import EventNotes, TrainingOutcome, prune_with_training
from pruning.training.zeros_first import zeros_first
from pruning.version import __version__


@dataclass(frozen=True)
class PruneResult:
    """``artifacts["model"]`` is the pruned model in the input's format; ``report`` is JSON."""

    artifacts: dict[str, Path]
    report: dict[str, Any]


@dataclass(frozen=True)
class _Job:
    spec: PruneSpec
    kind: type[ModelAdapter]
    original: Path
    artifact: Path
    inputs: InputPlan
    outputs: list[str]
    pruned: PrunedLayers
    calibration: dict[str, Any] | None = None  # what calibrated methods used, for the report
    structure: dict[str, Any] | None = None  # n:m / channel: what was cut or left, and why
    training: dict[str, Any] | None = None  # the retraining's schedule, curve and choices
    datasets: Mapping[str, Path] = field(default_factory=dict)
    packaging: str | None = None  # "zip" / "tar": the upload's archive, the artifact's too
    upload: Path | None = None  # the file given, when it is not `original` (an archive)
    measure_bytes: int | None = None  # the runtime copies' budget (pruning.measure_budget)
    quality: dict[str, Any] = field(default_factory=dict)  # allocation, refine, search blocks
    dense_outputs: DenseOutputs | None = None  # the upload on the calibration samples, if run


def prune(
    model_path: Path,
    spec: dict[str, Any],
    out_dir: Path,
    fmt: str | None = None,
    progress: ProgressCallback | None = None,
    datasets: Mapping[str, Path] | None = None,
    device: str = "cpu",
    model_name: str | None = None,
    digests: KnownDigests | None = None,
    measure_bytes: int | None = None,
) -> PruneResult:
    """Prune ``model_path`` as ``spec`` (API.md's PruneSpec JSON) says, writing into ``out_dir``.

    ``datasets`` maps dataset ids to ``.npz`` paths for the spec's ``calibration`` (the
    loss-based and activation-based methods). ``device`` (``cpu``, ``cuda``, ``auto``) is
    where calibration statistics and solves run (``pruning.device``). ``model_name`` titles
    the HTML report (the worker's copy of an upload has a generic file name). ``digests``
    are sha256s of the model and datasets the caller already knows, for the report's
    manifest; the engine hashes the files it is not told about. ``measure_bytes``: the
    memory the latency and fidelity runs may take (``pruning.measure_budget``).
    """
    call = StreamedCall(
        Path(model_path),
        spec,
        Path(out_dir),
        progress,
        datasets or {},
        model_name,
        digests,
        measure_bytes,
    )
    streamed = prune_streamed(call, fmt)
    if streamed is not None:  # a data-free one-shot ONNX job: tensor by tensor from disk
        return streamed  # type: ignore[no-any-return]
    clock = _Clock()
    step = Progress(progress)
    with compute_device(device):
        job = _prune_and_save(
            Path(model_path),
            parse_spec(spec),
            Path(out_dir),
            fmt,
            step,
            clock,
            datasets or {},
            measure_bytes,
        )
    measured = _benchmark(job, step)
    clock.lap("benchmark_s")
    measured["metric"] = _evaluate(job)
    if job.spec.evaluation is not None:
        clock.lap("evaluation_s")
    step("report")
    found = census(job.kind.iter_parameters(job.artifact), job.pruned)  # one read for all
    after = found.weights
    sparse = write_sparse_outputs(job.spec.outputs, job.artifact, after, job.artifact.parent)
    delivered = job.artifact
    if job.packaging is not None:  # back into the upload's archive kind, data file beside
        delivered = pack(job.artifact, job.packaging, job.artifact.with_suffix(f".{job.packaging}"))
    artifacts = {"model": delivered, **sparse.paths}
    report = _report(job, measured, found, artifacts)
    report["storage"].update(sparse.notes)
    report.update(job_manifest(Path(model_path), spec, datasets or {}, digests))
    clock.lap("report_s")
    report["timings"] = clock.timings()
    before = _read_weights(job.kind, job.original, job.pruned.names)
    title = f"Shears report: {model_name or job.original.name}"
    artifacts["report_html"] = write_html_report(report, before, after, job.artifact.parent, title)
    if delivered != job.artifact:  # the archive holds them: one copy of the weights on disk
        for loose in unpacked_files(job.artifact):
            loose.unlink()
    step("report", 1.0)
    return PruneResult(artifacts=artifacts, report=report)


def _prune_and_save(
    path: Path,
    spec: PruneSpec,
    out_dir: Path,
    fmt: str | None,
    step: Progress,
    clock: _Clock,
    datasets: Mapping[str, Path],
    measure_bytes: int | None,
) -> _Job:
    """Everything that holds the weights in memory; they are released when this returns."""
    step("load")
    model = open_model(path, fmt, probe_runtime=False)  # timed in its runtime later
    check_outputs(spec.outputs, model.format)
    if model.packaging is not None and "onnx_sparse" in spec.outputs:
        raise Unsupported(
            "outputs: onnx_sparse is written for a model with external data only by a "
            "one-shot unstructured magnitude or random job; ask for sparse_npz, which holds "
            "the same sparse tensors",
            field="outputs",
        )
    found = data_shapes(spec, datasets)  # sizes symbolic axes that input_shapes leaves open
    inputs = resolve_inputs(
        model.signature.inputs,
        spec.input_shapes,
        model.exact_shapes,
        model.input_ranges(),
        None if found is None else (found.source, found.shapes),
    )
    tensors = model.prunable()
    require_finite(tensors)
    plan = plan_layers(tensors, spec.layers, model.skipped())
    plan = plan.skipping(unscorable(model, plan, spec, inputs.names))
    clock.lap("load_s")
    step("prune", 0.0, {"layers": len(plan.selected)})
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = JobContext(model, plan, spec, inputs, datasets, step, out_dir)
    quality = QualityPass(ctx)
    # The upload's outputs on the calibration samples are kept only for a benchmark that runs.
    measured = over_budget(model.source or path, measure_bytes) is None
    done = _prune_or_train(ctx, clock, quality, measured)
    spec = quality.final_spec(spec)
    step("save")
    if done.structured is not None:
        artifact = done.structured.save(done.model, out_dir)
    else:
        artifact = done.model.save(out_dir)
    clock.lap("save_s")
    pruned = PrunedLayers(
        [t.name for t in plan.selected],
        quality.overrides(plan),
        plan.excluded,
        plan.skipped,
        _uses(plan),
    )
    outputs = [o.name for o in model.signature.outputs]
    return _Job(
        spec,
        type(model),
        model.source or path,  # the runtime's file: an archive's unpacked model
        artifact,
        inputs,
        outputs,
        pruned,
        done.calibration,
        done.structure,
        done.training,
        datasets,
        model.packaging,
        path,
        measure_bytes=measure_bytes,
        quality=quality.notes,
        dense_outputs=done.dense_outputs,
    )


def _uses(plan: LayerPlan) -> dict[str, tuple[str, str]]:
    """Tensor name -> (node, op type) of each pruned tensor, for the report."""
    return {t.name: (t.node, t.op_type) for t in plan.selected}


@dataclass(frozen=True)
class _Pruned:
    model: ModelAdapter  # what to save: a channel cut before training replaces the upload's
    structured: StructuredOutcome | None  # saves a new, smaller graph when set
    calibration: dict[str, Any] | None
    structure: dict[str, Any] | None
    training: dict[str, Any] | None = None
    dense_outputs: DenseOutputs | None = None  # from the method's pass, for the benchmark


def _prune_or_train(
    ctx: JobContext, clock: _Clock, quality: QualityPass, keep_outputs: bool
) -> _Pruned:
    structured: StructuredOutcome | None = None
    model, spec = ctx.model, ctx.spec

    def prune_once(event: JobContext) -> EventNotes:
        nonlocal structured
        structured, calibration = _prune_once(event, quality)
        return EventNotes(calibration, structured.report if structured else None)

    if spec.search is not None:  # one-shot prunings from the dense model (parse_spec checked)
        threads = spec.latency.threads if spec.latency else 1

        def prune(at: PruneSpec) -> dict[str, Any] | None:
            return prune_once(ctx.with_(spec=at)).calibration

        calibration = search_sparsity(quality, spec, ctx.plan, prune, ctx.out_dir, threads)
        clock.lap("prune_s")
        return _Pruned(model, None, calibration, None)
    if spec.retrain is None and spec.distill is not None:  # one-shot, then distillation
        done: list[EventNotes] = []
        distilled = prune_then_distill(
            ctx, lambda: done.append(prune_once(ctx)), spec.latency.threads if spec.latency else 1
        )
        quality.notes["distill"] = distilled.report
        _lap_distill(clock, distilled.prune_s)
        return _Pruned(model, structured, done[0].calibration, done[0].structure)
    if spec.retrain is None:
        # The upload's outputs on the calibration samples, if the method's forward gives them.
        dense = DenseOutputs(DATA_SAMPLES) if keep_outputs else None
        outcome, calibration = _prune_once(ctx, quality, dense)
        clock.lap("prune_s")
        report = outcome.report if outcome else None
        return _Pruned(model, outcome, calibration, report, dense_outputs=dense)
    if is_learned(spec.method.name):  # learns its own mask, ends with a projection
        trained = train_learned(ctx)
        _lap_training(clock, trained)
        return _Pruned(model, None, None, None, trained.report)
    if spec.granularity == "channel" and spec.schedule.kind == "one_shot":
        return _cut_channels_then_train(ctx, clock)
    if spec.granularity == "channel":
        return _mask_channels_train_then_cut(ctx, clock)
    trained = prune_with_training(ctx, prune_once)
    _lap_training(clock, trained)
    notes = trained.notes
    return _Pruned(model, structured, notes.calibration, notes.structure, trained.report)


def _lap_distill(clock: _Clock, prune_s: float) -> None:
    """Distillation is timed as retraining, the one-shot pass inside it as pruning."""
    clock.lap("retrain_s")
    clock.laps["prune_s"] = round(prune_s, 4)
    clock.laps["retrain_s"] = round(clock.laps["retrain_s"] - prune_s, 4)


def _cut_channels_then_train(ctx: JobContext, clock: _Clock) -> _Pruned:
    """Channels are cut once, which gives the model new shapes; the smaller model is then
    reopened from its own file and fine-tuned (its remaining zeros, if any, stay zero)."""
    began = time.perf_counter()
    outcome, calibration = _prune_once(ctx)
    assert outcome is not None  # channel granularity always has a structured outcome
    cut_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory(dir=ctx.out_dir) as staging:
        small = open_model(outcome.save(ctx.model, Path(staging)), ctx.model.format)
    small_plan = plan_layers(small.prunable(), ctx.spec.layers, small.skipped())
    notes = EventNotes(calibration, outcome.report)
    trained = prune_with_training(ctx.with_(model=small, plan=small_plan), lambda _: notes)
    _lap_training(clock, trained, cut_s)
    return _Pruned(small, None, calibration, outcome.report, trained.report)


def _mask_channels_train_then_cut(ctx: JobContext, clock: _Clock) -> _Pruned:
    """A channel schedule: each event zeroes a larger share of the channels while the model
    keeps its shapes and trains; the zeroed channels are cut once training ends."""
    last: list[ChannelMasks] = []

    def mask_once(event: JobContext) -> EventNotes:
        last[:] = [mask_channels(event)]
        groups = {"kind": "channel", "groups": last[0].groups}
        return EventNotes(last[0].ranking.calibration, groups)

    trained = prune_with_training(ctx, mask_once)
    began = time.perf_counter()
    outcome = cut_masked_channels(ctx, last[0])
    _lap_training(clock, trained, time.perf_counter() - began)
    return _Pruned(ctx.model, outcome, outcome.calibration, outcome.report, trained.report)


def _lap_training(clock: _Clock, trained: TrainingOutcome, extra_prune_s: float = 0.0) -> None:
    """Training time holds the pruning events: report them as pruning."""
    clock.lap("retrain_s")
    prune_s = trained.prune_s + extra_prune_s
    clock.laps["prune_s"] = round(prune_s, 4)
    clock.laps["retrain_s"] = round(clock.laps["retrain_s"] - prune_s, 4)


def _prune_once(
    ctx: JobContext, quality: QualityPass | None = None, keep: DenseOutputs | None = None
) -> tuple[StructuredOutcome | None, dict[str, Any] | None]:
    """One pruning pass to ``ctx.spec.sparsity``: what a one-shot job does, and what each
    event of a training schedule does. Returns the structured outcome and the calibration
    notes; ``keep`` receives the dense outputs on the calibration samples if the method ran
    them."""
    if quality is None or not quality.active:
        return _prune_pass(ctx, keep)
    plan = quality.before(ctx.plan, ctx.spec)  # per-layer fractions from the allocation
    done = _prune_pass(ctx.with_(plan=plan), keep)
    quality.after(plan, ctx.spec)  # masks and weights refined against the dense layers
    return done


def _prune_pass(
    ctx: JobContext, keep: DenseOutputs | None = None
) -> tuple[StructuredOutcome | None, dict[str, Any] | None]:
    plan, spec = ctx.plan, ctx.spec
    if spec.granularity == "channel":  # channels ranked by norm or by loss (taylor)
        outcome = prune_structured(ctx, None)
        return outcome, outcome.calibration
    if needs_calibration(spec):
        return None, prune_calibrated(ctx, keep)
    scorer = make_scorer(spec.method.name, dict(spec.method.options))
    if spec.retrain is not None:  # later events prune on top of earlier zeros
        scorer = zeros_first(scorer)
    if spec.granularity != "unstructured":
        return prune_structured(ctx, scorer), None
    prune_in_place(plan.selected, scorer, spec.sparsity, spec.scope, plan.overrides)
    return None, None


def _benchmark(job: _Job, step: Progress) -> dict[str, Any]:
    """Fidelity on synthetic inputs, then latency in what is left of ``latency.budget_s``;
    fidelity on the calibration samples runs on runners of its own (all cores: its figures
    do not depend on threads), once for the headline and the calibration block."""
    threads = job.spec.latency.threads if job.spec.latency else 1
    too_large = over_budget(job.original, job.measure_bytes)
    if too_large is not None:
        return unmeasured(too_large, job.kind.runtime, threads, job.spec.latency is not None)
    dense = job.kind.open_runner(job.original, threads, job.inputs.names)
    pruned = job.kind.open_runner(job.artifact, threads, job.inputs.names)
    try:
        step("fidelity")
        began = time.perf_counter()
        budget = job.spec.latency.budget_s if job.spec.latency else None
        fidelity = measure_fidelity(dense, pruned, job.inputs, job.outputs, budget)
        latency = None
        if job.spec.latency is not None:
            sizes = len(job.spec.latency.batch_sizes)
            latency = measure_latency(
                dense,
                pruned,
                job.inputs,
                job.spec.latency,
                job.kind.runtime,
                lambda i, b: step("latency", i / sizes, {"batch_size": b}),
                spent_before_s=time.perf_counter() - began,
                sample_s=seconds_per_sample(fidelity, time.perf_counter() - began),
            )
    finally:
        pruned.close()
        dense.close()
    on_calibration = measure_on_calibration(
        lambda path: job.kind.open_runner(path, os.cpu_count() or 1, job.inputs.names),
        (job.original, job.artifact),
        job.inputs,
        job.spec,
        job.datasets,
        job.calibration,
        job.dense_outputs,
    )
    return {"latency": latency, "fidelity": fidelity, "calibration_fidelity": on_calibration}


def _evaluate(job: _Job) -> dict[str, Any] | None:
    """The spec's metric on the saved artifact and on the upload, with the latency runners."""
    spec = job.spec
    if spec.evaluation is None or over_budget(job.original, job.measure_bytes) is not None:
        return None
    used = {d.dataset_id for d in (spec.retrain, spec.calibration) if d is not None}
    threads = spec.latency.threads if spec.latency else 1
    return evaluate(
        job.kind,
        job.original,
        job.artifact,
        spec.evaluation,
        job.datasets,
        job.inputs,
        threads,
        in_sample=spec.evaluation.dataset_id in used,
    )


def _read_weights(kind: type[ModelAdapter], path: Path, names: list[str]) -> dict[str, Array]:
    wanted = set(names)
    return {name: values for name, values in kind.iter_parameters(path) if name in wanted}


def _report(
    job: _Job, measured: dict[str, Any], found: ArtifactCensus, artifacts: dict[str, Path]
) -> dict[str, Any]:
    # Sizes of the files a user would ship, next to those of the upload.
    files = {"file": artifacts["model"], "dense_file": job.upload or job.original}
    files.update({name: path for name, path in artifacts.items() if name != "model"})
    storage = _labelled(
        storage_report(found.weights, files, job.spec.report.compressed_sizes, found.storage_layers)
    )
    quality = headline(measured["fidelity"], measured["metric"], measured["calibration_fidelity"])
    return {
        "structured": structured_headline(job.structure, measured["latency"], storage, quality),
        "sparsity": sparsity_section(found, job.pruned, job.spec),
        "skipped": [s.to_json() for s in job.pruned.skipped],
        "storage": storage,
        "latency": _explained(measured["latency"], job),
        "quality": quality,
        "training": job.training,
        "calibration": job.calibration,
        **job.quality,
        "structure": job.structure,
        "engine": {
            "name": "shears-pruning",
            "version": __version__,
            "format": job.kind.format,
            "method": job.spec.method.name,
            "scope": job.spec.scope,
            "granularity": job.spec.granularity,
            "schedule": job.spec.schedule.kind,
            **dict(job.spec.method.options),
        },
    }


def _explained(latency: dict[str, Any] | None, job: _Job) -> dict[str, Any] | None:
    """Add what the hardware can exploit for this granularity (the measurement is the same)."""
    if latency is None:
        return None
    smaller = bool((job.structure or {}).get("physically_smaller", True))
    latency["explanation"] = explain(job.spec.granularity, smaller)
    if latency.get("note") and job.spec.granularity != "unstructured":
        latency["note"] = explain_no_gain(job.spec.granularity, smaller)
    return latency


def _labelled(storage: dict[str, Any]) -> dict[str, Any]:
    """Say which file is which: inside a job, upload and artifact may share a file name."""
    method = storage["method"]
    for key, what in (("file", "the pruned model file"), ("dense_file", "the uploaded model")):
        for suffix in ("", "_zip", "_zstd"):
            if f"{key}{suffix}" in method:
                method[f"{key}{suffix}"] = f"{what}: {method[f'{key}{suffix}']}"
    return storage


@dataclass
class _Clock:
    start: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)
    laps: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 4)
        self.last = now

    def timings(self) -> dict[str, float]:
        total = round(time.perf_counter() - self.start, 4)
        return {"retrain_s": 0.0, **self.laps, "total_s": total}
