"""PruneSpec: what a job should do to a model. Unions are discriminated by a literal tag."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


Method = Annotated[MagnitudeMethod | RandomMethod, Field(discriminator="name")]


class UnstructuredGranularity(BaseModel):
    """Any individual weight may be zeroed."""

    model_config = _STRICT
    kind: Literal["unstructured"] = "unstructured"


Granularity = Annotated[UnstructuredGranularity, Field(discriminator="kind")]


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
    input_shapes: dict[str, list[Annotated[int, Field(ge=1)]]] | None = Field(
        default=None,
        description="Concrete input shapes (batch first) for models whose signature does not "
        'carry them, e.g. TorchScript: `{"x": [1, 3, 32, 32]}`.',
    )
