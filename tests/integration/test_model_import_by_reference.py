"""Import by reference: `POST /v1/models` with `{"source": "s3://bucket/key"}` has the service
fetch the object with its own S3 credentials (moto's S3 server over HTTP here) and validate it
like an upload, archives with external data included; a source it cannot read is a 4xx
problem naming `source`."""

import io
import tarfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import onnx
import pytest

from tests.support.api_client import wait_for_model
from tests.support.s3_server import CREDENTIALS, S3Server
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration


@pytest.fixture
def http(
    s3_server: S3Server,
    shears_env: Callable[..., dict[str, str]],
    start_serve: Callable[[Mapping[str, str]], ApiServer],
) -> Iterator[httpx.Client]:
    env = {**shears_env(s3_endpoint_url=s3_server.endpoint_url), **CREDENTIALS}
    with start_serve(env).client(timeout=60) as client:
        yield client


def _archive(onnx_file: Path, folder: Path) -> bytes:
    """The model as a .tar of graph + one external data file."""
    folder.mkdir()
    onnx.save_model(
        onnx.load(str(onnx_file)),
        str(folder / "mlp.onnx"),
        save_as_external_data=True,
        location="mlp.onnx.data",
        size_threshold=0,
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, path.name)
    return buffer.getvalue()


def test_a_model_in_a_bucket_is_imported_and_validated(
    http: httpx.Client, s3_server: S3Server, onnx_model_file: Path, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(
        Bucket=bucket, Key="models/mlp.onnx", Body=onnx_model_file.read_bytes()
    )
    s3_server.client().put_object(
        Bucket=bucket, Key="models/mlp.tar", Body=_archive(onnx_model_file, tmp_path / "x")
    )
    plain = http.post("/v1/models", json={"source": f"s3://{bucket}/models/mlp.onnx"})
    assert plain.status_code in (201, 202), plain.text
    model = wait_for_model(http, plain.json()["id"])
    assert model["status"] == "ready" and model["name"] == "mlp.onnx", model
    archived = http.post(
        "/v1/models", json={"source": f"s3://{bucket}/models/mlp.tar", "name": "packed"}
    )
    assert archived.status_code in (201, 202), archived.text
    model = wait_for_model(http, archived.json()["id"])
    assert model["status"] == "ready" and model["name"] == "packed", model
    assert model["format"] == "onnx"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "https://example.com/model.onnx"}, "source"),
        ({"source": "s3://shears-no-such-bucket-here/model.onnx"}, "source"),
        ({}, "source"),
        ({"source": "s3://b/k", "colour": "red"}, "colour"),
    ],
    ids=["not-s3", "missing-object", "no-source", "unknown-field"],
)
def test_a_source_that_cannot_be_read_is_a_422_naming_it(
    http: httpx.Client, body: dict[str, str], field: str
) -> None:
    response = http.post("/v1/models", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == field


def test_a_missing_key_in_an_existing_bucket_is_a_422(
    http: httpx.Client, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    response = http.post("/v1/models", json={"source": f"s3://{bucket}/nothing.onnx"})
    assert response.status_code == 422, response.text
    assert "no object with that key" in response.json()["detail"]
