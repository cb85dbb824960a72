"""The sparsest model within an accuracy budget, and the curve for a list (issue 15): at most
8 one-shot prunings from the dense model, the returned model within the budget as measured
on the saved artifact, the curve in the report JSON and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api_schemas.report import Report
from pruning import prune
from pruning.errors import InvalidSpec
from tests.engine.quality_factories import FORMATS, convnet, exported, quality_spec, zeros_of

EVALUATION = {"dataset_id": "ds_test", "metric": "accuracy"}


@pytest.fixture(scope="module", params=FORMATS)
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return exported(tmp_path_factory, convnet(), request.param)


def _auto(**fields: Any) -> dict[str, Any]:
    budget = {"auto": {"metric": "accuracy", "max_drop": 0.01}}
    return quality_spec(sparsity=budget, evaluation=EVALUATION, **fields)


@pytest.mark.parametrize("allocation", [None, "owl"], ids=["uniform", "owl"])
def test_auto_returns_the_largest_tested_sparsity_within_the_budget(
    model: tuple[Path, dict[str, Path]], tmp_path: Path, allocation: str | None
) -> None:
    path, datasets = model
    result = prune(path, _auto(allocation=allocation), tmp_path, datasets=datasets)
    report = result.report
    search = report["search"]
    metric = report["quality"]["metric"]
    assert search["prunings"] <= 8
    assert metric["dense"] - metric["pruned"] <= 0.01  # on the saved artifact
    chosen = search["chosen_sparsity"]
    assert chosen > 0.2
    assert report["sparsity"]["target"] == chosen
    assert report["sparsity"]["achieved"] == pytest.approx(chosen, abs=1e-3)
    tested = {round(p["sparsity"], 9): p for p in search["curve"]}
    assert tested[round(chosen, 9)]["within_budget"]
    # Judged by the drop's upper 90% bound (the default), which the measured drop is under.
    assert tested[round(chosen, 9)]["drop"] <= tested[round(chosen, 9)]["drop_bound"] <= 0.01
    assert search["confidence"] == 0.9 and search["samples"] > 0
    assert tested[round(chosen, 9)]["metric"] == pytest.approx(metric["pruned"])
    above = [p for p in search["curve"] if p["sparsity"] > chosen]
    failed = [p["sparsity"] for p in above if not p["within_budget"]]
    # Bisection: the next sparsity above the choice that failed is within the resolution
    # (a lone pass past it is noise the monotone fit pools away), at most a few points.
    assert failed and min(failed) - chosen <= search["resolution"] + 1e-9
    assert search["resolution"] <= 0.03
    html = result.artifacts["report_html"].read_text()
    assert 'id="chart-search"' in html
    typed = Report.model_validate(report).search  # the schema clients are made from
    assert typed is not None and typed.kind == "auto" and len(typed.curve) == search["prunings"]


def test_sweep_measures_every_point_and_returns_the_specs_sparsity(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    spec = quality_spec(sparsity=0.5, sweep=[0.3, 0.5, 0.7], evaluation=EVALUATION)
    result = prune(path, spec, tmp_path, datasets=datasets)
    curve = result.report["search"]["curve"]
    assert [p["sparsity"] for p in curve] == [0.3, 0.5, 0.7]
    assert result.report["search"]["prunings"] == 3
    names = [layer["name"] for layer in result.report["sparsity"]["layers"]]
    plain = prune(path, quality_spec(sparsity=0.5), tmp_path / "plain", datasets=datasets)
    assert zeros_of(result.artifacts["model"], names) == zeros_of(plain.artifacts["model"], names)
    assert curve[1]["metric"] == pytest.approx(result.report["quality"]["metric"]["pruned"])
    typed = Report.model_validate(result.report).search
    assert typed is not None and typed.kind == "sweep" and typed.resolution is None


@pytest.mark.parametrize("kind", ["auto", "sweep"])
def test_a_data_free_method_searches_too(
    model: tuple[Path, dict[str, Path]], tmp_path: Path, kind: str
) -> None:
    """Magnitude without calibration data: the ONNX streaming engine, which prunes once
    tensor by tensor from disk, must leave a search to the in-memory engine."""
    path, datasets = model
    spec = _auto() if kind == "auto" else quality_spec(sparsity=0.5, sweep=[0.3, 0.5])
    spec = {**spec, "method": {"name": "magnitude"}, "calibration": None, "evaluation": EVALUATION}
    report = prune(path, spec, tmp_path, datasets=datasets).report
    assert report["search"]["kind"] == kind
    assert report["sparsity"]["target"] == report["search"]["chosen_sparsity"] > 0.2


def test_a_budget_nothing_meets_returns_the_dense_model(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    spec = _auto()
    spec["sparsity"]["auto"].update(max_drop=0.0, low=0.9, high=0.99, prunings=2)
    result = prune(path, spec, tmp_path, datasets=datasets)
    assert result.report["search"]["chosen_sparsity"] == 0.0
    assert result.report["sparsity"]["achieved"] == 0.0


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"evaluation": None}, "evaluation"),
        ({"evaluation": {"dataset_id": "ds_test", "metric": "mse"}}, "metric"),
        ({"sweep": [0.5]}, "sweep"),
        (
            {"schedule": {"kind": "gradual", "steps": 2}, "retrain": {"dataset_id": "ds_train"}},
            "one-shot",
        ),
    ],
    ids=["no-evaluation", "metric-mismatch", "with-sweep", "with-retrain"],
)
def test_auto_refuses_specs_it_cannot_search(
    model: tuple[Path, dict[str, Path]], tmp_path: Path, fields: dict[str, Any], where: str
) -> None:
    path, datasets = model
    with pytest.raises(InvalidSpec, match=where):
        prune(path, {**_auto(), **fields}, tmp_path, datasets=datasets)


def test_auto_takes_at_most_eight_prunings(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    spec = _auto()
    spec["sparsity"]["auto"]["prunings"] = 9
    with pytest.raises(InvalidSpec, match="prunings"):
        prune(path, spec, tmp_path, datasets=datasets)
