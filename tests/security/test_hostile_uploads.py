"""Bad input, each answered by a 4xx problem+json with a stable code, never by harm: files
built to read other files, run code, exhaust memory, or become paths.

Random bytes, an empty file, zip-slip `.npz` members and object arrays are in tests/api.
"""

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shears_config import Settings
from tests.security import hostile
from tests.support import shears
from tests.support.api_client import upload_model, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import scoped_registry
from tests.support.redis_server import RedisServer
from tests.support.shears import ApiServer, Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, the API and one worker for the module: uploads are validated for real."""
    root = tmp_path_factory.mktemp("hostile")
    with scoped_registry(root / "logs") as registry:
        redis_server = RedisServer(registry=registry, data_dir=root / "redis").start()
        env = shears.shears_env(root / "data", broker_url=redis_server.url)
        worker = shears.start_worker(registry, env)
        api = shears.start_api(registry, env)
        yield Stack(env=env, data_dir=root / "data", api=api, workers=[worker])


@pytest.fixture(scope="module")
def model_id(stack: Stack, onnx_model_file: Path) -> str:
    with stack.client() as client:
        model = upload_model(client, onnx_model_file)
        assert wait_for_model(client, model["id"])["status"] == "ready"
        return str(model["id"])


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert (body["status"], body["code"]) == (status, code), body
    return body


def post_model(http: httpx.Client, data: bytes, name: str = "m.onnx", **fields: str) -> Any:
    return http.post("/v1/models", files={"file": (name, data)}, data=fields)


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (hostile.truncated_onnx, "invalid_model"),
        (hostile.mismatched_shape_onnx, "invalid_model"),
        (hostile.foreign_domain_onnx, "unsupported_operator"),  # the code says why
        (lambda: hostile.external_data_onnx("../../../../../../etc/passwd"), "invalid_model"),
    ],
    ids=["truncated", "shape-mismatch", "foreign-domain", "path-traversal"],
)
def test_broken_or_foreign_onnx_is_422_with_a_stable_code(
    http: httpx.Client, build: Callable[[], bytes], code: str
) -> None:
    problem = assert_problem(post_model(http, build()), 422, code)
    assert problem["errors"][0]["field"] == "file"


@pytest.mark.parametrize("via_symlink", [False, True], ids=["absolute-path", "symlink"])
def test_onnx_with_external_data_is_refused_without_reading_the_named_file(
    http: httpx.Client, tmp_path: Path, via_symlink: bool
) -> None:
    # A real file holding exactly the bytes the model asks for: loading it would succeed.
    target = tmp_path / "weights.bin"
    target.write_bytes(np.ones((16, 4), dtype=np.float32).tobytes())
    old = target.stat().st_mtime - 3600
    os.utime(target, (old, target.stat().st_mtime))  # any read now moves atime (relatime)
    named = target
    if via_symlink:
        named = tmp_path / "innocent.bin"
        named.symlink_to(target)

    problem = assert_problem(
        post_model(http, hostile.external_data_onnx(str(named))), 422, "invalid_model"
    )

    assert "external data" in problem["detail"]
    assert target.stat().st_atime == old, "something opened the file the model named"


def test_torchscript_pickle_payload_never_runs_outside_the_sandbox(
    http: httpx.Client, stack: Stack, tmp_path: Path, torchscript_model_file: Path
) -> None:
    marker = tmp_path / "payload-ran.json"
    archive = hostile.torchscript_with_pickle_payload(torchscript_model_file, marker)

    response = post_model(http, archive, "m.pt", format="torchscript")

    assert_problem(response, 422, "invalid_model")
    if marker.exists():  # had it run, it must have been in a child that holds no secrets
        ran = hostile_marker(marker)
        assert ran["env"] == [], ran
        assert ran["pid"] not in {stack.api.process.pid, *(w.pid for w in stack.workers)}
    assert "libtorch" not in Path(f"/proc/{stack.api.process.pid}/maps").read_text()


def hostile_marker(marker: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(marker.read_text()))


def test_a_ten_kilobyte_file_name_is_a_400_problem(
    http: httpx.Client, onnx_model_file: Path
) -> None:
    response = post_model(http, onnx_model_file.read_bytes(), "x" * 10_000 + ".onnx")
    assert_problem(response, 400, "malformed_multipart")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/cron.d/a\x00b.onnx"])
def test_odd_file_names_are_never_used_as_paths(
    http: httpx.Client, stack: Stack, onnx_model_file: Path, name: str
) -> None:
    response = post_model(http, onnx_model_file.read_bytes(), name)

    assert response.status_code == 201, response.text
    model = response.json()
    assert "/" not in model["name"] and "\x00" not in model["name"]
    assert len(model["name"]) <= 256
    stored = [p.name for p in stack.data_dir.rglob("*") if p.is_file()]
    assert all("passwd" not in n and not n.startswith("a") for n in stored), stored


def test_more_multipart_fields_than_allowed_is_422(http: httpx.Client) -> None:
    fields = {f"field{i}": "v" for i in range(50)}
    response = http.post("/v1/models", data=fields, files={"file": ("m.onnx", b"\x08\x07")})
    assert_problem(response, 422, "validation_failed")


@pytest.mark.parametrize(
    "change",
    [
        {"sparsity": 1.0},
        {"sparsity": -0.1},
        {"sparsity": "most"},
        {"latency": {"batch_sizes": [0], "iterations": 3, "warmup": 1}},
        {"latency": {"batch_sizes": [1], "iterations": 10**9, "warmup": 1}},
        {"layers": {"overrides": {"*": 2.0}}},
        {"method": {"name": "exec"}},
        {"outputs": ["../../model"]},
    ],
)
def test_spec_values_out_of_range_are_422_naming_the_field(
    http: httpx.Client, model_id: str, change: dict[str, Any]
) -> None:
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": fast_spec(**change)})
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"] and all(e["field"].startswith("spec.") for e in problem["errors"])


def test_layer_pattern_that_matches_nothing_is_422(http: httpx.Client, model_id: str) -> None:
    spec = fast_spec(layers={"include": ["no_such_layer*"]})
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    assert "no_such_layer*" in assert_problem(response, 422, "invalid_spec")["detail"]


def test_the_default_upload_cap_holds_a_7b_model_and_no_more() -> None:
    # A 7B fp32 model is 28 GB, in an archive with its data files; a body over the cap is
    # refused while streaming, one the disk cannot hold before a byte is written
    # (tests/api/test_api_upload_limits.py).
    assert 28 * 10**9 < Settings().max_upload_bytes <= 32 * 1024**3


def test_npz_zip_bomb_and_lying_sizes_are_refused_with_bounded_work(
    shears_env: Callable[..., dict[str, str]], start_api: Callable[[dict[str, str]], ApiServer]
) -> None:
    api = start_api(shears_env(child_memory_bytes=256 * 1024**2))
    bomb = hostile.npz_bomb(unpacked_bytes=300 * 1024**2)
    assert len(bomb) < 2 * 1024**2
    with api.client() as client:
        refused = client.post("/v1/datasets", files={"file": ("d.npz", bomb)})
        assert "unpack" in assert_problem(refused, 422, "invalid_dataset")["detail"]
        lying = client.post(
            "/v1/datasets", files={"file": ("d.npz", hostile.npz_with_lying_sizes())}
        )
        assert_problem(lying, 422, "invalid_dataset")
        digits = io.BytesIO()
        np.savez(digits, x=np.zeros((4, 16), dtype=np.float32))
        ok = client.post("/v1/datasets", files={"file": ("d.npz", digits.getvalue())})
        assert ok.status_code == 201, ok.text
