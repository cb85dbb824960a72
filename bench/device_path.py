"""The CUDA path (`SHEARS_DEVICE`) against the CPU path, on one machine, in one run.

    python bench/device_path.py                     # needs torch with a CUDA GPU
    python bench/device_path.py --sizes 1024 4096 --shapes sentence
    python bench/device_path.py --markdown out.md   # also write the tables to a file

Two tables, each CPU (all of the machine's cores) beside CUDA:
- One n x n layer, SparseGPT 50% unstructured (blocksize 128, 1% dampening) on
  ``bench/sparsegpt_layer.py``'s correlated calibration data (128 samples x 32 tokens):
  the statistics ``X^T X`` (``pruning.calibration.stats.gram``) and the solve
  (``pruning.methods.sparsegpt.sparsegpt_layer``), each timed after one warm-up run, with
  the GPU synchronised; the share of keep/prune decisions on which the two devices agree
  and each one's relative reconstruction error ``tr(D H D^T) / tr(W H W^T)``.
- Whole jobs through ``pruning.prune`` (the engine the worker runs) on the transformer
  encoders of ``bench/job_time.py`` (random weights; the shapes set the cost), Wanda and
  SparseGPT at 50% layerwise on 128 calibration samples of 128 tokens, ``device`` cpu then
  cuda: the engine's own stage timings, the share of weights whose zero/non-zero state is
  the same in both artifacts, and each report's output cosine on the calibration data.
  ONNX Runtime (capture, latency, fidelity) runs on the CPU in both: only the statistics
  and the solves move to the GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from job_time import build_encoder  # noqa: E402  (bench/ is on sys.path)
from sparsegpt_layer import SAMPLES as LAYER_SAMPLES  # noqa: E402
from sparsegpt_layer import TOKENS as LAYER_TOKENS  # noqa: E402
from sparsegpt_layer import calibration, relative_error  # noqa: E402

from pruning import prune  # noqa: E402
from pruning.calibration.stats import gram  # noqa: E402
from pruning.methods.sparsegpt import sparsegpt_layer  # noqa: E402

GPU = "cuda"  # the compared device; a dry run on a machine without one may set it to "cpu"
CPU = torch.device("cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(run: Callable[[], Any], warm: bool = True) -> tuple[Any, float]:
    """The result and the seconds of ``run()``, after one untimed warm-up when ``warm``
    (CUDA's first call loads kernels and cuBLAS/cuSOLVER handles)."""
    if warm:
        run()
    _sync()
    start = time.perf_counter()
    result = run()
    _sync()
    return result, time.perf_counter() - start


def _hessian(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return gram([x], device) * (2.0 / x.shape[0])


def layer_row(size: int) -> str:
    generator = torch.Generator().manual_seed(size)
    weights = torch.randn(size, size, generator=generator) / size**0.5
    x = calibration(size, generator).reshape(LAYER_SAMPLES * LAYER_TOKENS, size)
    hessians: dict[str, torch.Tensor] = {}
    pruned: dict[str, torch.Tensor] = {}
    seconds: dict[str, tuple[float, float]] = {}
    for name, device in (("cpu", CPU), ("cuda", torch.device(GPU))):
        h, stats_s = timed(partial(_hessian, x, device))
        hessians[name] = h
        w, solve_s = timed(partial(sparsegpt_layer, weights, h, 0.5, 128, 0.01))
        pruned[name] = w.cpu()
        seconds[name] = (stats_s, solve_s)
    h_cpu = hessians["cpu"].cpu()
    agree = float(((pruned["cpu"] == 0) == (pruned["cuda"] == 0)).double().mean())
    errors = [relative_error(weights, pruned[name], h_cpu) for name in ("cpu", "cuda")]
    zeros = [int((pruned[name] == 0).sum()) for name in ("cpu", "cuda")]
    assert zeros == [size * size // 2] * 2, zeros  # the exact-count promise on both devices
    (c_stats, c_solve), (g_stats, g_solve) = seconds["cpu"], seconds["cuda"]
    line = (
        f"| {size} | {c_stats:.3f} | {g_stats:.4f} | {c_solve:.3f} | {g_solve:.4f} | "
        f"{(c_stats + c_solve) / (g_stats + g_solve):.1f}x | {agree:.4f} | "
        f"{errors[0]:.5f} / {errors[1]:.5f} |"
    )
    print(line, flush=True)
    return line


def _weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.dims}


def job_rows(shape: str, methods: list[str], work: Path) -> list[str]:
    model, data = build_encoder(work, shape)
    rows = []
    for method in methods:
        spec: dict[str, Any] = {
            "method": {"name": method},
            "sparsity": 0.5,
            "scope": "layerwise",
            "calibration": {"dataset_id": "calibration", "samples": 128},
        }
        outcome: dict[str, tuple[float, dict[str, Any], Path]] = {}
        for label, device in (("cpu", "cpu"), ("cuda", GPU)):
            out = Path(tempfile.mkdtemp(dir=work))
            start = time.perf_counter()
            result = prune(model, spec, out, datasets={"calibration": data}, device=device)
            total = time.perf_counter() - start
            outcome[label] = (total, result.report, result.artifacts["model"])
        cpu_w, cuda_w = (_weights(outcome[d][2]) for d in ("cpu", "cuda"))
        pruned = [n for n in cpu_w if (cpu_w[n] == 0).mean() > 0.4]
        same = sum(int(((cpu_w[n] == 0) == (cuda_w[n] == 0)).sum()) for n in pruned)
        count = sum(cpu_w[n].size for n in pruned)
        cells = []
        for device in ("cpu", "cuda"):
            total, report, _ = outcome[device]
            timings = report.get("timings", {})
            fidelity = (report.get("calibration") or {}).get("fidelity") or report.get(
                "fidelity", {}
            )
            cells.append(
                f"{total:.1f} | {timings.get('prune_s', float('nan')):.1f} | "
                f"{fidelity.get('output_cosine', float('nan')):.4f}"
            )
            print(f"{shape} {method} {device}: {total:.1f} s, timings {timings}", flush=True)
        line = f"| {shape} | {method} | {cells[0]} | {cells[1]} | {same / count:.4f} |"
        print(line, flush=True)
        rows.append(line)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--shapes", nargs="+", default=["sentence", "base"])
    parser.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"])
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/device_path.py compares the CUDA path: torch sees no GPU here")
    where = (
        f"{torch.cuda.get_device_name(0)} beside {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads), torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} at the start"
    )
    lines = [
        f"`python bench/device_path.py` on {where}.",
        "",
        f"One n x n layer, SparseGPT 50%, {LAYER_SAMPLES} x {LAYER_TOKENS} tokens; seconds.",
        "",
        "| n | H cpu | H cuda | solve cpu | solve cuda | layer speedup | mask agreement "
        "| rel. error cpu / cuda |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    lines += [layer_row(size) for size in args.sizes]
    table = [
        "",
        "Whole jobs through `pruning.prune`, 50% layerwise, 128 samples x 128 tokens; seconds.",
        "",
        "| shape | method | cpu job | cpu prune | cpu cosine | cuda job | cuda prune "
        "| cuda cosine | same zero/non-zero |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(table), flush=True)
    lines += table
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            work = Path(tmp) / shape
            work.mkdir()
            lines += job_rows(shape, args.methods, work)
    if args.markdown is not None:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
