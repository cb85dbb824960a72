"""The report block of `distill` (issue 15): how the pruned model was matched to the dense
one on the calibration samples, and the loss and output cosine before and after. Typed so
generated clients get it; extra keys pass through unchanged."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_DISTILL: dict[str, Any] = {
    "data": "calibration",
    "samples": 128,
    "steps": 200,
    "lr": 0.0001,
    "lr_schedule": {"kind": "cosine", "warmup": 0.05},
    "batch_size": 16,
    "weights": {"layerwise": 1.0, "output": 1.0},
    "sparsity": 0.5,
    "loss_before": 0.2143,
    "loss_after": 0.0311,
    "fidelity_before": 0.9791,
    "fidelity_after": 0.9972,
    "layers": 36,
    "unmatched": [],
    "trained": 36,
    "time_s": 84.2,
}


class DistillWeights(BaseModel):
    """How the two terms of the loss were weighted."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"layerwise": 1.0, "output": 1.0}]}
    )
    layerwise: float = Field(description="Weight of the pruned layers' output errors.")
    output: float = Field(description="Weight of the model output's error.")


class DistillReport(BaseModel):
    """Distillation after one-shot pruning, masks fixed: each pruned layer's output and the
    model's output matched to the dense model's. Losses are relative squared errors; the
    fidelities are the mean cosine of the first output to the dense one over the calibration
    samples, which are the ones trained on (`quality.fidelity` measures elsewhere)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_DISTILL]})
    data: str = Field(description="What it trained on: the calibration samples.")
    samples: int
    steps: int
    lr: float
    lr_schedule: dict[str, Any]
    batch_size: int
    weights: DistillWeights
    sparsity: float = Field(description="Zeros over the distilled weights after training.")
    loss_before: float
    loss_after: float
    fidelity_before: float
    fidelity_after: float
    layers: int = Field(description="Pruned layers whose outputs were matched.")
    unmatched: list[str] = Field(description="Pruned layers with no output to match.")
    trained: int = Field(description="Weight tensors trained.")
    time_s: float = Field(description="Seconds of distillation, pruning excluded.")
