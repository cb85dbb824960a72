"""Does pruning make models faster? Dense vs unstructured vs 2:4 vs channel pruning, timed the
same way (``pruning.latency.measure_latency``, ONNX Runtime on CPU) on two models trained on
scikit-learn's digits: a conv net with BatchNorm and a residual block, and an MLP.

    python bench/structured_latency.py              # trains, prunes, times, writes the doc
    python bench/structured_latency.py --no-write --iterations 20

Every variant is made by ``pruning.prune`` (the engine a job runs) with magnitude scores,
except the ``taylor`` rows: channels ranked by first-order Taylor importance on 128 labelled
training digits (calibration data). Fidelity is top-1 accuracy on 297 held-out digits and
agreement with the dense model's top-1 on them. Only the ``+ retrain`` rows are fine-tuned
after the cut (5 epochs on the training digits); the others show what the cut alone costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from benchdoc import replace_section
from benchmodels import export_onnx
from sklearn.datasets import load_digits
from torch import nn

from pruning import prune
from pruning.inputs import resolve_inputs
from pruning.latency import measure_latency
from pruning.models.onnx_model import OnnxModel
from pruning.spec import LatencySpec

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Structured pruning and latency"
TRAIN = 1500
CALIBRATION = {"dataset_id": "digits", "samples": 128}  # the first training digits
TAYLOR = {"method": {"name": "taylor"}, "calibration": CALIBRATION}
# Cut once, then fine-tune the smaller model on the 1500 training digits (the same file).
RETRAIN = {"dataset_id": "digits", "epochs": 5, "lr": 1e-3, "batch_size": 32}
VARIANTS: dict[str, dict[str, Any] | None] = {
    "dense": None,
    "unstructured 50%": {"sparsity": 0.5},
    "unstructured 90%": {"sparsity": 0.9},
    "2:4": {"sparsity": 0.5, "granularity": {"kind": "n:m", "n": 2, "m": 4}},
    "channels 25%": {"sparsity": 0.25, "granularity": {"kind": "channel"}},
    "channels 50%": {"sparsity": 0.5, "granularity": {"kind": "channel"}},
    "channels 25% taylor": {**TAYLOR, "sparsity": 0.25, "granularity": {"kind": "channel"}},
    "channels 50% taylor": {**TAYLOR, "sparsity": 0.5, "granularity": {"kind": "channel"}},
    "channels 25% + retrain": {
        "sparsity": 0.25,
        "granularity": {"kind": "channel"},
        "retrain": RETRAIN,
    },
    "channels 50% + retrain": {
        "sparsity": 0.5,
        "granularity": {"kind": "channel"},
        "retrain": RETRAIN,
    },
}


class ResidualConvNet(nn.Module):
    """16x16 digits: conv+BN stem, one residual block, a strided conv, global pool, FC."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
        )
        self.down = nn.Sequential(
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        out: torch.Tensor = self.head(self.down(torch.relu(y + self.block(y))))
        return out


def make_mlp(hidden: int = 2048) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)
    return x, data.target.astype(np.int64)


def train(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(x[:TRAIN]), torch.from_numpy(y[:TRAIN])
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(TRAIN).split(64):  # type: ignore[no-untyped-call]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xs[idx]), ys[idx]).backward()  # type: ignore[no-untyped-call]
            opt.step()
    return _settle_batch_norm(net, xs)


def _settle_batch_norm(net: nn.Module, xs: torch.Tensor) -> nn.Module:
    """Recompute BatchNorm statistics as exact averages over the training set: after a few
    epochs the momentum-0.1 running averages still lag the weights (eval accuracy 0.5)."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    with torch.no_grad():
        for batch in xs.split(256):  # type: ignore[no-untyped-call]
            net(batch)
    return net.eval()


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels: np.ndarray = np.asarray(session.run(None, {"x": x})[0]).argmax(axis=1)
    return labels


def variant(
    dense: Path, spec: dict[str, Any] | None, out: Path, calibration: Path
) -> tuple[Path, dict[str, Any]]:
    if spec is None:
        return dense, {}
    datasets = {str(CALIBRATION["dataset_id"]): calibration}
    result = prune(dense, {**spec, "latency": None}, out, datasets=datasets)
    return result.artifacts["model"], result.report


def parameters(path: Path) -> tuple[int, int]:
    arrays = [a for _, a in OnnxModel.iter_parameters(path)]
    return sum(a.size for a in arrays), sum(int(np.count_nonzero(a)) for a in arrays)


def time_pair(
    dense: Path, pruned: Path, threads: int, iterations: int
) -> dict[int, dict[str, Any]]:
    plan = resolve_inputs(OnnxModel.load(dense).signature.inputs, None, True)
    spec = LatencySpec(batch_sizes=(1, 32), threads=threads, warmup=10, iterations=iterations)
    a = OnnxModel.open_runner(dense, threads, plan.names)
    b = OnnxModel.open_runner(pruned, threads, plan.names)
    try:
        measured = measure_latency(a, b, plan, spec, OnnxModel.runtime)
    finally:
        a.close()
        b.close()
    return {r["batch_size"]: r for r in measured["results"]}


def bench_model(
    name: str, dense: Path, x: np.ndarray, y: np.ndarray, iterations: int, work: Path
) -> list[dict[str, Any]]:
    rows = []
    x_test, y_test = x[TRAIN:], y[TRAIN:]
    dense_top1 = predict(dense, x_test)
    calibration = work / f"{name}-calibration.npz"
    np.savez(calibration, x=x[:TRAIN], labels=y[:TRAIN])
    for label, spec in VARIANTS.items():
        path, report = variant(
            dense,
            spec,
            work / f"{name}-{label.replace(' ', '_').replace(':', '-').replace('%', '')}",
            calibration,
        )
        top1 = predict(path, x_test)
        total, nonzero = parameters(path)
        timing = {t: time_pair(dense, path, t, iterations) for t in (1, 2)}
        rows.append(
            {
                "model": name,
                "variant": label,
                "parameters": total,
                "nonzero": nonzero,
                "file_kib": path.stat().st_size / 1024,
                "accuracy": float((top1 == y_test).mean()),
                "agreement": float((top1 == dense_top1).mean()),
                "timing": timing,
                "explanation": (report.get("latency") or {}).get("explanation"),
            }
        )
        print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict[str, Any]) -> str:
    t = r["timing"]
    cells = []
    for threads in (1, 2):
        for batch in (1, 32):
            res = t[threads][batch]
            cells.append(f"{res['pruned_ms']['p50']:.3f} ms ({res['speedup']:.2f}x)")
    return (
        f"| {r['model']} | {r['variant']} | {r['parameters']:,} | {r['nonzero']:,} | "
        + " | ".join(cells)
        + f" | {r['accuracy']:.3f} | {r['agreement']:.3f} |"
    )


def document(
    rows: list[dict[str, Any]], iterations: int, command: str, load: tuple[float, float]
) -> str:
    head = (
        "| model | variant | parameters | nonzero | p50 b1 t1 | p50 b32 t1 | p50 b1 t2 | "
        "p50 b32 t2 | accuracy | top-1 agreement |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    dense = {r["model"]: r for r in rows if r["variant"] == "dense"}
    targets = []
    for r in rows:
        if r["variant"] == "channels 50%":
            s = [r["timing"][t][32]["speedup"] for t in (1, 2)]
            met = "met" if min(s) >= 2 else "NOT met"
            targets.append(
                f"- {r['model']}: 50% channels at batch 32: {s[0]:.2f}x (1 thread), "
                f"{s[1]:.2f}x (2 threads); target >= 2x: {met}."
            )
    taylor = _taylor_lines(rows)
    retrained = _retrained_lines(rows)
    return f"""{SECTION}

Dense vs unstructured vs 2:4 vs channel pruning of two models trained on scikit-learn's
digits (1500 train, 297 held out; only the `+ retrain` rows are fine-tuned after the cut,
5 epochs, Adam, lr 0.001, on the 1500 training digits), every variant made by the
engine (`pruning.prune`, magnitude scores; the `taylor` rows rank channels by first-order
Taylor importance on the first 128 labelled training digits) and timed by the engine's own
latency measurement
(ONNX Runtime {ort.__version__}, CPU execution provider, p50 of {iterations} interleaved
runs after 10 warm-up runs, dense and pruned alternating). Measured with:

    {command}

on {platform.machine()} with {os.cpu_count()} cores (load average before / after:
{load[0]:.2f} / {load[1]:.2f}), torch {torch.__version__.split("+")[0]},
Python {platform.python_version()}.
No GPU was used, so 2:4 was not measured with
`torch.sparse.to_sparse_semi_structured`.

Conv net: 16x16 digits, conv(64)+BN stem, a residual block of two conv(64)+BN, a strided
conv(64)+BN, global average pool, Linear(64, 10). MLP: 64 -> 2048 -> 2048 -> 10. Cells give the
pruned model's p50 and, in brackets, the dense p50 divided by it (b = batch size,
t = intra-op threads). Dense rows time the dense model against itself.

{head}
{chr(10).join(_row(r) for r in rows)}

Against the target of the issue (50% channel pruning at least 2x faster at batch 32):

{chr(10).join(targets)}

- Unstructured and 2:4 zeros do not speed up ONNX Runtime's dense CPU kernels (speedups
  around 1x): they shrink compressed storage only. 2:4 pays off only on GPUs with sparse
  tensor cores, not measured here.
- Channel pruning removes rows and columns: the file, the parameter count and the work all
  shrink, so the same dense kernels run faster. In the conv net the stem and both residual
  convolutions form one group (the addition ties them), cut together.
- Two threads on a two-core machine are the noisiest column: when another process
  takes a core, a dense run can take several times its one-thread time, which inflates
  (or deflates) the 2-thread speedups. The one-thread columns are the ones to compare.
- Fidelity (accuracy on the held-out digits; dense: {dense["convnet"]["accuracy"]:.3f} conv
  net, {dense["mlp"]["accuracy"]:.3f} MLP). The MLP keeps its accuracy under channel pruning
  (its hidden layers are wide and redundant). The conv net does not: removing 25% or 50% of
  the channels of a 64-channel net, including the residual stream that the stem and block
  share, collapses its accuracy even with BatchNorm folded into the channel scores. Fine-tuning
  the cut model (`retrain` with `granularity: channel`, the `+ retrain` rows, 5 epochs)
  recovers most of what the cut lost:
{retrained}
  the retrained model is the same smaller graph, so it keeps the speedup.

Taylor importance against L1 (`method: taylor`, Molchanov et al. 2019: per calibration sample,
|sum of g * w| over each channel's weights, cross-entropy with the labels), held-out accuracy
at the same channel fractions, same groups, same surgery:

{taylor}

- First-order Taylor estimates the loss change of removing one channel from a trained
  model, linearly. It finds channels that look big but do nothing (the engine test
  `test_taylor_removes_large_channels_the_loss_ignores_where_l1_keeps_them`: L1 keeps all 8
  such features, Taylor none). Removing many channels at once is far from linear, and on a
  well-fit model most per-sample gradients are near zero, so a few badly classified samples
  set the ranking; Molchanov et al. prune a few channels at a time and fine-tune in
  between, while Shears cuts channels once and then fine-tunes (the `+ retrain` rows).
  Compare the rows above before choosing it.
- In the conv net every pruned conv feeds a BatchNorm. The score is taken on the conv
  weights, whose zeroing leaves the BatchNorm's shift in place, while the surgery removes
  the BatchNorm channel too; the score that matches the surgery is Taylor on the BatchNorm
  output (Molchanov et al. 2019 put their gates after BatchNorm), not done yet.
- The figures come from one training seed and 297 held-out digits (one digit = 0.34%).
"""


def _taylor_lines(rows: list[dict[str, Any]]) -> str:
    accuracy = {(r["model"], r["variant"]): r["accuracy"] for r in rows}
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for share in ("25%", "50%"):
            l1, taylor = (
                accuracy[(model, f"channels {share}")],
                accuracy[(model, f"channels {share} taylor")],
            )
            verdict = "loses less" if taylor > l1 else "does not lose less"
            lines.append(
                f"- {model}, {share} channels: L1 {l1:.3f}, Taylor {taylor:.3f}: Taylor {verdict}."
            )
    return "\n".join(lines)


def _retrained_lines(rows: list[dict[str, Any]]) -> str:
    accuracy = {(r["model"], r["variant"]): r["accuracy"] for r in rows}
    return "\n".join(
        f"  {model}, {share} channels: {accuracy[(model, f'channels {share}')]:.3f} cut alone, "
        f"{accuracy[(model, f'channels {share} + retrain')]:.3f} after fine-tuning;"
        for model in dict.fromkeys(r["model"] for r in rows)
        for share in ("25%", "50%")
    )


def write_doc(text: str) -> None:
    replace_section(SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load_before = os.getloadavg()[0]
    x, y = digits()
    images = np.kron(x, np.ones((2, 2), np.float32))[:, None]  # 1x16x16
    flat = x.reshape(len(x), -1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)  # the initial weights too: reruns train the same nets
        conv = export_onnx(
            train(ResidualConvNet(), images, y, args.epochs), images, work / "conv.onnx", "logits"
        )
        torch.manual_seed(0)
        mlp = export_onnx(
            train(make_mlp(), flat, y, args.epochs), flat, work / "mlp.onnx", "logits"
        )
        rows = bench_model("convnet", conv, images, y, args.iterations, work)
        rows += bench_model("mlp", mlp, flat, y, args.iterations, work)
    command = "python bench/structured_latency.py" + (
        f" --iterations {args.iterations}" if args.iterations != 50 else ""
    )
    text = document(rows, args.iterations, command, (load_before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        write_doc(text)


if __name__ == "__main__":
    main()
