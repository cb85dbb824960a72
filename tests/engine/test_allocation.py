"""Non-uniform allocation (issue 15): OWL and sensitivity spread the target over layers, keep
the zeros over the allocated layers at round(target x their size), combine with every
method, and leave today's uniform behaviour as the default."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api_schemas.report import Report
from pruning import prune
from pruning.allocation.budget import cheapest, exact_counts, shift_to_mean
from pruning.allocation.owl import owl_sparsities
from pruning.errors import InvalidSpec
from tests.engine.quality_factories import FORMATS, convnet, exported, quality_spec, zeros_of


@pytest.fixture(scope="module", params=FORMATS)
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return exported(tmp_path_factory, convnet(), request.param)


def _layers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in report["sparsity"]["layers"]}


@pytest.mark.parametrize("allocation", ["owl", {"kind": "sensitivity"}], ids=["owl", "sens"])
@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt", "obd"])
def test_allocation_keeps_the_total_exact_and_prunes_layers_differently(
    model: tuple[Path, dict[str, Path]], tmp_path: Path, allocation: Any, method: str
) -> None:
    path, datasets = model
    spec = quality_spec(method={"name": method}, allocation=allocation)
    result = prune(path, spec, tmp_path, datasets=datasets)
    layers = _layers(result.report)
    total = sum(layer["parameters"] for layer in layers.values())
    zeros = zeros_of(result.artifacts["model"], list(layers))
    assert sum(zeros.values()) == round(0.7 * total)
    assert len({round(layer["sparsity"], 3) for layer in layers.values()}) > 1
    chosen = {entry["name"]: entry for entry in result.report["allocation"]["layers"]}
    for name, layer in layers.items():  # each layer got exactly what the allocation chose
        assert zeros[name] == round(chosen[name]["sparsity"] * layer["parameters"])
        assert layer["target"] == pytest.approx(chosen[name]["sparsity"])
    assert result.report["allocation"]["score"]
    typed = Report.model_validate(result.report).allocation  # the schema clients are made from
    assert typed is not None and [e.name for e in typed.layers] == list(chosen)
    key = "outlier_ratio" if allocation == "owl" else "output_error"
    assert all(getattr(e, key) is not None for e in typed.layers)


def test_owl_prunes_layers_with_more_outliers_less(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    report = prune(path, quality_spec(allocation="owl"), tmp_path, datasets=datasets).report
    layers = sorted(report["allocation"]["layers"], key=lambda e: e["outlier_ratio"])
    sparsities = [entry["sparsity"] for entry in layers]
    # Whole numbers of zeros move a layer of 144 weights by up to 1/144 off its share.
    assert all(a >= b - 0.01 for a, b in itertools.pairwise(sparsities))
    assert sparsities[0] > sparsities[-1]
    assert max(sparsities) - min(sparsities) <= 2 * 0.08 + 1e-3


def test_uniform_allocation_is_todays_behaviour(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    names = ["0.weight", "3.weight", "7.weight", "9.weight"]
    plain = prune(path, quality_spec(), tmp_path / "plain", datasets=datasets)
    uniform = prune(path, quality_spec(allocation="uniform"), tmp_path / "u", datasets=datasets)
    assert "allocation" not in uniform.report
    a = zeros_of(plain.artifacts["model"], names)
    assert a == zeros_of(uniform.artifacts["model"], names)


def test_allocation_needs_calibration_data(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    spec = quality_spec(method={"name": "magnitude"}, allocation="owl", calibration=None)
    with pytest.raises(InvalidSpec, match="calibration"):
        prune(path, spec, tmp_path, datasets=datasets)


def test_allocation_is_refused_for_n_m(model: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    path, datasets = model
    spec = quality_spec(sparsity=0.5, allocation="owl", granularity={"kind": "n:m", "n": 2, "m": 4})
    with pytest.raises(InvalidSpec, match="allocation"):
        prune(path, spec, tmp_path, datasets=datasets)


def test_exact_counts_meet_the_budget_whatever_the_rounding() -> None:
    sizes = [7, 13, 1000, 3]
    counts = exact_counts(sizes, [0.33, 0.71, 0.5, 0.9], 520)
    assert sum(counts) == 520
    assert all(0 <= c <= n for c, n in zip(counts, sizes, strict=True))


def test_owl_sparsities_have_the_target_as_their_weighted_mean() -> None:
    ratios = {"a": 0.01, "b": 0.05, "c": 0.002}
    sizes = {"a": 1000, "b": 1200, "c": 900}
    chosen = owl_sparsities(ratios, sizes, 0.7, 0.08)
    mean = sum(chosen[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert mean == pytest.approx(0.7, abs=1e-9)
    assert chosen["b"] < chosen["a"] < chosen["c"]


def test_shift_to_mean_stays_inside_the_band() -> None:
    chosen = shift_to_mean([0.0, 0.5, 1.0], [1, 1, 100], 0.6, 0.5, 0.7)
    assert all(0.5 <= s <= 0.7 for s in chosen)
    assert np.average(chosen, weights=[1, 1, 100]) == pytest.approx(0.6)


def test_cheapest_allocation_prunes_the_cheap_layer_harder_and_meets_the_budget() -> None:
    grid = [0.5, 0.6, 0.7, 0.8, 0.9]
    cheap = [0.0, 0.01, 0.02, 0.03, 0.04]
    dear = [0.0, 0.5, 1.0, 2.0, 4.0]
    chosen = cheapest([grid, grid], [cheap, dear], [100, 100], 0.7 * 200)
    assert chosen[0] > chosen[1]
    assert 100 * chosen[0] + 100 * chosen[1] == pytest.approx(140)
