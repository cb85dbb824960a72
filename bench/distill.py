"""Distillation after one-shot pruning, and the retraining recipe (issue 15), through Shears'
own engine (`prune()` on the ONNX export, exactly as a job runs it).

    python bench/distill.py            # prints the tables and writes docs/benchmarks.md
    python bench/distill.py --no-write
    python bench/distill.py --quick    # a smoke run: fewer rows, fewer steps, never writes

Part 1: `digits-tokens`, a BERT-shaped encoder (bench/benchmodels.py's `Encoder`: token and
position embeddings, post-norm blocks, first-token pooling) with integer `input_ids` and
`attention_mask` inputs, width 128, 4 layers, 4 heads, FFN 512 (24 prunable matrices),
trained here on scikit-learn's `load_digits` read as 64 tokens (the pixel values 0-16) and
exported without its classifier: the output is the pooled embedding. Quality is the mean
cosine of the embeddings to the dense model's on the 360 held-out images; calibration (and
the distillation's data) is 128 training images, without labels.

Part 2: bench/quality.py's `digits-cnn`, and the same net with batch norm after its first conv,
at 90% by gradual cubic pruning with 10 epochs of retraining as the README's spec has it (Adam
at lr 0.01, validation_split 0.1): the earlier recipe (constant lr, cross-entropy) against the
new defaults (warmup, cosine decay after the last pruning event, cross-entropy plus
distillation from the dense model) and each change alone, three seeds; held-out accuracy on
the 360 images (one image is 0.28 points).

`s` is the wall time of the whole `prune()` job (latency off), on a shared machine.
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
import onnxruntime as ort
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchdoc import replace_section  # noqa: E402
from benchmodels import Encoder, EncoderShape, export_encoder, export_onnx  # noqa: E402
from quality import DigitsCNN, digits, logits, train  # noqa: E402

from pruning import prune  # noqa: E402

SECTION = "## Distillation after one-shot pruning, and the retraining recipe"
SHAPE = EncoderShape(width=128, layers=4, heads=4, ffn=512)
CALIBRATION = 128
SPARSITIES = (0.5, 0.7)
METHODS = ("magnitude", "wanda", "sparsegpt")
DISTILL: dict[str, Any] = {}  # the defaults: 200 steps of 16 samples, lr 3e-4
SEEDS = (0, 1, 2)
RECIPES: list[tuple[str, dict[str, Any]]] = [
    ("earlier: constant lr, cross_entropy", {"loss": "cross_entropy", "lr_schedule": "constant"}),
    # The defaults: warmup 5%, full rate to the last pruning event, cosine decay to 0;
    # (1 - 0.5) x cross-entropy + 0.5 x distillation from the dense model at T = 2.
    ("new defaults: warmup + cosine, cross_entropy+distill", {}),
    ("cosine, cross_entropy", {"loss": "cross_entropy"}),
    ("constant lr, cross_entropy+distill", {"lr_schedule": "constant"}),
]

NOTES = [
    "What the tables say (one training seed per model, 360 held-out images: one image is "
    "0.28 points of accuracy):",
    "",
    "- Distillation lifts every one-shot method on the encoder: at 70% from 0.857-0.918 to "
    "0.984-0.986 mean cosine on the held-out images, at 50% from 0.974-0.991 to 0.997-0.998; "
    "the distillation loss on the calibration samples falls 2.8-3.8x. The issue's goal (>= "
    "0.97 at 50% with distillation) holds here, but this encoder already keeps 0.974 at 50% "
    "without it: the goal's model, a pretrained 6-layer sentence encoder, cannot be fetched "
    "on this machine and is not measured.",
    "- Its cost: 200 steps, each a dense forward plus a student forward and backward on 16 "
    "sequences of 64 tokens, on the job's one thread (latency off): 84-182 s per job at a "
    "load average of 6-12, against 3-9 s for the one-shot pass; an earlier run of 300 steps "
    "at load 2-5 took 60-110 s. The 30522-row embedding table trains too.",
    "- The recipe: on digits-cnn every recipe ends above dense at 90% (the issue's 0.978 is "
    "not reproduced on this split); on digits-cnn-bn the earlier recipe loses 0.56 point on "
    "average (0.3-0.8), outside the 0.5-point goal, and the new defaults lose 0.0 in all "
    "three seeds. Each change alone holds dense there too (cosine decay +0.09, distillation "
    "0.0). The dense teacher's forward costs about a third more training time.",
    "- Where the decay does not help: with one epoch after the last cut (a 4-epoch gradual "
    "run to 90%), the constant rate recovered more (0.874 against 0.705 held-out in "
    "tests/engine/test_training_details.py's distillation case), and regrowth found nothing "
    "to regrow in its 4-epoch test; both tests pin `lr_schedule: constant`. Short runs "
    "should set it too.",
    "",
]


class Classifier(nn.Module):
    """The encoder with a linear head, for its training only; the head is not exported."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder(SHAPE)
        self.head = nn.Linear(SHAPE.width, 10)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(ids, mask))
        return out


def tokens(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (scaled to [0, 1] by `digits()`) back to their 17 levels, one token each."""
    ids = np.rint(x * 16).astype(np.int64)
    return ids, np.ones_like(ids)


def train_encoder(x: np.ndarray, y: np.ndarray, epochs: int) -> Encoder:
    torch.manual_seed(0)
    net = Classifier()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    ids, mask = (torch.from_numpy(a) for a in tokens(x))
    labels = torch.from_numpy(y)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(32):  # type: ignore[no-untyped-call]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(ids[batch], mask[batch]), labels[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(ids, mask).argmax(1) == labels).double().mean())
    print(f"encoder trained: train accuracy {accuracy:.3f}", flush=True)
    return net.encoder


def embeddings(model: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input_ids": ids, "attention_mask": mask})[0])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).mean())


def encoder_table(work: Path, quick: bool) -> list[str]:
    x_train, y_train, x_test, _ = digits()
    net = train_encoder(x_train, y_train, 2 if quick else 8)
    ids, mask = tokens(x_test)
    model = export_encoder(net, ids[:2], mask[:2], work / "encoder.onnx")
    calibration = work / "calibration.npz"
    train_ids, train_mask = tokens(x_train[:CALIBRATION])
    np.savez(calibration, input_ids=train_ids, attention_mask=train_mask)
    dense = embeddings(model, ids, mask)
    distill = {**DISTILL, "steps": 20} if quick else DISTILL
    sparsities = SPARSITIES[:1] if quick else SPARSITIES
    header = " | ".join(f"{s:.0%} cos (s)" for s in sparsities)
    rows = [
        f"| method | {header} | distill loss before -> after (at {sparsities[-1]:.0%}) |",
        "|---|" + "---|" * (len(sparsities) + 1),
    ]
    for method in METHODS[:1] if quick else METHODS:
        for distilled in (False, True):
            cells, losses = [], ""
            for sparsity in sparsities:
                spec: dict[str, Any] = {
                    "method": {"name": method},
                    "sparsity": sparsity,
                    "scope": "layerwise",
                    "latency": None,
                    "calibration": {"dataset_id": "calibration", "samples": CALIBRATION},
                }
                if distilled:
                    spec["distill"] = distill
                out = work / f"{method}-{sparsity}-{distilled}"
                start = time.perf_counter()
                result = prune(model, spec, out, datasets={"calibration": calibration})
                took = time.perf_counter() - start
                got = cosine(embeddings(result.artifacts["model"], ids, mask), dense)
                cells.append(f"{got:.3f} ({took:.1f})")
                if distilled:
                    block = result.report["distill"]
                    losses = f"{block['loss_before']:.4f} -> {block['loss_after']:.4f}"
            label = f"{method} + distill" if distilled else method
            rows.append(f"| {label} | {' | '.join(cells)} | {losses or '-'} |")
            print(rows[-1], flush=True)
    return rows


class DigitsBNCNN(nn.Module):
    """digits-cnn with batch norm after its first conv (tests/engine's digits convnet)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(512, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def recipe_table(work: Path, quick: bool) -> list[str]:
    x_train, y_train, x_test, y_test = digits()
    images = x_test.reshape(-1, 1, 8, 8)
    train_npz, test_npz = work / "train.npz", work / "test.npz"
    np.savez(train_npz, x=x_train.reshape(-1, 1, 8, 8), labels=y_train)
    np.savez(test_npz, x=images, labels=y_test)
    datasets = {"train": train_npz, "test": test_npz}
    epochs, seeds = (2, (0,)) if quick else (10, SEEDS)
    rows = [
        "| model (dense acc) | recipe | "
        + " | ".join(f"seed {s} acc (delta)" for s in seeds)
        + " | mean delta | retrain s | job s |",
        "|---|---|" + "---|" * (len(seeds) + 3),
    ]
    for name, kind in (("digits-cnn", DigitsCNN), ("digits-cnn-bn", DigitsBNCNN)):
        net = train(kind, x_train.reshape(-1, 1, 8, 8), y_train, 3 if quick else 15)
        model = export_onnx(net, images, work / f"{name}.onnx", "logits")
        dense = float((logits(model, images).argmax(1) == y_test).mean())
        for label, recipe in RECIPES:
            cells, deltas, retrain_s, job_s = [], [], 0.0, 0.0
            for seed in seeds:
                spec = {
                    "method": {"name": "magnitude"},
                    "sparsity": 0.9,
                    "schedule": {"kind": "gradual", "steps": 10},
                    # The README's spec (a high Adam rate, a tenth held out), with the recipe.
                    "retrain": {
                        "dataset_id": "train",
                        "epochs": epochs,
                        "lr": 0.01,
                        "validation_split": 0.1,
                        "seed": seed,
                        **recipe,
                    },
                    "evaluation": {"dataset_id": "test", "metric": "accuracy"},
                    "latency": None,
                }
                start = time.perf_counter()
                out = work / f"{name}-{label[:3]}-{seed}"
                result = prune(model, spec, out, datasets=datasets)
                job_s += time.perf_counter() - start
                retrain_s += float(result.report["timings"]["retrain_s"])
                accuracy = float(result.report["quality"]["metric"]["pruned"])
                deltas.append(accuracy - dense)
                cells.append(f"{accuracy:.3f} ({accuracy - dense:+.3f})")
            n = len(seeds)
            rows.append(
                f"| {name} ({dense:.3f}) | {label} | {' | '.join(cells)} | "
                f"{sum(deltas) / n:+.4f} | {retrain_s / n:.1f} | {job_s / n:.1f} |"
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        encoder = encoder_table(work, args.quick)
        recipe = recipe_table(work, args.quick)
    after = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"`python bench/distill.py` on {platform.machine()}, torch {torch.__version__}, load "
        f"average {load[0]:.1f} before and {after[0]:.1f} after (shared machine: seconds are "
        "upper bounds).",
        "",
        "### digits-tokens encoder (integer inputs), one-shot layerwise, with and without "
        "`distill` (its defaults: 200 steps of 16 samples, Adam at 3e-4, layerwise 1, output 1)",
        "",
        *encoder,
        "",
        "### digits CNNs at 90%, gradual, 10 epochs: the retraining recipe",
        "",
        *recipe,
        "",
        *NOTES,
    ]
    print("\n".join(lines))
    if not args.quick and not args.no_write:
        replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
