"""Shapes used by every resource: problems, pages, tensor signatures."""

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ProblemFieldError(BaseModel):
    """One offending field of a request."""

    field: str = Field(description="Dotted path of the field, e.g. `spec.sparsity`.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://shears.dev/problems/validation",
                    "title": "Request is invalid",
                    "status": 422,
                    "detail": "spec.sparsity: must be < 1",
                    "errors": [{"field": "spec.sparsity", "message": "must be < 1"}],
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str | None = Field(default=None, description="Stable machine-readable error code.")
    errors: list[ProblemFieldError] | None = None


class TensorInfo(BaseModel):
    """A model input or output. Symbolic dimensions are strings; unknown dtypes and shapes
    are null (a TorchScript file does not record its outputs')."""

    name: str
    dtype: str | None
    shape: list[int | str] | None


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None
