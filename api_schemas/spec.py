"""PruneSpec: what a job should do to a model. Unions are discriminated by a literal tag."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_STRICT = ConfigDict(extra="forbid")


class MagnitudeMethod(BaseModel):
    """Zero the weights of smallest absolute value (Han et al. 2015)."""

    model_config = _STRICT
    name: Literal["magnitude"] = "magnitude"


class RandomMethod(BaseModel):
    """Zero weights uniformly at random: the baseline any method must beat."""

    model_config = _STRICT
    name: Literal["random"] = "random"
    seed: int = Field(default=0, ge=0)


class ObdMethod(BaseModel):
    """Optimal Brain Damage (LeCun et al. 1989): saliency h_ii * w_i^2 / 2, with the Hessian
    diagonal from the empirical Fisher (squared per-sample gradients) or Hutchinson's
    estimator. Needs `calibration`."""

    model_config = _STRICT
    name: Literal["obd"] = "obd"
    hessian: Literal["fisher", "hutchinson"] = "fisher"
    damp: float = Field(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="Dampening: h_ii + damp * mean(h) per layer; steadies a noisy estimate.",
    )


class WandaMethod(BaseModel):
    """Wanda (Sun et al. 2023): score |w_ij| * ||x_j||_2, compared within each output row, so
    every row (and layer) is pruned to the same fraction whatever `scope` says; with
    `granularity: n:m`, within every m consecutive inputs of a row. Needs `calibration`."""

    model_config = _STRICT
    name: Literal["wanda"] = "wanda"


class SparseGPTMethod(BaseModel):
    """SparseGPT (Frantar & Alistarh 2023): layerwise OBS with weight update, layers in order,
    each layer to its own fraction (layerwise whatever `scope` says); with `granularity: n:m`,
    each group's mask is chosen as the sweep reaches it. Needs `calibration`."""

    model_config = _STRICT
    name: Literal["sparsegpt"] = "sparsegpt"
    blocksize: int = Field(default=128, ge=1, le=4096, description="Columns per lazy block.")
    percdamp: float = Field(
        default=0.01, gt=0.0, le=1.0, description="Dampening, a fraction of mean(diag(H))."
    )


class TaylorMethod(BaseModel):
    """First-order Taylor importance (Molchanov et al. 2017, 2019): removing weights changes
    the loss by about -sum(g * w). With `granularity: channel` a channel's score is
    |sum over its weights of g * w|; unstructured, each weight's |g * w|; both accumulated over
    the calibration samples, one gradient per sample. The loss is cross-entropy with the
    dataset's `labels` (MSE with float `targets`), or with the model's own predictions when
    it has neither (the report says which). Needs `calibration`."""

    model_config = _STRICT
    name: Literal["taylor"] = "taylor"


Method = Annotated[
    MagnitudeMethod | RandomMethod | ObdMethod | WandaMethod | SparseGPTMethod | TaylorMethod,
    Field(discriminator="name"),
]
LOSS_BASED_METHODS = ("obd", "wanda", "sparsegpt", "taylor")
# Loss-based methods that also rank whole channels (`granularity: channel`).
CHANNEL_METHODS = ("taylor",)


class CalibrationSpec(BaseModel):
    """Calibration data for data-driven methods: a dataset whose arrays are keyed by the
    model's input names (plus optional `labels`/`targets`); the first `samples` are used."""

    model_config = _STRICT
    dataset_id: str = Field(min_length=1, max_length=128)
    samples: int = Field(default=128, ge=1, le=100_000)


class UnstructuredGranularity(BaseModel):
    """Any individual weight may be zeroed."""

    model_config = _STRICT
    kind: Literal["unstructured"] = "unstructured"


class NMGranularity(BaseModel):
    """Exactly `n` zeros in every group of `m` consecutive weights along the input dimension
    (2:4 with sparsity 0.5 is the pattern of NVIDIA's sparse tensor cores). The input
    dimension: for Conv the flattened `in_channels * kh * kw` of each output channel; for Gemm
    the last axis of B when `transB=1` (torch Linear) and axis 0 otherwise; for MatMul with a
    constant B, axis 0 of B; for TorchScript Linear/Conv the flattened dims after the first.
    `sparsity` must equal n/m; a layer whose input dimension is not a multiple of m is left
    dense and named in the report."""

    model_config = _STRICT
    kind: Literal["n:m"] = "n:m"
    n: int = Field(default=2, ge=1, le=31, description="Zeros in each group of m.")
    m: int = Field(default=4, ge=2, le=32, description="Group length along the input dim.")

    @model_validator(mode="after")
    def _n_below_m(self) -> "NMGranularity":
        if self.n >= self.m:
            raise ValueError(f"n must be less than m, got n={self.n}, m={self.m}")
        return self


class ChannelGranularity(BaseModel):
    """Remove whole output channels (Conv) and output features (Gemm/MatMul), and shrink the
    layers that consume them: the returned ONNX model is physically smaller. `sparsity` is the
    fraction of channels removed from every channel group; `importance` ranks channels by the
    L1 or L2 norm of their weights (Li et al. 2017, "Pruning Filters for Efficient ConvNets"),
    unless `method` is `taylor`, whose loss-based score (with calibration data) ranks them.
    Channels tied by residual additions or concatenations are pruned together; groups that
    cannot be cut safely stay dense and the report says why."""

    model_config = _STRICT
    kind: Literal["channel"] = "channel"
    importance: Literal["l1", "l2"] = "l1"


Granularity = Annotated[
    UnstructuredGranularity | NMGranularity | ChannelGranularity, Field(discriminator="kind")
]


class OneShotSchedule(BaseModel):
    """Prune once to the target sparsity, no retraining."""

    model_config = _STRICT
    kind: Literal["one_shot"] = "one_shot"


Schedule = Annotated[OneShotSchedule, Field(discriminator="kind")]


class LayerSelection(BaseModel):
    """Which prunable tensors to prune, by glob on their names (`fc1.weight`, `conv*`)."""

    model_config = _STRICT
    include: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=256)
    exclude: list[str] = Field(default_factory=list, max_length=256)
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
    """How dense and pruned models are timed: same runtime, inputs and threads for both."""

    model_config = _STRICT
    batch_sizes: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [1, 32], min_length=1, max_length=8
    )
    threads: int = Field(default=1, ge=1, le=64)
    warmup: int = Field(default=5, ge=0, le=1000)
    iterations: int = Field(default=50, ge=1, le=10000)


# `model`: the input's own format, zeros in place. `sparse_npz`: every weight as CSR or
# bitmask + values, whichever is smaller per tensor (layout in pruning/formats/sparse_npz.py).
# `onnx_sparse`: the ONNX model with pruned initializers as `sparse_initializer`.
OutputFormat = Literal["model", "sparse_npz", "onnx_sparse"]


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
                        "iterations": 50,
                    },
                    "outputs": ["model"],
                }
            ]
        },
    )

    method: Method = Field(default_factory=MagnitudeMethod)
    sparsity: float = Field(ge=0.0, lt=1.0, description="Fraction of prunable weights zeroed.")
    scope: Literal["global", "layerwise"] = "global"
    granularity: Granularity = Field(default_factory=UnstructuredGranularity)
    layers: LayerSelection = Field(default_factory=LayerSelection)
    schedule: Schedule = Field(default_factory=OneShotSchedule)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    outputs: list[OutputFormat] = Field(default_factory=_default_outputs, min_length=1)
    calibration: CalibrationSpec | None = Field(
        default=None, description="Required by `obd`, `wanda`, `sparsegpt` and `taylor`."
    )
    input_shapes: dict[str, list[Annotated[int, Field(ge=1)]]] | None = Field(
        default=None,
        description="Concrete input shapes (batch first) for models whose signature does not "
        'carry them, e.g. TorchScript: `{"x": [1, 3, 32, 32]}`.',
    )

    @model_validator(mode="after")
    def _structured_sparsity(self) -> "PruneSpec":
        granularity = self.granularity
        if isinstance(granularity, NMGranularity | ChannelGranularity) and self.layers.overrides:
            raise ValueError(
                f"granularity {granularity.kind!r} prunes every selected layer alike; "
                "drop layers.overrides"
            )
        if isinstance(granularity, NMGranularity):
            ratio = granularity.n / granularity.m
            if abs(self.sparsity - ratio) > 1e-9:
                raise ValueError(
                    f"granularity n:m zeroes exactly n/m = {ratio:g} of the weights; "
                    f"set sparsity to {ratio:g}, not {self.sparsity:g}"
                )
        return self
