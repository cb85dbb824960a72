"""PruneSpec: what a job should do to a model. Unions are discriminated by a literal tag."""

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from api_schemas.methods import MEMBERS, Method
from shears_methods import METHODS, names

# The members of the `method` union are built from the method registry (api_schemas/methods.py);
# these two are part of the package's names.
MagnitudeMethod = MEMBERS["magnitude"]
RandomMethod = MEMBERS["random"]


def _contract(*examples: dict[str, Any]) -> ConfigDict:
    """Unknown keys are refused; the examples appear in the OpenAPI schema."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


def _raise_at(title: str, *problems: tuple[tuple[str, ...] | str, str]) -> None:
    """A validation error located at the offending field (`retrain.epochs`), not at the
    model that found it, so the API's 422 names the field a client must change."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError("value_error", "{reason}", {"reason": message}),
            loc=(loc,) if isinstance(loc, str) else loc,
            input=None,
        )
        for loc, message in problems
    ]
    raise ValidationError.from_exception_data(title, details)


def _learned_problems(
    method: str, retrain: "RetrainSpec | None", schedule: str, granularity: str
) -> Iterator[tuple[tuple[str, ...] | str, str]]:
    """What a method's registry entry (`shears_methods`) asks of the rest of the spec. Only
    learned methods need `retrain`; calibration is checked by createJob (service/spec_checks.py)
    and so are the granularities of the calibrated methods, after the model is known."""
    info = METHODS[method]
    if info.family != "learned":
        return
    if retrain is None and "retrain" in info.needs:
        yield (
            "retrain",
            f"method {method!r} learns which weights to drop while training; it needs "
            '`retrain` with a training dataset: {"dataset_id": "ds_...", "epochs": ...}',
        )
    if granularity not in info.granularities:
        yield ("granularity", f"method {method!r} learns single weights: use 'unstructured'")
    if schedule not in info.schedules:
        yield (
            ("schedule", "kind"),
            f"method {method!r} sets its own sparsity over training; use "
            + " or ".join(repr(a) for a in info.schedules),
        )
    if retrain is not None and retrain.regrow:
        yield (
            ("retrain", "regrow"),
            f"method {method!r} can bring back any weight while it trains; regrow applies to "
            "pruning events only",
        )


class CalibrationSpec(BaseModel):
    """Calibration data for data-driven methods: a dataset whose arrays are keyed by the
    model's input names (plus optional `labels`/`targets`); the first `samples` are used."""

    model_config = _contract({"dataset_id": "ds_5e6f7a8b9c0d", "samples": 128})
    dataset_id: str = Field(
        min_length=1, max_length=128, description="The calibration data (uploadDataset)."
    )
    samples: int = Field(
        default=128, ge=1, le=100_000, description="Use the first this many samples."
    )


class UnstructuredGranularity(BaseModel):
    """Any individual weight may be zeroed."""

    model_config = _contract({"kind": "unstructured"})
    kind: Literal["unstructured"] = Field(default="unstructured", description="Granularity tag.")


class NMGranularity(BaseModel):
    """Exactly `n` zeros in every group of `m` consecutive weights along the input dimension
    (2:4 with sparsity 0.5 is the pattern of NVIDIA's sparse tensor cores). The input
    dimension: for Conv the flattened `in_channels * kh * kw` of each output channel; for Gemm
    the last axis of B when `transB=1` (torch Linear) and axis 0 otherwise; for MatMul with a
    constant B, axis 0 of B; for TorchScript Linear/Conv the flattened dims after the first.
    `sparsity` must equal n/m; a layer whose input dimension is not a multiple of m is left
    dense and named in the report. With an `iterative` or `gradual` schedule each pruning
    event keeps the pattern z:m, z the whole number of zeros nearest the event's sparsity
    times m (2:4 ramps 1:4 then 2:4); zeros stay zero, and the last event leaves exactly n:m."""

    model_config = _contract({"kind": "n:m", "n": 2, "m": 4})
    kind: Literal["n:m"] = Field(default="n:m", description="Granularity tag.")
    n: int = Field(default=2, ge=1, le=31, description="Zeros in each group of m.")
    m: int = Field(default=4, ge=2, le=32, description="Group length along the input dim.")

    @model_validator(mode="after")
    def _n_below_m(self) -> "NMGranularity":
        if self.n >= self.m:
            raise ValueError(f"n must be less than m, got n={self.n}, m={self.m}")
        return self


class ChannelTarget(BaseModel):
    """Exactly one of: `speedup` measured in ONNX Runtime at `latency.batch_sizes` (the
    smallest over them), or the fraction of the dense model's `flops` or `parameters` kept."""

    model_config = _contract({"speedup": 1.5}, {"flops": 0.5})
    speedup: float | None = Field(default=None, gt=1.0, le=100.0, description="Speedup to reach.")
    flops: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Fraction of the dense FLOPs to keep at most."
    )
    parameters: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Fraction of the dense parameters to keep."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "ChannelTarget":
        given = [k for k in ("speedup", "flops", "parameters") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of speedup, flops, parameters (got {given})")
        return self


class ChannelGranularity(BaseModel):
    """Remove whole output channels (Conv) and output features (Gemm/MatMul), and shrink the
    layers that consume them: the returned ONNX model is physically smaller. `sparsity` is the
    fraction of channels removed from every channel group; `importance` ranks channels by the
    L1 or L2 norm of their weights (Li et al. 2017, "Pruning Filters for Efficient ConvNets"),
    unless `method` is `taylor`, whose loss-based score (with calibration data) ranks them.
    Channels tied by residual additions or concatenations are pruned together; groups that
    cannot be cut safely stay dense and the report says why. With an `iterative` or `gradual`
    schedule each pruning event zeroes the event's fraction of channels (the weights making
    them and the inputs reading them; the model keeps its shapes while it trains) and the
    zeroed channels are cut when training ends."""

    model_config = _contract(
        {"kind": "channel", "importance": "l1"},
        {
            "kind": "channel",
            "importance": "output_error",
            "allocation": "global",
            "rescale": True,
            "target": {"speedup": 1.5},
        },
    )
    kind: Literal["channel"] = Field(default="channel", description="Granularity tag.")
    importance: Literal["l1", "l2", "output_error"] = Field(
        default="l1",
        description="Norm of a channel's weights that ranks it (not with taylor); "
        "`output_error`: attention heads and MLP neurons ranked by the output error of removing "
        "each alone on the calibration data (needs `calibration`; other channels by L1).",
    )
    # Transformer heads and neurons (issue 19): their own block for easy merges.
    allocation: Literal["uniform", "global"] = Field(
        default="uniform",
        description="How many heads and neurons each layer loses: `uniform` the same fraction "
        "everywhere; `global` one ranking over all layers (needs `output_error`).",
    )
    rescale: bool = Field(
        default=False,
        description="Refit each projection reading kept heads/neurons by least squares to the "
        "dense layer output on the calibration data (Kwon et al. 2022); needs `calibration`.",
    )
    target: ChannelTarget | None = Field(
        default=None,
        description="Search the pruning ratio (up to `sparsity`) that reaches this target; "
        "the report gives the curve, or how close it got.",
    )

    @model_validator(mode="after")
    def _global_needs_data(self) -> "ChannelGranularity":
        if self.allocation == "global" and self.importance != "output_error":
            _raise_at(
                "ChannelGranularity",
                (
                    "allocation",
                    "allocation 'global' compares layers by output error; "
                    "set importance to 'output_error'",
                ),
            )
        return self


Granularity = Annotated[
    UnstructuredGranularity | NMGranularity | ChannelGranularity, Field(discriminator="kind")
]


class OneShotSchedule(BaseModel):
    """Prune once to the target sparsity. With `retrain`, then fine-tune for `epochs` with the
    mask fixed."""

    model_config = _contract({"kind": "one_shot"})
    kind: Literal["one_shot"] = Field(default="one_shot", description="Schedule tag.")


class IterativeSchedule(BaseModel):
    """Iterative pruning (Han et al. 2015): `rounds` of prune-then-retrain. Round r of R prunes
    to s_r = 1 - (1 - s)^(r/R), the same fraction of the surviving weights each round, then
    retrains `retrain.epochs / R` epochs (split as evenly as possible). Needs `retrain`."""

    model_config = _contract({"kind": "iterative", "rounds": 3})
    kind: Literal["iterative"] = Field(default="iterative", description="Schedule tag.")
    rounds: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Prune/retrain rounds; `retrain.epochs` must be at least this.",
    )


class GradualSchedule(BaseModel):
    """Gradual pruning (Zhu & Gupta 2017, eq. 1) during training: pruning events k = 0..n at
    optimizer step k * dt, dt = max(1, floor(pruning_fraction * T / n)) for T training steps,
    each to s_k = s + (s_i - s) * (1 - k/n)^exponent; the rest of training fine-tunes at the
    target `sparsity` s, where it ends exactly. Needs `retrain`."""

    model_config = _contract(
        {
            "kind": "gradual",
            "steps": 10,
            "exponent": 3.0,
            "initial_sparsity": 0.0,
            "pruning_fraction": 0.75,
        }
    )
    kind: Literal["gradual"] = Field(default="gradual", description="Schedule tag.")
    steps: int = Field(default=10, ge=1, le=1000, description="Pruning events after the first (n).")
    exponent: float = Field(
        default=3.0,
        ge=1.0,
        le=10.0,
        description="Exponent of the sparsity ramp; 3 is Zhu & Gupta's cubic: prune fast "
        "while many redundant weights remain, slowly near the target.",
    )
    initial_sparsity: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Sparsity of the first pruning event (s_i); at most the target `sparsity`.",
    )
    pruning_fraction: float = Field(
        default=0.75,
        gt=0.0,
        le=1.0,
        description="Share of the training steps over which the events are spread; the rest "
        "fine-tunes at the target sparsity.",
    )


Schedule = Annotated[
    OneShotSchedule | IterativeSchedule | GradualSchedule, Field(discriminator="kind")
]
RETRAINING_SCHEDULES = ("iterative", "gradual")

# The default momentum; any other value with Adam would be silently ignored, so it is refused.
SGD_MOMENTUM = 0.9


class RetrainSpec(BaseModel):
    """Fine-tune the pruned model on a dataset with the masks fixed: pruned weights are exactly
    0 after every optimizer step. The dataset's arrays are keyed by the model's input names,
    plus `labels` (integer class ids) or `targets` (floats) as the loss needs."""

    model_config = _contract(
        {
            "dataset_id": "ds_5e6f7a8b9c0d",
            "epochs": 10,
            "lr": 0.001,
            "batch_size": 32,
            "optimizer": "adam",
            "loss": "cross_entropy",
            "validation_split": 0.1,
        },
        {
            "dataset_id": "ds_5e6f7a8b9c0d",
            "epochs": 20,
            "lr": 0.01,
            "optimizer": "sgd",
            "momentum": 0.9,
            "loss": "distill",
            "temperature": 4.0,
        },
    )
    dataset_id: str = Field(
        min_length=1, max_length=128, description="The training data (uploadDataset)."
    )
    epochs: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Training epochs for the whole schedule (an iterative schedule splits them "
        "across its rounds).",
    )
    lr: float = Field(default=0.001, gt=0.0, le=10.0, description="Learning rate.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Samples per optimizer step.")
    optimizer: Literal["adam", "sgd"] = Field(
        default="adam", description="`adam` (Kingma & Ba 2015) or `sgd` with `momentum`."
    )
    momentum: float = Field(
        default=SGD_MOMENTUM,
        ge=0.0,
        lt=1.0,
        description="Momentum of `sgd`; with `adam` it must stay at its default.",
    )
    weight_decay: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="L2 penalty on the trained parameters."
    )
    loss: Literal["cross_entropy+distill", "cross_entropy", "mse", "distill"] = Field(
        default="cross_entropy+distill",
        description="`cross_entropy` needs a `labels` array; `mse` needs `targets` (or float "
        "`labels`) shaped like the first output; `distill` matches the dense model's first "
        "output (Hinton et al. 2015) and needs no labels; `cross_entropy+distill` (the "
        "default) is (1 - `alpha`) x cross-entropy + `alpha` x `distill`, and needs `labels`.",
    )
    temperature: float = Field(
        default=2.0,
        gt=0.0,
        le=100.0,
        description="Softmax temperature T of `distill`: KL divergence of the softened outputs "
        "over the last axis, scaled by T^2. Accepted and ignored with `cross_entropy` and `mse`.",
    )
    alpha: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Weight of the distillation term in `cross_entropy+distill`.",
    )
    lr_schedule: Literal["cosine", "constant"] = Field(
        default="cosine",
        description="`cosine`: a linear rise over the first `warmup` share of the steps, then "
        "a half cosine down to 0 at the last step; `constant`: `lr` throughout (the recipe "
        "before issue 15, with loss `cross_entropy`).",
    )
    warmup: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="Share of the optimizer steps over which `cosine` raises the rate from 0.",
    )
    validation_split: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="The last fraction of the samples, held out: the training curve then has "
        "`val_loss` (and `val_accuracy` with labels).",
    )
    regrow: bool = Field(
        default=False,
        description="At each pruning event after the first, reconnect earlier-pruned weights "
        "whose value when pruned beats the smallest surviving weight of their layer; the "
        "event then prunes to its target, so the sparsity still holds exactly.",
    )
    max_samples: int | None = Field(
        default=None, ge=1, description="Use at most this many samples; null (or omitted) uses all."
    )
    seed: int = Field(default=0, ge=0, description="Seed of shuffling and of anything random.")

    @model_validator(mode="after")
    def _momentum_with_sgd(self) -> "RetrainSpec":
        if self.optimizer != "sgd" and self.momentum != SGD_MOMENTUM:
            _raise_at(
                "RetrainSpec",
                ("momentum", f"momentum applies to optimizer 'sgd' only, not {self.optimizer!r}"),
            )
        return self


class EvaluationSpec(BaseModel):
    """Measure a task metric on dense and pruned models, each run from its saved file by the
    same runtime as the latency benchmark."""

    model_config = _contract(
        {"dataset_id": "ds_1a2b3c4d5e6f", "metric": "accuracy"},
        {"dataset_id": "ds_1a2b3c4d5e6f", "metric": "mse", "samples": 500},
    )
    dataset_id: str = Field(
        min_length=1,
        max_length=128,
        description="Arrays keyed by the model's input names, plus `labels` for `accuracy` or "
        "`targets` (or float `labels`) for `mse`.",
    )
    metric: Literal["accuracy", "mse"] = Field(
        default="accuracy",
        description="`accuracy`: argmax of the first output over its last axis against "
        "`labels`; `mse`: mean squared error of the first output against `targets`.",
    )
    samples: int | None = Field(
        default=None,
        ge=1,
        description="Evaluate the first this many samples; null (or omitted) uses all.",
    )


class LayerSelection(BaseModel):
    """Which prunable tensors to prune, by glob on their names (`fc1.weight`, `conv*`) or on
    the names of the nodes that use them (ONNX `/encoder/layer.0/*/MatMul`, TorchScript module
    paths such as `encoder.layer.0.*`): exporters often name ONNX weights `onnx::MatMul_782`."""

    model_config = _contract(
        {"include": ["*"], "exclude": ["classifier*"], "overrides": {"conv1*": 0.5}}
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=256,
        description="Globs of the tensors to prune, matched against tensor and node names; "
        "each must match some prunable tensor.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Globs of tensors (or of their nodes) to leave dense.",
    )
    overrides: dict[str, Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        default_factory=dict,
        max_length=256,
        description="Glob -> sparsity for matching tensors, pruned to that fraction each; "
        "the first matching pattern wins.",
    )

    @field_validator("include", "exclude")
    @classmethod
    def _patterns_not_blank(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern.strip() or len(pattern) > 512:
                raise ValueError("patterns must be non-empty globs of at most 512 characters")
        return patterns


class LatencySpec(BaseModel):
    """How dense and pruned models are timed: same runtime, inputs and threads for both,
    interleaved, each batch size until the 95% intervals of the median latencies and of the
    median speedup are within `tolerance` of them, or its share of `budget_s` is spent."""

    model_config = _contract(
        {
            "batch_sizes": [1, 32],
            "threads": 1,
            "warmup": 5,
            "iterations": 1,
            "max_iterations": 1000,
            "budget_s": 4.0,
            "tolerance": 0.03,
        },
        {"batch_sizes": [1], "budget_s": 0, "iterations": 50},
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [1, 32],
        min_length=1,
        max_length=8,
        description="Batch sizes timed, each reported apart.",
    )
    threads: int = Field(default=1, ge=1, le=64, description="Intra-op threads of the runtime.")
    warmup: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Untimed runs of each model per batch size before timing; fewer (at least "
        "one) when they take a quarter of that batch size's share of the budget.",
    )
    iterations: int = Field(
        default=1,
        ge=1,
        le=10000,
        description="Minimum timed iterations per batch size (each runs dense and pruned "
        "once). A batch size whose warm-up and minimum are predicted to end past the budget "
        "is not measured and listed under `skipped` with the reason; with `budget_s: 0`, "
        "exactly this many for every batch size.",
    )
    max_iterations: int = Field(
        default=1000,
        ge=1,
        le=100000,
        description="Most timed iterations per batch size (never fewer than `iterations`).",
    )
    budget_s: float = Field(
        default=4.0,
        ge=0,
        le=600,
        description="Seconds for the benchmark on synthetic inputs: the fidelity figure "
        "(run first) and the latency, warm-up included; what fidelity leaves is split evenly "
        "across batch sizes (time one leaves unused passes to the next), and never overrun. "
        "Larger budgets give tighter intervals on slow models and measure larger batches; "
        "`latency: null` skips timing.",
    )
    tolerance: float = Field(
        default=0.03,
        ge=0.001,
        le=1,
        description="A batch size stops once the 95% intervals of its median dense and pruned "
        "latencies and of its median speedup are each within this fraction of their median.",
    )


class ReportSpec(BaseModel):
    """What the report spends time on beyond the figures it gets cheaply."""

    model_config = _contract({"compressed_sizes": "sampled"}, {"compressed_sizes": "measured"})
    compressed_sizes: Literal["sampled", "measured", "none"] = Field(
        default="sampled",
        description="Zip and zstd sizes of the files: `sampled` estimates them from evenly "
        "spaced chunks (whole files when small; the report says which), `measured` compresses "
        "whole files (tens of seconds for hundreds of MB), `none` leaves them out.",
    )


# `model`: the input's own format, zeros in place. `sparse_npz`: every weight as CSR or
# bitmask + values, whichever is smaller per tensor (layout in pruning/formats/sparse_npz.py).
# `onnx_sparse`: the ONNX model with pruned initializers as `sparse_initializer`.
OutputFormat = Literal["model", "sparse_npz", "onnx_sparse"]


# -- Quality options (issue 15): allocation, refinement, the sparsity search ---------------


class UniformAllocation(BaseModel):
    """Every layer to the target sparsity (or its `layers.overrides` fraction): the default."""

    model_config = _contract({"kind": "uniform"})
    kind: Literal["uniform"] = Field(default="uniform", description="Allocation tag.")


class OwlAllocation(BaseModel):
    """Outlier-weighted layerwise sparsity (Yin et al. 2024): a layer's share of Wanda scores
    `|w|*||x||` above `m` x its mean, on the calibration data; more outliers, fewer zeros,
    within +-`lam` of the target; the zeros over the allocated layers stay
    round(target x their size). Needs `calibration`."""

    model_config = _contract({"kind": "owl", "m": 5.0, "lam": 0.08})
    kind: Literal["owl"] = Field(description="Allocation tag.")
    m: float = Field(default=5.0, ge=1.0, le=1e6, description="Outlier threshold M.")
    lam: float = Field(default=0.08, ge=0.0, le=0.5, description="Spread lambda.")


class SensitivityAllocation(BaseModel):
    """Each layer's relative output error on the calibration data at `points` sparsities
    within +-`spread` of the target, then the allocation with the least summed error for the
    target's zeros exactly. Needs `calibration`."""

    model_config = _contract({"kind": "sensitivity", "spread": 0.2, "points": 5})
    kind: Literal["sensitivity"] = Field(description="Allocation tag.")
    spread: float = Field(default=0.2, ge=0.0, le=0.5, description="Half-width of the probes.")
    points: int = Field(default=5, ge=2, le=16, description="Sparsities probed per layer.")


def _allocation_shorthand(value: Any) -> Any:
    return {"kind": value} if isinstance(value, str) else value


Allocation = Annotated[
    UniformAllocation | OwlAllocation | SensitivityAllocation,
    Field(discriminator="kind"),
    BeforeValidator(_allocation_shorthand),
]


class DsnotRefine(BaseModel):
    """Training-free prune-and-grow swaps per output row (DSnoT, Zhang et al. 2024) while
    they lower the layer's reconstruction error on the calibration data; `update`
    `least_squares` then solves the kept weights. Needs `calibration`."""

    model_config = _contract({"kind": "dsnot", "max_cycles": 50, "update": "least_squares"})
    kind: Literal["dsnot"] = Field(description="Refinement tag.")
    max_cycles: int = Field(default=50, ge=1, le=100_000, description="Swaps per row, at most.")
    update: Literal["none", "least_squares"] = Field(
        default="none", description="Solve the kept weights by least squares after the swaps."
    )


class LeastSquaresRefine(BaseModel):
    """The kept weights of each row solved by least squares against the dense layer's output
    on the calibration data (X^T X), the mask unchanged: the weight update that `magnitude`
    and `wanda` lack. Needs `calibration`."""

    model_config = _contract({"kind": "least_squares"})
    kind: Literal["least_squares"] = Field(description="Refinement tag.")


Refine = Annotated[DsnotRefine | LeastSquaresRefine, Field(discriminator="kind")]


class DistillSpec(BaseModel):
    """After the one-shot pass, train the pruned model with its zeros fixed to match the
    dense model on the calibration samples (no labels needed): each pruned layer's output
    (weight `layerwise`) and the model's first output (weight `output`), each as squared
    error relative to the dense values; Adam, `lr` with a short warmup and cosine decay.
    Needs `calibration`; one-shot pruning without `retrain`."""

    model_config = _contract({"steps": 200, "lr": 0.0003, "batch_size": 16})
    steps: int = Field(default=200, ge=1, le=100_000, description="Optimizer steps.")
    lr: float = Field(default=3e-4, gt=0.0, le=1.0, description="Peak learning rate.")
    batch_size: int = Field(default=16, ge=1, le=4096, description="Samples per step.")
    layerwise: float = Field(
        default=1.0, ge=0.0, le=1e6, description="Weight of the pruned layers' outputs."
    )
    output: float = Field(default=1.0, ge=0.0, le=1e6, description="Weight of the model output.")
    seed: int = Field(default=0, ge=0, description="Seed of the sample order.")

    @model_validator(mode="after")
    def _something_distilled(self) -> "DistillSpec":
        if not (self.layerwise or self.output):
            _raise_at("DistillSpec", ("output", "layerwise and output are both 0"))
        return self


class AutoSearch(BaseModel):
    """The largest sparsity whose `metric` on the `evaluation` data drops at most `max_drop`
    below the dense model's (rises, for `mse`): bisection over [`low`, `high`] in `prunings`
    one-shot prunings from the dense model. A pruning keeps the budget when the drop's upper
    `confidence` bound does: the mean of the per-sample differences (dense minus pruned,
    paired on the same samples) plus z * their standard deviation / sqrt(samples), one-sided,
    so that the returned model keeps the budget on other data from the same source, not only
    on the samples that chose it."""

    model_config = _contract({"metric": "accuracy", "max_drop": 0.01})
    metric: Literal["accuracy", "mse"] = Field(
        default="accuracy", description="Must be the `evaluation` metric."
    )
    max_drop: float = Field(default=0.01, ge=0.0, description="The budget, in metric units.")
    low: float = Field(default=0.0, ge=0.0, lt=1.0, description="Lower end of the search.")
    high: float = Field(default=0.95, ge=0.0, lt=1.0, description="Upper end of the search.")
    prunings: int = Field(default=8, ge=2, le=8, description="Prunings to spend, at most 8.")
    confidence: float = Field(
        default=0.9,
        ge=0.0,
        lt=1.0,
        description="One-sided confidence of the drop's upper bound that must keep the "
        "budget; 0: the drop measured on the evaluation samples alone (optimistic on other "
        "data).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "AutoSearch":
        if self.high <= self.low:
            _raise_at("AutoSearch", ("high", f"{self.high:g} must be above low {self.low:g}"))
        return self


class AutoSparsity(BaseModel):
    """`{"auto": {...}}` in place of a number: the sparsity is chosen by the budget."""

    model_config = _contract({"auto": {"metric": "accuracy", "max_drop": 0.01}})
    auto: AutoSearch = Field(description="The budget and the interval searched.")


def _quality_problems(spec: "PruneSpec") -> Iterator[tuple[tuple[str, ...] | str, str]]:
    searching = isinstance(spec.sparsity, AutoSparsity) or spec.sweep is not None
    asked = [
        name
        for name, on in (
            ("allocation", spec.allocation.kind != "uniform"),
            ("refine", spec.refine is not None),
            ("sweep" if spec.sweep is not None else "sparsity", searching),
        )
        if on
    ]
    for name in asked:
        if spec.retrain is not None or spec.schedule.kind != "one_shot":
            yield name, "applies to one-shot pruning without retraining"
        elif spec.granularity.kind == "channel":
            yield name, "applies to per-weight pruning, not channels"
    nm = spec.granularity.kind == "n:m"
    if nm and spec.allocation.kind != "uniform":
        yield "allocation", "granularity 'n:m' prunes every selected layer alike"
    if nm and searching:
        yield "sparsity", "granularity 'n:m' fixes the sparsity at n/m; drop the search"
    if (spec.allocation.kind != "uniform" or spec.refine) and spec.calibration is None:
        yield "calibration", "allocation and refine read calibration data; set calibration"
    if searching and spec.evaluation is None:
        yield "evaluation", "a sparsity search measures the evaluation metric; set evaluation"
    if spec.distill is not None:
        if spec.retrain is not None or spec.schedule.kind != "one_shot":
            yield "distill", "applies to one-shot pruning without retrain (retrain has `distill`)"
        elif searching:
            yield "distill", "cannot follow a sparsity search or sweep; prune to one sparsity"
        elif spec.granularity.kind == "channel":
            yield "distill", "applies to per-weight pruning, not channels"
        elif spec.calibration is None:
            yield "calibration", "distill trains on the calibration samples; set calibration"
    if isinstance(spec.sparsity, AutoSparsity):
        if spec.sweep is not None:
            yield "sweep", 'sweep cannot be combined with sparsity {"auto": ...}'
        if spec.evaluation and spec.sparsity.auto.metric != spec.evaluation.metric:
            yield ("sparsity", "auto", "metric"), "must be the evaluation metric"


_FRACTION: TypeAdapter[float] = TypeAdapter(Annotated[float, Field(ge=0.0, lt=1.0)])


def _one_sparsity(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Errors at `sparsity` itself (or inside `auto`), not at the union's members: a number
    is checked as a number, an object as `{"auto": ...}`."""
    try:
        return handler(value)
    except ValidationError:
        pass
    try:
        if isinstance(value, dict):
            AutoSparsity.model_validate(value)
        else:
            _FRACTION.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        reason = f"{where}: {first['msg']}" if where else first["msg"]
        raise PydanticCustomError("value_error", "{reason}", {"reason": reason}) from None
    raise PydanticCustomError("value_error", "{reason}", {"reason": "invalid sparsity"})


def _numeric(sparsity: "float | AutoSparsity") -> float:
    """The number other checks compare with: an auto search's lower end."""
    return sparsity.auto.low if isinstance(sparsity, AutoSparsity) else sparsity


def _required_by(methods: tuple[str, ...]) -> str:
    quoted = [f"`{name}`" for name in methods]
    return f"Required by {', '.join(quoted[:-1])} and {quoted[-1]}."


def _default_outputs() -> list[OutputFormat]:
    return ["model"]


class PruneSpec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "method": {"name": "magnitude"},
                    "sparsity": 0.8,
                    "scope": "global",
                    "granularity": {"kind": "unstructured"},
                    "layers": {"include": ["*"], "exclude": [], "overrides": {"fc3*": 0.5}},
                    "schedule": {"kind": "one_shot"},
                    "latency": {
                        "batch_sizes": [1, 32],
                        "threads": 1,
                        "warmup": 5,
                        "iterations": 1,
                        "budget_s": 4.0,
                    },
                    "report": {"compressed_sizes": "sampled"},
                    "outputs": ["model"],
                },
                {
                    "method": {"name": "magnitude"},
                    "sparsity": 0.9,
                    "schedule": {"kind": "gradual", "steps": 10, "exponent": 3.0},
                    "retrain": {
                        "dataset_id": "ds_5e6f7a8b9c0d",
                        "epochs": 10,
                        "lr": 0.001,
                        "batch_size": 32,
                        "loss": "cross_entropy",
                        "validation_split": 0.1,
                    },
                    "evaluation": {"dataset_id": "ds_1a2b3c4d5e6f", "metric": "accuracy"},
                    "outputs": ["model"],
                },
            ]
        },
    )

    method: Method = Field(
        default_factory=MagnitudeMethod, description="How weights are scored (tag `name`)."
    )
    sparsity: Annotated[
        Annotated[float, Field(ge=0.0, lt=1.0)] | AutoSparsity, WrapValidator(_one_sparsity)
    ] = Field(
        description='Fraction of prunable weights zeroed, or `{"auto": {...}}`: the largest '
        "within an accuracy budget (needs `evaluation`)."
    )
    scope: Literal["global", "layerwise"] = Field(
        default="global",
        description="`global`: one threshold across layers; `layerwise`: each layer to the "
        "same fraction.",
    )
    granularity: Granularity = Field(
        default_factory=UnstructuredGranularity,
        description="What is zeroed together (tag `kind`).",
    )
    layers: LayerSelection = Field(
        default_factory=LayerSelection, description="Which tensors are pruned, and how hard."
    )
    schedule: Schedule = Field(
        default_factory=OneShotSchedule,
        description="When pruning happens (tag `kind`); `iterative` and `gradual` need `retrain`.",
    )
    latency: LatencySpec | None = Field(
        default_factory=LatencySpec,
        description="How dense and pruned models are timed; null skips timing.",
    )
    report: ReportSpec = Field(
        default_factory=ReportSpec, description="The report's costlier figures, on request."
    )
    outputs: list[OutputFormat] = Field(
        default_factory=_default_outputs,
        min_length=1,
        description="Artifacts to write: `model` (the input's format, zeros in place), "
        "`sparse_npz`, `onnx_sparse`.",
    )
    calibration: CalibrationSpec | None = Field(
        default=None, description=_required_by(names(need="calibration"))
    )
    retrain: RetrainSpec | None = Field(
        default=None,
        description="Fine-tune with the masks fixed; null prunes without training.",
    )
    evaluation: EvaluationSpec | None = Field(
        default=None,
        description="Measure a task metric on dense and pruned models; null reports only "
        "the fidelity of the outputs.",
    )
    input_shapes: dict[str, list[Annotated[int, Field(ge=1)]]] | None = Field(
        default=None,
        description="Concrete input shapes (batch first) for models whose signature does not "
        'carry them, e.g. TorchScript: `{"x": [1, 3, 32, 32]}`.',
    )
    allocation: Allocation = Field(
        default_factory=UniformAllocation,
        description="How the target is spread over layers (tag `kind`, or the tag alone): "
        "`uniform`, `owl`, `sensitivity`.",
    )
    refine: Refine | None = Field(
        default=None,
        description="Mask and weight refinement after the one-shot pass (tag `kind`); null "
        "refines nothing.",
    )
    sweep: list[Annotated[float, Field(ge=0.0, lt=1.0)]] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="Also prune to each of these sparsities from the dense model and report "
        "the evaluation metric of each (needs `evaluation`); the model returned is at "
        "`sparsity`.",
    )
    distill: DistillSpec | None = Field(
        default=None,
        description="Masks-fixed distillation from the dense model after the one-shot pass, "
        "on the calibration samples; null distills nothing.",
    )

    @model_validator(mode="after")
    def _structured_sparsity(self) -> "PruneSpec":
        granularity = self.granularity
        if isinstance(granularity, NMGranularity | ChannelGranularity) and self.layers.overrides:
            _raise_at(
                "PruneSpec",
                (
                    ("layers", "overrides"),
                    f"granularity {granularity.kind!r} prunes every selected layer alike; "
                    "drop layers.overrides",
                ),
            )
        if isinstance(granularity, NMGranularity) and not isinstance(self.sparsity, AutoSparsity):
            ratio = granularity.n / granularity.m
            if abs(self.sparsity - ratio) > 1e-9:
                _raise_at(
                    "PruneSpec",
                    (
                        "sparsity",
                        f"granularity n:m zeroes exactly n/m = {ratio:g} of the weights; "
                        f"set sparsity to {ratio:g}, not {self.sparsity:g}",
                    ),
                )
        return self

    @model_validator(mode="after")
    def _schedule_fits_retraining(self) -> "PruneSpec":
        problems = list(
            _schedule_problems(
                self.schedule, self.retrain, _numeric(self.sparsity), self.granularity
            )
        )
        problems += _learned_problems(
            self.method.name, self.retrain, self.schedule.kind, self.granularity.kind
        )
        if problems:
            _raise_at("PruneSpec", *problems)
        return self

    @model_validator(mode="after")
    def _quality_options_fit(self) -> "PruneSpec":
        problems = list(_quality_problems(self))
        if problems:
            _raise_at("PruneSpec", *problems)
        return self


def _schedule_problems(
    schedule: OneShotSchedule | IterativeSchedule | GradualSchedule,
    retrain: RetrainSpec | None,
    sparsity: float,
    granularity: UnstructuredGranularity | NMGranularity | ChannelGranularity,
) -> Iterator[tuple[tuple[str, ...] | str, str]]:
    if schedule.kind in RETRAINING_SCHEDULES and retrain is None:
        yield "retrain", f"schedule {schedule.kind!r} prunes while training; it needs `retrain`"
    regrows = retrain is not None and retrain.regrow
    if schedule.kind in RETRAINING_SCHEDULES and regrows and granularity.kind == "channel":
        yield (
            ("retrain", "regrow"),
            "regrow reconnects single weights, and a channel schedule keeps whole channels "
            "zeroed until they are cut; set regrow to false for granularity 'channel'",
        )
    if isinstance(schedule, IterativeSchedule) and retrain and retrain.epochs < schedule.rounds:
        yield (
            ("retrain", "epochs"),
            f"{retrain.epochs} epochs cannot be split across {schedule.rounds} rounds; "
            f"give at least {schedule.rounds}",
        )
    if isinstance(schedule, GradualSchedule) and schedule.initial_sparsity > sparsity:
        yield (
            ("schedule", "initial_sparsity"),
            f"{schedule.initial_sparsity:g} is above the target sparsity {sparsity:g}",
        )
