"""The uploaded-dataset resource (`.npz` of arrays keyed by the model's input names)."""

from datetime import datetime

from pydantic import BaseModel

from api_schemas.common import example


class ArrayInfo(BaseModel):
    model_config = example({"name": "x", "dtype": "float32", "shape": [512, 784]})

    name: str
    dtype: str
    shape: list[int]


class Dataset(BaseModel):
    model_config = example(
        {
            "id": "ds_5b2e8f0c1a9d3e47",
            "name": "mnist-calibration.npz",
            "size_bytes": 1610240,
            "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "samples": 512,
            "arrays": [
                {"name": "x", "dtype": "float32", "shape": [512, 784]},
                {"name": "labels", "dtype": "int64", "shape": [512]},
            ],
            "created_at": "2026-11-25T08:01:12Z",
        }
    )

    id: str
    name: str
    size_bytes: int
    sha256: str
    samples: int
    arrays: list[ArrayInfo]
    created_at: datetime
