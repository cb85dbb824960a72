"""SparseGPT on one square layer: the engine's kernel against two named baselines, in one run.

    python bench/sparsegpt_layer.py                  # 1024, 2048, 4096; writes docs/benchmarks.md
    python bench/sparsegpt_layer.py --sizes 1024 --no-write

For each width n: weights ``randn(n, n) / sqrt(n)``; calibration 128 samples x 32 tokens of
inputs with correlated features (``z @ mix``, so that H has the spread spectrum of real
activations, not the flat one of white noise). Timed per layer:
- statistics: ``X^T X`` accumulated one sample at a time (the loop the old bench timed)
  against ``pruning.calibration.stats.gram`` (batched float32 products, chunked);
- the solve, 50% unstructured: `old kernel` (the engine's kernel before issue 14, copied
  below), `reference` (a plain rewrite of IST-DASLab/sparsegpt's ``fasterprune``), and `new`
  (``pruning.methods.sparsegpt.sparsegpt_layer``).
Against the old kernel: the share of weights whose keep/prune decision agrees, and the
relative reconstruction error ``tr(D H D^T) / tr(W H W^T)`` (D = W - W') of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)

from pruning.calibration.geometry import split_rows  # noqa: E402
from pruning.calibration.stats import gram  # noqa: E402
from pruning.methods.sparsegpt import sparsegpt_layer  # noqa: E402

SECTION = "## SparseGPT kernel"
SAMPLES, TOKENS = 128, 32
Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def old_kernel(weights: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """The engine's kernel before issue 14 (50% unstructured, blocksize 128, 1% dampening):
    float32 Cholesky, ``cholesky_inverse``, Cholesky again, and ``addr_`` per column."""
    wt = weights.T.float().contiguous()
    h = hessian.clone().float()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    wt[dead, :] = 0.0
    h.diagonal().add_(0.01 * torch.mean(torch.diag(h)))
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    cols, rows = wt.shape
    budget = int(split_rows(1, rows * cols, 0.5)[0])
    ends = np.rint(budget * np.minimum(np.arange(0, cols + 128, 128), cols) / cols)
    for number, i1 in enumerate(range(0, cols, 128)):
        i2 = min(i1 + 128, cols)
        block, hinv1 = wt[i1:i2], hinv[i1:i2, i1:i2]
        diagonal = torch.diag(hinv1)
        saliency = block.pow(2) / diagonal.pow(2)[:, None]
        saliency[dead[i1:i2]] = 0.0
        mask = torch.zeros(block.shape, dtype=torch.bool)
        k = int(ends[number + 1] - ends[number])
        mask.view(-1)[torch.topk(saliency.flatten(), k, largest=False).indices] = True
        errors = torch.empty_like(block)
        for i in range(block.shape[0]):
            q = block[i].masked_fill(mask[i], 0.0)
            torch.div(block[i] - q, hinv1[i, i], out=errors[i])
            block[i:].addr_(hinv1[i, i:], errors[i], alpha=-1.0)
            block[i] = q
        wt[i2:] -= hinv[i1:i2, i2:].T @ errors
    return wt.T


def reference_kernel(weights: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """A plain rewrite of IST-DASLab/sparsegpt ``SparseGPT.fasterprune`` (sparsity 0.5,
    blocksize 128, percdamp 0.01): W as [rows, cols], a threshold per block from a full sort
    (so ties may prune a few more than half), float32 throughout."""
    w = weights.clone().float()
    h = hessian.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    columns = w.shape[1]
    h.diagonal().add_(0.01 * torch.mean(torch.diag(h)))
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i1 in range(0, columns, 128):
        i2 = min(i1 + 128, columns)
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        tmp = w1**2 / (torch.diag(hinv1).reshape((1, -1))) ** 2
        thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * 0.5)]
        mask1 = tmp <= thresh
        for i in range(i2 - i1):
            col = w1[:, i]
            d = hinv1[i, i]
            q = col.clone()
            q[mask1[:, i]] = 0
            q1[:, i] = q
            err = (col - q) / d
            w1[:, i:] -= err.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = err
        w[:, i1:i2] = q1
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    return w


def new_kernel(weights: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    return sparsegpt_layer(weights, hessian, 0.5, blocksize=128, percdamp=0.01)


def calibration(size: int, generator: torch.Generator) -> torch.Tensor:
    """``[samples, tokens, size]`` inputs whose features are correlated."""
    mix = torch.randn(size, size, generator=generator) / size**0.5
    mix += torch.eye(size)
    x: torch.Tensor = torch.randn(SAMPLES, TOKENS, size, generator=generator) @ mix
    return x


def per_sample_gram(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(x.shape[-1], x.shape[-1])
    for sample in x:  # what the old bench timed: one small product per sample
        total += sample.T @ sample
    return total


def timed(run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def relative_error(weights: torch.Tensor, pruned: torch.Tensor, hessian: torch.Tensor) -> float:
    delta = (weights - pruned).double()
    h = hessian.double()
    return float(((delta @ h) * delta).sum() / ((weights.double() @ h) * weights.double()).sum())


def measure(size: int) -> str:
    generator = torch.Generator().manual_seed(size)
    weights = torch.randn(size, size, generator=generator) / size**0.5
    x = calibration(size, generator)
    _, looped_s = timed(lambda: per_sample_gram(x))
    tokens = SAMPLES * TOKENS
    hessian, batched_s = timed(lambda: gram([x.reshape(tokens, size)], torch.device("cpu")))
    hessian *= 2.0 / tokens
    kernels: dict[str, Kernel] = {
        "old": old_kernel,
        "reference": reference_kernel,
        "new": new_kernel,
    }
    results = {name: timed(partial(kernel, weights, hessian)) for name, kernel in kernels.items()}
    old_mask = results["old"][0] == 0
    agree = float((results["new"][0] == 0).eq(old_mask).double().mean())
    errors = {
        name: relative_error(weights, pruned, hessian) for name, (pruned, _) in results.items()
    }
    assert int((results["new"][0] == 0).sum()) == size * size // 2  # the exact-count promise
    solve = " | ".join(f"{results[name][1]:.2f}" for name in kernels)
    error = " / ".join(f"{errors[name]:.5f}" for name in kernels)
    line = (
        f"| {size} | {looped_s:.2f} | {batched_s:.2f} | {solve} | "
        f"{looped_s + results['old'][1]:.2f} | {batched_s + results['new'][1]:.2f} | "
        f"{agree:.4f} | {error} | {errors['new'] - errors['old']:+.1e} |"
    )
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    header = [
        SECTION,
        "",
        f"`python bench/sparsegpt_layer.py` on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, load average "
        f"{os.getloadavg()[0]:.1f} at the start (seconds are upper "
        f"bounds). One n x n layer, {SAMPLES} samples x {TOKENS} tokens, 50% unstructured, "
        "blocksize 128, 1% dampening. Seconds; H = statistics, solve = Cholesky + blocked OBS.",
        "",
        "| n | H per sample (old) | H batched (new) | solve old | solve reference | solve new "
        "| layer old | layer new | mask agreement new/old | rel. error old / reference / new "
        "| error new - old |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows = [measure(size) for size in args.sizes]
    if not args.no_write:
        replace_section(SECTION, "\n".join([*header, *rows, "", *NOTES]) + "\n")


NOTES = [
    "Where the old kernel's time went (cProfile, n = 4096, 19.1 s): `torch.cholesky_inverse` "
    "14.3 s, two Cholesky factorizations 1.5 s, `topk` per block 0.9 s, the lazy batch "
    "update 1.0 s, the per-column rank-1 updates 0.6 s. The new kernel computes the upper "
    "Cholesky factor of H^-1 as J L^-1 J from one float64 Cholesky of the flipped H "
    "(J H J = L L^T) and a float32 triangular inverse by halves in matrix products; blocks "
    "choose exactly k weights by `kthvalue` instead of `topk`; the rank-1 update is a k=1 "
    "`addmm_` (torch's `addr_` takes a slow path for a contiguous row of H^-1: 40x slower, "
    "measured). After (n = 4096, 2.1 s): per-column updates 0.6 s, float64 Cholesky 0.4 s, "
    "triangular inverse 0.3 s, lazy batch update and selection the rest.",
    "",
    "- Statistics: `X^T X` of all 4096 tokens as one float32 product (chunked at "
    "`stats.CHUNK_ROWS` rows) instead of 128 products of 32 rows.",
    "- Masks: at 1024 and 2048 they agree with the old kernel's to 4 decimals; at 4096 about "
    "0.1% of decisions differ: the float64 factorization moves the last bits of H^-1, a "
    "near-tie flips, and the OBS updates carry the difference into later blocks. The "
    "layer's relative output error (last columns, lower is better) is the same to 1e-6.",
    "- Quality, through the engine on `bench/quality.py`'s two models (a one-off run that "
    "swapped the old kernel back in, same process): every SparseGPT cell of its tables "
    "(50/70/90% layerwise and 2:4, both models) has the same accuracy and logit cosine "
    "to 4 decimals with either kernel; written-out masks agree on >= 99.99% of weights.",
    '- The CUDA path: see "CUDA path (SHEARS_DEVICE) against the CPU" below '
    "(`bench/device_path.py`, on a GPU machine).",
]


if __name__ == "__main__":
    main()
