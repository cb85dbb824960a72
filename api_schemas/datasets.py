"""The uploaded-dataset resource (`.npz` of arrays keyed by the model's input names)."""

from datetime import datetime

from pydantic import BaseModel


class ArrayInfo(BaseModel):
    name: str
    dtype: str
    shape: list[int]


class Dataset(BaseModel):
    id: str
    name: str
    size_bytes: int
    sha256: str
    samples: int
    arrays: list[ArrayInfo]
    created_at: datetime
