"""The same manifest gives the same artifact bytes, and the report says what the manifest
was (issue 17): a pipeline can then trust an earlier job with the same manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pruning import KnownDigests, prune
from shears_manifest import VERSIONED, manifest_sha256
from tests.engine.factories import (
    export_onnx,
    export_torchscript,
    make_convnet,
    make_mlp,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec(method: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"method": method, "sparsity": 0.6, "latency": None, **fields}


def images(path: Path, name: str) -> Path:
    x = np.random.default_rng(0).standard_normal((24, 3, 16, 16)).astype(np.float32)
    np.savez(path, **{name: x})
    return path


def twice(model: Path, job: dict[str, Any], tmp_path: Path, **datasets: Path) -> list[Any]:
    return [prune(model, job, tmp_path / f"run{run}", datasets=datasets) for run in (1, 2)]


@pytest.mark.parametrize(
    "method", [{"name": "magnitude"}, {"name": "random", "seed": 7}], ids=["magnitude", "random"]
)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_same_job_twice_writes_the_same_model_bytes(
    method: dict[str, Any], fmt: str, tmp_path: Path
) -> None:
    model = (
        export_onnx(make_convnet(), tmp_path / "m.onnx")
        if fmt == "onnx"
        else export_torchscript(make_convnet(), tmp_path / "m.pt")
    )
    first, second = twice(model, spec(method), tmp_path)
    assert sha256(first.artifacts["model"]) == sha256(second.artifacts["model"])
    assert first.report["manifest_sha256"] == second.report["manifest_sha256"]


def test_a_calibrated_job_twice_writes_the_same_onnx_bytes(tmp_path: Path) -> None:
    model = export_onnx(make_convnet(), tmp_path / "m.onnx")
    job = spec({"name": "wanda"}, calibration={"dataset_id": "ds_cal", "samples": 16})
    first, second = twice(model, job, tmp_path, ds_cal=images(tmp_path / "cal.npz", "x"))
    assert sha256(first.artifacts["model"]) == sha256(second.artifacts["model"])


def test_a_retrained_job_twice_writes_the_same_torchscript_bytes(tmp_path: Path) -> None:
    model = export_torchscript(make_convnet(), tmp_path / "m.pt")
    retrain = {"dataset_id": "ds_train", "epochs": 1, "batch_size": 8, "loss": "distill"}
    job = spec({"name": "magnitude"}, retrain={**retrain, "seed": 3})
    data = images(tmp_path / "train.npz", "input")
    first, second = twice(model, job, tmp_path, ds_train=data)
    assert sha256(first.artifacts["model"]) == sha256(second.artifacts["model"])
    assert first.report["manifest"]["seeds"] == {"retrain.seed": 3}


def test_the_report_manifest_names_the_inputs_by_content(tmp_path: Path) -> None:
    model = export_onnx(make_convnet(), tmp_path / "m.onnx")
    data = images(tmp_path / "cal.npz", "x")
    job = spec({"name": "wanda"}, calibration={"dataset_id": "ds_cal", "samples": 16})
    report = prune(model, job, tmp_path / "out", datasets={"ds_cal": data}).report
    manifest = report["manifest"]
    assert manifest["model_sha256"] == sha256(model)
    assert manifest["datasets"] == {"calibration": sha256(data)}
    assert manifest["spec"] == job
    assert set(manifest["versions"]) == set(VERSIONED)
    assert all(manifest["versions"].values())  # the engine runs with every one installed
    assert report["manifest_sha256"] == manifest_sha256(manifest)


def test_digests_the_caller_knows_are_taken_instead_of_reading_the_files(
    tmp_path: Path,
) -> None:
    model = export_onnx(make_mlp(), tmp_path / "m.onnx")
    known = KnownDigests(model="ab" * 32)
    report = prune(model, spec({"name": "magnitude"}), tmp_path / "out", digests=known).report
    assert report["manifest"]["model_sha256"] == "ab" * 32


def test_another_seed_is_another_manifest(tmp_path: Path) -> None:
    model = export_onnx(make_mlp(), tmp_path / "m.onnx")
    hashes = {
        prune(model, spec({"name": "random", "seed": seed}), tmp_path / f"s{seed}").report[
            "manifest_sha256"
        ]
        for seed in (1, 2)
    }
    assert len(hashes) == 2


def test_sparse_outputs_twice_are_the_same_bytes(tmp_path: Path) -> None:
    model = export_onnx(make_convnet(), tmp_path / "m.onnx")
    job = spec({"name": "magnitude"}, outputs=["model", "sparse_npz", "onnx_sparse"])
    first, second = twice(model, job, tmp_path)
    files = set(first.artifacts) - {"report_html"}  # the page shows timings: not the model's
    assert files == {"model", "sparse_npz", "onnx_sparse"}
    assert {n: sha256(first.artifacts[n]) for n in files} == {
        n: sha256(second.artifacts[n]) for n in files
    }
