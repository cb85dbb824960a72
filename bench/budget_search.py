"""The accuracy-budget search (`sparsity: {"auto": ...}`, at most 8 prunings) against a fine
sweep of the same model, method and evaluation data, in one run, through Shears' engine
(`prune()` on the ONNX export, exactly as a job runs it).

    nice python bench/budget_search.py             # prints the table, writes docs/benchmarks.md
    nice python bench/budget_search.py --no-write
    nice python bench/budget_search.py --quick     # digits-mlp, wanda only (a smoke run)

Models trained here on scikit-learn's `load_digits` (offline): `digits-cnn` (bench/quality.py)
and `digits-mlp` (64 -> 256 -> 128 -> 10). The evaluation data is the first half of the
held-out images (180); `held-out` is the chosen model's drop on the other 180.

What "the true sparsity" is: accuracy on 180 images moves by whole images (0.56 point each),
so the drop is not monotone in sparsity and "the largest sparsity within the budget" depends
on how it is read. The sweep prunes every STEP from START and reads it three ways:
- `fit` (the reference): the largest grid sparsity measured within the budget whose drop is
  also within it on the monotone (isotonic least-squares) fit of the whole sweep: isolated
  failures below the boundary and isolated passes above it are pooled with their neighbours.
- `first`: the largest grid sparsity with every grid point up to it within the budget (the
  most conservative reading: one unlucky pruning ends it).
- `last`: the largest grid sparsity measured within the budget (the most optimistic reading).
The baseline `bisection` is plain bisection (the search before this change: halve towards the
last probe's verdict) replayed on the sweep's measurements (nearest grid point), 8 probes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchdoc import replace_section  # noqa: E402
from benchmodels import export_onnx  # noqa: E402
from quality import DigitsCNN, digits, logits, train  # noqa: E402

from pruning import prune  # noqa: E402
from pruning.search import choose, monotone_fit, next_probe  # noqa: E402

SECTION = "## The accuracy-budget search against a fine sweep"
CALIBRATION = 128
BUDGETS = (0.005, 0.01, 0.02, 0.03)
METHODS = ("magnitude", "wanda", "sparsegpt")
START, STEP = 0.2, 0.005
STOP_AFTER = 12  # the sweep stops after this many grid points in a row over the largest budget
GOAL = 0.005  # issue 15: within 0.5 point of the true sparsity
REPLAYS: list[tuple[float, float]] = []  # (this search, plain bisection) replayed: gap to fit


NOTES = [
    "",
    "What the table says (prunings are deterministic: a rerun gives the same sparsities):",
    "",
    "- The goal (within 0.5 point of the true sparsity in at most 8 prunings) is met in 10 "
    "of 24 searches, not in general. Every search took 8 prunings, 0.0-0.6 s; each sweep "
    "84-141.",
    "- The reason is the metric, not the bisection: replayed on the sweep's own measurements, "
    "this search and plain bisection both land within 0.5 point of `fit` in 17 of 24. The "
    "engine's probes fall between grid points (0.475, 0.7125, 0.594, ...), and accuracy on "
    "180 images moves by several images between sparsities 0.2 point apart (one image is "
    "0.56 point of accuracy), so a probe 0.2 point from a failing grid point can pass: the "
    "largest sparsity within the budget is itself only defined to a few points here. The "
    "`first` and `last` columns show how far the readings of one sweep differ (up to 35 "
    "points at a 0.5% budget, which allows no image lost).",
    "- The monotone fit and the check one point past a narrow bracket's failing end (this "
    "change) gain nothing measurable on these sweeps (17 = 17 replayed); they keep a lone "
    "lucky pass from being returned (tests/engine/test_search_bisection.py pins both).",
    "- `held-out` is the real warning: the chosen model loses up to 8.9 points on the other "
    "180 images at a 3% budget, because the search chose on its evaluation images. A budget "
    "of a point needs an evaluation set of thousands of samples (the binomial standard error "
    "of an accuracy near 0.98 on 180 images is about 1 point).",
]


class DigitsMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def _spec(method: str, sparsity: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "method": {"name": method},
        "sparsity": sparsity,
        "scope": "layerwise",
        "latency": None,
        "evaluation": {"dataset_id": "evaluation", "metric": "accuracy"},
    }
    if method != "magnitude":
        spec["calibration"] = {"dataset_id": "calibration", "samples": CALIBRATION}
    return spec


def sweep(
    model: Path, method: str, datasets: dict[str, Path], work: Path
) -> tuple[float, list[tuple[float, float]], float]:
    """The dense accuracy, (sparsity, drop) every STEP, and the sweep's seconds."""
    curve: list[tuple[float, float]] = []
    dense, misses, start = 0.0, 0, time.perf_counter()
    for s in np.arange(START, 0.95 + 1e-9, STEP):
        out = work / f"fine-{method}-{s:.3f}"
        metric = prune(model, _spec(method, float(s)), out, datasets=datasets).report["quality"]
        dense = metric["metric"]["dense"]
        drop = dense - metric["metric"]["pruned"]
        curve.append((round(float(s), 4), drop))
        misses = misses + 1 if drop > max(BUDGETS) + 1e-12 else 0
        if misses == STOP_AFTER:  # past here the largest budget is lost for good
            break
    return dense, curve, time.perf_counter() - start


def truths(curve: list[tuple[float, float]], budget: float) -> dict[str, float]:
    within = [d <= budget + 1e-12 for _, d in curve]
    fit = monotone_fit([d for _, d in curve])
    first = START - STEP  # nothing passed
    for (s, _), ok in zip(curve, within, strict=True):
        if not ok:
            break
        first = s
    last = max((s for (s, _), ok in zip(curve, within, strict=True) if ok), default=0.0)
    inside = [s for (s, d), f in zip(curve, fit, strict=True) if max(d, f) <= budget + 1e-12]
    return {"fit": max(inside, default=0.0), "first": first, "last": last}


def plain_bisection(curve: list[tuple[float, float]], budget: float) -> float:
    """The search before this change, replayed on the sweep: [0, 0.95] halved 8 times
    towards the nearest grid point's verdict (points past the sweep's end fail)."""
    grid = np.array([s for s, _ in curve])
    low, high, chosen = 0.0, 0.95, 0.0
    for _ in range(8):
        middle = (low + high) / 2
        if middle < START:
            ok = True
        elif middle > grid[-1] + STEP / 2:
            ok = False
        else:
            ok = curve[int(np.abs(grid - middle).argmin())][1] <= budget + 1e-12
        if ok:
            low, chosen = middle, middle
        else:
            high = middle
    return chosen


def _at(curve: list[tuple[float, float]], s: float) -> float:
    """The drop the sweep measured nearest ``s`` (below START: none; past its end: failed)."""
    if s < START:
        return 0.0
    if s > curve[-1][0] + STEP / 2:
        return 1.0
    grid = np.array([p for p, _ in curve])
    return curve[int(np.abs(grid - s).argmin())][1]


def replayed_search(curve: list[tuple[float, float]], budget: float) -> float:
    """This change's search (pruning.search) replayed on the sweep like `plain_bisection`, so
    both meet the same measurements as the reference."""
    measured: list[tuple[float, float]] = []
    for _ in range(8):
        s = next_probe(measured, budget, 0.0, 0.95)
        measured.append((s, _at(curve, s)))
    return choose(measured, budget) or 0.0


def search_rows(
    methods: tuple[str, ...],
    name: str,
    model: Path,
    datasets: dict[str, Path],
    x: np.ndarray,
    y: np.ndarray,
    work: Path,
) -> tuple[list[str], list[float]]:
    rows: list[str] = []
    gaps: list[float] = []
    half = len(y) // 2
    replays = REPLAYS
    held_dense = float((logits(model, x[half:]).argmax(1) == y[half:]).mean())
    for method in methods:
        _, curve, sweep_s = sweep(model, method, datasets, work / name)
        for budget in BUDGETS:
            auto = {"auto": {"metric": "accuracy", "max_drop": budget}}
            start = time.perf_counter()
            out = work / name / f"search-{method}-{budget}"
            result = prune(model, _spec(method, auto), out, datasets=datasets)
            seconds = time.perf_counter() - start
            search = result.report["search"]
            chosen = search["chosen_sparsity"]
            true = truths(curve, budget)
            old = plain_bisection(curve, budget)
            new = replayed_search(curve, budget)
            held = held_dense - float(
                (logits(result.artifacts["model"], x[half:]).argmax(1) == y[half:]).mean()
            )
            gaps.append(chosen - true["fit"])
            replays.append((new - true["fit"], old - true["fit"]))
            rows.append(
                f"| {name} | {method} | {budget:.1%} | {chosen:.3f} / {search['prunings']} / "
                f"{seconds:.1f} | {true['fit']:.3f} / {len(curve)} / {sweep_s:.0f} | "
                f"{(chosen - true['fit']) * 100:+.2f} | {(chosen - true['first']) * 100:+.2f}"
                f" | {(chosen - true['last']) * 100:+.2f} | {(new - true['fit']) * 100:+.2f} | "
                f"{(old - true['fit']) * 100:+.2f} "
                f"| {held * 100:+.1f} |"
            )
            print(rows[-1], flush=True)
    return rows, gaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cnn-wanda-only", action="store_true", help="the CNN's sweeps cost most")
    args = parser.parse_args()
    methods = ("wanda",) if args.quick else METHODS
    cnn_methods = ("wanda",) if args.cnn_wanda_only else methods
    x_train, y_train, x_test, y_test = digits()
    load_start = os.getloadavg()[0]
    header = [
        SECTION,
        "",
        f"`nice python bench/budget_search.py` on {platform.processor() or platform.machine()},"
        f" {torch.get_num_threads()} threads, torch {torch.__version__}, load average "
        f"{load_start:.1f} at the start. Budget: accuracy drop on the 180 evaluation images. "
        f'Search: `sparsity: {{"auto": ...}}`, 8 prunings at most; `s` its job\'s wall time. '
        f"Sweep: one job every {STEP * 100:g} point from {START:.0%}, stopped {STOP_AFTER} "
        "points in a row past the largest budget. Gaps in points of sparsity (search minus "
        "the reference; negative = sparser model left on the table): against `fit`, the "
        "reference (largest grid sparsity within the budget on the isotonic fit of the sweep "
        "and measured within it), `first` (every grid point up to it within) and `last` "
        "(largest measured within); `replayed`: this search and the plain bisection it "
        "replaces, both replayed on the sweep's own measurements (nearest grid point), against "
        "`fit`. `held-out`: the chosen model's accuracy drop on the other 180 images, in points.",
        "",
        "| model | method | budget | search: sparsity / prunings / s | sweep: fit / prunings / s"
        " | gap fit | gap first | gap last | replayed: search / bisection gap fit | held-out |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows: list[str] = []
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        specs: list[tuple[str, type[nn.Module], np.ndarray, int, tuple[int, ...]]] = [
            ("digits-mlp", DigitsMLP, x_train, 30, (-1, 64))
        ]
        if not args.quick:
            specs.append(("digits-cnn", DigitsCNN, x_train.reshape(-1, 1, 8, 8), 15, (-1, 1, 8, 8)))
        for name, kind, inputs, epochs, shape in specs:
            net = train(kind, inputs, y_train, epochs)
            (work / name).mkdir()
            path = export_onnx(net, inputs, work / f"{name}.onnx", "y")
            data = {"calibration": work / f"{name}-cal.npz", "evaluation": work / f"{name}-ev.npz"}
            np.savez(data["calibration"], x=inputs[:CALIBRATION], labels=y_train[:CALIBRATION])
            test = x_test.reshape(shape)
            half = len(y_test) // 2
            np.savez(data["evaluation"], x=test[:half], labels=y_test[:half])
            chosen_methods = cnn_methods if name == "digits-cnn" else methods
            new, found = search_rows(chosen_methods, name, path, data, test, y_test, work)
            rows, gaps = rows + new, gaps + found
    within = sum(abs(g) <= GOAL + 1e-9 for g in gaps)
    new_in = sum(abs(n) <= GOAL + 1e-9 for n, _ in REPLAYS)
    old_in = sum(abs(o) <= GOAL + 1e-9 for _, o in REPLAYS)
    lines = [
        *header,
        *rows,
        "",
        f"Within {GOAL * 100:g} point of `fit`: {within} of {len(gaps)} searches; largest gap "
        f"{max(abs(g) for g in gaps) * 100:.2f} points. Replayed on the sweeps: this search "
        f"{new_in}, plain bisection {old_in} of {len(REPLAYS)}. Load average at the end: "
        f"{os.getloadavg()[0]:.1f}.",
        *(NOTES if not args.quick else []),
    ]
    print("\n".join(lines[len(header) + len(rows) :]))
    if not args.no_write:
        replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
