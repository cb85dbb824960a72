"""The upload size limit holds while the bytes arrive, and nothing of a refused upload stays."""

import contextlib
import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from api_http import assert_problem

from service.uploads import DRAIN_BYTES
from tests.support.shears import ApiServer

LIMIT = 100_000


@pytest.fixture
def small_limit_api(
    start_api: Callable[[dict[str, str]], ApiServer], shears_env: Callable[..., dict[str, str]]
) -> tuple[ApiServer, Path]:
    env = shears_env(max_upload_bytes=LIMIT, inspect_wait_s=0.5)
    return start_api(env), Path(env["SHEARS_DATA_DIR"])


def leftovers(data_dir: Path) -> list[Path]:
    blobs = data_dir / "blobs"
    partial = [p for p in (blobs / "tmp").rglob("upload-*") if p.is_file()]
    return [*partial, *(p for p in (blobs / "sha256").rglob("*") if p.is_file())]


def multipart_chunks(size: int, boundary: str) -> Iterator[bytes]:
    """A multipart body streamed chunk by chunk: no Content-Length, the server cannot know."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for _ in range(size // 16_384):
        yield b"\x07" * 16_384
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("path", ["/v1/models", "/v1/datasets"])
def test_an_oversized_streamed_upload_is_413_and_leaves_no_file(
    small_limit_api: tuple[ApiServer, Path], path: str
) -> None:
    api, data_dir = small_limit_api
    boundary = "shears-test-boundary"
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    with api.client() as http:
        response = http.post(path, content=multipart_chunks(3 * LIMIT, boundary), headers=headers)
        problem = assert_problem(response, 413, "payload_too_large")
    assert str(LIMIT) in problem["detail"]
    assert leftovers(data_dir) == []


def test_an_upload_declaring_a_size_over_the_limit_is_413(
    small_limit_api: tuple[ApiServer, Path],
) -> None:
    api, data_dir = small_limit_api
    with api.client() as http:
        response = http.post("/v1/models", files={"file": ("big.onnx", b"\x07" * (3 * LIMIT))})
        assert_problem(response, 413, "payload_too_large")
        assert http.get("/healthz").status_code == 200  # a new connection, still serving
    assert leftovers(data_dir) == []


@pytest.mark.parametrize("path", ["/v1/models", "/v1/datasets"])
def test_an_upload_the_disk_cannot_hold_is_507_before_a_byte_is_written(
    start_api: Callable[[dict[str, str]], ApiServer],
    shears_env: Callable[..., dict[str, str]],
    path: str,
) -> None:
    env = shears_env(max_upload_bytes=1 << 60)  # the cap is not what refuses it
    api, data_dir = start_api(env), Path(env["SHEARS_DATA_DIR"])
    declared = shutil.disk_usage(data_dir).free + 1024**3
    boundary = "b0undary"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as conn:
        # The service reads (and drops) DRAIN_BYTES of a refused body before it answers, so
        # the client sees the answer instead of a reset; send that much, never the rest.
        body = next(multipart_chunks(0, boundary)) + b"\x07" * (DRAIN_BYTES + 65536)
        sender = threading.Thread(target=send_quietly, args=(conn, head.encode() + body))
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        sender.join(timeout=30)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 507 " in status_line, answer[:500]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["code"] == "insufficient_storage" and "nothing was kept" in body["detail"]
    assert leftovers(data_dir) == []


def send_quietly(conn: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the service may close once it has answered
        conn.sendall(data)


def test_an_upload_at_the_limit_is_stored_and_awaits_validation(
    small_limit_api: tuple[ApiServer, Path],
) -> None:
    api, _ = small_limit_api
    with api.client() as http:
        response = http.post("/v1/models", files={"file": ("ok.onnx", b"\x07" * LIMIT)})
        # No worker in this stack: after `inspect_wait_s` the model is still validating.
        assert response.status_code == 202, response.text
        model = response.json()
        assert model["status"] == "validating" and model["size_bytes"] == LIMIT
        assert http.get(response.headers["location"]).json()["id"] == model["id"]


def test_import_by_reference_without_s3_credentials_is_a_422_naming_source(
    http: httpx.Client,
) -> None:
    # The test stack carries no AWS variables: this deployment cannot import at all, which
    # the client must hear as a refusal it can act on (upload instead), not as a 5xx.
    response = http.post("/v1/models", json={"source": "s3://models/bert/model.tar"})
    problem = assert_problem(response, 422, "invalid_source")
    assert problem["errors"][0]["field"] == "source"
    assert "no S3 credentials" in problem["detail"]
