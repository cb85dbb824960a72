"""The spec has one definition, the contract (api_schemas.spec): the engine validates through it,
reads every default from it, and restates none, so adding a field with a default touches the
contract alone."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

import pytest

from api_schemas import spec as contract
from pruning.quality_spec import AllocationSpec, RefineSpec, SearchSpec
from pruning.spec import LatencySpec, LayerSelection, MethodSpec, PruneSpec, parse_spec, view_of
from pruning.spec_units import UnitSpec
from pruning.training.cli_options import add_training_options
from pruning.training.spec import ScheduleSpec
from shears_client.cli import submit_parser

ROOT = Path(__file__).resolve().parents[2]
# The engine's views of the spec; each builds from the contract and may default only to it.
VIEW_MODULES = (
    "pruning/spec.py",
    "pruning/spec_units.py",
    "pruning/quality_spec.py",
    "pruning/training/spec.py",
)


def _literal_defaults(path: Path) -> list[str]:
    """Class-level `name: type = <literal>` in a module: a default written down a second time."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not isinstance(item, ast.AnnAssign):
                continue
            value = item.value
            if value is None or (isinstance(value, ast.Constant) and value.value is None):
                continue
            literal = isinstance(value, ast.Constant) or (
                isinstance(value, ast.Tuple | ast.List) and value.elts
            )
            if literal:
                found.append(f"{path.name}:{item.lineno} {node.name}.{ast.unparse(item.target)}")
    return found


@pytest.mark.parametrize("module", VIEW_MODULES)
def test_engine_views_restate_no_default(module: str) -> None:
    assert _literal_defaults(ROOT / module) == []


def test_only_the_view_modules_import_the_contract() -> None:
    """The engine reaches pydantic only through pruning/spec_values.py and the contract only
    through the view modules: the rest of pruning/ works with the views."""
    allowed = {*VIEW_MODULES, "pruning/spec_values.py"}
    offenders = []
    for path in (ROOT / "pruning").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
            elif isinstance(node, ast.Import):
                top = node.names[0].name.split(".")[0]
            else:
                continue
            if top == "pydantic" and rel != "pruning/spec_values.py":
                offenders.append(rel)
            if top == "api_schemas" and rel not in allowed:
                offenders.append(rel)
    assert offenders == []


def test_a_spec_of_defaults_is_the_contracts_defaults() -> None:
    """The views made by hand (tests, benchmarks) default to what the contract fills in."""
    assert parse_spec({"sparsity": 0.5}) == PruneSpec(MethodSpec("magnitude"), 0.5)
    assert view_of(contract.PruneSpec(sparsity=0.5)) == PruneSpec(MethodSpec("magnitude"), 0.5)


def _as_view(value: Any) -> Any:
    """The views hold the contract's lists and maps as tuples."""
    if isinstance(value, dict):
        return tuple(value.items())
    return tuple(value) if isinstance(value, list) else value


def _dump(model: Any) -> dict[str, Any]:
    return {k: _as_view(v) for k, v in model.model_dump().items()}


@pytest.mark.parametrize(
    ("view", "model"),
    [
        (LatencySpec(), contract.LatencySpec()),
        (LayerSelection(), contract.LayerSelection()),
        (ScheduleSpec(kind="iterative"), contract.IterativeSchedule()),
        (ScheduleSpec(kind="gradual"), contract.GradualSchedule()),
        (AllocationSpec(kind="owl"), contract.OwlAllocation(kind="owl")),
        (AllocationSpec(kind="sensitivity"), contract.SensitivityAllocation(kind="sensitivity")),
        (RefineSpec(kind="dsnot"), contract.DsnotRefine(kind="dsnot")),
        (SearchSpec(kind="auto"), contract.AutoSearch()),
        (UnitSpec(), contract.ChannelGranularity()),
    ],
)
def test_every_view_default_is_the_contracts(view: Any, model: Any) -> None:
    fields = _dump(model)
    shared = {k: v for k, v in vars(view).items() if k in fields}
    assert shared and shared == {k: fields[k] for k in shared}


def test_retrain_and_evaluation_are_the_contracts_objects() -> None:
    """A field added to `retrain` or `evaluation` (with its default) reaches the engine with
    no engine change: the engine reads the validated contract object itself."""
    spec = parse_spec(
        {
            "sparsity": 0.5,
            "retrain": {"dataset_id": "ds_t"},
            "evaluation": {"dataset_id": "ds_e"},
            "calibration": {"dataset_id": "ds_c"},
        }
    )
    assert isinstance(spec.retrain, contract.RetrainSpec)
    assert isinstance(spec.evaluation, contract.EvaluationSpec)
    assert isinstance(spec.calibration, contract.CalibrationSpec)


def test_the_engine_accepts_the_contract_object_the_service_validated() -> None:
    validated = contract.PruneSpec.model_validate(
        {"sparsity": 0.6, "method": {"name": "random", "seed": 4}, "scope": "layerwise"}
    )
    spec = parse_spec(validated)
    assert (spec.sparsity, spec.scope) == (0.6, "layerwise")
    assert spec.method == MethodSpec("random", (("seed", 4),))


def test_the_shared_retraining_flags_default_to_the_contract_or_leave_it_to_the_service() -> None:
    """`shears_flags` (standard library only) writes no default of its own: `shears prune`
    fills in the contract's, `shears submit` sends nothing and the service applies them."""
    engine = argparse.ArgumentParser()
    add_training_options(engine)
    local = engine.parse_args([])
    retrain = contract.RetrainSpec
    assert (local.lr, local.validation_split) == (
        retrain.model_fields["lr"].default,
        retrain.model_fields["validation_split"].default,
    )
    submitted = submit_parser().parse_args(["model.onnx"])
    assert (submitted.lr, submitted.validation_split) == (None, None)
