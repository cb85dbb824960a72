"""What the report and the latency stage cost, before and after issue 14, in one run.

    python bench/report_cost.py            # prints the tables
    python bench/report_cost.py --write    # also replaces the section in docs/benchmarks.md
    python bench/report_cost.py --baseline-iterations 10   # a shorter latency baseline

Report: a 6 x 4096x4096 float32 MLP (100.7M parameters, a 403 MB ONNX file) is built here,
pruned by `pruning.prune` (magnitude, 50%, global, latency off), and the report's stages are
timed on the upload and the saved artifact twice:
- baseline: the code path before the change, copied below as `baseline_*`: the artifact
  parsed twice (census, then the pruned weights), each pruned tensor encoded as dense, CSR and
  bitmask, the upload and the artifact zipped (deflate 6) and zstd-compressed whole, and
  magnitude histograms with explicit edges on float64 copies;
- now: `pruning.report.census` (one parse), `pruning.formats.storage_report` (sizes computed
  from counts, compressed sizes from a sample) and `pruning.html.magnitudes` (uniform bins);
  and the whole-file compression that `report.compressed_sizes: measured` asks for.
Latency: a BERT-like encoder (6 layers, 384 wide, 1536 FFN, 30522-token vocabulary, 22.7M
parameters, int64 `input_ids` and `attention_mask` of 128 tokens), pruned 50% layerwise;
dense and pruned timed at batch 1 and 32 by the old fixed loop (`baseline_latency`: 5 warm-up
and 50 timed iterations per batch size) and by `pruning.latency.measure_latency` with the
spec's defaults (a 4 s budget).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)
from benchmodels import bert_like_encoder, export_encoder  # noqa: E402

from pruning import prune  # noqa: E402
from pruning.formats import encodings as enc  # noqa: E402
from pruning.formats.compressed import (  # noqa: E402
    CompressedSizes,
    compressed_sizes,
    zipped_size,
    zstd_size,
)
from pruning.formats.storage import storage_report  # noqa: E402
from pruning.html.magnitudes import BINS, magnitude_histogram  # noqa: E402
from pruning.inputs import resolve_inputs  # noqa: E402
from pruning.latency import measure_latency  # noqa: E402
from pruning.models import ModelAdapter, open_model  # noqa: E402
from pruning.models.base import Array, Runner  # noqa: E402
from pruning.report import PrunedLayers, census  # noqa: E402
from pruning.spec import LatencySpec  # noqa: E402

SECTION = "## Report and latency cost"
MLP_WIDTH, MLP_LAYERS = 4096, 6
SEQ = 128
T = TypeVar("T")
LATENCY_HEADERS = ["path", "iterations", "stopped by", "time (s)", "speedup", "95% CI", "verdict"]


# --- the baseline: the report's code before this change, copied ------------------------------


def baseline_layer_sizes(array: npt.NDArray[np.generic]) -> dict[str, int]:
    """The old `storage._layer`: every encoding built to read its size."""
    sizes: dict[str, int] = {e: enc.encode(array, e).payload_bytes for e in enc.ENCODINGS}
    sizes["nonzeros"] = int(enc.nonzero_mask(array).sum())
    return sizes


def baseline_histogram_counts(tensors: Mapping[str, Array], top: float) -> list[int]:
    """The old `magnitudes._count`: float64 |w|, nonzeros picked out, explicit edges (sorts)."""
    edges = np.linspace(0.0, top, BINS + 1)
    bins = np.zeros(BINS, dtype=np.int64)
    for array in tensors.values():
        m = np.abs(np.asarray(array, dtype=np.float64)).reshape(-1)
        bins += np.histogram(m[m > 0], bins=edges)[0]
    return [int(c) for c in bins]


def baseline_latency(
    dense: Runner, pruned: Runner, feeds: dict[str, Array], iterations: int
) -> list[float]:
    """The old `latency._measure`: 5 warm-up pairs, then `iterations` interleaved pairs."""
    for _ in range(5):
        dense.run(feeds)
        pruned.run(feeds)
    speedups = []
    for i in range(iterations):
        times = {}
        order = [("dense", dense), ("pruned", pruned)]
        for name, runner in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            runner.run(feeds)
            times[name] = time.perf_counter() - start
        speedups.append(times["dense"] / times["pruned"])
    return speedups


# --- models ----------------------------------------------------------------------------------


def build_mlp(path: Path) -> Path:
    torch.manual_seed(0)
    layers = [m for _ in range(MLP_LAYERS) for m in (nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU())]
    return export(nn.Sequential(*layers).eval(), (torch.zeros(1, MLP_WIDTH),), ["x"], path)


def build_encoder(path: Path) -> Path:
    ids = np.zeros((2, SEQ), np.int64)
    return export_encoder(bert_like_encoder(), ids, np.ones_like(ids), path, dynamic_seq=False)


def export(net: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], path: Path) -> Path:
    axes: dict[str, dict[int, str]] = {name: {0: "batch"} for name in [*names, "out"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            example,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["out"],
            dynamic_axes=axes,
        )
    return path


# --- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


Stage = tuple[str, float, float]  # (stage, baseline s, now s)
Accuracy = tuple[str, str, int, int]  # (file, codec, sampled estimate, whole-file size)


def report_stages(
    upload: Path, artifact: Path, names: list[str]
) -> tuple[list[Stage], list[Accuracy]]:
    """Each stage of the report timed both ways, and the sampled sizes against the whole."""
    kind = type(open_model(upload))
    pruned = PrunedLayers(names, {}, [])
    before, read_before = timed(lambda: read(kind.iter_parameters(upload), names))
    old_read = timed(lambda: census(kind.iter_parameters(artifact), pruned))[1]
    after, old_read_2 = timed(lambda: read(kind.iter_parameters(artifact), names))
    found, new_read = timed(lambda: census(kind.iter_parameters(artifact), pruned))
    old_sizes = timed(lambda: [baseline_layer_sizes(a) for a in after.values()])[1]
    new_sizes = timed(lambda: storage_report(found.weights, {}))[1]
    files = {"upload": upload, "artifact": artifact}
    # The baseline compressed whole files, as `report.compressed_sizes: measured` still does.
    whole, old_zip = timed(lambda: {k: (zipped_size(f), zstd_size(f)) for k, f in files.items()})
    sampled, new_zip = timed(lambda: {k: compressed_sizes(f, "sampled") for k, f in files.items()})
    top = max(max(float(a.max()), -float(a.min())) for a in before.values())
    old_hist = timed(lambda: [baseline_histogram_counts(t, top) for t in (before, after)])[1]
    new_hist = timed(lambda: magnitude_histogram(before, found.weights))[1]
    rows = [
        ("read the saved model (census; pruned weights)", old_read + old_read_2, new_read),
        ("CSR and bitmask sizes (encoded; computed from counts)", old_sizes, new_sizes),
        ("zip + zstd of upload and artifact (whole; sampled)", old_zip, new_zip),
        ("magnitude histograms (explicit edges; uniform bins)", old_hist, new_hist),
        ("read the upload's weights for the histogram (unchanged)", read_before, read_before),
    ]
    total = ("report total", sum(r[1] for r in rows), sum(r[2] for r in rows))
    return [*rows, total], accuracy_rows(whole, sampled)


def accuracy_rows(
    whole: Mapping[str, tuple[int, int | None]], sampled: Mapping[str, CompressedSizes | None]
) -> list[Accuracy]:
    rows = []
    for label, (zip_bytes, zstd_bytes) in whole.items():
        estimate = sampled[label]
        assert estimate is not None
        rows.append((label, "zip", estimate.zip, zip_bytes))
        if estimate.zstd is not None and zstd_bytes is not None:
            rows.append((label, "zstd", estimate.zstd, zstd_bytes))
    return rows


def read(parameters: Iterator[tuple[str, Array]], names: list[str]) -> dict[str, Array]:
    wanted = set(names)
    return {name: values for name, values in parameters if name in wanted}


def latency_rows(dense: Path, pruned: Path, iterations: int) -> list[list[str]]:
    model = open_model(dense)
    kind = type(model)
    plan = resolve_inputs(model.signature.inputs, None, model.exact_shapes)
    with runners(kind, (dense, pruned), plan.names) as (d, p):
        rows = []
        total = 0.0
        for batch in (1, 32):
            feeds = plan.feeds(batch, seed=0)
            assert not isinstance(feeds, str)
            start = time.perf_counter()
            speedups = baseline_latency(d, p, feeds, iterations)
            seconds = time.perf_counter() - start
            total += seconds
            rows.append(
                [
                    f"baseline, batch {batch}",
                    f"5 + {iterations}",
                    "fixed",
                    f"{seconds:.1f}",
                    f"{np.median(speedups):.3f}",
                    "none",
                    "not judged",
                ]
            )
        rows.append(["baseline, both batch sizes", "", "", f"{total:.1f}", "", "", ""])
        now, seconds = timed(lambda: measure_latency(d, p, plan, LatencySpec(), kind.runtime))
        for r in now["results"]:
            ci = r["speedup_ci95"]
            rows.append(
                [
                    f"now, batch {r['batch_size']}",
                    f"{r['warmup']} + {r['iterations']}",
                    r["stopped"],
                    f"{r['time_s']:.1f}",
                    f"{r['speedup']:.3f}",
                    "none" if ci is None else f"{ci[0]:.3f} to {ci[1]:.3f}",
                    r["verdict"],
                ]
            )
        rows.append(
            [
                "now, both batch sizes",
                "",
                f"budget {now['budget_s']:g} s",
                f"{seconds:.1f}",
                "",
                "",
                "",
            ]
        )
    return rows


@contextmanager
def runners(
    kind: type[ModelAdapter], paths: tuple[Path, Path], names: list[str]
) -> Iterator[tuple[Runner, Runner]]:
    dense, pruned = (kind.open_runner(path, 1, names) for path in paths)
    try:
        yield dense, pruned
    finally:
        pruned.close()
        dense.close()


# --- the document ----------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def document(
    stages: list[Stage],
    accuracy: list[Accuracy],
    job: Mapping[str, float],
    latency: list[list[str]],
    command: str,
    load: tuple[float, float],
) -> str:
    stage_rows = [[name, f"{old:.2f}", f"{new:.2f}"] for name, old, new in stages]
    whole_s = next(old for name, old, _ in stages if name.startswith("zip"))
    stage_rows.append(["(on request: `measured`) zip + zstd, whole files", "", f"{whole_s:.2f}"])
    estimates = [
        [label, codec, f"{s:,}", f"{w:,}", f"{(s - w) / w:+.2%}"] for label, codec, s, w in accuracy
    ]
    laps = ", ".join(f"{name.removesuffix('_s')} {t:.2f} s" for name, t in job.items())
    return f"""{SECTION}

Command: `{command}` (load average {load[0]:.1f} before, {load[1]:.1f} after, on a 2-core
machine: figures are indicative, not best-of). Report stages on a
403 MB ONNX MLP (6 x 4096x4096 float32, pruned 50% global magnitude), seconds; the baseline
is the code before this change, copied into the script:

{table(["stage", "before (s)", "now (s)"], stage_rows)}

Compressed sizes from the sample (16 chunks of 256 KiB, 1% of the file) against the whole
file compressed:

{table(["file", "codec", "sampled estimate (B)", "whole file (B)", "error"], estimates)}

The whole `prune()` of that model now (latency off; `report` ends before the HTML page):
{laps}.

Latency stage on a BERT-like encoder (22.7M parameters, 6 x 384 wide, 128 tokens), dense and
pruned (50% layerwise magnitude) in ONNX Runtime, one thread; warm-up + timed iterations:

{table(LATENCY_HEADERS, latency)}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the docs section")
    parser.add_argument("--baseline-iterations", type=int, default=50)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    spec = {"sparsity": 0.5, "latency": None}
    with tempfile.TemporaryDirectory(prefix="shears-report-cost-") as scratch:
        work = Path(scratch)
        upload = build_mlp(work / "mlp.onnx")
        result = prune(upload, spec, work / "mlp-out")
        names = [layer["name"] for layer in result.report["sparsity"]["layers"]]
        artifact = result.artifacts["model"]
        timings = result.report["timings"]
        stages, accuracy = report_stages(upload, artifact, names)
        encoder = build_encoder(work / "encoder.onnx")
        pruned = prune(encoder, {**spec, "scope": "layerwise"}, work / "enc-out")
        latency = latency_rows(encoder, pruned.artifacts["model"], args.baseline_iterations)
    command = "python bench/report_cost.py" + (
        f" --baseline-iterations {args.baseline_iterations}"
        if args.baseline_iterations != 50
        else ""
    )
    load = (load_before, os.getloadavg()[0])
    text = document(stages, accuracy, timings, latency, command, load)
    print(text)
    if args.write:
        replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
