"""OWL (Yin et al. 2024, "Outlier Weighed Layerwise Sparsity: A Missing Secret Sauce for
Pruning LLMs to High Sparsity", sec. 3): a layer's outlier ratio is the share of its Wanda
scores ``|w_ij| * ||x_j||_2`` above ``M`` times the layer's mean score (eq. 2, "layerwise
outlier distribution"); ratios are scaled to [0, 2*lambda] and layers with more outliers are
pruned less, ``S_l = 1 - (D_l - mean D + 1 - S)``. The paper ranks transformer blocks; here
each weight tensor is its own layer, and the mean is weighted by layer size so that the
share of zeros over all of them stays the target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pruning.allocation.budget import shift_to_mean
from pruning.tensors import FloatArray


def outlier_ratio(matrix: FloatArray, sq_norms: FloatArray, m: float) -> float:
    """Share of ``|W| * ||x||`` above ``m`` times its mean (``matrix`` is ``[out, columns]``)."""
    scores = np.abs(matrix.astype(np.float64)) * np.sqrt(sq_norms)[None, :]
    mean = float(scores.mean()) if scores.size else 0.0
    return float(np.mean(scores > m * mean)) if mean > 0 else 0.0


def owl_sparsities(
    ratios: Mapping[str, float], sizes: Mapping[str, int], target: float, lam: float
) -> dict[str, float]:
    """Per layer a sparsity in [target - lam, target + lam] (within [0, 0.99]) whose
    size-weighted mean is ``target``; more outliers, fewer zeros."""
    names: Sequence[str] = list(ratios)
    r = np.array([ratios[n] for n in names], np.float64)
    spread = float(r.max() - r.min()) if r.size else 0.0
    scaled = (r - r.min()) / spread * 2 * lam if spread > 0 else np.full(r.size, lam)
    raw = [target + lam - float(d) for d in scaled]
    low, high = max(0.0, target - lam), min(0.99, target + lam)
    chosen = shift_to_mean(raw, [sizes[n] for n in names], target, low, high)
    return dict(zip(names, chosen, strict=True))
