"""The report blocks of the quality options (issue 15): the per-layer sparsity an
``allocation`` chose and why, what ``refine`` did to each layer's error, and the curve of a
``sparsity: {"auto": ...}`` search or a ``sweep``. Typed so generated clients get them; each
block allows extra keys, which pass through unchanged."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _open(example: dict[str, Any]) -> ConfigDict:
    """Extra keys allowed; the example appears in the OpenAPI schema."""
    return ConfigDict(extra="allow", json_schema_extra={"examples": [example]})


_ALLOCATED = {"name": "fc1.weight", "sparsity": 0.62, "outlier_ratio": 0.0041}
_ALLOCATION = {
    "kind": "owl",
    "m": 5.0,
    "lam": 0.08,
    "score": "outlier_ratio: share of |w|*||x|| above 5 x the layer's mean on the calibration "
    "data; more outliers, fewer zeros, within +-0.08 of the target",
    "mean_kept": "the zeros over the allocated layers are round(target x their size)",
    "layers": [_ALLOCATED],
    "not_allocated": ["conv1.weight"],
}
_REFINED = {"name": "fc1.weight", "error_before": 0.081, "error_after": 0.047, "swaps": 212}
_REFINE = {
    "kind": "dsnot",
    "max_cycles": 50,
    "update": "none",
    "error": "relative layer output error ||W0 X - W X||^2 / ||W0 X||^2 on the calibration "
    "data, inputs from the refined layers before it",
    "layers": [_REFINED],
    "not_refined": [],
    "refine_s": 0.84,
}
_POINT = {
    "sparsity": 0.5566,
    "metric": 0.983,
    "drop": 0.0056,
    "drop_bound": 0.0094,
    "pruning": 8,
    "time_s": 0.41,
    "within_budget": True,
}
_SEARCH = {
    "kind": "auto",
    "metric": "accuracy",
    "dense_metric": 0.989,
    "prunings": 8,
    "chosen_sparsity": 0.5566,
    "curve": [_POINT],
    "max_drop": 0.01,
    "low": 0.0,
    "high": 0.95,
    "resolution": 0.0075,
    "confidence": 0.9,
    "samples": 500,
    "bound": "drop_bound: the mean of the per-sample drops (dense minus pruned on the same "
    "sample) plus z * their standard deviation / sqrt(samples), z the one-sided normal quantile "
    "of `confidence`; a pruning keeps the budget when its bound does",
    "reused": "calibration data and allocation statistics are read once; each pruning "
    "starts from the dense weights and recomputes the method's own statistics",
    "note": "the evaluation data chose the sparsity, so the metric on it is optimistic; "
    "measure the returned model on other data for an unbiased figure",
}


class AllocatedLayer(BaseModel):
    """One layer's allocated sparsity and the score that decided it."""

    model_config = _open(_ALLOCATED)
    name: str
    sparsity: float
    outlier_ratio: float | None = Field(
        default=None, description="`owl`: the layer's share of activation outliers."
    )
    output_error: dict[str, float] | None = Field(
        default=None,
        description="`sensitivity`: probed sparsity -> relative layer output error.",
    )


class AllocationReport(BaseModel):
    """How `allocation` spread the target over layers (absent when uniform)."""

    model_config = _open(_ALLOCATION)
    kind: Literal["owl", "sensitivity"]
    score: str = Field(description="What each layer's score measures and how it was used.")
    mean_kept: str
    layers: list[AllocatedLayer]
    not_allocated: list[str] = Field(
        description="Selected tensors kept at their own fraction (overrides, fixed layers)."
    )
    m: float | None = None
    lam: float | None = None
    spread: float | None = None
    points: int | None = None


class RefinedLayer(BaseModel):
    """One layer's reconstruction error before and after the refinement."""

    model_config = _open(_REFINED)
    name: str
    error_before: float
    error_after: float
    swaps: int | None = Field(default=None, description="`dsnot`: prune-and-grow swaps made.")


class RefineReport(BaseModel):
    """What `refine` did after the one-shot pass."""

    model_config = _open(_REFINE)
    kind: Literal["dsnot", "least_squares"]
    update: Literal["none", "least_squares"]
    error: str = Field(description="The error `error_before` and `error_after` measure.")
    layers: list[RefinedLayer]
    not_refined: list[str]
    refine_s: float
    max_cycles: int | None = None


class SearchPoint(BaseModel):
    """One pruning of a search or sweep, from the dense weights, measured on the evaluation
    data."""

    model_config = _open(_POINT)
    sparsity: float
    metric: float
    drop: float = Field(description="How much worse than dense: accuracy falls, mse rises.")
    pruning: int = Field(description="Its place in the order the prunings ran, from 1.")
    time_s: float
    drop_bound: float | None = Field(
        default=None,
        description="`auto`: the drop's upper `confidence` bound, which must keep the budget.",
    )
    within_budget: bool | None = Field(default=None, description="`auto` only.")


class SearchReport(BaseModel):
    """The sparsity an accuracy budget chose (`auto`) or the curve of a `sweep`, with every
    pruning measured, by sparsity."""

    model_config = _open(_SEARCH)
    kind: Literal["auto", "sweep"]
    metric: str
    dense_metric: float
    prunings: int
    chosen_sparsity: float = Field(description="0 when nothing tested kept the budget.")
    curve: list[SearchPoint]
    reused: str
    note: str
    max_drop: float | None = None
    low: float | None = None
    high: float | None = None
    resolution: float | None = Field(
        default=None,
        description="`auto`: how far above `chosen_sparsity` the boundary may lie, on the "
        "monotone fit of the drops measured.",
    )
    confidence: float | None = Field(
        default=None, description="`auto`: the confidence of each pruning's `drop_bound`."
    )
    samples: int | None = Field(default=None, description="`auto`: evaluation samples.")
    bound: str | None = Field(default=None, description="`auto`: how `drop_bound` is computed.")
