"""The uploaded-model resource."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from api_schemas.common import TensorInfo, example


class ModelFormat(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


class ModelStatus(StrEnum):
    """`validating` until a worker has opened the model; `invalid` models cannot be pruned;
    `failed`: opening it broke in Shears, not in the file (POST .../inspect retries)."""

    validating = "validating"
    ready = "ready"
    invalid = "invalid"
    failed = "failed"


class PrunableTensor(BaseModel):
    model_config = example(
        {"name": "fc1.weight", "shape": [256, 784], "op": "Gemm", "node": "/fc1/Gemm"}
    )

    name: str
    shape: list[int]
    op: str = Field(description="The operator or module type that uses the tensor.")
    node: str = Field(
        default="",
        description="The ONNX node that uses the tensor, or its TorchScript module path: "
        "`layers` globs match it as they match the name.",
    )


class UnusedTensor(BaseModel):
    """A weight of a prunable layer that nothing the model computes reads (a pooler its
    forward never calls, an initializer no node reads): jobs leave it as it is."""

    model_config = example(
        {
            "tensor": "pooler.dense.weight",
            "node": "pooler.dense",
            "reason": "not used by forward(): dead weight, the model's outputs do not depend on it",
        }
    )

    tensor: str
    node: str
    reason: str


class Model(BaseModel):
    model_config = example(
        {
            "id": "mdl_3f9a1c2b7d4e0a51",
            "name": "mnist-mlp.onnx",
            "format": "onnx",
            "status": "ready",
            "size_bytes": 814306,
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "parameters": 203530,
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 784]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}],
            "prunable": [
                {"name": "fc1.weight", "shape": [256, 784], "op": "Gemm", "node": "/fc1/Gemm"},
                {"name": "fc2.weight", "shape": [10, 256], "op": "Gemm", "node": "/fc2/Gemm"},
            ],
            "unused": [],
            "error": None,
            "error_code": None,
            "created_at": "2026-11-25T08:00:00Z",
        }
    )

    id: str
    name: str
    format: ModelFormat | None = Field(description="Detected from the content once validated.")
    status: ModelStatus
    size_bytes: int
    sha256: str
    parameters: int | None
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    prunable: list[PrunableTensor]
    error: str | None = Field(description="Why the model is invalid or failed; null otherwise.")
    error_code: str | None = Field(
        default=None,
        description="Stable code for `error`: invalid_model, unsupported_model, "
        "unsupported_operator, timeout, resource_exhausted (invalid); internal_error (failed).",
    )
    unused: list[UnusedTensor] = Field(
        default_factory=list,
        description="Weights nothing reads: `layers` globs may name them, and a job lists "
        "the selected ones in its report's `skipped`.",
    )
    created_at: datetime
