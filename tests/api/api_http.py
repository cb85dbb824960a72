"""Small client-side helpers for the API tests (importable: tests/api is on sys.path)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.shears import ApiServer


@dataclass
class SharedStack:
    api: ApiServer
    data_dir: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return self.api.client(**kwargs)


def upload_model(client: httpx.Client, path: Path, expect: int, **fields: str) -> dict[str, Any]:
    with path.open("rb") as f:
        response = client.post("/v1/models", files={"file": (path.name, f)}, data=fields)
    assert response.status_code == expect, response.text
    return dict(response.json())


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with `status` (and `code`); returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    if code is not None:
        assert body["code"] == code, body
    return body


def create_job(
    client: httpx.Client,
    model_id: str,
    spec: dict[str, Any],
    expect: int = 202,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    body = {"model_id": model_id, "spec": spec}
    response = client.post("/v1/jobs", json=body, headers=headers or {})
    assert response.status_code == expect, response.text
    return dict(response.json())
