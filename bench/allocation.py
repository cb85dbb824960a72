"""Quality past the 2023 methods: allocation x refinement x method x sparsity, and the
accuracy-budget search against a fine sweep, through Shears' own engine (`prune()` on the
ONNX export, calibration from an `.npz`, exactly as a job runs it).

    python bench/allocation.py            # prints the tables and writes docs/benchmarks.md
    python bench/allocation.py --no-write
    python bench/allocation.py --quick    # digits-cnn only, no search (a smoke run)

Models, trained here on scikit-learn's `load_digits` (offline), from bench/quality.py:
`digits-cnn` and `digits-attn` (one pre-norm attention block), and with `--encoder`
`digits-encoder`: two pre-norm blocks, width 96, 4 heads, GELU FFN 96->384->96, reading each
image as 8 tokens of 8 pixels (14 prunable matrices). Quality is
held-out accuracy and the mean cosine of the logits to the dense model's on the 360 held-out
images; calibration is 128 training images. `s` is the wall time of the whole `prune()` job
(latency off), on a shared machine: an upper bound.
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
from quality import DigitsAttention, DigitsCNN, digits, evaluate, logits, train  # noqa: E402

from pruning import prune  # noqa: E402

SECTION = "## One-shot quality: allocation, refinement and the accuracy budget"
CALIBRATION = 128
COLUMNS: list[tuple[str, float, bool]] = [
    ("50%", 0.5, False),
    ("60%", 0.6, False),
    ("70%", 0.7, False),
    ("2:4", 0.5, True),
]
ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("magnitude (layerwise)", {"name": "magnitude"}, {}),
    ("magnitude + owl", {"name": "magnitude"}, {"allocation": "owl"}),
    ("magnitude + least squares", {"name": "magnitude"}, {"refine": {"kind": "least_squares"}}),
    ("wanda", {"name": "wanda"}, {}),
    ("wanda + owl", {"name": "wanda"}, {"allocation": "owl"}),
    ("wanda + sensitivity", {"name": "wanda"}, {"allocation": "sensitivity"}),
    ("wanda + dsnot", {"name": "wanda"}, {"refine": {"kind": "dsnot"}}),
    (
        "wanda + owl + dsnot + least squares",
        {"name": "wanda"},
        {"allocation": "owl", "refine": {"kind": "dsnot", "update": "least_squares"}},
    ),
    ("sparsegpt", {"name": "sparsegpt"}, {}),
    ("sparsegpt + owl", {"name": "sparsegpt"}, {"allocation": "owl"}),
    ("sparsegpt + sensitivity", {"name": "sparsegpt"}, {"allocation": "sensitivity"}),
    ("sparsegpt + dsnot", {"name": "sparsegpt"}, {"refine": {"kind": "dsnot"}}),
]
BUDGET = 0.01
SEARCHED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [("wanda", {"name": "wanda"}, {})]
FINE_STEP = 0.01
STOP_AFTER = 6  # the fine sweep stops after this many sparsities in a row over the budget

NOTES = [
    "What the tables say, and why (one training seed, 360 held-out images: one image is 0.28%"
    " accuracy):",
    "",
    "- Refinement is the largest gain, and it needs no allocation. The least-squares update "
    "gives magnitude the weight update it lacks: on digits-cnn at 70% it keeps 0.981 accuracy"
    " / 0.989 cosine where layerwise magnitude keeps 0.647 / 0.710 (SparseGPT: 0.972 / "
    "0.983), and 0.992 at 2:4; on digits-attn at 70%, 0.883 / 0.927 against 0.825 / 0.842. "
    "DSnoT-style swaps raise Wanda's cosine at every sparsity on both models (70%: 0.882 -> "
    "0.954 on the CNN, 0.880 -> 0.903 on the attention model) and SparseGPT's a little (0.983"
    " -> 0.987, 0.953 -> 0.969).",
    "- Sensitivity allocation helps every method from 60%: the layer's own output error at a "
    "few sparsities spares the layers that cost most (the first conv, the head). Wanda at "
    "70%: 0.794 -> 0.958 (CNN), 0.847 -> 0.942 (attention); SparseGPT at 70%: 0.972 -> 0.989,"
    " the dense accuracy, on the CNN, and 0.911 -> 0.944 (cosine 0.953 -> 0.982) on the "
    "attention model.",
    "- OWL hurts on these models, most with magnitude at 70% (0.267 on the CNN, 0.389 on the "
    "attention model). Its premise is the massive activation outliers of LLMs (Yin et al. "
    "2024, sec. 3); these digits inputs have none, and with each tensor as its own layer (the"
    " paper ranks whole transformer blocks of equal size) the outlier ratio mostly follows a "
    "layer's shape: on the CNN it prunes the 144-weight first conv hardest (76%), where the "
    "sensitivity scan spares it (50%) and puts the zeros in the 512->64 layer (73%). It is "
    "implemented as the paper says (M = 5, lambda = 0.08, mean kept exact) for the models it "
    "was made for; choose `sensitivity` when the calibration data can tell.",
    "- The budget search takes 8 prunings where the fine sweep took 41-43 (4.2 s against 56 s"
    " on the CNN), and lands 0.7 and 2.0 points of sparsity below the sweep's largest "
    "sparsity within the budget: accuracy on 180 images is not monotone in sparsity (one "
    "image is 0.56 points), so bisection steps past isolated points within the budget. The "
    "issue's goal of 0.5 point is not met on these models. The held-out column is the "
    "warning: the CNN's chosen model lost 4.4 points on the other 180 images, with a 1-point "
    "budget, because the search itself chose on its evaluation images; a budget of one point "
    "needs an evaluation set of thousands of samples.",
    "- Not measured here: the issue's sentence-encoder goals (cosine >= 0.93 at 50%, >= 0.80 "
    "at 70% on a pretrained 6-layer encoder): no pretrained encoder can be fetched on this "
    "machine, and one-block digits models cannot stand in for it. Distillation and the "
    "retraining recipe are another change's (pruning/training/).",
    "- `s` is the whole job's wall time on two cores shared with other jobs (load average "
    "6-12): an upper bound, noisy (the same kind of job took 0.6 to 6.8 s). OWL costs one "
    "pass of the calibration data; sensitivity one pass plus a probe per layer and sparsity "
    "(X^T X products); refinement one sequential pass plus the swaps or solves.",
    "",
]


class DigitsEncoder(nn.Module):
    """Two pre-norm transformer blocks over 8 tokens of 8 pixels."""

    def __init__(self, d: int = 96, heads: int = 4, blocks: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.position = nn.Parameter(torch.zeros(1, 8, d))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, heads, 4 * d, 0.0, "gelu", batch_first=True, norm_first=True
            )
            for _ in range(blocks)
        )
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.position
        for block in self.blocks:
            h = block(h)
        out: torch.Tensor = self.head(h.mean(dim=1))
        return out


def _spec(method: dict[str, Any], sparsity: Any, nm: bool, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "method": method,
        "sparsity": sparsity,
        "scope": "layerwise",
        "latency": None,
        "calibration": {"dataset_id": "calibration", "samples": CALIBRATION},
        **extra,
    }
    if nm:
        spec["granularity"] = {"kind": "n:m", "n": 2, "m": 4}
    return spec


def _run(model: Path, spec: dict[str, Any], datasets: dict[str, Path], out: Path) -> Any:
    start = time.perf_counter()
    result = prune(model, spec, out, datasets=datasets)
    return result, time.perf_counter() - start


def quality_table(
    name: str, model: Path, datasets: dict[str, Path], x: np.ndarray, y: np.ndarray, work: Path
) -> list[str]:
    dense = logits(model, x)
    accuracy, _ = evaluate(model, dense, x, y)
    rows = [
        f"### {name} (dense accuracy {accuracy:.3f})",
        "",
        "| method | " + " | ".join(f"{c} acc / cos / s" for c, _, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for index, (label, method, extra) in enumerate(ROWS):
        cells = []
        for column, sparsity, nm in COLUMNS:
            if nm and "allocation" in extra:
                cells.append("n/a")  # n:m prunes every layer alike
                continue
            if (
                method["name"] == "magnitude"
                and "allocation" not in extra
                and "refine" not in extra
            ):
                spec = _spec(method, sparsity, nm)
                spec.pop("calibration")
            else:
                spec = _spec(method, sparsity, nm, **extra)
            out = work / f"{name}-{index}-{column.replace(':', '-').replace('%', '')}"
            result, seconds = _run(model, spec, datasets, out)
            acc, cos = evaluate(result.artifacts["model"], dense, x, y)
            cells.append(f"{acc:.3f} / {cos:.3f} / {seconds:.1f}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return [*rows, ""]


def search_table(
    models: list[tuple[str, Path, dict[str, Path], np.ndarray, np.ndarray]], work: Path
) -> list[str]:
    """The budget search (at most 8 prunings) against a sweep every FINE_STEP, both on the
    evaluation half of the held-out images; the chosen model's accuracy also on the other
    half (never seen by the search)."""
    rows = [
        "### The accuracy budget: search against a fine sweep",
        "",
        f"Budget: at most {BUDGET:.0%} accuracy below dense on the evaluation half (180 "
        "images); `true` is the largest sparsity within the budget on a sweep every "
        f"{FINE_STEP:.0%} from 20% (one pruning each, stopped after {STOP_AFTER} in a row "
        "over the budget); `held-out drop` is the chosen model's drop on "
        "the other 180 images.",
        "",
        "| model | method | search: sparsity / prunings / s | fine sweep: true / prunings / s | "
        "gap | held-out drop |",
        "|---|---|---|---|---|---|",
    ]
    for name, model, datasets, x, y in models:
        for label, method, extra in SEARCHED:
            evaluation = {"dataset_id": "evaluation", "metric": "accuracy"}
            auto = {"auto": {"metric": "accuracy", "max_drop": BUDGET}}
            spec = _spec(method, auto, False, evaluation=evaluation, **extra)
            result, seconds = _run(model, spec, datasets, work / f"search-{name}-{label}")
            search = result.report["search"]
            chosen = search["chosen_sparsity"]
            dense = search["dense_metric"]
            true, sweep_s, count, misses = 0.0, 0.0, 0, 0
            for s in np.arange(0.2, 0.951, FINE_STEP):
                spec = _spec(method, float(s), False, evaluation=evaluation, **extra)
                fine, took = _run(model, spec, datasets, work / f"fine-{name}-{label}-{s:.2f}")
                sweep_s, count = sweep_s + took, count + 1
                if dense - fine.report["quality"]["metric"]["pruned"] <= BUDGET + 1e-12:
                    true, misses = max(true, float(s)), 0
                else:
                    misses += 1
                if misses == STOP_AFTER:  # the budget is lost for good past here
                    break
            half = len(y) // 2
            acc_dense = float((logits(model, x[half:]).argmax(1) == y[half:]).mean())
            out = logits(result.artifacts["model"], x[half:])
            held = acc_dense - float((out.argmax(1) == y[half:]).mean())
            rows.append(
                f"| {name} | {label} | {chosen:.3f} / {search['prunings']} / {seconds:.1f} | "
                f"{true:.2f} / {count} / {sweep_s:.1f} | {chosen - true:+.3f} | {held:+.3f} |"
            )
            print(rows[-1], flush=True)
    return [*rows, ""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--encoder", action="store_true", help="also the two-block digits-encoder (slower)"
    )
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = digits()
    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        f"`python bench/allocation.py` on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, load average "
        f"{load:.1f} at the start. One-shot, no retraining, scope layerwise; `acc` held-out "
        "accuracy, `cos` mean cosine of the logits to the dense model's, `s` the job's wall "
        "time. Distillation and the retraining recipe (issue 15's other parts) are not here: "
        "pruning/training/ is another change's.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = x_train.reshape(-1, 1, 8, 8)
        tokens = x_train.reshape(-1, 8, 8)
        specs: list[tuple[str, type[nn.Module], np.ndarray, int, tuple[int, ...]]] = [
            ("digits-cnn", DigitsCNN, images, 15, (-1, 1, 8, 8))
        ]
        if not args.quick:
            specs.append(("digits-attn", DigitsAttention, tokens, 30, (-1, 8, 8)))
        if args.encoder:
            specs.append(("digits-encoder", DigitsEncoder, tokens, 30, (-1, 8, 8)))
        models = []
        for name, kind, inputs, epochs, shape in specs:
            net = train(kind, inputs, y_train, epochs)
            path = export_onnx(net, inputs, work / f"{name}.onnx", "y")
            data = {"calibration": work / f"{name}-cal.npz", "evaluation": work / f"{name}-ev.npz"}
            np.savez(data["calibration"], x=inputs[:CALIBRATION], labels=y_train[:CALIBRATION])
            half = len(y_test) // 2
            test = x_test.reshape(shape)
            np.savez(data["evaluation"], x=test[:half], labels=y_test[:half])
            models.append((name, path, data, test, y_test))
        for name, path, data, x, y in models:
            lines += quality_table(name, path, data, x, y, work)
        if not args.quick:
            lines += search_table(models, work)
            lines += NOTES
    lines.append(f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    print("\n".join(lines))
    if not args.no_write:
        replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
