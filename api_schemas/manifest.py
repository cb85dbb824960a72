"""A job's manifest, as the report and the job show it.

Computed by `shears_manifest` (one definition for the API and the engine); this module only
describes it for the contract and generated clients.
"""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from api_schemas.common import example

Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$", examples=["e3b98a4d" * 8])]

_EXAMPLE = {
    "model_sha256": "9f2c" * 16,
    "datasets": {"calibration": "41ab" * 16},
    "spec": {"method": {"name": "wanda"}, "sparsity": 0.5, "...": "every field, defaults too"},
    "spec_sha256": "77d0" * 16,
    "seeds": {"retrain.seed": 0},
    "versions": {
        "shears": "0.1.0",
        "torch": "2.14.1",
        "onnx": "1.23.2",
        "onnxruntime": "1.32.0",
        "numpy": "2.4.6",
    },
}


class Manifest(BaseModel):
    """Everything that decides the artifact's bytes. Two jobs with the same manifest write
    the same `model` artifact, byte for byte; its sha256 (`manifest_sha256`, of the
    manifest as JSON with sorted keys and no spaces) finds an earlier identical job."""

    model_config = example(_EXAMPLE)

    model_sha256: Sha256 = Field(description="The uploaded model file's sha256.")
    datasets: dict[str, Sha256] = Field(
        description="Each dataset the spec uses, by the spec block that names it "
        "(`calibration`, `retrain`, `evaluation`): the sha256 of its file."
    )
    spec: dict[str, Any] = Field(description="The spec as validated: every default filled in.")
    spec_sha256: Sha256 = Field(description="Of `spec`, as JSON with sorted keys, no spaces.")
    seeds: dict[str, int] = Field(
        description="Every seed the spec fixes, by its path (`method.seed`, `retrain.seed`); "
        "empty when nothing in the job is drawn at random."
    )
    versions: dict[str, str | None] = Field(
        description="Releases of `shears`, `torch`, `onnx`, `onnxruntime` and `numpy` that "
        "ran the job (local build labels such as `+cpu` dropped)."
    )
