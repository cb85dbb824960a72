"""Sparsity schedules as numbers: Zhu & Gupta's gradual cubic and Han et al.'s iterative
rounds end at exactly the target and never step back."""

from __future__ import annotations

import itertools

import pytest

from pruning.training.schedules import (
    gradual_steps,
    gradual_target,
    iterative_target,
    plan_schedule,
    split_epochs,
)
from pruning.training.spec import ScheduleSpec


@pytest.mark.parametrize("final", [0.5, 0.9, 0.97])
def test_gradual_schedule_ends_at_exactly_the_target(final: float) -> None:
    assert gradual_target(10, 10, final, 0.0, 3.0) == final


def test_gradual_schedule_only_grows() -> None:
    targets = [gradual_target(k, 20, 0.9, 0.1, 3.0) for k in range(21)]
    assert targets[0] == pytest.approx(0.1)
    assert all(a < b for a, b in itertools.pairwise(targets))


def test_gradual_schedule_is_cubic_pruning_fast_early_and_slowly_late() -> None:
    targets = [gradual_target(k, 4, 0.8, 0.0, 3.0) for k in range(5)]
    assert targets == pytest.approx(
        [0.0, 0.8 * (1 - 0.75**3), 0.8 * (1 - 0.5**3), 0.8 * (1 - 0.25**3), 0.8]
    )
    jumps = [b - a for a, b in itertools.pairwise(targets)]
    assert jumps == sorted(jumps, reverse=True)


def test_gradual_events_are_evenly_spaced_within_the_pruning_fraction() -> None:
    assert gradual_steps(4, 0.75, 100) == [0, 18, 36, 54, 72]
    assert gradual_steps(10, 0.5, 4) == list(range(11))  # at least one step apart


def test_iterative_rounds_prune_the_same_fraction_of_survivors_each_round() -> None:
    targets = [iterative_target(r, 3, 0.875) for r in (1, 2, 3)]
    assert targets == pytest.approx([0.5, 0.75, 0.875])
    assert targets[-1] == 0.875


def test_iterative_epochs_are_split_as_evenly_as_possible() -> None:
    assert split_epochs(10, 3) == [3, 3, 4]
    assert split_epochs(3, 3) == [1, 1, 1]
    assert sum(split_epochs(17, 5)) == 17


def test_iterative_events_start_each_round() -> None:
    schedule = plan_schedule(ScheduleSpec("iterative", rounds=3), epochs=7, batches_per_epoch=5)
    assert schedule.steps == (0, 10, 20)
    assert schedule.target(2, 0.9) == 0.9


def test_one_shot_prunes_once_before_fine_tuning() -> None:
    schedule = plan_schedule(ScheduleSpec(), epochs=4, batches_per_epoch=5)
    assert schedule.steps == (0,)
    assert schedule.target(0, 0.6) == 0.6


def test_layer_overrides_follow_the_schedule_to_their_own_target() -> None:
    schedule = plan_schedule(ScheduleSpec("gradual", steps=4, initial_sparsity=0.5), 2, 10)
    assert schedule.target(4, 0.3) == 0.3
    assert schedule.target(0, 0.3) == 0.3  # an initial sparsity above the layer's is capped
