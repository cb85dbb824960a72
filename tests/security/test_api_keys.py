"""API keys: stored as digests, each key one tenant, another tenant's ids are 404 on every
endpoint the OpenAPI document lists, and no key ever reaches a log."""

import io
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shears_config import Settings
from tests.support import shears
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import (
    ManagedProcess,
    ProcessRegistry,
    free_port,
    python_argv,
    scoped_registry,
)
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

_KEY_LINE = re.compile(r"key \(give it to the client.*\): (\S+)")
_ENTRY_LINE = re.compile(r"SHEARS_API_KEYS entry for the server: (\{.*\})")


@dataclass
class Tenant:
    key: str
    entry: dict[str, str]


def new_key(tenant: str) -> Tenant:
    """`shears keys new TENANT`, as an operator runs it."""
    argv = python_argv("-m", "shears_cli", "keys", "new", tenant)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    key = _KEY_LINE.search(out).group(1)  # type: ignore[union-attr]
    entry = json.loads(_ENTRY_LINE.search(out).group(1))  # type: ignore[union-attr]
    return Tenant(key=key, entry=entry)


@dataclass
class TwoTenants:
    api: ApiServer
    worker: ManagedProcess
    acme: httpx.Client
    globex: httpx.Client
    acme_ids: dict[str, str]
    keys: tuple[str, str]


@pytest.fixture(scope="module")
def two_tenants(
    tmp_path_factory: pytest.TempPathFactory, onnx_model_file: Path
) -> Iterator[TwoTenants]:
    """One API and worker for the module, configured with two tenants' key digests."""
    acme, globex = new_key("acme"), new_key("globex")
    assert all(k.startswith("sha256:") for k in [*acme.entry, *globex.entry])
    root = tmp_path_factory.mktemp("tenants")
    env = shears.shears_env(root / "data", api_keys=json.dumps({**acme.entry, **globex.entry}))
    with scoped_registry(root / "logs") as registry:
        worker = shears.start_worker(registry, env)
        api = shears.start_api(registry, env)
        with (
            api.client(headers={"Authorization": f"Bearer {acme.key}"}) as a,
            api.client(headers={"Authorization": f"Bearer {globex.key}"}) as g,
        ):
            ids = _acme_resources(a, onnx_model_file)
            yield TwoTenants(api, worker, a, g, ids, (acme.key, globex.key))


def _acme_resources(http: httpx.Client, model_file: Path) -> dict[str, str]:
    """A ready model, a dataset and a succeeded job (with artifacts) owned by acme."""
    model = upload_model(http, model_file)
    assert wait_for_model(http, model["id"])["status"] == "ready"
    payload = io.BytesIO()
    np.savez(payload, x=np.zeros((4, 16), dtype=np.float32))
    dataset = http.post("/v1/datasets", files={"file": ("d.npz", payload.getvalue())})
    assert dataset.status_code == 201, dataset.text
    job = create_job(http, model["id"], fast_spec())
    assert wait_for_job(http, job["id"])["status"] == "succeeded"
    return {
        "model_id": model["id"],
        "dataset_id": dataset.json()["id"],
        "job_id": job["id"],
        "name": "model",
    }


def operations_with_ids(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every operation that addresses one resource by id."""
    return [
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        if "{" in path
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_endpoint_answers_404_for_another_tenants_ids(two_tenants: TwoTenants) -> None:
    t = two_tenants
    operations = operations_with_ids(t.globex.get("/openapi.json").json())
    assert len(operations) >= 10, operations  # models, datasets, jobs and their sub-resources
    for method, template in operations:
        path = template.format(**t.acme_ids)
        response = t.globex.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # The owner still has everything the other tenant could not touch (delete was 404).
    for method, template in operations:
        if method == "GET":
            path = template.format(**t.acme_ids)
            assert t.acme.get(path).status_code == 200, path


def test_lists_and_create_job_see_only_the_callers_tenant(two_tenants: TwoTenants) -> None:
    t = two_tenants
    for listing in ("/v1/models", "/v1/datasets", "/v1/jobs"):
        assert t.globex.get(listing).json()["items"] == []
        assert len(t.acme.get(listing).json()["items"]) == 1
    foreign = t.globex.post(
        "/v1/jobs", json={"model_id": t.acme_ids["model_id"], "spec": fast_spec()}
    )
    assert foreign.status_code == 404, foreign.text
    wrong = httpx.get(f"{t.api.url}/v1/jobs", headers={"Authorization": "Bearer not-a-key"})
    assert wrong.status_code == 401


def test_keys_never_appear_in_logs(two_tenants: TwoTenants) -> None:
    t = two_tenants
    for key in t.keys:
        assert t.api.process.log() and key not in t.api.process.log()
        assert key not in t.worker.log()
        # Not even part of one: no prefix of the key is echoed in a message.
        assert key[4:20] not in t.api.process.log() + t.worker.log()


def test_plain_keys_are_hashed_when_settings_load() -> None:
    settings = Settings(api_keys={"plain-secret-key": "acme"})
    assert "plain-secret-key" not in repr(settings)
    assert "plain-secret-key" not in settings.model_dump_json()
    (stored,) = settings.api_keys
    assert stored.startswith("sha256:") and len(stored) == len("sha256:") + 64


def test_api_without_keys_binds_loopback_and_says_so(
    processes: ProcessRegistry, shears_env: Callable[..., dict[str, str]]
) -> None:
    port = free_port()
    argv = python_argv("-m", "shears_cli", "api", "--host", "0.0.0.0", "--port", str(port))
    api = ApiServer(process=processes.start("api", argv, shears_env()), port=port)
    api.process.wait_for(api.healthy, timeout=90, what="healthy on /healthz")
    assert "binding to 127.0.0.1 instead of 0.0.0.0" in api.process.log()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in api.process.log()


def test_open_without_keys_listens_where_asked_for_a_container(
    processes: ProcessRegistry, shears_env: Callable[..., dict[str, str]]
) -> None:
    port = free_port()
    argv = python_argv("-m", "shears_cli", "api", "--host", "0.0.0.0", "--port", str(port))
    env = shears_env(open_without_keys="true")
    api = ApiServer(process=processes.start("api", argv, env), port=port)
    api.process.wait_for(api.healthy, timeout=90, what="healthy on /healthz")
    assert "binding to 127.0.0.1" not in api.process.log()
    assert f"Uvicorn running on http://0.0.0.0:{port}" in api.process.log()


def test_idempotency_keys_are_per_tenant(two_tenants: TwoTenants, onnx_model_file: Path) -> None:
    t = two_tenants
    globex_model = upload_model(t.globex, onnx_model_file)
    assert wait_for_model(t.globex, globex_model["id"])["status"] == "ready"
    key = {"Idempotency-Key": "nightly-build-42"}
    acme_job = create_job(t.acme, t.acme_ids["model_id"], fast_spec(), **key)
    globex_job = create_job(t.globex, globex_model["id"], fast_spec(), **key)
    assert acme_job["id"] != globex_job["id"]
    # Nor can a job name another tenant's dataset: it is as absent as an unknown id.
    calibrated = fast_spec(
        method={"name": "wanda"},
        calibration={"dataset_id": t.acme_ids["dataset_id"], "samples": 4},
    )
    foreign = t.globex.post("/v1/jobs", json={"model_id": globex_model["id"], "spec": calibrated})
    assert foreign.status_code == 422, foreign.text
    assert "spec.calibration.dataset_id" in [e["field"] for e in foreign.json()["errors"]]
    for http, model_id, job in (
        (t.acme, t.acme_ids["model_id"], acme_job),
        (t.globex, globex_model["id"], globex_job),
    ):
        again = http.post("/v1/jobs", json={"model_id": model_id, "spec": fast_spec()}, headers=key)
        assert again.status_code in (200, 202) and again.json()["id"] == job["id"], again.text
