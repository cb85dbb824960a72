"""An ONNX model with external data travels as one archive over HTTP: uploaded as a .zip or
.tar, pruned, and downloaded in the same kind of archive; an archive whose tensors point
outside it is refused at upload with a 422 naming the tensor, and leaves nothing behind."""

import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pruning.models.onnx_archive import unpack
from tests.engine.test_onnx_archives import external_folder, tarred, with_location, zipped
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.shears import Stack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_an_archived_model_is_pruned_and_downloaded_in_its_archive_kind(
    stack: Stack, kind: str, tmp_path: Path
) -> None:
    pack = zipped if kind == "zip" else tarred
    archive = pack(external_folder(tmp_path, "model"), tmp_path / f"mlp.{kind}")
    with stack.client() as http:
        model = upload_model(http, archive)
        ready = wait_for_model(http, model["id"])
        assert (ready["status"], ready["format"]) == ("ready", "onnx"), ready
        job = wait_for_job(http, create_job(http, model["id"], fast_spec(sparsity=0.5))["id"])
        assert job["status"] == "succeeded", job
        (artifact,) = [a for a in job["artifacts"] if a["name"] == "model"]
        assert artifact["format"] == f"onnx+{kind}"
        response = http.get(f"/v1/jobs/{job['id']}/artifacts/model")
        assert response.status_code == 200
        assert f'-model.{kind}"' in response.headers["content-disposition"]
    delivered = tmp_path / f"pruned.{kind}"
    delivered.write_bytes(response.content)
    model_file = unpack(delivered, tmp_path / "pruned")
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in onnx.load(str(model_file)).graph.initializer
        if len(t.dims) == 2
    ]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.01)
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.ones((1, 32), np.float32)})[0].shape == (1, 10)


def test_an_archive_pointing_outside_itself_is_refused_at_upload(
    stack: Stack, tmp_path: Path
) -> None:
    folder = with_location(external_folder(tmp_path), "../../../etc/passwd")
    archive = zipped(folder, tmp_path / "evil.zip")
    assert zipfile.is_zipfile(archive)
    with stack.client() as http, archive.open("rb") as f:
        response = http.post("/v1/models", files={"file": (archive.name, f)})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["code"] == "invalid_model"
        assert "tensor '" in problem["detail"] and "outside the model's folder" in problem["detail"]
        assert http.get("/v1/models").json()["items"] == []


def test_an_archived_models_onnx_sparse_comes_back_as_an_archive_that_runs(
    stack: Stack, tmp_path: Path
) -> None:
    archive = tarred(external_folder(tmp_path, "model"), tmp_path / "mlp.tar")
    spec = fast_spec(sparsity=0.9) | {"outputs": ["model", "onnx_sparse"]}
    with stack.client() as http:
        model = upload_model(http, archive)
        wait_for_model(http, model["id"])
        job = wait_for_job(http, create_job(http, model["id"], spec)["id"])
        assert job["status"] == "succeeded", job
        (artifact,) = [a for a in job["artifacts"] if a["name"] == "onnx_sparse"]
        assert artifact["format"] == "onnx+tar"
        response = http.get(f"/v1/jobs/{job['id']}/artifacts/onnx_sparse")
        assert response.status_code == 200
    delivered = tmp_path / "sparse.tar"
    delivered.write_bytes(response.content)
    model_file = unpack(delivered, tmp_path / "sparse")
    proto = onnx.load(str(model_file), load_external_data=False)
    assert len(proto.graph.sparse_initializer) == 2  # both weights, 90% zeros
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.ones((1, 32), np.float32)})[0].shape == (1, 10)
