"""Scores into zeros: exact counts, magnitude order, deterministic ties, both scopes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pruning.masks import KSmallest, dense_mask, prune_in_place
from pruning.masks.kth import _kth
from pruning.methods import MagnitudeScorer, RandomScorer
from pruning.tensors import WeightTensor


def layers(*shapes: tuple[int, ...], seed: int = 0, dtype: type = np.float32) -> list[WeightTensor]:
    """Tensors whose scale grows with their index, like layers with different fan-in."""
    rng = np.random.default_rng(seed)
    return [
        WeightTensor(f"layer{i}.weight", "MatMul", (rng.standard_normal(s) * (i + 1)).astype(dtype))
        for i, s in enumerate(shapes)
    ]


def zeros(tensors: list[WeightTensor]) -> list[int]:
    return [int(np.count_nonzero(t.values == 0)) for t in tensors]


SHAPES = [(300, 200), (64, 64), (500, 300), (3, 3)]


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_achieved_sparsity_is_exact_within_one_weight_per_layer(
    sparsity: float, dtype: type
) -> None:
    pooled = layers(*SHAPES, dtype=dtype)
    prune_in_place(pooled, MagnitudeScorer(), sparsity, "global")
    assert sum(zeros(pooled)) == round(sparsity * sum(t.numel for t in pooled))
    per_layer = layers(*SHAPES, dtype=dtype)
    prune_in_place(per_layer, MagnitudeScorer(), sparsity, "layerwise")
    for t, n in zip(per_layer, zeros(per_layer), strict=True):
        assert abs(n - sparsity * t.numel) <= 0.5 + 1e-9


def test_layerwise_scope_hits_target_in_every_layer() -> None:
    tensors = layers(*SHAPES)
    prune_in_place(tensors, MagnitudeScorer(), 0.7, "layerwise")
    assert zeros(tensors) == [round(0.7 * t.numel) for t in tensors]


def test_global_scope_prunes_small_layers_harder() -> None:
    tensors = layers((200, 200), (200, 200), (200, 200))  # scales 1x, 2x, 3x
    prune_in_place(tensors, MagnitudeScorer(), 0.6, "global")
    fractions = [n / t.numel for n, t in zip(zeros(tensors), tensors, strict=True)]
    assert fractions[0] > fractions[1] > fractions[2]


def test_global_magnitude_zeroes_exactly_the_smallest_weights() -> None:
    tensors = layers(*SHAPES)
    before = np.concatenate([np.abs(t.values).ravel() for t in tensors])
    prune_in_place(tensors, MagnitudeScorer(), 0.8, "global")
    after = np.concatenate([t.values.ravel() for t in tensors])
    assert before[after == 0].max() <= before[after != 0].min()
    kept = after != 0
    assert np.array_equal(np.abs(after[kept]), before[kept])  # survivors untouched


def test_ties_are_broken_by_position_and_counts_stay_exact() -> None:
    rng = np.random.default_rng(3)
    values = [np.round(rng.standard_normal((300, 300)) * 3).astype(np.float32) for _ in range(3)]
    tensors = [WeightTensor(f"q{i}", "MatMul", v.copy()) for i, v in enumerate(values)]
    prune_in_place(tensors, MagnitudeScorer(), 0.65, "global")
    assert sum(zeros(tensors)) == round(0.65 * 3 * 300 * 300)
    again = [WeightTensor(f"q{i}", "MatMul", v.copy()) for i, v in enumerate(values)]
    prune_in_place(again, MagnitudeScorer(), 0.65, "global")
    assert all(np.array_equal(a.values, b.values) for a, b in zip(tensors, again, strict=True))


def test_exact_even_when_the_sampled_band_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    import pruning.masks.kth as kth

    monkeypatch.setattr(kth, "SAMPLE", 64)  # a tiny sample and no margin: the band misses
    monkeypatch.setattr(kth, "SIGMAS", 0.0)
    tensors = layers(*SHAPES)
    selector = KSmallest(tensors, MagnitudeScorer())
    selector.cap = 500  # force the histogram narrowing as well
    k = round(0.9 * selector.total)
    cuts = selector.cuts(k)
    assert sum(c.pruned for c in cuts) == k
    masks = [dense_mask(t, MagnitudeScorer(), c) for t, c in zip(tensors, cuts, strict=True)]
    assert [int(m.sum()) for m in masks] == [c.pruned for c in cuts]


def test_overrides_keep_their_own_fraction_and_leave_the_global_pool() -> None:
    tensors = layers(*SHAPES)
    prune_in_place(tensors, MagnitudeScorer(), 0.5, "global", overrides={"layer2.weight": 0.2})
    counts = zeros(tensors)
    assert counts[2] == round(0.2 * tensors[2].numel)
    pooled = [t for i, t in enumerate(tensors) if i != 2]
    assert sum(c for i, c in enumerate(counts) if i != 2) == round(
        0.5 * sum(t.numel for t in pooled)
    )


def test_random_baseline_is_uniform_exact_and_seeded() -> None:
    first = layers((400, 300), (300, 300))
    prune_in_place(first, RandomScorer(seed=7), 0.6, "global")
    assert sum(zeros(first)) == round(0.6 * (400 * 300 + 300 * 300))
    # Uniform scores ignore magnitude: both layers end up near 60% despite their scales.
    assert all(abs(n / t.numel - 0.6) < 0.02 for n, t in zip(zeros(first), first, strict=True))
    same = layers((400, 300), (300, 300))
    prune_in_place(same, RandomScorer(seed=7), 0.6, "global")
    other = layers((400, 300), (300, 300))
    prune_in_place(other, RandomScorer(seed=8), 0.6, "global")
    assert np.array_equal(first[0].values, same[0].values)
    assert not np.array_equal(first[0].values, other[0].values)


def test_pruning_writes_positive_zeros() -> None:
    tensors = layers((100, 100))
    prune_in_place(tensors, RandomScorer(seed=1), 0.5, "layerwise")
    pruned = tensors[0].values[tensors[0].values == 0]
    assert not np.signbit(pruned).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kth_score_of_the_band_is_counted_exactly_across_signs_and_ties(dtype: type) -> None:
    rng = np.random.default_rng(7)
    parts: list[Any] = [rng.standard_normal(n).astype(dtype) for n in (1000, 1, 0, 5000)]
    parts[0][:300] = -0.0  # ties, and a zero of either sign
    parts[3][:200] = 0.0
    union = np.sort(np.concatenate(parts))
    for rank in (0, 1, 299, 450, 500, 3000, union.size - 1):
        assert _kth(parts, rank, np.dtype(dtype)) == union[rank]
