"""The kept weights of each row by least squares against the dense output:
``w_K = argmin ||X w0 - X_K w_K||^2``, i.e. ``G_KK w_K = G_K: w0`` with ``G = X^T X`` (the
update OBS/SparseGPT approximate column by column, here solved exactly per row for the
fixed mask, as in the mask-then-reconstruct step of Frantar & Alistarh 2022's OBC and
Kwon et al. 2022). A small ridge toward the dense values, ``percdamp`` of G's mean
diagonal as SparseGPT dampens H, keeps the solve defined for inputs that are always zero."""

from __future__ import annotations

import torch

PERCDAMP = 0.01
ROWS_PER_SOLVE = 256  # a batch of [rows, k, k] systems: bounds the gathered memory


def least_squares(
    dense: torch.Tensor, weights: torch.Tensor, g: torch.Tensor, percdamp: float = PERCDAMP
) -> torch.Tensor:
    """``weights`` with the same zeros and the kept entries solved, row by row."""
    damp = percdamp * float(torch.diagonal(g).mean()) if g.numel() else 0.0
    gw0 = dense @ g  # (G w0) per row
    kept = weights != 0
    out = torch.zeros_like(weights)
    counts = kept.sum(1)
    for k in torch.unique(counts).tolist():
        if k == 0:
            continue
        rows = torch.nonzero(counts == k).flatten()
        for start in range(0, rows.numel(), ROWS_PER_SOLVE):
            part = rows[start : start + ROWS_PER_SOLVE]
            idx = torch.nonzero(kept[part])[:, 1].view(part.numel(), k)
            a = g[idx[:, :, None], idx[:, None, :]].double()
            a.diagonal(dim1=1, dim2=2).add_(damp)
            b = torch.gather(gw0[part], 1, idx) + damp * torch.gather(dense[part], 1, idx)
            # Cholesky, as the damped G_KK is positive definite: the batched LU solve of
            # torch's MKL build failed in DLASWP on some batches (garbage, then inf).
            factor, info = torch.linalg.cholesky_ex(a)
            if bool(info.any()):  # lost definiteness to rounding: dampen ten times harder
                a.diagonal(dim1=1, dim2=2).add_(9 * damp + 1e-12)
                factor = torch.linalg.cholesky(a)
            solved = torch.cholesky_solve(b.double()[:, :, None], factor)[:, :, 0]
            out[part[:, None], idx] = solved.to(out.dtype)
    return out
