"""Shapes used by every resource: problems, pages, tensor signatures."""

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")


def example(*examples: dict[str, Any]) -> ConfigDict:
    """`model_config` showing `examples` in the OpenAPI schema (and so in generated clients)."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted_when_absent(description: str) -> Any:
    """A field the server leaves out rather than sending null; pair with
    `X | SkipJsonSchema[None]` so generated clients type it `X | Unset`, not `X | None`."""
    return Field(default=None, description=description, json_schema_extra=_no_default)


class ProblemFieldError(BaseModel):
    """One offending field of a request."""

    model_config = example({"field": "spec.sparsity", "message": "Input should be less than 1"})

    field: str = Field(description="Dotted path of the field, e.g. `spec.sparsity`.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    model_config = example(
        {
            "type": "https://shears.dev/problems/validation-failed",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "spec.sparsity: Input should be less than 1",
            "code": "validation_failed",
            "errors": [{"field": "spec.sparsity", "message": "Input should be less than 1"}],
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    # Left out of the body when absent (never null): see problem_response.
    instance: str | SkipJsonSchema[None] = omitted_when_absent("URI of this occurrence.")
    code: str | SkipJsonSchema[None] = omitted_when_absent("Stable machine-readable error code.")
    request_id: str | SkipJsonSchema[None] = omitted_when_absent(
        "The request's id, also in the `X-Request-ID` header: every log line the request "
        "caused carries it, so quote it when asking about an error."
    )
    errors: list[ProblemFieldError] | SkipJsonSchema[None] = omitted_when_absent(
        "Each offending field, for validation errors."
    )


class TensorInfo(BaseModel):
    """A model input or output. Symbolic dimensions are strings; unknown dtypes and shapes
    are null (a TorchScript file does not record its outputs')."""

    model_config = example({"name": "x", "dtype": "float32", "shape": ["batch", 784]})

    name: str
    dtype: str | None
    shape: list[int | str] | None


def _page_example(schema: dict[str, Any], page: type[BaseModel]) -> None:
    """`Page[Model]`'s example: one `Model` example and a cursor."""
    (item,) = page.__pydantic_generic_metadata__["args"] or (None,)
    extra = getattr(item, "model_config", {}).get("json_schema_extra")
    items = extra["examples"][:1] if isinstance(extra, dict) else []
    schema["examples"] = [{"items": items, "next_cursor": _CURSOR_EXAMPLE}]


_CURSOR_EXAMPLE = "WyIyMDI2LTExLTI1VDA4OjAwOjAwKzAwOjAwIiwgIm1kbF8zZjlhMWMyYjdkNGUwYTUxIl0"


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    model_config = ConfigDict(json_schema_extra=_page_example)

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Null on the last page.")
