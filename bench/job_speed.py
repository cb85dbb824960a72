"""Calibration speed: the segment walk (each layer group costs one segment forward) against the
whole-model scheme it replaced (each layer costs one model forward and one ONNX Runtime
session), in one run, through the engine's `prune()` as a job runs it.

The model is bench/job_time.py's BERT-like encoder (6 layers, 384 wide, 1536 FFN, 12 heads,
30522-token vocabulary, about 22.7M parameters, integer `input_ids` and `attention_mask`),
random weights, exported to ONNX here; calibration samples are 128 tokens long.

    python bench/job_speed.py           # 32 samples both schemes, 128 samples segments only
    python bench/job_speed.py --write   # also replace the section in docs/benchmarks.md

"whole model" runs the same SparseGPT code with `layer_sequence` swapped for
`pruning.calibration.capture.whole_model_sequence` (the naive scheme, kept for this and for
the tests). Wanda needs no sequence: its column norms come from one forward of the dense
model in both schemes, so it is measured once.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)
from job_time import SEQ, build_encoder  # noqa: E402

import pruning.methods.sparsegpt as sparsegpt_module  # noqa: E402
from pruning import prune  # noqa: E402
from pruning.calibration.capture import whole_model_sequence  # noqa: E402

SECTION = "## Calibration speed"
SEQUENCE = "layer_sequence"  # the name SparseGPT's prune() looks its layer sequence up by
RUNS = (("wanda", "one dense forward"), ("sparsegpt", "segments"), ("sparsegpt", "whole model"))
NOTES = [
    "What the table says:",
    "",
    "- Segments make SparseGPT's calibration one model forward in all instead of one per "
    "layer (36 here), with the same weights and masks as the whole-model scheme (the line "
    "above): calibration now costs about what Wanda's single dense forward costs.",
    "- The rest of the `prune_s` stage is `pruning/calibration/run.py` measuring in-sample "
    "fidelity: one full forward of the calibration samples before pruning and one after.",
    "- Wanda was already one forward: its column norms come from one dense forward with every "
    "layer input exposed (its score needs no sequence). OBD and Taylor use gradients of the "
    "whole model (one forward and backward per chunk) and capture no layer inputs.",
    "",
]


@dataclass(frozen=True)
class Run:
    method: str
    scheme: str
    wall_s: float
    calibration: dict[str, Any]
    timings: dict[str, float]
    weights: dict[str, np.ndarray]


@contextmanager
def scheme(name: str) -> Iterator[None]:
    """SparseGPT's layer sequence as ``name`` says, for the duration of one run."""
    shipped = getattr(sparsegpt_module, SEQUENCE)
    if name == "whole model":
        setattr(sparsegpt_module, SEQUENCE, whole_model_sequence)
    try:
        yield
    finally:
        setattr(sparsegpt_module, SEQUENCE, shipped)


def run(model: Path, data: Path, method: str, name: str, samples: int, work: Path) -> Run:
    spec: dict[str, Any] = {
        "method": {"name": method},
        "sparsity": 0.5,
        "scope": "layerwise",
        "latency": None,
        "calibration": {"dataset_id": "calibration", "samples": samples},
        "input_shapes": {"input_ids": [1, SEQ], "attention_mask": [1, SEQ]},
    }
    out = work / f"{method}-{name.replace(' ', '-')}"
    start = time.perf_counter()
    with scheme(name):
        result = prune(model, spec, out, datasets={"calibration": data})
    wall = time.perf_counter() - start
    report = result.report
    pruned = onnx.load(str(result.artifacts["model"]))
    weights = {i.name: numpy_helper.to_array(i) for i in pruned.graph.initializer if i.dims}
    return Run(method, name, wall, report.get("calibration") or {}, report["timings"], weights)


def row(r: Run, samples: int) -> str:
    c = r.calibration
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items())
    return (
        f"| {r.method} | {r.scheme} | {samples} | {r.wall_s:.1f} | "
        f"{c.get('calibration_s', 0.0):.1f} | {c.get('solve_s', 0.0):.1f} | {stages} |"
    )


def agreement(a: Run, b: Run) -> str:
    """How far apart the weights two schemes leave, and whether their masks are equal."""
    diff = max(float(np.max(np.abs(a.weights[n] - b.weights[n]))) for n in a.weights)
    masks = sum(int(np.sum((a.weights[n] == 0) != (b.weights[n] == 0))) for n in a.weights)
    zeros = sum(int(np.sum(a.weights[n] == 0)) for n in a.weights)
    return f"max |weight difference| {diff:.2e}; masks differ in {masks} of {zeros} zeros"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, nargs="+", default=[32, 128])
    parser.add_argument(
        "--whole-model-max",
        type=int,
        default=32,
        help="run the whole-model scheme only up to this many samples (it costs minutes)",
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="shears-jobspeed-") as tmp:
        work = Path(tmp)
        model, data = build_encoder(work)
        for samples in args.samples:
            runs = {}
            for method, name in RUNS:
                if name == "whole model" and samples > args.whole_model_max:
                    continue
                runs[name] = run(model, data, method, name, samples, work)
                rows.append(row(runs[name], samples))
                print(rows[-1], flush=True)
            if "whole model" in runs:
                same = agreement(runs["segments"], runs["whole model"])
                notes.append(f"- {samples} samples, segments against whole model: {same}.")
    lines = [
        SECTION,
        "",
        f"`python bench/job_speed.py --samples {' '.join(map(str, args.samples))} "
        f"--whole-model-max {args.whole_model_max}` on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} "
        f"at the end (the seconds are upper bounds). BERT-like encoder, 6 "
        f"layers x 384, 36 linear layers, {SEQ}-token samples, 50% layerwise, `prune()` as a "
        "job runs it (no latency block). `calibration s` is the method's own account (layer "
        "inputs and statistics), `solve s` SparseGPT's OBS solves; stages are the report's "
        "`timings`. The whole-model scheme runs only at the smaller sample counts: it costs "
        "one model forward per layer, minutes at 128 samples on two cores.",
        "",
        "| method | scheme | samples | prune() s | calibration s | solve s | stages s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        "",
        *NOTES,
    ]
    print("\n".join(lines))
    if args.write:
        replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
