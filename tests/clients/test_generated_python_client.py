"""A Python client generated from the committed openapi.json by openapi-python-client drives a
whole job against a real server: what a user who generates their own SDK gets."""

import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tests.clients.conftest import API_KEY, COMMITTED_SPEC
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

PACKAGE = "shears_api"
JOB_DEADLINE_S = 300.0


def generate_client(spec: Path, into: Path) -> subprocess.CompletedProcess[str]:
    """`openapi-python-client generate` as a user runs it; it formats with `ruff`, which it
    finds on PATH, hence the virtualenv's bin first."""
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--path", str(spec), "--meta", "none", "--output-path", str(into / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(into)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported; removed from sys.modules afterwards."""
    root = tmp_path_factory.mktemp("generated-python-client")
    done = generate_client(COMMITTED_SPEC, root)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def sub(sdk: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{sdk.__name__}.{name}")


def test_generated_client_uploads_prunes_reports_and_downloads(
    sdk: ModuleType, keyed_server: ApiServer, onnx_model_file: Path, tmp_path: Path
) -> None:
    m = sub(sdk, "models")
    client = sdk.AuthenticatedClient(
        base_url=keyed_server.url, token=API_KEY, raise_on_unexpected_status=True, timeout=60.0
    )

    with onnx_model_file.open("rb") as payload:
        body = m.BodyUploadModel(
            file=sub(sdk, "types").File(payload=payload, file_name="mlp.onnx"),
            format_=m.ModelFormat.ONNX,
            name="mlp.onnx",
        )
        model = sub(sdk, "api.models.upload_model").sync(client=client, body=body)
    assert isinstance(model, m.Model), model
    assert (model.status, model.format_, model.name) == (m.ModelStatus.READY, "onnx", "mlp.onnx")

    spec = m.PruneSpec(
        sparsity=0.6,
        method=m.MagnitudeMethod(),
        scope=m.PruneSpecScope.LAYERWISE,
        granularity=m.UnstructuredGranularity(),
        latency=m.LatencySpec(batch_sizes=[1], iterations=5, warmup=1),
    )
    job = sub(sdk, "api.jobs.create_job").sync(
        client=client, body=m.JobCreate(model_id=model.id, spec=spec)
    )
    assert isinstance(job, m.Job), job
    assert job.spec.sparsity == 0.6

    job = wait_until_final(sdk, client, job.id)
    assert job.status == m.JobStatus.SUCCEEDED, job.error
    assert "model" in [artifact.name for artifact in job.artifacts]

    report = sub(sdk, "api.jobs.get_job_report").sync(job.id, client=client)
    assert isinstance(report, m.Report), report
    assert report.sparsity.achieved == pytest.approx(0.6, abs=0.02)

    download = sub(sdk, "api.jobs.download_job_artifact").sync(job.id, "model", client=client)
    assert isinstance(download, sub(sdk, "types").File), download
    pruned = tmp_path / "pruned.onnx"
    pruned.write_bytes(download.payload.read())
    assert_artifact_matches_report(pruned, report)


def test_generated_client_returns_the_problem_naming_the_bad_field(
    sdk: ModuleType, keyed_server: ApiServer
) -> None:
    m = sub(sdk, "models")
    client = sdk.AuthenticatedClient(base_url=keyed_server.url, token=API_KEY)
    body = m.JobCreate(model_id="mdl_doesnotexist0000", spec=m.PruneSpec(sparsity=1.5))
    response = sub(sdk, "api.jobs.create_job").sync_detailed(client=client, body=body)
    assert response.status_code == 422
    assert isinstance(response.parsed, m.Problem)
    assert "spec.sparsity" in [error.field for error in response.parsed.errors]


def test_generated_client_without_the_key_gets_a_401_problem(
    sdk: ModuleType, keyed_server: ApiServer
) -> None:
    m = sub(sdk, "models")
    client = sdk.AuthenticatedClient(base_url=keyed_server.url, token="not-a-configured-key")
    response = sub(sdk, "api.models.list_models").sync_detailed(client=client)
    assert response.status_code == 401
    assert isinstance(response.parsed, m.Problem)
    assert response.parsed.code == "unauthorized"


def wait_until_final(sdk: ModuleType, client: object, job_id: str) -> object:
    m = sub(sdk, "models")
    get_job = sub(sdk, "api.jobs.get_job")
    final = {m.JobStatus.SUCCEEDED, m.JobStatus.FAILED, m.JobStatus.CANCELLED}
    deadline = time.monotonic() + JOB_DEADLINE_S
    job = get_job.sync(job_id, client=client)
    while job.status not in final:
        assert time.monotonic() < deadline, f"job still {job.status} after {JOB_DEADLINE_S} s"
        time.sleep(0.5)
        job = get_job.sync(job_id, client=client)
    return job


def assert_artifact_matches_report(path: Path, report: object) -> None:
    """The pruned file opens in ONNX Runtime, and each layer's zeros are what the report says."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    (output,) = session.run(None, {session.get_inputs()[0].name: batch})
    assert output.shape == (3, 4) and np.isfinite(output).all()

    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    layers = report.sparsity.layers  # type: ignore[attr-defined]
    assert layers
    for layer in layers:
        measured = 1.0 - np.count_nonzero(weights[layer.name]) / weights[layer.name].size
        assert measured == pytest.approx(layer.sparsity, abs=1e-6), layer.name
    assert all(layer.sparsity == pytest.approx(0.6, abs=0.02) for layer in layers)
