"""Mask refinement without retraining (issue 15): DSnoT-style swaps and the least-squares
update of the kept weights lower each layer's reconstruction error on the calibration data,
measured here from the saved artifacts, and keep every layer's number of zeros."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from api_schemas.report import Report
from pruning import prune
from pruning.errors import InvalidSpec
from pruning.refine.errors import row_errors
from pruning.refine.least_squares import least_squares
from pruning.refine.swaps import dsnot_swaps
from tests.engine.quality_factories import (
    FORMATS,
    exported,
    first_layer_error,
    mlp,
    quality_spec,
    zeros_of,
)
from tests.engine.training_factories import weights_of

NAMES = ["1.weight", "3.weight"]


@pytest.fixture(scope="module", params=FORMATS)
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return exported(tmp_path_factory, mlp(), request.param)


@pytest.mark.parametrize(
    ("method", "refine"),
    [
        ("wanda", {"kind": "dsnot"}),
        ("wanda", {"kind": "dsnot", "update": "least_squares"}),
        ("magnitude", {"kind": "least_squares"}),
        ("wanda", {"kind": "least_squares"}),
    ],
    ids=["wanda-dsnot", "wanda-dsnot-ls", "magnitude-ls", "wanda-ls"],
)
def test_refinement_lowers_the_first_layers_error_and_keeps_its_zeros(
    model: tuple[Path, dict[str, Path]], tmp_path: Path, method: str, refine: dict[str, Any]
) -> None:
    path, datasets = model
    spec = quality_spec(method={"name": method})
    plain = prune(path, spec, tmp_path / "plain", datasets=datasets)
    refined = prune(path, {**spec, "refine": refine}, tmp_path / "refined", datasets=datasets)
    before = first_layer_error(path, plain.artifacts["model"], "1.weight")
    after = first_layer_error(path, refined.artifacts["model"], "1.weight")
    assert after < before
    assert zeros_of(refined.artifacts["model"], NAMES) == zeros_of(plain.artifacts["model"], NAMES)
    for layer in refined.report["refine"]["layers"]:
        assert layer["error_after"] <= layer["error_before"]
    typed = Report.model_validate(refined.report).refine  # the schema clients are made from
    assert typed is not None and typed.kind == refine["kind"] and typed.layers


def test_least_squares_keeps_the_mask(model: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    path, datasets = model
    spec = quality_spec(method={"name": "magnitude"})
    plain = prune(path, spec, tmp_path / "plain", datasets=datasets)
    solved = prune(
        path, {**spec, "refine": {"kind": "least_squares"}}, tmp_path / "ls", datasets=datasets
    )
    a = weights_of(plain.artifacts["model"], NAMES)
    b = weights_of(solved.artifacts["model"], NAMES)
    for name in NAMES:
        assert ((a[name] == 0) == (b[name] == 0)).all()


def test_dsnot_swaps_never_raise_a_rows_error_and_keep_n_m_groups() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=generator)
    g = x.T @ x
    dense = torch.randn(8, 16, generator=generator)
    pruned = dense.clone()
    pruned[:, 0::2] = 0  # 2:4 in every group of 4, not the best choice
    swapped, swaps = dsnot_swaps(dense, pruned, g, 20, (2, 4))
    assert swaps > 0
    assert (row_errors(dense, swapped, g) <= row_errors(dense, pruned, g) + 1e-4).all()
    groups = (swapped == 0).view(8, 4, 4).sum(2)
    assert (groups == 2).all()


def test_least_squares_is_the_best_weights_for_the_mask() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(300, 12, generator=generator)
    g = x.T @ x
    dense = torch.randn(5, 12, generator=generator)
    pruned = dense * (torch.rand(5, 12, generator=generator) > 0.5)
    solved = least_squares(dense, pruned, g, percdamp=0.0)
    for row in range(5):
        kept = pruned[row] != 0
        expected = torch.linalg.lstsq(x[:, kept], x @ dense[row]).solution
        assert torch.allclose(solved[row, kept], expected, atol=1e-3)


def test_refine_needs_calibration_data(model: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    path, datasets = model
    spec = quality_spec(method={"name": "magnitude"}, calibration=None, refine={"kind": "dsnot"})
    with pytest.raises(InvalidSpec, match="calibration"):
        prune(path, spec, tmp_path, datasets=datasets)


def test_refine_takes_no_update_with_least_squares_alone(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    spec = quality_spec(refine={"kind": "least_squares", "update": "least_squares"})
    with pytest.raises(InvalidSpec, match="update"):
        prune(path, spec, tmp_path, datasets=datasets)


def test_dsnot_keeps_two_of_four_in_every_group(
    model: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    path, datasets = model
    nm = {"kind": "n:m", "n": 2, "m": 4}
    spec = quality_spec(sparsity=0.5, granularity=nm, refine={"kind": "dsnot"})
    result = prune(path, spec, tmp_path, datasets=datasets)
    assert sum(layer.get("swaps", 0) for layer in result.report["refine"]["layers"]) > 0
    for name, w in weights_of(result.artifacts["model"], NAMES).items():
        groups = (w.reshape(w.shape[0], -1, 4) == 0).sum(axis=-1)
        assert (groups == 2).all(), name
