"""The OpenAPI document: every error response is `application/problem+json` with `Problem`.

FastAPI describes errors as `application/json` and validation errors with its own
`HTTPValidationError`; this rewrites both to what the API actually sends.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.problems import PROBLEM_MEDIA_TYPE, problems

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_problems(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if operation.get("security"):
                description = problems(401)[401]["description"]
                operation["responses"].setdefault("401", {"description": description})
            _rewrite_errors(operation["responses"])
    return document


def _rewrite_errors(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}
    if "422" in responses:
        responses["422"]["description"] = problems(422)[422]["description"]


def document_text() -> str:
    """The committed `openapi.json`: what `make openapi` writes and a test compares."""
    import json

    from service.app import create_app

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(document_text(), end="")
