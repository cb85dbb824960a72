"""One job's stages take one frozen JobContext instead of the bundle of model, plan, spec,
inputs, datasets, progress and output folder threaded through every call."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from pruning import engine
from pruning.calibration.run import prune_calibrated
from pruning.context import JobContext
from pruning.progress import Progress
from pruning.spec import parse_spec
from pruning.training.learned.run import train_learned
from pruning.training.run import prune_with_training

BUNDLE = {"model", "plan", "spec", "inputs", "datasets", "step", "out_dir"}
STAGES: list[Callable[..., Any]] = [
    engine._prune_or_train,
    engine._prune_once,
    engine._prune_pass,
    engine._cut_channels_then_train,
    engine._mask_channels_train_then_cut,
    prune_calibrated,
    prune_with_training,
    train_learned,
]


@pytest.mark.parametrize("stage", STAGES, ids=lambda f: f.__name__)
def test_stages_take_the_context_not_the_bundle(stage: Callable[..., Any]) -> None:
    parameters = inspect.signature(stage).parameters
    first = next(iter(parameters.values()))
    assert first.annotation in ("JobContext", JobContext)
    assert BUNDLE.isdisjoint(parameters)


def _context() -> JobContext:
    none = cast(Any, None)
    spec = parse_spec({"sparsity": 0.5})
    return JobContext(none, none, spec, none, {}, Progress(None), Path("out"))


def test_a_stage_changes_the_context_by_making_a_new_one() -> None:
    ctx = _context()
    event = ctx.with_(spec=parse_spec({"sparsity": 0.25}))
    assert (ctx.spec.sparsity, event.spec.sparsity) == (0.5, 0.25)
    assert event.out_dir == ctx.out_dir
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.spec = event.spec  # type: ignore[misc]
