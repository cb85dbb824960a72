"""Job time through the HTTP API, queued -> succeeded, split by stage, for a transformer of
real shape: a BERT-like encoder (6 layers, 384 wide, 1536 FFN, 30522-token vocabulary, about
22.7M parameters; integer `input_ids` and `attention_mask` inputs) built and exported to ONNX
here, with random weights (the shapes set the cost), and 128 calibration samples of 128 tokens.

    python bench/job_time.py                      # this tree only
    python bench/job_time.py --before cec8647     # the same jobs on an earlier commit, in the
                                                  # same run, side by side
    python bench/job_time.py --write              # also replace the section in docs/benchmarks.md
    python bench/job_time.py --shape base --methods magnitude,wanda
                                                  # BERT-base's shape: 12 layers, 768 wide,
                                                  # 108.9M parameters, 436 MB of ONNX

Each tree is served by its own `shears serve` (API + worker, embedded broker, a fresh data
dir), started from that tree exactly as `make run` starts it; the jobs run one at a time with
the service's defaults apart from the method, 50% layerwise, and the calibration data.
"""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)
from benchmodels import BASE, SENTENCE, VOCAB, bert_like_encoder, export_encoder  # noqa: E402

from tests.support.processes import free_port  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
# --shape: the encoder, and the docs section its table stands in.
SHAPES = {
    "sentence": (SENTENCE, "## Job time through the HTTP API (transformer encoder)"),
    "base": (BASE, "## Job time through the HTTP API (BERT-base shape, 436 MB)"),
}
FINAL = ("succeeded", "failed", "cancelled")
METHODS = ("magnitude", "wanda", "sparsegpt")
# Issue 14's goals on this 2-core machine, end to end and for the pruning stage alone.
GOALS = {"magnitude": (10.0, None), "wanda": (15.0, None), "sparsegpt": (20.0, 10.0)}
SEQ, SAMPLES = 128, 128


def build_encoder(directory: Path, shape: str = "sentence") -> tuple[Path, Path]:
    """The ONNX encoder and its calibration `.npz` (token ids and masks of varied lengths)."""
    net = bert_like_encoder(SHAPES[shape][0])
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, VOCAB, size=(SAMPLES, SEQ), dtype=np.int64)
    lengths = rng.integers(SEQ // 4, SEQ + 1, size=SAMPLES)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0
    model = export_encoder(net, ids[:2], mask[:2], directory / "encoder.onnx")
    data = directory / "calibration.npz"
    np.savez(data, input_ids=ids, attention_mask=mask)
    return model, data


@contextmanager
def served(tree: Path, log: Path) -> Iterator[tuple[str, int]]:
    """`shears serve` from ``tree`` (its own sources, first on PYTHONPATH) on a free port:
    its URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEARS_")}
    env["PYTHONPATH"] = str(tree)
    with tempfile.TemporaryDirectory(prefix="shears-jobtime-") as data:
        env["SHEARS_DATA_DIR"] = data
        argv = [sys.executable, "-m", "shears_cli", "serve", "--port", str(port)]
        with log.open("w") as out:
            process = subprocess.Popen(argv, cwd=tree, env=env, stdout=out, stderr=out)
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_healthy(url, process)
                yield url, process.pid
            finally:
                process.terminate()
                process.wait(timeout=60)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("shears serve exited before answering")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("shears serve did not become ready in 120 s")


def upload(http: httpx.Client, route: str, path: Path) -> str:
    with path.open("rb") as f:
        response = http.post(route, files={"file": (path.name, f)})
    response.raise_for_status()
    return str(response.json()["id"])


def wait_model(http: httpx.Client, model_id: str) -> None:
    for _ in range(600):
        status = http.get(f"/v1/models/{model_id}").json()["status"]
        if status != "validating":
            if status != "ready":
                raise RuntimeError(f"model {model_id} is {status}")
            return
        time.sleep(0.25)
    raise RuntimeError("the model was not validated in time")


@dataclass(frozen=True)
class JobTime:
    method: str
    total_s: float
    timings: dict[str, float]
    quality: str
    latency: str = ""


def run_job(
    http: httpx.Client, model_id: str, dataset_id: str, method: str, shapes_from_data: bool
) -> JobTime:
    """``shapes_from_data``: a calibrated job gives no input_shapes (the tree sizes the
    symbolic sequence axis from the calibration data); earlier trees need them."""
    spec: dict[str, Any] = {"method": {"name": method}, "sparsity": 0.5, "scope": "layerwise"}
    if method == "magnitude" or not shapes_from_data:
        # The sequence axis is symbolic in the export: the benchmark needs a length.
        spec["input_shapes"] = {"input_ids": [1, SEQ], "attention_mask": [1, SEQ]}
    if method != "magnitude":
        spec["calibration"] = {"dataset_id": dataset_id, "samples": SAMPLES}
    start = time.monotonic()
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    response.raise_for_status()
    job_id = response.json()["id"]
    while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in FINAL:
        time.sleep(0.2)
    total = time.monotonic() - start
    if job["status"] != "succeeded":
        raise RuntimeError(f"{method} job {job['status']}: {job.get('error')}")
    report = http.get(f"/v1/jobs/{job_id}/report").json()
    print(f"{method}: {total:.1f} s, timings {report.get('timings')}", flush=True)
    timings = dict(report.get("timings", {}))
    return JobTime(method, total, timings, _quality(report), _latency(report.get("latency")))


def _latency(latency: dict[str, Any] | None) -> str:
    """What the latency stage measured: per batch size its iterations and the speedup's
    interval, or that it was not measured and the predicted iteration time."""
    if not latency:
        return "none"
    parts = [
        f"b{r['batch_size']}: {r['iterations']} it, {r['stopped']}, "
        f"speedup {r['speedup']} {r['speedup_ci95']}"
        for r in latency.get("results", [])
    ]
    for skipped in latency.get("skipped", []):
        predicted = skipped.get("predicted_iteration_s")
        why = f"not measured (iteration ~{predicted} s)" if predicted else "not measured"
        parts.append(f"b{skipped['batch_size']}: {why}")
    spent = latency.get("spent_s", 0) + latency.get("fidelity_s", 0)
    return "; ".join(parts) + f" ({spent:.1f} of {latency.get('budget_s')} s)"


def _quality(report: dict[str, Any]) -> str:
    fidelity = (report.get("quality") or {}).get("fidelity") or {}
    calibration = (report.get("calibration") or {}).get("fidelity") or {}
    cosine = calibration.get("output_cosine", fidelity.get("output_cosine"))
    return "" if cosine is None else f"{cosine:.4f}"


def measure_tree(
    tree: Path, model: Path, data: Path, log: Path, methods: list[str], shapes_from_data: bool
) -> list[JobTime]:
    with served(tree, log) as (url, _), httpx.Client(base_url=url, timeout=600) as http:
        model_id = upload(http, "/v1/models", model)
        wait_model(http, model_id)
        dataset_id = upload(http, "/v1/datasets", data)
        return [run_job(http, model_id, dataset_id, method, shapes_from_data) for method in methods]


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="shears-before-") as parent:
        path = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT)


STAGES = ("load_s", "prune_s", "save_s", "benchmark_s", "report_s")
NOTES = """`whole job` is the client's time from `createJob` to `succeeded` (0.2 s polls); the stage
columns are the engine's (`report.timings`), and `outside` (whole job less the stages) is the
worker's and the client's: the queue, placing the inputs, the 0.2 s polls, storing the artifacts
and, with a cold child, a fresh process importing torch and ONNX Runtime (2-3 s on this machine,
more under load) before the engine starts. This tree's worker starts each job's child after the
previous task, so the job finds it warm (`worker/warm.py`; section "Engine child start per job").
`benchmark_s` holds fidelity on synthetic inputs and latency within `latency.budget_s` (4 s by
default; a batch size predicted past it is reported not measured, never run), and the fidelity
on the calibration samples (the pruned artifact on 128 samples, once for `quality.fidelity`
and `calibration.fidelity`; the upload's outputs come from Wanda's own capture forward, the
same graph on the same samples, and from a forward of the upload for SparseGPT, whose segment
forward runs weights pruned along the way: the report's `dense_outputs` says which);
calibrated jobs in this tree give no `input_shapes`: the sequence length comes from the
calibration data."""


def table(rows: dict[str, list[JobTime]], with_goals: bool = True) -> str:
    """`with_goals`: issue 14's goals were set for the sentence encoder only."""
    header = (
        "| method | tree | whole job (s) | goal (s) | "
        + " | ".join(STAGES)
        + " | outside (s) | output cosine (report) | latency measured (report) |"
    )
    lines = [header, "|" + "---|" * (7 + len(STAGES))]
    for method in METHODS:
        for tree, jobs in rows.items():
            job = next((j for j in jobs if j.method == method), None)
            if job is None:
                continue
            whole, prune_goal = GOALS[method]
            goal = f"<= {whole:g}" + (f" (prune <= {prune_goal:g})" if prune_goal else "")
            goal = goal if with_goals else "-"
            stages = " | ".join(f"{job.timings.get(s, float('nan')):.2f}" for s in STAGES)
            outside = job.total_s - sum(job.timings.get(s, 0.0) for s in STAGES)
            lines.append(
                f"| {method} | {tree} | {job.total_s:.1f} | {goal} | {stages} | {outside:.1f} "
                f"| {job.quality} | {job.latency} |"
            )
    return "\n".join(lines)


CHILD_START_SECTION = "## Engine child start per job (warm child)"


def child_start(runs: int) -> str:
    """The worker's own cost per job, outside the engine: the tests' tiny MLP job (fast_spec)
    run by `worker.runner.run_job` in this process, from the claim to the first progress
    event of the engine child and to `succeeded`, with a cold child (started for the job)
    and with a warm one (worker/warm.py, started and idle before the job is claimed)."""
    from shears_config import Settings
    from tests.support.models import fast_spec, tiny_onnx
    from tests.worker.factories import add_job, add_ready_model
    from worker import warm
    from worker.context import WorkerContext
    from worker.runner import run_job as run_delivery
    from worker.workdir import work_root

    rows = []
    with tempfile.TemporaryDirectory(prefix="shears-childstart-") as scratch:
        ctx = WorkerContext.from_settings(Settings(data_dir=Path(scratch) / "data"))
        model = add_ready_model(ctx, tiny_onnx(Path(scratch) / "mlp.onnx"))
        for mode in ("cold", "warm"):
            first, whole = [], []
            for _ in range(runs):
                if mode == "warm":
                    warm.enable(work_root(ctx.settings.data_dir))
                    _wait_idle(warm.spare_pid())
                job = add_job(ctx, model, fast_spec())
                start = time.monotonic()
                outcome = run_delivery(ctx, job.id)
                whole.append(time.monotonic() - start)
                warm.disable()
                if outcome.status != "succeeded":
                    raise RuntimeError(f"{mode} job: {outcome}")
                done = ctx.store.get_job(None, job.id)
                events = ctx.store.list_events(job.id)
                assert done.started_at is not None
                first.append((events[0].at - done.started_at).total_seconds())
            rows.append(
                f"| {mode} | {runs} | {np.median(first):.2f} ({min(first):.2f}-{max(first):.2f})"
                f" | {np.median(whole):.2f} ({min(whole):.2f}-{max(whole):.2f}) |"
            )
    header = (
        "| engine child | runs | claim -> first progress event (s), median (range) "
        "| claim -> succeeded (s), median (range) |\n|---|---|---|---|"
    )
    return header + "\n" + "\n".join(rows)


def _wait_idle(pid: int | None) -> None:
    """Until the spare has finished importing: its CPU time stops growing."""
    if pid is None:
        raise RuntimeError("no warm child started")
    last = -1
    while True:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        if used == last and used > 0:
            return
        last = used
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a git ref to measure beside this tree")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="sentence")
    parser.add_argument(
        "--child-start",
        type=int,
        metavar="RUNS",
        help="only measure the worker's engine child start, cold against warm, RUNS jobs each",
    )
    args = parser.parse_args()
    if args.child_start:
        load_before = _load_average()
        result = child_start(args.child_start)
        load = f"{load_before} -> {_load_average()}"
        print(result)
        print(f"load average (1 min) at start and end: {load}")
        if args.write:
            command = f"python bench/job_time.py --child-start {args.child_start} --write"
            body = (
                f"{CHILD_START_SECTION}\n\nCommand: `{command}` ({os.cpu_count()} cores; load "
                f"average {load}).\n\n{result}\n\n{inspect.cleandoc(child_start.__doc__ or '')}\n"
            )
            replace_section(CHILD_START_SECTION, body, DOC)
        return
    methods = args.methods.split(",")
    rows: dict[str, list[JobTime]] = {}
    with tempfile.TemporaryDirectory(prefix="shears-jobtime-models-") as scratch:
        model, data = build_encoder(Path(scratch), args.shape)
        print(f"model: {model.stat().st_size / 2**20:.1f} MiB ONNX", flush=True)
        loads = [_load_average()]
        if args.before:
            with worktree(args.before) as old:
                rows[f"before ({args.before})"] = measure_tree(
                    old, model, data, Path(scratch) / "before.log", methods, False
                )
            loads.append(_load_average())
        rows["this tree"] = measure_tree(
            ROOT, model, data, Path(scratch) / "after.log", methods, True
        )
        loads.append(_load_average())
    result = table(rows, with_goals=args.shape == "sentence")
    load = " -> ".join(loads)
    print(result)
    print(f"load average (1 min) at start, between trees, at end: {load}")
    if args.write:
        section = SHAPES[args.shape][1]
        command = "python bench/job_time.py" + (f" --before {args.before}" if args.before else "")
        if args.shape != "sentence":
            command += f" --shape {args.shape} --methods {args.methods}"
        body = (
            f"{section}\n\nCommand: `{command} --write` ({os.cpu_count()} cores; load average "
            f"{load} at the start, between the trees and at the end: the machine is shared).\n\n"
            f"{result}\n\n{NOTES}\n"
        )
        replace_section(section, body, DOC)


def _load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
