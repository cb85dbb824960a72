"""Sparse outputs and the visual report, as a pipeline downloads them over HTTP: each format
gives the same outputs as the `model` artifact, its size is what the report says, and the
report page renders in a real headless Chromium."""

import gzip
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from pruning.formats import decode_sparse_npz, rebuild_model
from tests.html.browser import open_page
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import INPUT_FEATURES, TORCHSCRIPT_INPUT_SHAPES, fast_spec
from tests.support.shears import Stack

pytestmark = pytest.mark.integration

SPARSE_OUTPUTS = ["model", "sparse_npz", "onnx_sparse"]
BATCH = np.random.default_rng(7).standard_normal((5, INPUT_FEATURES)).astype(np.float32)


def _run_onnx(path_or_bytes: Path | bytes) -> np.ndarray:
    source = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    session = ort.InferenceSession(source)
    return np.asarray(session.run(None, {session.get_inputs()[0].name: BATCH})[0])


def _run_torchscript(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(BATCH)).numpy())


def _finished_job(http: httpx.Client, model_file: Path, spec: dict[str, Any]) -> dict[str, Any]:
    model = wait_for_model(http, upload_model(http, model_file)["id"])
    job = wait_for_job(http, create_job(http, model["id"], spec)["id"])
    assert job["status"] == "succeeded", job
    return job


def _download(http: httpx.Client, job: dict[str, Any], name: str, to: Path) -> Path:
    response = http.get(f"/v1/jobs/{job['id']}/artifacts/{name}")
    assert response.status_code == 200, response.text
    to.write_bytes(response.content)
    return to


def test_every_onnx_output_format_gives_the_model_artifacts_outputs(
    stack: Stack, onnx_model_file: Path, tmp_path: Path
) -> None:
    with stack.client() as http:
        job = _finished_job(http, onnx_model_file, fast_spec(outputs=SPARSE_OUTPUTS))
        files = {n: _download(http, job, n, tmp_path / f"{n}.bin") for n in SPARSE_OUTPUTS}
        report = http.get(f"/v1/jobs/{job['id']}/report").json()

    expected = _run_onnx(files["model"])
    np.testing.assert_allclose(_run_onnx(files["onnx_sparse"]), expected, rtol=1e-6, atol=1e-7)
    rebuilt = rebuild_model(onnx_model_file, files["sparse_npz"], tmp_path / "rebuilt.onnx", "onnx")
    assert np.array_equal(_run_onnx(rebuilt), expected)  # bit for bit
    sizes = {a["name"]: a["size_bytes"] for a in job["artifacts"]}
    formats = report["storage"]["formats"]
    assert formats["file"] == sizes["model"]
    assert formats["sparse_npz"] == sizes["sparse_npz"]
    assert formats["onnx_sparse"] == sizes["onnx_sparse"]
    assert report["storage"]["floor"]["bytes"] < report["storage"]["dense_bytes"]


def test_sparse_npz_of_a_torchscript_model_rebuilds_it_bit_for_bit(
    stack: Stack, torchscript_model_file: Path, tmp_path: Path
) -> None:
    spec = fast_spec(outputs=["model", "sparse_npz"], input_shapes=TORCHSCRIPT_INPUT_SHAPES)
    with stack.client() as http:
        job = _finished_job(http, torchscript_model_file, spec)
        model = _download(http, job, "model", tmp_path / "model.pt")
        npz = _download(http, job, "sparse_npz", tmp_path / "weights.npz")
    weights = decode_sparse_npz(npz)
    pruned = dict(torch.jit.load(str(model)).named_parameters())
    for name, array in weights.items():
        assert np.array_equal(array, pruned[name].detach().numpy()), name
    rebuilt = rebuild_model(torchscript_model_file, npz, tmp_path / "rebuilt.pt", "torchscript")
    assert np.array_equal(_run_torchscript(rebuilt), _run_torchscript(model))


def test_onnx_sparse_for_a_torchscript_model_is_refused_up_front(
    stack: Stack, torchscript_model_file: Path
) -> None:
    spec = fast_spec(outputs=["onnx_sparse"], input_shapes=TORCHSCRIPT_INPUT_SHAPES)
    with stack.client() as http:
        model = wait_for_model(http, upload_model(http, torchscript_model_file)["id"])
        response = http.post("/v1/jobs", json={"model_id": model["id"], "spec": spec})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"] == "spec.outputs" for e in response.json()["errors"])


def test_artifacts_travel_gzip_compressed_when_the_client_accepts_it(
    stack: Stack, onnx_model_file: Path
) -> None:
    with stack.client() as http:
        job = _finished_job(http, onnx_model_file, fast_spec())
        url = f"{stack.api.url}/v1/jobs/{job['id']}/artifacts/model"
        plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
        with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as squeezed:
            raw = b"".join(squeezed.iter_raw())
            encoding = squeezed.headers.get("content-encoding")
    assert encoding == "gzip"
    assert len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content


def test_report_page_renders_every_plot_in_headless_chromium(
    stack: Stack, onnx_model_file: Path, tmp_path: Path
) -> None:
    with stack.client() as http:
        job = _finished_job(http, onnx_model_file, fast_spec())
        page = http.get(f"/v1/jobs/{job['id']}/report.html")
        artifact = http.get(f"/v1/jobs/{job['id']}/artifacts/report_html")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.content == artifact.content  # the same page, also kept as an artifact
    html = tmp_path / "report.html"
    html.write_bytes(page.content)
    run = open_page(html, tmp_path)
    print(f"report screenshot kept at {run.screenshot}")
    assert run.console == [], run.console
    assert run.screenshot.stat().st_size > 30_000
    assert run.dom.count("<svg") >= 4  # sparsity, magnitudes, latency, storage


def test_report_page_of_an_unknown_job_is_a_404_problem(stack: Stack) -> None:
    with stack.client() as http:
        response = http.get("/v1/jobs/job_doesnotexist/report.html")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
