"""The accuracy-budget search (`sparsity: {"auto": ...}`, at most 8 prunings) against a fine
sweep of the same model, method and evaluation data, in one run, through Shears' engine
(`prune()` on the ONNX export, exactly as a job runs it).

    nice python bench/budget_search.py             # prints the table, writes docs/benchmarks.md
    nice python bench/budget_search.py --no-write
    nice python bench/budget_search.py --quick     # digits-mlp, wanda only (a smoke run)

Models trained here on scikit-learn's `load_digits` (offline): `digits-cnn` (bench/quality.py)
and `digits-mlp` (64 -> 256 -> 128 -> 10), on the first TRAIN of its 1797 images. The
evaluation data is the next EVALUATION (500); `held-out` is the chosen model's drop on the
last 500. (bench/quality.py's split leaves 180 + 180, where one image is 0.56 point of
accuracy, coarser than the budgets.) `synth-mlp` (not in the 24 searches of issue 15's goal):
the MLP on scikit-learn's `make_classification`, 10 classes, with SYNTHETIC samples, so that
the metric is fine enough for the goal to be checked.

What "the true sparsity" is: accuracy moves by whole images (0.2 point each), so the drop is
not monotone in sparsity and "the largest sparsity within the budget" depends on how it is
read. The sweep prunes every STEP from START (0: a model whose boundary lies low must have
one) and reads it three ways, "within the budget" meaning what the search means by it: the
drop's upper CONFIDENCE bound (`auto.confidence`, 0.9 by default: the mean of the per-image
drops plus z times their standard error) at most the budget:
- `fit` (the reference): the largest grid sparsity measured within the budget whose drop is
  also within it on the monotone (isotonic least-squares) fit of the whole sweep: isolated
  failures below the boundary and isolated passes above it are pooled with their neighbours.
- `first`: the largest grid sparsity with every grid point up to it within the budget (the
  most conservative reading: one unlucky pruning ends it).
- `last`: the largest grid sparsity measured within the budget (the most optimistic reading).
How well the evaluation data defines `fit`: its 5th-95th percentiles over BOOTSTRAP resamples
of the evaluation images (per-image verdicts of every sweep pruning, read here from the saved
models; they must add up to each job's reported drop). The baseline `bisection` is plain
bisection (the search before the monotone fit: halve towards the last probe's verdict)
replayed on the sweep's measurements (nearest grid point), 8 probes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import make_classification
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchdoc import replace_section  # noqa: E402
from benchmodels import export_onnx  # noqa: E402
from quality import DigitsCNN, digits, logits, train  # noqa: E402

from pruning import prune  # noqa: E402
from pruning.search import choose, monotone_fit, next_probe, upper_bound  # noqa: E402

SECTION = "## The accuracy-budget search against a fine sweep"
CALIBRATION = 128
# Digits has 1797 images. 180 evaluation images (the split of bench/quality.py) move accuracy by
# 0.56 point an image, coarser than the budgets; training on fewer leaves 500 + 500 held out.
TRAIN, EVALUATION = 797, 500
SYNTHETIC = (4000, 10000)  # synth-mlp's training and evaluation samples (as many held out)
BUDGETS = (0.005, 0.01, 0.02, 0.03)
METHODS = ("magnitude", "wanda", "sparsegpt")
START, STEP = 0.0, 0.005
STOP_AFTER = 12  # the sweep stops after this many grid points in a row over the largest budget
BOOTSTRAP = 200  # resamples of the evaluation images for the reference's interval
GOAL = 0.005  # issue 15: within 0.5 point of the true sparsity
CONFIDENCE = 0.9  # the search's default (`auto.confidence`): the reference reads bounds alike


@dataclass(frozen=True)
class Record:
    """One search against its sweep; gaps in fractions of sparsity, `out` how far outside the
    reference's interval (0 inside)."""

    model: str
    budget: float
    gap: float  # the live search minus `fit`
    out: float
    replayed: tuple[float, float]  # this search, plain bisection: minus `fit`
    replayed_out: tuple[float, float]
    width: float  # of the interval
    held: float  # the chosen model's drop on the held-out images
    seconds: float  # the search job's


def notes(records: list[Record], synthetic: list[Record]) -> list[str]:
    """What the table says, from its own figures (``records``: the digits models')."""

    def count(values: list[float]) -> int:
        return sum(abs(v) <= GOAL + 1e-9 for v in values)

    def widths(budget: float) -> str:
        w = [r.width * 100 for r in records if r.budget == budget]
        return f"{min(w):.1f}-{max(w):.1f}"

    over = [r for r in records if r.held > r.budget + 1e-12]
    n = len(records)
    return [
        "",
        "What the table says (training runs on one thread and prunings are deterministic: a "
        "rerun on the same CPU gives the same sparsities):",
        "",
        f"- Strictly, the goal (within 0.5 point of `fit`, 8 prunings) is met in "
        f"{count([r.gap for r in records])} of {n} searches; every search took "
        f"{min(r.seconds for r in records):.1f}-{max(r.seconds for r in records):.1f} s.",
        "- The live search measures what the sweep measures: a job at the sparsity it chose "
        "reports the accuracy it measured there (the bench checks each). It differs from the "
        "replay because its probes fall between grid points (0.475, then halves), where one "
        "pruning differs from the next by a few weights and the accuracy by an image or two, "
        "and a verdict can flip.",
        "- `fit` itself is defined by the evaluation images only to the interval beside it: "
        "another draw of as many images moves it by "
        + ", ".join(f"{widths(b)} points at {b:.1%}" for b in BUDGETS)
        + " (5th-95th percentiles). Within 0.5 point of that interval: "
        f"{count([r.out for r in records])} of {n} live searches, "
        f"{count([r.replayed_out[0] for r in records])} replayed, plain bisection "
        f"{count([r.replayed_out[1] for r in records])}. A miss inside it is the data's, not "
        "the search's; checking the 0.5-point goal needs an evaluation set whose interval is "
        "narrower than a point, far more than digits' 1797 images.",
        *(
            [
                f"- `synth-mlp` has such a set ({SYNTHETIC[1]} evaluation samples of "
                "scikit-learn's `make_classification`, one sample 0.01 point), where `first`, "
                "`fit` and `last` mostly agree: the search is within 0.5 point of `fit` in "
                f"{count([r.gap for r in synthetic])} of {len(synthetic)}, replayed "
                f"{count([r.replayed[0] for r in synthetic])}, plain bisection "
                f"{count([r.replayed[1] for r in synthetic])}. 8 probes on [0, 0.95] resolve "
                "0.37 point at best, and a few samples in 10000 still flip a verdict between "
                "grid points.",
            ]
            if synthetic
            else []
        ),
        f"- `held-out`: with each pruning judged by its drop's upper {CONFIDENCE:.0%} bound, "
        f"the chosen model loses more than the budget on the other {EVALUATION} images in "
        f"{len(over)} of {n} digits searches (largest "
        f"{max(r.held for r in records) * 100:.1f} points)"
        + (
            f" and {sum(r.held > r.budget + 1e-12 for r in synthetic)} of {len(synthetic)} "
            "synthetic ones"
            if synthetic
            else ""
        )
        + ". Judged by the drop alone (`confidence: 0`, the search before), it was 5 of 24 "
        "digits searches, up to 2.6 points, and most synthetic ones by 0.1-0.4 point: the "
        "evaluation images chose the model, so the drop measured on them is optimistic. At "
        f"{CONFIDENCE:.0%}, a search may still overshoot by chance about one time in "
        f"{round(1 / (1 - CONFIDENCE))}.",
    ]


def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 10-class task with as many samples as wanted (scikit-learn, offline): SYNTHETIC[0]
    train, then SYNTHETIC[1] evaluation and as many held out."""
    train_n, evaluation_n = SYNTHETIC
    x, y = make_classification(
        n_samples=train_n + 2 * evaluation_n,
        n_features=64,
        n_informative=24,
        n_redundant=8,
        n_classes=10,
        n_clusters_per_class=2,
        class_sep=2.0,
        random_state=0,
    )
    x, y = x.astype(np.float32), y.astype(np.int64)
    return x[:train_n], y[:train_n], x[train_n:], y[train_n:]


Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train x, y; test x, y


def split(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """bench/quality.py's shuffled digits, re-split: the first TRAIN images train, the other
    EVALUATION * 2 are the evaluation half and the held-out half."""
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


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


@dataclass
class Sweep:
    dense: float  # accuracy on the evaluation images
    # (sparsity, the drop's upper CONFIDENCE bound) every STEP: what the search compares
    # with the budget, so the reference reads the sweep the way the search reads its probes
    curve: list[tuple[float, float]]
    correct: np.ndarray  # one row a grid point: which evaluation images the pruning gets right
    dense_correct: np.ndarray
    seconds: float


def sweep(
    model: Path, method: str, datasets: dict[str, Path], work: Path, x: np.ndarray, y: np.ndarray
) -> Sweep:
    """One job every STEP on the evaluation images ``x``, ``y`` (the jobs' own evaluation data:
    the per-image verdicts read here must add up to the drop each job reported)."""
    curve: list[tuple[float, float]] = []
    rows: list[np.ndarray] = []
    dense_correct = logits(model, x).argmax(1) == y
    dense, misses, start = 0.0, 0, time.perf_counter()
    for s in np.arange(START, 0.95 + 1e-9, STEP):
        out = work / f"fine-{method}-{s:.3f}"
        result = prune(model, _spec(method, float(s)), out, datasets=datasets)
        metric = result.report["quality"]
        dense = metric["metric"]["dense"]
        drop = dense - metric["metric"]["pruned"]
        rows.append(logits(result.artifacts["model"], x).argmax(1) == y)
        assert abs(dense_correct.mean() - rows[-1].mean() - drop) < 1e-9, "not the job's metric"
        bound = upper_bound(dense_correct.astype(float) - rows[-1], CONFIDENCE)
        curve.append((round(float(s), 4), bound))
        misses = misses + 1 if bound > max(BUDGETS) + 1e-12 else 0
        if misses == STOP_AFTER:  # past here the largest budget is lost for good
            break
    return Sweep(dense, curve, np.array(rows), dense_correct, time.perf_counter() - start)


def interval(fine: Sweep, budget: float) -> tuple[float, float]:
    """The 5th and 95th percentiles of `fit` over BOOTSTRAP resamples of the evaluation images:
    how well the evaluation data defines the true sparsity (each resample is another evaluation
    set of the same size, from the same distribution, scored on the same prunings)."""
    n = len(fine.dense_correct)
    picks = np.random.default_rng(0).integers(0, n, (BOOTSTRAP, n))
    drops = fine.dense_correct[None, :].astype(float) - fine.correct  # (grid points, images)
    grid = [s for s, _ in fine.curve]
    fits = []
    for b in range(BOOTSTRAP):
        bounds = [upper_bound(row, CONFIDENCE) for row in drops[:, picks[b]]]
        fits.append(truths(list(zip(grid, bounds, strict=True)), budget)["fit"])
    low, high = np.percentile(fits, [5, 95])
    return float(low), float(high)


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


def _same_as_a_job(
    model: Path, method: str, datasets: dict[str, Path], out: Path, search: dict[str, Any]
) -> None:
    """Like with like: a job at the chosen sparsity measures what the search measured there
    (same calibration, evaluation data and rounding; the search starts from the dense model)."""
    chosen = search["chosen_sparsity"]
    if chosen == 0.0:
        return
    probe = next(p for p in search["curve"] if p["sparsity"] == chosen)
    again = prune(model, _spec(method, chosen), out, datasets=datasets).report["quality"]
    assert again["metric"]["pruned"] == probe["metric"], (chosen, again, probe)


def search_rows(
    methods: tuple[str, ...],
    name: str,
    model: Path,
    datasets: dict[str, Path],
    x: np.ndarray,
    y: np.ndarray,
    work: Path,
) -> tuple[list[str], list[Record]]:
    rows: list[str] = []
    records: list[Record] = []
    half = len(y) // 2
    held_dense = float((logits(model, x[half:]).argmax(1) == y[half:]).mean())
    for method in methods:
        fine = sweep(model, method, datasets, work / name, x[:half], y[:half])
        curve, sweep_s = fine.curve, fine.seconds
        for budget in BUDGETS:
            auto = {"auto": {"metric": "accuracy", "max_drop": budget, "confidence": CONFIDENCE}}
            start = time.perf_counter()
            out = work / name / f"search-{method}-{budget}"
            result = prune(model, _spec(method, auto), out, datasets=datasets)
            seconds = time.perf_counter() - start
            search = result.report["search"]
            chosen = search["chosen_sparsity"]
            _same_as_a_job(model, method, datasets, out.with_name(f"{out.name}-again"), search)
            true = truths(curve, budget)
            low, high = interval(fine, budget)
            old = plain_bisection(curve, budget)
            new = replayed_search(curve, budget)
            held = held_dense - float(
                (logits(result.artifacts["model"], x[half:]).argmax(1) == y[half:]).mean()
            )
            records.append(
                Record(
                    name,
                    budget,
                    chosen - true["fit"],
                    max(low - chosen, chosen - high, 0.0),
                    (new - true["fit"], old - true["fit"]),
                    (max(low - new, new - high, 0.0), max(low - old, old - high, 0.0)),
                    high - low,
                    held,
                    seconds,
                )
            )
            rows.append(
                f"| {name} | {method} | {budget:.1%} | {chosen:.3f} / {search['prunings']} / "
                f"{seconds:.1f} | {true['fit']:.3f} / {low:.3f}-{high:.3f} / {len(curve)} / "
                f"{sweep_s:.0f} | "
                f"{(chosen - true['fit']) * 100:+.2f} | {(chosen - true['first']) * 100:+.2f}"
                f" | {(chosen - true['last']) * 100:+.2f} | {(new - true['fit']) * 100:+.2f} | "
                f"{(old - true['fit']) * 100:+.2f} "
                f"| {held * 100:+.1f} |"
            )
            print(rows[-1], flush=True)
    return rows, records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cnn-wanda-only", action="store_true", help="the CNN's sweeps cost most")
    args = parser.parse_args()
    methods = ("wanda",) if args.quick else METHODS
    cnn_methods = ("wanda",) if args.cnn_wanda_only else methods
    x_train, y_train, x_test, y_test = split(*digits())
    load_start = os.getloadavg()[0]
    header = [
        SECTION,
        "",
        f"`nice python bench/budget_search.py` on {platform.processor() or platform.machine()},"
        f" {torch.get_num_threads()} threads, torch {torch.__version__}, load average "
        f"{load_start:.1f} at the start. Budget: accuracy drop on the {EVALUATION} evaluation "
        f"images ({TRAIN} trained the models; `synth-mlp`: {SYNTHETIC[1]} evaluation samples, "
        f"{SYNTHETIC[0]} for training, as many held out as evaluated). "
        f'Search: `sparsity: {{"auto": ...}}`, 8 prunings at most; `s` its job\'s wall time. '
        f"Within the budget, for the search and the sweep alike: the drop's upper "
        f"{CONFIDENCE:.0%} bound (`auto.confidence`, the default) at most the budget. "
        f"Sweep: one job every {STEP * 100:g} point from {START:.0%}, stopped {STOP_AFTER} "
        "points in a row past the largest budget. Gaps in points of sparsity (search minus "
        "the reference; negative = sparser model left on the table): against `fit`, the "
        "reference (largest grid sparsity within the budget on the isotonic fit of the sweep "
        "and measured within it; beside it the 5th-95th percentiles of `fit` over "
        f"{BOOTSTRAP} bootstrap resamples of the evaluation images, how far the evaluation data "
        "defines it), `first` (every grid point up to it within) and `last` "
        "(largest measured within); `replayed`: this search and the plain bisection it "
        "replaces, both replayed on the sweep's own measurements (nearest grid point), against "
        "`fit`. `held-out`: the chosen model's accuracy drop on the other "
        f"{EVALUATION} images, in points.",
        "",
        "| model | method | budget | search: sparsity / prunings / s | sweep: fit / interval / "
        "prunings / s"
        " | gap fit | gap first | gap last | replayed: search / bisection gap fit | held-out |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows: list[str] = []
    records: list[Record] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        digits_data = (x_train, y_train, x_test, y_test)
        specs: list[tuple[str, type[nn.Module], Data, int, tuple[int, ...]]] = [
            ("digits-mlp", DigitsMLP, digits_data, 30, (-1, 64))
        ]
        if not args.quick:
            specs.append(("digits-cnn", DigitsCNN, digits_data, 15, (-1, 1, 8, 8)))
            specs.append(("synth-mlp", DigitsMLP, synthetic(), 30, (-1, 64)))
        for name, kind, (x_train, y_train, x_test, y_test), epochs, shape in specs:
            inputs = x_train.reshape(shape)
            # One thread: the CNN's trained weights (and so every figure) differ between 1 and
            # 2 threads, so a rerun elsewhere would not meet the same model.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            net = train(kind, inputs, y_train, epochs)
            torch.set_num_threads(threads)
            (work / name).mkdir()
            path = export_onnx(net, inputs, work / f"{name}.onnx", "y")
            data = {"calibration": work / f"{name}-cal.npz", "evaluation": work / f"{name}-ev.npz"}
            np.savez(data["calibration"], x=inputs[:CALIBRATION], labels=y_train[:CALIBRATION])
            test = x_test.reshape(shape)
            half = len(y_test) // 2
            np.savez(data["evaluation"], x=test[:half], labels=y_test[:half])
            chosen_methods = cnn_methods if name == "digits-cnn" else methods
            new, found = search_rows(chosen_methods, name, path, data, test, y_test, work)
            rows, records = rows + new, records + found

    synth = [r for r in records if r.model.startswith("synth")]
    records = [r for r in records if not r.model.startswith("synth")]
    within = sum(abs(r.gap) <= GOAL + 1e-9 for r in records)
    replayed = [sum(abs(r.replayed[k]) <= GOAL + 1e-9 for r in records) for k in (0, 1)]
    lines = [
        *header,
        *rows,
        "",
        f"Digits: within {GOAL * 100:g} point of `fit`: {within} of {len(records)} searches "
        "(largest "
        f"gap {max(abs(r.gap) for r in records) * 100:.2f} points). Replayed on the sweeps: "
        f"this search {replayed[0]}, plain bisection {replayed[1]} of {len(records)}. Load "
        f"average at the end: {os.getloadavg()[0]:.1f}.",
        *notes(records, synth),
    ]
    print("\n".join(lines[len(header) + len(rows) :]))
    if not args.no_write:
        replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
