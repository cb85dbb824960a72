"""What code generators read from the committed openapi.json: an example on every schema,
each valid against its schema; uploads as named multipart bodies; downloads as binary."""

from typing import Any

import pytest
from jsonschema import Draft202012Validator

UPLOADS = {"/v1/models": "Body_uploadModel", "/v1/datasets": "Body_uploadDataset"}
DOWNLOADS = [
    ("/v1/models/{model_id}/content", "get"),
    ("/v1/jobs/{job_id}/artifacts/{name}", "get"),
]


def object_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    # An enum is its own list of examples.
    schemas: dict[str, Any] = spec["components"]["schemas"]
    return {name: schema for name, schema in schemas.items() if "enum" not in schema}


def test_every_object_schema_shows_an_example(committed_spec: dict[str, Any]) -> None:
    without = [n for n, s in object_schemas(committed_spec).items() if not s.get("examples")]
    assert without == []


def test_every_example_is_valid_against_its_own_schema(committed_spec: dict[str, Any]) -> None:
    invalid = []
    for name, schema in object_schemas(committed_spec).items():
        root = {"components": committed_spec["components"], "$ref": f"#/components/schemas/{name}"}
        validator = Draft202012Validator(root)
        for i, example in enumerate(schema.get("examples", [])):
            invalid += [
                f"{name}.examples[{i}]: {e.message}" for e in validator.iter_errors(example)
            ]
    assert invalid == []


@pytest.mark.parametrize("path", sorted(UPLOADS))
def test_uploads_are_named_multipart_bodies_with_a_binary_file(
    committed_spec: dict[str, Any], path: str
) -> None:
    body = committed_spec["paths"][path]["post"]["requestBody"]
    ref = body["content"]["multipart/form-data"]["schema"]["$ref"]
    assert ref == f"#/components/schemas/{UPLOADS[path]}"
    form = committed_spec["components"]["schemas"][UPLOADS[path]]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    assert form["required"] == ["file"]
    assert form["additionalProperties"] is False


@pytest.mark.parametrize(("path", "method"), DOWNLOADS)
def test_downloads_are_declared_binary(
    committed_spec: dict[str, Any], path: str, method: str
) -> None:
    content = committed_spec["paths"][path][method]["responses"]["200"]["content"]
    assert content == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }


def test_every_ref_resolves(committed_spec: dict[str, Any]) -> None:
    # A dangling $ref stops openapi-typescript outright ("Can't resolve $ref").
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for value in node.values() for r in refs(value)]
        return [r for value in node for r in refs(value)] if isinstance(node, list) else []

    schemas = committed_spec["components"]["schemas"]
    dangling = {
        r for r in refs(committed_spec) if r.removeprefix("#/components/schemas/") not in schemas
    }
    assert dangling == set()
