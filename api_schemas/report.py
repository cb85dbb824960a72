"""The report of a finished job. Every figure is measured on, or computed from, the artifacts.

Core fields are typed so generated clients can rely on them; the engine may add more (each
block allows extra keys), which pass through unchanged.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.distill_report import DistillReport
from api_schemas.manifest import Manifest, Sha256
from api_schemas.quality_report import AllocationReport, RefineReport, SearchReport

_OPEN = ConfigDict(extra="allow")


def _open(example: dict[str, Any]) -> ConfigDict:
    """Extra keys allowed; the example appears in the OpenAPI schema."""
    return ConfigDict(extra="allow", json_schema_extra={"examples": [example]})


# One report of a global magnitude job at 0.8 on a 784-256-10 MLP, block by block.
_FC1 = {
    "name": "fc1.weight",
    "node": "/fc1/Gemm",
    "op_type": "Gemm",
    "shape": [256, 784],
    "parameters": 200704,
    "nonzeros": 40141,
    "sparsity": 0.8,
}
_FC2 = {
    "name": "fc2.weight",
    "node": "/fc2/Gemm",
    "op_type": "Gemm",
    "shape": [10, 256],
    "parameters": 2560,
    "nonzeros": 512,
    "sparsity": 0.8,
}
_SPARSITY = {
    "target": 0.8,
    "achieved": 0.8,
    "sparsity_over": "pruned tensors",
    "pruned_tensors": 2,
    "skipped_tensors": 1,
    "layers": [_FC1, _FC2],
}
_SKIPPED = {
    "tensor": "pooler.weight",
    "node": "",
    "reason": "no node of the graph reads it: dead weight, the outputs do not depend on it",
}
_STORAGE = {
    "dense_bytes": 813056,
    "formats": {"csr": 326296, "bitmask": 188020, "file": 814306, "file_zip": 361542},
    "obtained": {
        "csr": "computed from counts",
        "bitmask": "computed from counts",
        "file": "measured",
        "file_zip": "measured",
    },
}
_BATCH_1 = {
    "batch_size": 1,
    "dense_ms": {"p50": 0.061, "p95": 0.074, "ci95": [0.06, 0.062]},
    "pruned_ms": {"p50": 0.06, "p95": 0.072, "ci95": [0.059, 0.061]},
    "speedup": 1.02,
    "speedup_ci95": [0.99, 1.04],
    "verdict": "within noise",
    "iterations": 212,
    "stopped": "converged",
}
_BATCH_32 = {
    "batch_size": 32,
    "dense_ms": {"p50": 0.412, "p95": 0.455, "ci95": [0.405, 0.418]},
    "pruned_ms": {"p50": 0.405, "p95": 0.449, "ci95": [0.399, 0.41]},
    "speedup": 1.02,
    "speedup_ci95": [1.01, 1.03],
    "verdict": "faster",
    "iterations": 1000,
    "stopped": "max_iterations",
}
_LATENCY = {
    "runtime": "onnxruntime 1.32.0",
    "threads": 1,
    "budget_s": 4.0,
    "spent_s": 3.1,
    "results": [_BATCH_1, _BATCH_32],
}
_FIDELITY = {
    "measured": True,
    "source": "evaluation data",
    "reason": None,
    "output_cosine": 0.9987,
    "max_abs_diff": 0.4132,
    "top1_agreement": 0.986,
    "samples": 360,
}
_DATA_FIDELITY = _FIDELITY
_SYNTHETIC_FIDELITY = {
    **_FIDELITY,
    "source": "synthetic inputs",
    "output_cosine": 0.9979,
    "max_abs_diff": 0.5207,
    "top1_agreement": 0.9375,
    "samples": 16,
}
_METRIC = {
    "name": "accuracy",
    "dataset_id": "ds_5b2e8f0c1a9d3e47",
    "samples": 360,
    "dense": 0.9791,
    "pruned": 0.9763,
    "delta": -0.0028,
    "runtime": "onnxruntime 1.32.0",
    "in_sample": False,
    "note": "argmax of the first output over its last axis compared with 'labels'",
    "fidelity": _DATA_FIDELITY,
}
_QUALITY = {"fidelity": _FIDELITY, "synthetic_fidelity": _SYNTHETIC_FIDELITY, "metric": _METRIC}
_TIMINGS = {"load_s": 0.21, "prune_s": 0.08, "retrain_s": 0.0, "benchmark_s": 1.94}


class LayerSparsity(BaseModel):
    model_config = _open(_FC1)
    name: str = Field(description="The tensor: ONNX initializer or TorchScript parameter.")
    node: str = Field(
        default="",
        description="Where the tensor is used, as the model names it: the ONNX node that "
        "reads it first (`/encoder/layer.0/attention/self/query/MatMul`) or the TorchScript "
        "module path (`encoder.layer.0.attention.self.query`).",
    )
    op_type: str = Field(
        default="",
        description="The operator of that node: ONNX `MatMul`, `Gemm`, `Conv`; TorchScript "
        "`aten::linear`, `aten::_convolution`.",
    )
    shape: list[int]
    parameters: int
    nonzeros: int
    sparsity: float


class SparsityReport(BaseModel):
    model_config = _open(_SPARSITY)
    target: float
    achieved: float = Field(description="Zeros over the parameters of the pruned tensors.")
    sparsity_over: str | None = Field(
        default=None,
        description="The tensors `achieved` counts: `pruned tensors` (skipped and excluded "
        "ones are left out, and counted in `skipped_tensors` and `excluded_tensors`).",
    )
    pruned_tensors: int | None = None
    skipped_tensors: int | None = None
    layers: list[LayerSparsity]


class SkippedTensor(BaseModel):
    """A selected tensor left as it is: nothing the model computes reads it, or the method
    cannot score it. The job fails only when every selected tensor is skipped."""

    model_config = _open(_SKIPPED)
    tensor: str
    node: str = Field(description="The node or module that reads it; empty when none does.")
    reason: str


class StorageReport(BaseModel):
    model_config = _open(_STORAGE)
    dense_bytes: int
    formats: dict[str, int]
    obtained: dict[str, str] | None = Field(
        default=None,
        description="How each format's figure was got: `measured`, `computed from counts` "
        "(exact for that encoding) or `estimated from a sample` (`method` says how).",
    )


class Percentiles(BaseModel):
    model_config = _open({"p50": 0.061, "p95": 0.074, "ci95": [0.06, 0.062]})
    p50: float
    p95: float
    ci95: list[float] | None = Field(
        default=None,
        description="Distribution-free 95% confidence interval of the median (p50), from "
        "order statistics; null when too few iterations (fewer than 6) were timed.",
    )


class LatencyResult(BaseModel):
    model_config = _open(_BATCH_1)
    batch_size: int
    dense_ms: Percentiles
    pruned_ms: Percentiles
    speedup: float = Field(description="Median over iterations of dense_ms / pruned_ms.")
    speedup_ci95: list[float] | None = Field(
        default=None, description="95% confidence interval of the median speedup."
    )
    verdict: Literal["faster", "slower", "within noise", "too few iterations"] | None = Field(
        default=None,
        description="`faster` or `slower` only when the speedup's interval excludes 1.0.",
    )
    iterations: int | None = Field(default=None, description="Timed iterations taken.")
    stopped: Literal["converged", "budget", "max_iterations"] | None = Field(
        default=None,
        description="Why timing stopped: the intervals were tight, the budget was spent, or "
        "`max_iterations` was reached.",
    )


class LatencyReport(BaseModel):
    model_config = _open(_LATENCY)
    runtime: str
    threads: int
    results: list[LatencyResult]
    budget_s: float | None = Field(
        default=None,
        description="The spec's budget for the fidelity on synthetic inputs and the timing.",
    )
    fidelity_s: float | None = Field(
        default=None, description="Seconds of the budget the fidelity on synthetic inputs took."
    )
    spent_s: float | None = Field(default=None, description="Seconds the timing took.")
    skipped: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Batch sizes not measured, each with `reason`: a batch size the model "
        "cannot take, or one whose warm-up and minimum iterations were predicted to end past "
        "the budget (`predicted_iteration_s`, `budget_left_s`).",
    )


FidelitySource = Literal["evaluation data", "calibration data", "synthetic inputs"]


class Fidelity(BaseModel):
    """Dense and pruned outputs compared on the same inputs. `source` says which: the
    evaluation samples, else the calibration samples, else synthetic inputs drawn from the
    ranges the graph allows (token ids across the embedding's rows, masks of ones). When no
    comparison could show a difference, `measured` is false, `reason` says why, and the
    figures are null."""

    model_config = _open(_FIDELITY)
    measured: bool = Field(
        default=True,
        description="False when no figure could be measured that shows what pruning changed: "
        "synthetic values of an input could not be known valid, or the dense model gives "
        "the same output for every sample.",
    )
    source: FidelitySource = Field(
        default="synthetic inputs", description="What the two models were run on."
    )
    reason: str | None = Field(default=None, description="Why `measured` is false.")
    output_cosine: float | None = Field(
        description="Cosine of all first-output values, pruned vs dense; null when not measured."
    )
    max_abs_diff: float | None
    top1_agreement: float | None
    samples: int | None = None


class DataFidelity(Fidelity):
    """Dense and pruned outputs compared on real samples (those of the evaluation)."""

    model_config = _open(_DATA_FIDELITY)
    samples: int | None


class MetricReport(BaseModel):
    """The spec's `evaluation` metric of the uploaded (`dense`) and the saved pruned model,
    each run from its file by `runtime` on the same `samples` of the dataset."""

    model_config = _open(_METRIC)
    name: str
    dataset_id: str
    samples: int
    dense: float
    pruned: float
    delta: float
    runtime: str
    in_sample: bool  # the evaluation data is also the retrain or calibration data
    note: str
    fidelity: DataFidelity | None = Field(
        default=None,
        description="Dense and pruned first outputs compared on these evaluation samples "
        "(also `quality.fidelity`, the headline, when an evaluation ran).",
    )


class QualityReport(BaseModel):
    model_config = _open(_QUALITY)
    fidelity: Fidelity = Field(
        description="The headline: on evaluation data when an evaluation ran, else on "
        "calibration data when the job had some, else on synthetic inputs (`source`)."
    )
    synthetic_fidelity: Fidelity | None = Field(
        default=None,
        description="The measurement on synthetic inputs, when the headline is on real data.",
    )
    metric: MetricReport | None = None


class Timings(BaseModel):
    model_config = _open(_TIMINGS)
    load_s: float
    prune_s: float
    retrain_s: float
    benchmark_s: float


_POINT = {"step": 114, "epoch": 3, "loss": 0.0731, "sparsity": 0.9, "val_loss": 0.0912}
_EVENT = {"step": 38, "epoch": 1.0, "sparsity": 0.4837}


class TrainingPoint(BaseModel):
    """One point of the training curve: at each epoch's end (with `val_loss`, and
    `val_accuracy` when the data has labels, if some data was held out) and at each pruning
    event (with `event`, its index)."""

    model_config = _open(_POINT)
    step: int
    epoch: float
    loss: float
    sparsity: float


class PruningEvent(BaseModel):
    model_config = _open(_EVENT)
    step: int
    epoch: float
    sparsity: float


class LearnedSparsityReport(BaseModel):
    """What a learned-sparsity method (`l0`, `variational_dropout`, `str`, `movement`)
    learned before the projection onto the exact `sparsity`, and how it got there."""

    model_config = _open(
        {
            "method": "l0",
            "target_density": 0.1,
            "learned_density": 0.087,
            "learned_sparsity": 0.913,
            "gap": -0.013,
            "learning_epochs": 15,
            "finetune_epochs": 5,
            "projection": {"step": 675, "score": "log alpha of the gate", "revived": 480},
            "layers": {
                "fc1.weight": {"weights": 32768, "learned_sparsity": 0.93, "sparsity": 0.92}
            },
            "trajectory": [{"step": 0, "epoch": 0.0, "phase": "learn", "density": 1.0}],
        }
    )
    method: str
    target_density: float = Field(description="1 - sparsity over the selected weights.")
    learned_density: float = Field(description="Share of weights the method kept, unprojected.")
    gap: float = Field(description="learned_density - target_density.")
    projection: dict[str, Any] = Field(
        description="The score it ranked by, and the weights it revived or dropped."
    )
    layers: dict[str, dict[str, Any]] = Field(
        description="Per tensor: weights, learned_sparsity (before) and sparsity (after)."
    )
    trajectory: list[dict[str, Any]] = Field(
        description="Density (and the Lagrange multiplier, if any) at evenly spaced steps, "
        "through learning and the fine-tuning of the projected mask."
    )


class TrainingReport(BaseModel):
    """How the pruned model was fine-tuned, masks fixed: schedule, optimizer, data, curve."""

    model_config = _open(
        {
            "schedule": {"kind": "iterative", "rounds": 3},
            "optimizer": "adam",
            "lr": 0.001,
            "batch_size": 32,
            "epochs": 3,
            "loss": "cross_entropy",
            "samples": {"train": 1200, "validation": 120},
            "steps": 114,
            "pruning_events": [_EVENT],
            "curve": [_POINT],
            "batch_norm": "no batch norm layers",
            "trained": ["0.weight", "0.bias"],
            "frozen": [],
            "time_s": 4.2,
        }
    )
    schedule: dict[str, Any]
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    loss: str
    samples: dict[str, int]
    steps: int
    pruning_events: list[PruningEvent]
    curve: list[TrainingPoint]
    time_s: float
    learned: LearnedSparsityReport | None = Field(
        default=None, description="Only for a learned-sparsity method."
    )


# Issue 19: the headline of a channel job (heads, neurons, channels removed physically).
_CHANGE = {"before": 1600256, "after": 812032, "ratio": 0.5074}
_STRUCTURED = {
    "physically_smaller": True,
    "parameters": _CHANGE,
    "flops": {"before": 52297728, "after": 26279936, "ratio": 0.5025},
    "file_bytes": {"before": 6417421, "after": 3262135, "ratio": 0.5083},
    "heads_removed": {"total": 8, "of": 16, "per_layer": {"/blocks.0/attention": 4}},
    "neurons_removed": {
        "total": 1024,
        "of": 2048,
        "per_layer": {"/blocks.0/intermediate/MatMul": 512},
    },
    "channels_removed": 1024,
    "speedup": {"1": 2.12, "32": 1.76},
    "output_cosine": 0.9952,
}


class CountChange(BaseModel):
    """A count before and after the job; `ratio` is after / before (null when before is 0)."""

    model_config = _open({"before": 1600256, "after": 812032, "ratio": 0.5074})
    before: int
    after: int
    ratio: float | None


class UnitsRemoved(BaseModel):
    """Attention heads (or MLP neurons) removed, in all and per layer."""

    model_config = _open(
        {"total": 8, "of": 16, "per_layer": {"/layer.0/attn": 3, "/layer.1/attn": 5}}
    )
    total: int = Field(description="Units removed over all layers.")
    of: int = Field(description="Units the layers had.")
    per_layer: dict[str, int] = Field(description="Layer -> units removed.")


class StructuredHeadline(BaseModel):
    """What a channel job removed and what it bought: parameters, FLOPs (MatMul/Gemm/Conv at
    batch 1) and file bytes before and after, attention heads and MLP neurons removed per
    layer, the measured speedup per batch size (from `latency`) and the output cosine (from
    `quality.fidelity`). `sparsity.achieved` counts zeros, which removed units are not."""

    model_config = _open(_STRUCTURED)
    physically_smaller: bool | None = None
    parameters: CountChange | None = None
    flops: CountChange | None = None
    file_bytes: CountChange | None = None
    heads_removed: UnitsRemoved
    neurons_removed: UnitsRemoved
    channels_removed: int
    speedup: dict[str, float | None] = Field(description="Batch size -> measured speedup.")
    output_cosine: float | None = None


class Report(BaseModel):
    model_config = _open(
        {
            "sparsity": _SPARSITY,
            "skipped": [_SKIPPED],
            "storage": _STORAGE,
            "latency": _LATENCY,
            "quality": _QUALITY,
            "timings": _TIMINGS,
        }
    )
    sparsity: SparsityReport
    skipped: list[SkippedTensor] = Field(
        default_factory=list,
        description="Selected tensors left unpruned, each with the reason.",
    )
    storage: StorageReport
    latency: LatencyReport | None = Field(description="null when the spec's latency was null.")
    quality: QualityReport
    timings: Timings
    training: TrainingReport | None = None
    structured: StructuredHeadline | None = Field(
        default=None, description="The headline of a channel job; null for other granularities."
    )
    allocation: AllocationReport | None = Field(
        default=None, description="The per-layer sparsity an `allocation` chose, and why."
    )
    refine: RefineReport | None = Field(
        default=None, description="What `refine` did to each layer's error."
    )
    search: SearchReport | None = Field(
        default=None, description='The curve of `sparsity: {"auto": ...}` or a `sweep`.'
    )
    distill: DistillReport | None = Field(
        default=None, description="What `distill` did after the one-shot pass."
    )
    manifest: Manifest | None = Field(
        default=None,
        description="What decided the artifact's bytes; null in reports of older releases.",
    )
    manifest_sha256: Sha256 | None = Field(
        default=None, description="The manifest's sha256: `GET /v1/jobs?manifest_sha256=`."
    )
