"""Models of real size through the HTTP API: upload, a magnitude 50% global job split by stage,
download, and the peak anonymous memory (RssAnon, summed over `shears serve` and every
process under it, sampled every 0.2 s) against a plain `cp` of the same bytes for scale.

The models are transformer-shaped MatMul blocks (d x 4d up, 4d x d down, ReLU, residual),
written with onnx.helper straight to disk (no torch export, no second copy in memory):

    python bench/large_models.py                      # 1 GB single file, 4 GB .tar archive
    python bench/large_models.py --sizes 1 --write    # 1 GB only; replace the section in
                                                      # docs/benchmarks.md

Issue 13's goals: a job in at most 2x the `cp` time plus a constant, peak anonymous memory
under 1.5 GB whatever the model size. Models are generated into a temporary folder and
deleted after.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)
from job_time import served, wait_model  # noqa: E402
from memory import PeakSampler, tree_anon_bytes  # noqa: E402

SECTION = "## Models of real size through the HTTP API"
WIDTH = 2048  # d: each block holds 2 x 4d^2 = 33.5M float32 parameters, 128 MiB
SPEC = {"method": {"name": "magnitude"}, "sparsity": 0.5, "scope": "global"}
NOTES = """
Load average during the run: 9-11 on 2 cores (five other helpers' tests and benchmarks on
the same machine), so every time here is inflated, `cp` included. The `cp` column is
`shutil.copyfile` of the upload, which returns once the bytes are in the page cache.

Both jobs ran in the streaming engine (`pruning/streaming/`, a magnitude 50% global job):
the graph is read without its weights, each tensor through a mapping of its own byte range,
the cut chosen by the streaming selection of `pruning/masks/kth.py`, and the output is the
upload's file (or, above `SHEARS_MEASURE_MEMORY_BYTES`, the upload's `.tar` itself) copied by
the kernel with each pruned range rewritten in place. Neither model fits the default
measurement budget (1 GiB for two runtime copies), so `benchmark` is ~0 s and the report
says latency and fidelity were not measured, and why.

- **Memory: met.** Peak anonymous memory of all service and worker processes was 0.59 GB
  for the 1 GiB model and 0.78 GB for the 4 GiB archive (goal: under 1.5 GB whatever the
  size); the engine's own share is tens of MB (`tests/engine/test_streaming_engine.py`
  holds Python's peak for a 64 MiB model under a quarter of it; measured 6 MiB). Before
  this work: 3.65 GB for the 1 GiB model, and the 4 GiB archive was refused at upload.
  Where the memory goes, RssAnon of one `prune()` sampled every 20 ms by stage on a 256 MiB
  single-file model (a throwaway script, not committed; budget raised so the benchmark
  runs), above a 296 MiB baseline: in-memory engine +532 MiB once loaded (the parsed
  `ModelProto` with every weight, and the prunable weights copied to numpy), +825 MiB at its
  peak while saving (the serialized initializers on top) and through the benchmark;
  streaming engine +17 MiB through pruning and saving, then +690 MiB only when the two ONNX
  Runtime sessions of the benchmark open (2.7x the model: why they are gated by the budget).
  At upload the checker given the file path read the whole file (now: the graph against a
  sparse stand-in), and the runtime probe loaded every weight (now: only within the budget).
- **Time: not met.** The 4 GiB job took 77.6 s against 2 x 6.0 s of `cp`. Of that, the
  engine took 46.5 s (prune 7.8: one pass checking for NaN and one counting pass of the
  selection; save 37.4: the kernel's copy of 4.3 GB, every pruned page rewritten through a
  mapping, and the report's counts), and the worker the rest, mostly storing the 4.3 GB
  artifact in the blob store (a second full copy, with fsync and sha256). The 1 GiB job took
  17.2 s, of which the engine 8.5 s. A constant of ~8 s (the sandboxed child, torch's
  import) is in every job.
- **16 GiB: not run.** It needs about 80 GB of disk at once (the upload, its blob, the
  pruned archive, the artifact's blob, the download), more than the shared disk had free.
"""


def write_blocks(path: Path, gigabytes: float, external: bool) -> Path:
    """Blocks of MatMuls until the weights reach `gigabytes` GiB; one data file if external."""
    blocks = max(1, round(gigabytes * 1024**3 / (8 * WIDTH * WIDTH * 4)))
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for b in range(blocks):
        for name, shape in ((f"blocks.{b}.up.weight", (WIDTH, 4 * WIDTH)),
                            (f"blocks.{b}.down.weight", (4 * WIDTH, WIDTH))):  # fmt: skip
            values = rng.standard_normal(shape, dtype=np.float32) * 0.02
            inits.append(numpy_helper.from_array(values, name))
        up, down, prefix = f"blocks.{b}.up.weight", f"blocks.{b}.down.weight", f"/blocks.{b}"
        nodes += [
            helper.make_node("MatMul", [x, up], [f"h{b}"], name=f"{prefix}/up/MatMul"),
            helper.make_node("Relu", [f"h{b}"], [f"r{b}"], name=f"{prefix}/Relu"),
            helper.make_node("MatMul", [f"r{b}", down], [f"y{b}"], name=f"{prefix}/down/MatMul"),
            helper.make_node("Add", [x, f"y{b}"], [f"z{b}"], name=f"{prefix}/Add"),
        ]
        x = f"z{b}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", WIDTH]) for n in "xy"]
    graph = helper.make_graph(nodes, "blocks", io[:1], io[1:], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data" if external else None,
    )
    return path


@dataclass(frozen=True)
class Row:
    model: str
    size_gb: float
    cp_s: float
    upload_s: float
    job_s: float
    stages: dict[str, float]
    download_s: float
    peak_anon_gb: float
    status: str


def measure(upload_file: Path, label: str, work: Path) -> Row:
    size = upload_file.stat().st_size
    began = time.perf_counter()
    shutil.copyfile(upload_file, work / "cp-copy")
    cp_s = time.perf_counter() - began
    (work / "cp-copy").unlink()
    with (
        served(ROOT, work / f"{label}.log") as (url, pid),
        PeakSampler(lambda: tree_anon_bytes(pid), 0.2) as peak,
        httpx.Client(base_url=url, timeout=3600) as http,
    ):
        began = time.perf_counter()
        with upload_file.open("rb") as f:
            response = http.post("/v1/models", files={"file": (upload_file.name, f)})
        if response.status_code >= 400:  # a refusal is a result too: its code and reason
            problem = response.json()
            refused = f"upload refused: {problem.get('code')}: {problem.get('detail')}"
            return Row(label, size / 1e9, cp_s, time.perf_counter() - began, 0.0, {}, 0.0,
                       peak.peak / 1024**3, refused)  # fmt: skip
        model_id = response.json()["id"]
        wait_model(http, model_id)
        upload_s = time.perf_counter() - began
        job = http.post("/v1/jobs", json={"model_id": model_id, "spec": SPEC}).json()
        began = time.perf_counter()
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
            job = http.get(f"/v1/jobs/{job['id']}").json()
        job_s = time.perf_counter() - began
        stages: dict[str, float] = {}
        download_s = 0.0
        if job["status"] == "succeeded":
            stages = http.get(f"/v1/jobs/{job['id']}/report").json()["timings"]
            download_s = timed_download(f"{url}/v1/jobs/{job['id']}/artifacts/model", work)
        status = job["status"] if job["status"] == "succeeded" else str(job.get("error"))
    return Row(label, size / 1e9, cp_s, upload_s, job_s, stages, download_s,
               peak.peak / 1024**3, status)  # fmt: skip


def timed_download(url: str, work: Path) -> float:
    """With curl: httpx's pure-Python HTTP/1.1 reads about 20 MB/s here, curl 1 GB/s, and
    the service's speed is what is measured."""
    began = time.perf_counter()
    target = work / "download"
    subprocess.run(["curl", "-sf", "-o", str(target), url], check=True)
    seconds = time.perf_counter() - began
    target.unlink()
    return seconds


def table(rows: list[Row]) -> str:
    lines = [
        "| model | size (GB) | cp (s) | upload + validation (s) | job (s) | load | prune | save "
        "| benchmark | report | download (s) | peak RssAnon, all processes (GB) | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, ran = r.stages, r.status == "succeeded"
        stages = ("load_s", "prune_s", "save_s", "benchmark_s", "report_s")
        cells = [f"{s[k]:.1f}" if k in s else "-" for k in stages]
        job = f"{r.job_s:.1f}" if r.job_s else "-"
        download = f"{r.download_s:.1f}" if ran else "-"
        lines.append(
            f"| {r.model} | {r.size_gb:.2f} | {r.cp_s:.1f} | {r.upload_s:.1f} | {job} | "
            + " | ".join(cells)
            + f" | {download} | {r.peak_anon_gb:.2f} | {r.status} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,4", help="GiB of weights: 1 is a single file, "
                        "larger ones an external-data .tar")  # fmt: skip
    parser.add_argument("--write", action="store_true", help="replace the docs section")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="shears-large-") as tmp:
        work = Path(tmp)
        for size in (float(s) for s in args.sizes.split(",")):
            external = size > 1.5  # protobuf's 2 GB limit: bigger ones need data files
            folder = work / f"m{size:g}"
            folder.mkdir()
            model = write_blocks(folder / "model.onnx", size, external)
            if external:
                upload_file = work / f"model-{size:g}gb.tar"
                with tarfile.open(upload_file, "w") as archive:
                    for file in sorted(folder.iterdir()):
                        archive.add(file, file.name)
                shutil.rmtree(folder)
                label = f"{size:g} GiB of weights, external data in a .tar"
            else:
                upload_file = model
                label = f"{size:g} GiB of weights, one .onnx file"
            rows.append(measure(upload_file, label, work))
            print(table(rows[-1:]), flush=True)
            upload_file.unlink()
    text = table(rows)
    print(text)
    if args.write:
        command = f"python bench/large_models.py --sizes {args.sizes}"
        replace_section(SECTION, f"{SECTION}\n\n`{command}` (2 cores, 24 GiB):\n\n{text}\n{NOTES}")


if __name__ == "__main__":
    main()
