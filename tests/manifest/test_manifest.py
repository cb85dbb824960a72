"""A job's manifest (shears_manifest): one spelling, one hash, and every input counts."""

import json
import subprocess
import sys
import tomllib
from typing import Any

import pytest

import shears_manifest
from api_schemas import Manifest, PruneSpec
from shears_manifest import (
    build_manifest,
    canonical_json,
    installed_versions,
    manifest_sha256,
    seeds,
)
from tests.support.processes import REPO_ROOT

MODEL = "a" * 64
DATA = {"ds_cal": "c" * 64, "ds_train": "d" * 64}
VERSIONS = {"shears": "0.1.0", "torch": "2.14.1", "onnx": "1.23.2", "onnxruntime": "1.32.0"}


def validated(**fields: Any) -> dict[str, Any]:
    return PruneSpec.model_validate({"sparsity": 0.5, **fields}).model_dump(mode="json")


def manifest(**changes: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "model_sha256": MODEL,
        "dataset_sha256": DATA,
        "spec": validated(calibration={"dataset_id": "ds_cal"}, method={"name": "wanda"}),
        "versions": VERSIONS,
        **changes,
    }
    return build_manifest(**inputs)


def test_the_hash_does_not_depend_on_key_order() -> None:
    shuffled = json.loads(json.dumps(manifest(), sort_keys=False))
    shuffled["spec"] = dict(reversed(list(shuffled["spec"].items())))
    assert manifest_sha256(shuffled) == manifest_sha256(manifest())


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == (
        '{"a":[1,{"c":"\\u00e9","d":2}],"b":1}'
    )


def test_the_same_spec_however_spelled_is_the_same_manifest() -> None:
    terse = validated(method={"name": "magnitude"})
    spelled_out = validated(
        method={"name": "magnitude"},
        scope="global",
        schedule={"kind": "one_shot"},
        outputs=["model"],
    )
    assert terse == spelled_out
    assert manifest_sha256(manifest(spec=terse)) == manifest_sha256(manifest(spec=spelled_out))


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "b" * 64},
        {"dataset_sha256": {"ds_cal": "e" * 64}},
        {"spec": validated(calibration={"dataset_id": "ds_cal"}, method={"name": "sparsegpt"})},
        {"versions": {**VERSIONS, "torch": "2.15.0"}},
        {"versions": {**VERSIONS, "onnxruntime": "1.33.0"}},
    ],
    ids=["model", "dataset", "spec", "torch", "onnxruntime"],
)
def test_any_changed_input_is_another_manifest(change: dict[str, Any]) -> None:
    assert manifest_sha256(manifest(**change)) != manifest_sha256(manifest())


def test_datasets_enter_by_role_and_content_only_when_the_spec_uses_them() -> None:
    spec = validated(
        calibration={"dataset_id": "ds_cal"},
        method={"name": "wanda"},
        evaluation={"dataset_id": "ds_cal", "metric": "mse"},
    )
    assert manifest(spec=spec)["datasets"] == {"calibration": "c" * 64, "evaluation": "c" * 64}


def test_every_seed_of_the_spec_is_named_by_its_path() -> None:
    spec = validated(
        method={"name": "random", "seed": 7}, retrain={"dataset_id": "ds_train", "seed": 3}
    )
    assert seeds(spec) == {"method.seed": 7, "retrain.seed": 3}
    assert seeds(validated(method={"name": "magnitude"})) == {}


def test_the_manifest_fits_the_contract() -> None:
    document = manifest()
    assert Manifest.model_validate(document).model_dump(mode="json") == document


def test_versions_are_releases_without_local_labels() -> None:
    versions = installed_versions()
    assert set(versions) == {"shears", "torch", "onnx", "onnxruntime", "numpy"}
    assert all(v is None or "+" not in v for v in versions.values())


def test_computing_a_manifest_loads_no_torch_onnx_or_pydantic() -> None:
    probe = (
        "import sys, shears_manifest as m\n"
        "m.manifest_sha256(m.build_manifest('a' * 64, {}, {'sparsity': 0.5}))\n"
        "print(sorted(x for x in ('torch', 'onnx', 'onnxruntime', 'pydantic') "
        "if x in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_a_package_missing_beside_the_api_counts_at_the_release_shears_pins_for_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API's image carries no torch: its manifest must still name the worker's torch."""
    engine = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["engine"]
    pinned = next(line.split("==")[1] for line in engine if line.startswith("torch=="))
    monkeypatch.setattr(
        shears_manifest, "_installed", lambda name: None if name == "torch" else "1.2.3+cpu"
    )
    shears_manifest._versions.cache_clear()
    try:
        versions = installed_versions()
    finally:
        shears_manifest._versions.cache_clear()
    assert versions["torch"] == pinned
    assert versions["onnx"] == "1.2.3"  # the local build label is not part of the release
