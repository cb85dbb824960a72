"""Learned sparsity (issue 16) through ``prune()`` on real ONNX and TorchScript exports of a
load_digits MLP: each method trains its mask with labels or by distillation and the artifact
holds exactly the requested sparsity, with the learned density, its gap to the target, the
trajectory and the per-layer learned sparsity in the report and a trajectory plot in the HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api_schemas.report import Report
from pruning import prune
from pruning.errors import InvalidSpec, Unsupported
from pruning.spec import parse_spec
from tests.engine.training_factories import (
    digits_datasets,
    export_digits,
    held_out_accuracy,
    make_digits_mlp,
    retrain_spec,
    trained,
    weights_of,
)

METHODS = ("l0", "variational_dropout", "str", "movement")
WEIGHTS = ("1.weight", "3.weight")  # the MLP's two Linear layers, as both formats name them


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained MLP exported once per format for the whole module."""
    folder = tmp_path_factory.mktemp("dense")
    model = trained(make_digits_mlp(), epochs=4)
    return {s: export_digits(model, folder / f"mlp{s}") for s in (".onnx", ".pt")}


def _learned_job(tmp: Path, model: Path, method: str, labels: bool = True) -> tuple[Path, Any]:
    spec = retrain_spec(0.9, {"kind": "one_shot"}, epochs=3)
    spec["method"] = {"name": method}
    if not labels:
        spec["retrain"]["loss"] = "distill"
    result = prune(model, spec, tmp / "out", datasets=digits_datasets(tmp, model, labels))
    return result.artifacts["model"], result


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "distill"])
def test_each_learned_method_ends_at_exactly_the_requested_sparsity(
    tmp_path: Path, dense: dict[str, Path], method: str, suffix: str, labels: bool
) -> None:
    artifact, result = _learned_job(tmp_path, dense[suffix], method, labels)

    weights = weights_of(artifact, list(WEIGHTS))
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.size for w in weights.values())
    assert zeros == round(0.9 * total)
    report = result.report
    assert report["sparsity"]["achieved"] == pytest.approx(0.9, abs=1e-4)
    learned = report["training"]["learned"]
    assert learned["method"] == method
    assert learned["target_density"] == pytest.approx(0.1)
    assert learned["gap"] == pytest.approx(learned["learned_density"] - 0.1, abs=1e-5)
    assert set(learned["layers"]) == set(weights)
    for layer in learned["layers"].values():
        assert 0.0 <= layer["learned_sparsity"] <= 1.0
    trajectory = learned["trajectory"]
    assert trajectory[0]["step"] == 0 and trajectory[0]["density"] > 0.5
    assert trajectory[-1]["step"] == report["training"]["steps"]
    assert trajectory[-1]["density"] == pytest.approx(0.1, abs=1e-4)  # the fine-tuned mask
    assert held_out_accuracy(artifact) == report["quality"]["metric"]["pruned"]
    assert report["quality"]["metric"]["pruned"] > 0.15  # above chance (0.1); quality: bench/
    html = result.artifacts["report_html"].read_text()
    assert 'id="chart-learned"' in html


def test_the_learned_density_moves_from_dense_towards_the_target(
    tmp_path: Path, dense: dict[str, Path]
) -> None:
    _, result = _learned_job(tmp_path, dense[".onnx"], "l0")

    learned = result.report["training"]["learned"]
    learning = [p for p in learned["trajectory"] if p["phase"] == "learn"]
    assert learning[0]["density"] == 1.0
    assert learning[-1]["density"] < 0.5  # the gates closed on their own before projection
    assert learning[-1]["multiplier"] >= 0.0


def test_without_fine_tuning_the_projection_is_the_last_word(
    tmp_path: Path, dense: dict[str, Path]
) -> None:
    model = dense[".onnx"]
    spec = retrain_spec(0.8, {"kind": "one_shot"}, epochs=2)
    spec["method"] = {"name": "str", "finetune_fraction": 0.0}
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))

    learned = result.report["training"]["learned"]
    assert learned["finetune_epochs"] == 0
    assert {p["phase"] for p in learned["trajectory"]} == {"learn"}
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.8, abs=1e-4)


def test_overrides_and_layerwise_scope_hold_in_the_projection(
    tmp_path: Path, dense: dict[str, Path]
) -> None:
    model = dense[".pt"]
    spec = retrain_spec(0.7, {"kind": "one_shot"}, epochs=2)
    spec["method"] = {"name": "movement"}
    spec["scope"] = "layerwise"
    spec["layers"] = {"overrides": {"3.weight": 0.5}}
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))

    weights = weights_of(result.artifacts["model"], list(WEIGHTS))
    assert np.mean(weights["1.weight"] == 0) == pytest.approx(0.7, abs=1e-3)
    assert np.mean(weights["3.weight"] == 0) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_a_learned_method_without_retrain_is_refused_at_retrain(method: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec({"sparsity": 0.9, "method": {"name": method}})
    assert caught.value.field == "retrain"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"schedule": {"kind": "iterative", "rounds": 2}}, "schedule.kind"),
        ({"granularity": {"kind": "channel"}}, "granularity"),
        ({"method": {"name": "l0", "finetune_fraction": 1.0}}, "method.finetune_fraction"),
    ],
)
def test_a_learned_method_refuses_what_it_cannot_do_naming_the_field(
    extra: dict[str, Any], field: str
) -> None:
    spec = {"sparsity": 0.5, "method": {"name": "l0"}, "retrain": {"dataset_id": "ds"}, **extra}
    with pytest.raises((InvalidSpec, Unsupported)) as caught:
        parse_spec(spec)
    assert caught.value.field == field


def test_movement_takes_the_gradual_schedule_as_its_ramp() -> None:
    spec = parse_spec(
        {
            "sparsity": 0.9,
            "method": {"name": "movement"},
            "schedule": {"kind": "gradual", "exponent": 2.0},
            "retrain": {"dataset_id": "ds"},
        }
    )
    assert spec.schedule.exponent == 2.0


def test_the_report_fits_the_published_report_contract(
    tmp_path: Path, dense: dict[str, Path]
) -> None:
    _, result = _learned_job(tmp_path, dense[".pt"], "variational_dropout")

    parsed = Report.model_validate(result.report)
    assert parsed.training is not None and parsed.training.learned is not None
    assert parsed.training.learned.method == "variational_dropout"
