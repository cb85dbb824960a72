"""Load on a real stack: N concurrent clients creating jobs and polling them, then M
concurrent large uploads; prints (and writes into docs/benchmarks.md) p50/p99 latency of
createJob and getJob, the API's resident memory during the uploads, and jobs lost.

    python bench/load.py                        # 50 clients, 4 x 200 MB uploads, writes the doc
    python bench/load.py --clients 10 --upload-mb 20 --no-write

It starts a private redis-server, `shears api` and `shears worker` processes exactly as the
tests do (tests/support), on a fresh data dir. A job is lost if it was accepted (202) and
does not reach a final status before the deadline, or vanishes from the job store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdoc import replace_section  # noqa: E402  (bench/ is on sys.path)
from memory import PeakSampler, status_bytes  # noqa: E402

from tests.support import shears  # noqa: E402
from tests.support.models import fast_spec, tiny_onnx  # noqa: E402
from tests.support.processes import ProcessRegistry  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Load: concurrent clients and uploads"
FINAL = ("succeeded", "failed", "cancelled")
BOUNDARY = "shears-load-boundary"


@dataclass
class Timings:
    create_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)


async def client(http: httpx.AsyncClient, model_id: str, t: Timings, deadline: float) -> None:
    start = time.perf_counter()
    response = await http.post("/v1/jobs", json={"model_id": model_id, "spec": fast_spec()})
    t.create_ms.append((time.perf_counter() - start) * 1000)
    if response.status_code != 202:
        raise RuntimeError(f"createJob answered {response.status_code}: {response.text}")
    job_id = response.json()["id"]
    t.accepted.append(job_id)
    while time.monotonic() < deadline:
        start = time.perf_counter()
        polled = await http.get(f"/v1/jobs/{job_id}")
        t.get_ms.append((time.perf_counter() - start) * 1000)
        status = polled.json()["status"]
        t.statuses[job_id] = status
        if status in FINAL:
            return
        await asyncio.sleep(0.5)


async def jobs_phase(url: str, model_id: str, clients: int, timeout_s: float) -> Timings:
    timings = Timings()
    deadline = time.monotonic() + timeout_s
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http, model_id, timings, deadline) for _ in range(clients)))
    return timings


async def _body(size: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    chunk = os.urandom(1 << 20)
    for _ in range(size // len(chunk)):
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def uploads_phase(url: str, count: int, size: int) -> list[tuple[int, float]]:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}

    async def one(http: httpx.AsyncClient) -> tuple[int, float]:
        start = time.perf_counter()
        response = await http.post("/v1/models", content=_body(size), headers=headers)
        return response.status_code, time.perf_counter() - start

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        return list(await asyncio.gather(*(one(http) for _ in range(count))))


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(args: argparse.Namespace) -> str:
    root = Path(tempfile.mkdtemp(prefix="shears-load-"))
    registry = ProcessRegistry(log_dir=root / "logs")
    try:
        redis_server = RedisServer(registry=registry, data_dir=root / "redis").start()
        env = shears.shears_env(root / "data", broker_url=redis_server.url)
        for _ in range(args.workers):
            shears.start_worker(registry, env, concurrency=1)
        api = shears.start_api(registry, env)
        with api.client() as http:
            model = tiny_onnx(root / "mlp.onnx")
            with model.open("rb") as f:
                model_id = http.post("/v1/models", files={"file": f}).json()["id"]
        started = time.monotonic()
        timings = asyncio.run(jobs_phase(api.url, model_id, args.clients, args.job_timeout))
        jobs_s = time.monotonic() - started
        pid = api.process.pid
        sampler = PeakSampler(lambda: status_bytes(pid, "VmRSS"), 0.05)
        before = status_bytes(pid, "VmRSS")
        with sampler:
            uploads = asyncio.run(uploads_phase(api.url, args.uploads, args.upload_mb << 20))
        with api.client() as http:
            stored = {j: http.get(f"/v1/jobs/{j}").json()["status"] for j in timings.accepted}
        lost = [j for j in timings.accepted if stored.get(j) not in FINAL]
        return report(args, timings, jobs_s, uploads, before, sampler.peak, stored, lost)
    finally:
        registry.stop_all()


def report(
    args: argparse.Namespace,
    t: Timings,
    jobs_s: float,
    uploads: list[tuple[int, float]],
    rss_before: int,
    rss_peak: int,
    stored: dict[str, str],
    lost: list[str],
) -> str:
    mib = 1024**2
    succeeded = sum(1 for s in stored.values() if s == "succeeded")
    lines = [
        SECTION,
        "",
        f"{args.clients} concurrent clients each create a job (tiny ONNX MLP, the test suite's",
        f"fast spec) and poll it every 0.5 s until it ends, on {args.workers} worker(s); then",
        f"{args.uploads} concurrent streamed uploads of {args.upload_mb} MB each. Real Redis,",
        "`shears api` (uvicorn, one process) and `shears worker`, SQLite job store. Measured with:",
        "",
        f"    python bench/load.py --clients {args.clients} --uploads {args.uploads} "
        f"--upload-mb {args.upload_mb} --workers {args.workers}",
        "",
        f"on {platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| createJob p50 / p99 | {percentile(t.create_ms, 50):.1f} ms / "
        f"{percentile(t.create_ms, 99):.1f} ms ({len(t.create_ms)} calls) |",
        f"| getJob p50 / p99 | {percentile(t.get_ms, 50):.1f} ms / "
        f"{percentile(t.get_ms, 99):.1f} ms ({len(t.get_ms)} calls) |",
        f"| jobs accepted / succeeded / lost | {len(t.accepted)} / {succeeded} / {len(lost)} |",
        f"| time for all jobs to end | {jobs_s:.1f} s |",
        f"| uploads (status: count) | {_statuses(uploads)}; "
        f"slowest {max(s for _, s in uploads):.1f} s |",
        f"| API RSS before uploads / peak during | {rss_before / mib:.0f} MiB / "
        f"{rss_peak / mib:.0f} MiB (uploads total {args.uploads * args.upload_mb} MB) |",
        "",
        "The uploads stream to disk in 1 MiB pieces while being hashed, so the API's memory",
        "does not grow with their size; they are random bytes, refused (422) once a worker",
        "has looked at them, which does not change what the API held while receiving them.",
        "",
    ]
    return "\n".join(lines)


def _statuses(uploads: list[tuple[int, float]]) -> str:
    counts: dict[int, int] = {}
    for status, _ in uploads:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{s}: {n}" for s, n in sorted(counts.items()))


def write_section(text: str) -> None:
    replace_section(SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--job-timeout", type=float, default=900.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = run(args)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
