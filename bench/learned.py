"""Learned sparsity (issue 16): held-out accuracy of two digits models at 90/95/98%
sparsity for each learned method (`l0`, `variational_dropout`, `str`, `movement`) against
gradual magnitude pruning (Zhu & Gupta) with the same epochs, data and optimizer, through
Shears' own engine (`prune()` on the ONNX export, exactly as a job runs it), with the time
per epoch beside each and, for the learned methods, the density they learned before the
projection onto the exact target.

    python bench/learned.py                 # prints the table
    python bench/learned.py --write         # also replaces the section in docs/benchmarks.md
    python bench/learned.py --epochs 10     # fewer epochs when time is short (said in the doc)
    python bench/learned.py --quick         # smoke test: 90% only, two epochs, never writes
    python bench/learned.py --models mlp    # one of the models (cnn, mlp)

The models, both trained offline here for 15 epochs on the 1437 `load_digits` training
images: bench/quality.py's `digits-cnn` (bench/retrain.py's data and accuracy check) and
`digits-mlp`, a 64-256-128-10 ReLU MLP on the flat images (50,432 prunable weights, all
Gemm). Accuracy on the 360 held-out images measured by running the saved ONNX file (and
re-checked here with ONNX Runtime).
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
from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)
from benchmodels import export_onnx  # noqa: E402
from quality import digits, logits, train  # noqa: E402
from retrain import BATCH, TRAIN_EPOCHS, Data, prepare  # noqa: E402

from pruning import prune  # noqa: E402

SECTION = "## Learned sparsity: L0, sparse VD, STR and movement against gradual magnitude"
MODELS = ("cnn", "mlp")
SPARSITIES = (0.9, 0.95, 0.98)
EPOCHS = 20
BASELINE = "magnitude, gradual (Zhu & Gupta)"
VARIANTS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    (BASELINE, {"name": "magnitude"}, {"kind": "gradual", "steps": 10}),
    ("l0 (hard concrete, dual ascent)", {"name": "l0"}, {"kind": "one_shot"}),
    ("variational_dropout (sparse VD)", {"name": "variational_dropout"}, {"kind": "one_shot"}),
    ("str (soft thresholds)", {"name": "str"}, {"kind": "one_shot"}),
    ("movement (cubic ramp)", {"name": "movement"}, {"kind": "one_shot"}),
)


class DigitsMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


def prepare_mlp(work: Path, train_epochs: int) -> tuple[Path, Data, float]:
    """Train and export the MLP on the flat images; write its train and test datasets."""
    x_train, y_train, x_test, y_test = digits()
    model = export_onnx(
        train(DigitsMLP, x_train, y_train, train_epochs), x_train, work / "mlp.onnx", "y"
    )
    paths = {"train": work / "mlp-train.npz", "test": work / "mlp-test.npz"}
    np.savez(paths["train"], x=x_train, labels=y_train)
    np.savez(paths["test"], x=x_test, labels=y_test)
    dense = float((logits(model, x_test).argmax(axis=-1) == y_test).mean())
    return model, Data(paths, x_test, y_test), dense


PREPARE = {"cnn": prepare, "mlp": prepare_mlp}
TITLES = {
    "cnn": "digits-cnn (Conv 1->16, Conv 16->32, MaxPool, Linear 512->64->10)",
    "mlp": "digits-mlp (Linear 64->256->128->10, ReLU)",
}


def spec_for(
    method: dict[str, Any], schedule: dict[str, Any], sparsity: float, epochs: int
) -> dict[str, Any]:
    return {
        "method": method,
        "sparsity": sparsity,
        "scope": "global",
        "schedule": schedule,
        "latency": None,
        "evaluation": {"dataset_id": "test", "metric": "accuracy"},
        "retrain": {
            "dataset_id": "train",
            "epochs": epochs,
            "lr": 1e-3,
            "batch_size": BATCH,
            "optimizer": "adam",
            "loss": "cross_entropy",
            "seed": 0,
        },
    }


def run_one(model: Path, spec: dict[str, Any], data: Data, out: Path) -> dict[str, Any]:
    result = prune(model, spec, out, datasets=data.paths)

    metric = result.report["quality"]["metric"]
    predicted = logits(result.artifacts["model"], data.x_test).argmax(axis=-1)
    measured = float((predicted == data.y_test).mean())
    if abs(measured - metric["pruned"]) > 1e-6:
        raise AssertionError(f"report says {metric['pruned']}, the artifact scores {measured}")
    achieved = result.report["sparsity"]["achieved"]
    if abs(achieved - spec["sparsity"]) > 1e-3:
        raise AssertionError(f"asked for {spec['sparsity']}, the artifact has {achieved}")
    training = result.report["training"]
    learned = training.get("learned") or {}
    return {
        "accuracy": float(metric["pruned"]),
        "epoch_s": float(training["time_s"]) / spec["retrain"]["epochs"],
        "learned_density": learned.get("learned_density"),
    }


def table(
    model: Path, data: Data, dense: float, sparsities: tuple[float, ...], epochs: int, work: Path
) -> tuple[list[str], dict[str, dict[float, dict[str, Any]]]]:
    rows = [
        "| method | "
        + " | ".join(f"{s:.0%} acc (learned density)" for s in sparsities)
        + " | s per epoch |",
        "|---|" + "---|" * (len(sparsities) + 1),
    ]
    found: dict[str, dict[float, dict[str, Any]]] = {}
    for label, method, schedule in VARIANTS:
        cells, seconds = [], []
        for sparsity in sparsities:
            out = work / f"{model.stem}-{method['name']}-{sparsity}"
            got = run_one(model, spec_for(method, schedule, sparsity, epochs), data, out)
            found.setdefault(label, {})[sparsity] = got
            density = got["learned_density"]
            learned = "" if density is None else f" ({density:.3f})"
            cells.append(f"{got['accuracy']:.3f}{learned}")
            seconds.append(got["epoch_s"])
        rows.append(
            f"| {label} | " + " | ".join(cells) + f" | {min(seconds):.2f}-{max(seconds):.2f} |"
        )
        print(rows[-1], flush=True)
    return rows, found


def verdict(
    found: dict[str, dict[float, dict[str, Any]]], sparsities: tuple[float, ...]
) -> list[str]:
    lines = []
    for sparsity in sparsities:
        base = found[BASELINE][sparsity]["accuracy"]
        better = [
            f"{label.split(' ')[0]} ({got[sparsity]['accuracy']:.3f})"
            for label, got in found.items()
            if label != BASELINE and got[sparsity]["accuracy"] > base
        ]
        said = ", ".join(better) if better else "none"
        lines.append(f"- {sparsity:.0%}: above gradual magnitude ({base:.3f}): {said}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smoke test; never writes")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: cnn, mlp")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in PREPARE]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(PREPARE)}")
    sparsities = (0.9,) if args.quick else SPARSITIES
    epochs = 2 if args.quick else args.epochs
    began = time.perf_counter()
    blocks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in models:
            model, data, dense = PREPARE[name](work, 3 if args.quick else TRAIN_EPOCHS)
            print(f"{name}: dense accuracy {dense:.3f}", flush=True)
            rows, found = table(model, data, dense, sparsities, epochs, work)
            blocks += [
                f"### {TITLES[name]}, dense held-out accuracy {dense:.3f}",
                "",
                *rows,
                "",
                "Which learned methods beat gradual magnitude (one seed; one image is 0.28 "
                "points):",
                "",
                *verdict(found, sparsities),
                "",
            ]
    load = os.getloadavg()
    shorter = "" if epochs == EPOCHS else f" (fewer than the script's default {EPOCHS}, for time)"
    flags = ("" if epochs == EPOCHS else f" --epochs {epochs}") + (
        "" if models == list(MODELS) else f" --models {args.models}"
    )
    lines = [
        SECTION,
        "",
        f"`python bench/learned.py --write{flags}` "
        f"on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads "
        f"(jobs train on 1), torch {torch.__version__}; load average at the end "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on a shared machine; "
        f"{time.perf_counter() - began:.0f} s in all. Both models trained offline here "
        f"({TRAIN_EPOCHS} epochs), pruned by `pruning.prune()` on their ONNX export with "
        "global scope; accuracy on the 360 held-out images, as the report's "
        "`quality.metric.pruned` (measured by running the saved ONNX file and re-checked here).",
        "",
        f"Every row trains {epochs} epochs{shorter} on the 1437 training images with labels, "
        f"Adam, lr 0.001, batch {BATCH}, seed 0. Gradual magnitude: Zhu & Gupta's cubic ramp "
        "over the first 75% of the steps, then fine-tuning at the target. Learned methods: "
        "their own defaults; they learn for the first 75% of the epochs, are projected onto "
        "exactly the target by their own score, and fine-tune that mask for the last 25% "
        "(`finetune_fraction`). In brackets: the density the method had learned before the "
        "projection (the target is 0.100, 0.050, 0.020). `s per epoch`: the report's "
        "`training.time_s` over the epochs (the loop, the projection, batch-norm "
        "re-estimation), min-max over the three sparsities.",
        "",
        *blocks,
    ]
    print("\n".join(lines))
    if args.write and not args.quick:
        replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
