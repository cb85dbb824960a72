"""Prune-and-grow swaps (DSnoT, Zhang et al. 2024, "Dynamic Sparse No Training: Training-Free
Fine-tuning for Sparse LLMs", Algorithm 1): per output row, regrow the pruned weight that
lowers the reconstruction error most and prune, in its place, the kept weight whose removal
then costs least, while the swap lowers the error, for at most ``max_cycles`` swaps. DSnoT
ranks candidates by the error on the mean input and a variance term; here both choices use
the exact change of the row's squared error ``d^T G d`` (``d = w0 - w``, ``G = X^T X``), so
every accepted swap lowers it and the layer's error never rises. Zeros per row are kept, and
with n:m the pruned weight comes from the regrown one's group of m."""

from __future__ import annotations

import torch

INF = float("inf")


def dsnot_swaps(
    dense: torch.Tensor,
    weights: torch.Tensor,
    g: torch.Tensor,
    max_cycles: int,
    nm: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, int]:
    """The swapped ``[rows, cols]`` weights and the number of swaps made."""
    w = weights.clone()
    pruned = w == 0
    diag = torch.diagonal(g)
    gd = (dense - w) @ g  # G d per row (G is symmetric)
    active = torch.ones(w.shape[0], dtype=torch.bool)
    rows = torch.arange(w.shape[0])
    groups = torch.arange(w.shape[1]) // nm[1] if nm else None
    swaps = 0
    for _ in range(max_cycles):
        # Regrowing q sets d_q from w0_q to 0: delta = -w0_q; the change is 2 delta (Gd)_q +
        # delta^2 G_qq. Only pruned weights with a dense value can be regrown.
        delta_q = -dense
        grow = 2 * delta_q * gd + delta_q.square() * diag
        grow = torch.where(pruned & (dense != 0), grow, INF)
        q = grow.argmin(1)
        gain_q = grow[rows, q]
        dq = delta_q[rows, q]
        # Pruning p then sets d_p += w_p: 2 w_p (Gd + dq G_q)_p + w_p^2 G_pp.
        gd_after = gd + dq[:, None] * g[q]
        drop = 2 * w * gd_after + w.square() * diag
        allowed = ~pruned
        if groups is not None:
            allowed &= groups[None, :] == groups[q][:, None]
        drop = torch.where(allowed, drop, INF)
        p = drop.argmin(1)
        total = gain_q + drop[rows, p]
        take = active & torch.isfinite(total) & (total < -1e-12 * (1 + gd.abs().sum(1)))
        if not bool(take.any()):
            break
        r, qt, pt = rows[take], q[take], p[take]
        wp = w[r, pt]
        w[r, qt] = dense[r, qt]
        w[r, pt] = 0.0
        pruned[r, qt] = False
        pruned[r, pt] = True
        gd[r] = gd_after[r] + wp[:, None] * g[pt]
        active &= take  # a row with no improving swap has settled
        swaps += int(take.sum())
    return w, swaps
