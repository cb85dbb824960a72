"""The OpenAPI document: every error response is `application/problem+json` with `Problem`.

FastAPI describes errors as `application/json` and validation errors with its own
`HTTPValidationError`; this rewrites both to what the API actually sends.
"""

from typing import Any

from fastapi import FastAPI
from fastapi._compat import get_definitions, get_flat_models_from_fields, get_model_name_map
from fastapi.openapi.utils import get_fields_from_routes, get_openapi
from starlette.routing import BaseRoute

from service.problems import PROBLEM_MEDIA_TYPE, problems

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# A file download: generators hand back the bytes as a file object.
BINARY_SCHEMA = {"type": "string", "format": "binary"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                webhooks=app.webhooks.routes,
            )
            routes = [*app.routes, *app.webhooks.routes]
            document = _with_examples_as_written(document, routes)
            app.openapi_schema = _with_problems(_with_named_forms(document))
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
    for path_item in document.get("webhooks", {}).values():
        for operation in path_item.values():
            # FastAPI gives every operation with a body its own validation 422, whose schema
            # is removed above; a webhook's answers are the receiver's, not Shears' problems.
            operation["responses"].pop("422", None)
    return document


def _with_examples_as_written(document: dict[str, Any], routes: list[BaseRoute]) -> dict[str, Any]:
    """Put back the nulls of each schema's examples: `get_openapi` drops every null in the
    document (`exclude_none`), which leaves required nullable fields (`Job.error`) out of
    examples and makes them invalid against their own schema."""
    fields = get_fields_from_routes(routes)
    names = get_model_name_map(get_flat_models_from_fields(fields, known_models=set()))
    _, definitions = get_definitions(
        fields=fields, model_name_map=names, separate_input_output_schemas=True
    )
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if "examples" in definitions.get(name, {}):
            schema["examples"] = definitions[name]["examples"]
    return document


def _with_named_forms(document: dict[str, Any]) -> dict[str, Any]:
    """Move each inline multipart body (routes that stream their own uploads declare it in
    `openapi_extra`) into `components` as `Body_<operationId>`, so generators name the upload
    class after the operation rather than inventing a name per generator."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            form = content.get("multipart/form-data")
            if form is None or "$ref" in form.get("schema", {"$ref": None}):
                continue
            name = f"Body_{operation['operationId']}"
            schemas[name] = {"title": name, **form["schema"]}
            form["schema"] = {"$ref": f"#/components/schemas/{name}"}
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
