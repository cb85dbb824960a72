"""Global magnitude pruning at 90%: Shears' streaming top-k against torch's global_unstructured
and against one streaming abs() pass over the same bytes.

    python bench/global_magnitude.py                 # 25M and 100M parameters, writes the doc
    python bench/global_magnitude.py --sizes 25M --no-write

Each contender runs in a fresh subprocess on the same seeded weights (transformer-shaped
linear layers: per block Q, K, V, O of d x d and an MLP of 4d x d and d x 4d, 8 blocks).
Memory is the peak resident set above the resident set just before the first run (the
kernel's VmHWM, reset through /proc/self/clear_refs), so it counts torch's allocations too.
Time is the best of several runs with the weights restored in between; the first (cold)
run, which pays for first-touch page faults, is shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchdoc import replace_section

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Global magnitude pruning"
SPARSITY = 0.9
SIZES = {"25M": 512, "100M": 1024}  # d_model
CONTENDERS = ("shears", "torch_global_unstructured", "stream_torch_abs", "stream_numpy_abs")
LABELS = {
    "shears": "Shears GlobalTopK (exact, streaming)",
    "torch_global_unstructured": "torch.nn.utils.prune.global_unstructured (L1Unstructured)",
    "stream_torch_abs": "one streaming pass: torch `w.abs()` per layer",
    "stream_numpy_abs": "one streaming pass: numpy `np.abs(w)` per layer",
}


# -- child: one contender, one process ---------------------------------------------------
def _layers(d_model: int) -> list[Any]:
    import torch

    torch.manual_seed(0)
    shapes = [(d_model, d_model)] * 4 + [(4 * d_model, d_model), (d_model, 4 * d_model)]
    return [torch.randn(shape) * 0.02 for _ in range(8) for shape in shapes]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _zeros(mask: Any) -> int:
    return int((mask == 0).sum())


def _runner(name: str, layers: list[Any]) -> tuple[Callable[[], object], Callable[[], int]]:
    """(run once, count zeros afterwards) for a contender over ``layers``."""
    import numpy as np
    import torch

    if name == "shears":
        from pruning.masks import prune_in_place
        from pruning.methods import MagnitudeScorer
        from pruning.tensors import WeightTensor

        tensors = [WeightTensor(f"w{i}", "MatMul", w.numpy()) for i, w in enumerate(layers)]
        return (
            lambda: prune_in_place(tensors, MagnitudeScorer(), SPARSITY, "global"),
            lambda: sum(int((w == 0).sum()) for w in layers),
        )
    if name == "torch_global_unstructured":
        from torch.nn.utils import prune

        # Fresh modules each time: global_unstructured leaves the original tensors alone
        # (weight_orig) and adds a mask and a masked copy per module.
        modules = []
        for w in layers:
            linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta")
            linear.weight = torch.nn.Parameter(w, requires_grad=False)
            modules.append(linear)
        params = [(m, "weight") for m in modules]
        return (
            lambda: prune.global_unstructured(
                params, pruning_method=prune.L1Unstructured, amount=SPARSITY
            ),
            lambda: sum(_zeros(m.weight_mask) for m in modules),
        )
    if name == "stream_torch_abs":

        def torch_pass() -> None:
            for w in layers:  # each result is dropped before the next layer: layer by layer
                w.abs()

        return torch_pass, lambda: 0
    arrays = [w.numpy() for w in layers]

    def numpy_pass() -> None:
        for a in arrays:
            np.abs(a)

    return numpy_pass, lambda: 0


def child(name: str, d_model: int, repeats: int) -> dict[str, Any]:
    layers = _layers(d_model)
    backup = [w.clone() for w in layers] if name == "shears" else []  # it prunes in place
    run, zeros = _runner(name, layers)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    run()
    cold = time.perf_counter() - start
    peak = _status_kib("VmHWM") - base
    counted = zeros()
    times = [cold]
    for _ in range(repeats - 1):
        for w, b in zip(layers, backup, strict=False):
            w.copy_(b)
        run, zeros = _runner(name, layers)
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    params = sum(w.numel() for w in layers)
    return {
        "contender": name,
        "parameters": params,
        "model_bytes": 4 * params,
        "cold_s": cold,
        "best_s": min(times),
        "times_s": times,
        "peak_extra_bytes": peak * 1024,
        "zeros": counted,
        "expected_zeros": round(SPARSITY * params),
    }


# -- parent: run every contender, print and write the table ------------------------------
def measure(size: str, name: str, repeats: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, "--d-model", str(SIZES[size])]
    cmd += ["--repeats", str(repeats)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"contender": name, "size": size, "timeout_s": timeout}
    if done.returncode != 0:
        return {"contender": name, "size": size, "error": done.stderr.strip().splitlines()[-1]}
    return {"size": size, **json.loads(done.stdout.strip().splitlines()[-1])}


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| size | contender | best time | cold time | runs | peak extra memory | vs model size "
        "| Shears is faster by | zeros exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        out.append(_row(row, next(r for r in rows if r["size"] == row["size"])))
    return "\n".join(out)


def _row(row: dict[str, Any], shears: dict[str, Any]) -> str:
    label = LABELS[row["contender"]]
    if "best_s" not in row:
        why = f"timed out after {row['timeout_s']:.0f} s" if "timeout_s" in row else row["error"]
        return f"| {row['size']} | {label} | {why} | | | | | | |"
    ratio = row["best_s"] / shears["best_s"] if "best_s" in shears else float("nan")
    if row["contender"] == "shears":
        faster = "—"
    elif row["contender"].startswith("stream"):
        faster = f"{ratio:.2f}x (Shears takes {1 / ratio:.1f}x one pass)"
    else:
        faster = f"{ratio:.0f}x"
    exact = (
        "yes"
        if row["zeros"] == row["expected_zeros"]
        else ("n/a" if row["contender"].startswith("stream") else f"no ({row['zeros']})")
    )
    return (
        f"| {row['size']} ({row['parameters'] / 1e6:.1f}M) | {label} | {row['best_s']:.3f} s "
        f"| {row['cold_s']:.3f} s | {len(row['times_s'])} "
        f"| {row['peak_extra_bytes'] / 2**20:.0f} MiB "
        f"| {row['peak_extra_bytes'] / row['model_bytes']:.2f}x | {faster} | {exact} |"
    )


def targets(rows: list[dict[str, Any]]) -> str:
    """The issue's three targets, checked against the measured rows of each size."""
    lines = []
    for size in dict.fromkeys(r["size"] for r in rows):
        by = {r["contender"]: r for r in rows if r["size"] == size and "best_s" in r}
        if "shears" not in by:
            continue
        ours = by["shears"]
        memory = ours["peak_extra_bytes"] / ours["model_bytes"]
        checks = [
            f"peak extra memory {memory:.2f}x the model (target < 0.5x): {_verdict(memory < 0.5)}"
        ]
        if "torch_global_unstructured" in by:
            ratio = by["torch_global_unstructured"]["best_s"] / ours["best_s"]
            checks.append(
                f"{ratio:.0f}x faster than global_unstructured (target >= 20x): "
                f"{_verdict(ratio >= 20)}"
            )
        for name in ("stream_torch_abs", "stream_numpy_abs"):
            if name in by:
                ratio = ours["best_s"] / by[name]["best_s"]
                checks.append(
                    f"{ratio:.1f}x a {LABELS[name].split(': ')[1]} pass "
                    f"(target <= 5x): {_verdict(ratio <= 5)}"
                )
        lines.append(f"- {size}: " + "; ".join(checks) + ".")
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write_doc(text: str) -> None:
    replace_section(SECTION, text)


def report(rows: list[dict[str, Any]], command: str, load: tuple[float, float]) -> str:
    import numpy as np
    import torch

    return f"""{SECTION}

Global magnitude pruning of transformer-shaped linear layers to {SPARSITY:.0%} sparsity
(8 blocks of Q, K, V, O = d x d and an MLP of 4d x d, d x 4d; float32; d = 512 for 25M,
1024 for 100M parameters). Measured with:

    {command}

on {platform.machine()} with {os.cpu_count()} cores, torch {torch.__version__.split("+")[0]},
numpy {np.__version__}, Python {platform.python_version()} (load average before / after:
{load[0]:.2f} / {load[1]:.2f}).

{table(rows)}

Against the targets of the issue (best times):

{targets(rows)}

- *best time*: fastest of the runs, weights restored between runs; *cold time*: the first
  run in a fresh process (first-touch page faults of new allocations are expensive on this
  VM, which is why a plain `abs()` pass is several times slower cold than warm).
- *peak extra memory*: VmHWM above the resident set before the first run, in its own
  process; *vs model size* divides it by the float32 bytes of the weights.
- *zeros exact*: the number of zeros written equals round(0.9 x N).
- The issue quoted 5.9 s (global_unstructured) and 0.06 s (one streaming pass) for 26.5M
  parameters on this kind of machine; a warm streaming pass here takes a few milliseconds
  because the allocator reuses freed pages, which makes the "within 5x" target stricter.
  Both baselines are reported; the numpy pass reads and writes the same bytes as torch's.
- Shears selects with a sampled band and one counting pass (`pruning/masks/kth.py`), then
  zeroes with one fused `hardshrink` pass; global_unstructured concatenates every score,
  runs `topk` on the concatenation and keeps a mask and a copy of every weight.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25M,100M")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--d-model", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.d_model, args.repeats)))
        return 0
    load_before = os.getloadavg()[0]
    rows = []
    for size in args.sizes.split(","):
        for name in CONTENDERS:
            # global_unstructured takes seconds per run: fewer repeats keep the run short.
            repeats = args.repeats if name != "torch_global_unstructured" else 2
            rows.append(measure(size, name, repeats, args.timeout))
            print(json.dumps(rows[-1]), file=sys.stderr)
    command = "python " + " ".join([str(Path(__file__).relative_to(ROOT)), *sys.argv[1:]])
    text = report(rows, command, (load_before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        write_doc(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
