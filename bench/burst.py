"""A burst of createJob: C concurrent clients each create N jobs back to back, against one
tree of the code (this one, or a named git revision extracted with `git archive`).

The stack is real (redis-server, `shears api`, a worker on the inspect queue only, so no job
runs and takes the cores while the burst is measured). The load generator is a minimal
keep-alive HTTP/1.1 client on asyncio streams: it runs on the same two cores as the API,
so its own cost counts against the goal, and httpx would cost several times more per call.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import shears  # noqa: E402
from tests.support.models import fast_spec, tiny_onnx  # noqa: E402
from tests.support.processes import (  # noqa: E402
    ProcessRegistry,
    descendants,
    free_port,
    python_argv,
)

GOAL_JOBS_S = 400.0
GOAL_P99_MS = 150.0


@dataclass(frozen=True)
class BurstResult:
    tree: str
    jobs: int
    seconds: float
    latencies_ms: list[float]
    client_means_ms: list[float]  # each client's mean: two levels when processes are uneven
    api_processes: int
    cpu_s: dict[str, float]  # CPU seconds during the burst: api, load generator, redis
    redis_commands: int  # every client's, the idle inspect worker's polls included

    @property
    def jobs_s(self) -> float:
        return self.jobs / self.seconds

    def cpu_ms_per_job(self, who: str) -> float:
        return self.cpu_s[who] * 1000 / self.jobs

    @property
    def capacity_jobs_s(self) -> float:
        """Jobs/s two otherwise idle cores could sustain at this CPU cost per job (derived):
        the cores shared by all three, and each API process held to one core by the GIL."""
        cores = float(os.cpu_count() or 1)
        shared = cores * self.jobs / sum(self.cpu_s.values())
        api_bound = self.api_processes * self.jobs / self.cpu_s["api"]
        return min(shared, api_bound)

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]


class RawClient:
    """One keep-alive connection; POSTs a fixed JSON body and reads a Content-Length reply."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _one_client(port: int, body: bytes, count: int, latencies: list[float]) -> None:
    """`latencies`: this client's own list, appended to."""
    client = RawClient(port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            status, reply = await client.post("/v1/jobs", body)
            latencies.append((time.perf_counter() - start) * 1000)
            if status != 202:
                raise RuntimeError(f"createJob answered {status}: {reply[:300]!r}")
    finally:
        client.close()


async def _burst(
    port: int, body: bytes, clients: int, per_client: int
) -> tuple[float, list[list[float]]]:
    each: list[list[float]] = [[] for _ in range(clients)]
    start = time.perf_counter()
    await asyncio.gather(*(_one_client(port, body, per_client, mine) for mine in each))
    return time.perf_counter() - start, each


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (fields 14 and 15 of /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _redis_commands(url: str) -> int:
    """Commands Redis has run so far (INFO commandstats, summed over commands)."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _api_processes(pid: int) -> list[int]:
    """The process that serves, or uvicorn's workers when it supervises some (its other
    child, multiprocessing's resource tracker, serves nothing)."""
    children = [
        p for p in descendants(pid)
        if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
    ]  # fmt: skip
    return children or [pid]


def _cpu_now(api_pid: int, redis_pid: int) -> dict[str, float]:
    own = os.times()
    return {
        "api": cpu_seconds([api_pid, *descendants(api_pid)]),
        "load generator": own.user + own.system,
        "redis": cpu_seconds([redis_pid]),
    }


def extract_tree(revision: str, into: Path) -> Path:
    """The files of `revision` (no .git), so its `shears api` runs as it was committed."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=ROOT, check=True, capture_output=True
    ).stdout
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    tar_path.unlink()
    return into


def run_burst(
    tree: Path,
    label: str,
    redis_url: str,
    redis_pid: int,
    work: Path,
    clients: int,
    per_client: int,
    api_workers: int | None,
    warm_up: int,
) -> BurstResult:
    """Start the tree's API and an inspect-only worker, upload a model, warm up, burst."""
    registry = ProcessRegistry(log_dir=work / "logs")
    try:
        env = shears.shears_env(work / "data", broker_url=redis_url)
        env["PYTHONPATH"] = str(tree)
        env.pop("SHEARS_API_WORKERS")  # the tree's own default unless asked
        if api_workers is not None:
            env["SHEARS_API_WORKERS"] = str(api_workers)
        argv = python_argv("-m", "shears_cli", "worker", "--concurrency", "1",
                           "--queues", "shears.inspect", "--loglevel", "info")  # fmt: skip
        worker = registry.start("worker", argv, env, cwd=tree)
        shears.wait_until_worker_ready(worker)
        port = free_port()
        argv = python_argv("-m", "shears_cli", "api", "--host", "127.0.0.1", "--port", str(port))
        api = shears.ApiServer(process=registry.start("api", argv, env, cwd=tree), port=port)
        api.process.wait_for(api.healthy, timeout=shears.STARTUP_TIMEOUT_S, what="healthy")
        model_id = _ready_model(api, work)
        body = json.dumps({"model_id": model_id, "spec": fast_spec()}).encode()
        asyncio.run(_burst(port, body, clients, warm_up))  # on connections closed after
        commands = _redis_commands(redis_url)
        before = _cpu_now(api.process.pid, redis_pid)
        seconds, each = asyncio.run(_burst(port, body, clients, per_client))
        latencies = [ms for mine in each for ms in mine]
        means = [statistics.fmean(mine) for mine in each]
        after = _cpu_now(api.process.pid, redis_pid)
        commands = _redis_commands(redis_url) - commands - 1  # less our own INFO
        cpu = {who: after[who] - before[who] for who in before}
        processes = len(_api_processes(api.process.pid))
        return BurstResult(
            label, len(latencies), seconds, latencies, means, processes, cpu, commands
        )
    finally:
        registry.stop_all()


def _ready_model(api: shears.ApiServer, work: Path) -> str:
    with api.client() as http:
        model = tiny_onnx(work / "mlp.onnx")
        with model.open("rb") as f:
            model_id = str(http.post("/v1/models", files={"file": f}).json()["id"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if http.get(f"/v1/models/{model_id}").json()["status"] == "ready":
                return model_id
            time.sleep(0.2)
    raise RuntimeError("the model never became ready")


def burst_trees(
    baseline: str | None,
    redis_url_for: dict[str, str],
    redis_pid: int,
    clients: int,
    per_client: int,
    api_workers: int | None,
    warm_up: int,
) -> list[BurstResult]:
    """The baseline revision first (if any), then this tree, one after the other."""
    root = Path(tempfile.mkdtemp(prefix="shears-burst-"))
    results = []
    try:
        if baseline:
            tree = extract_tree(baseline, root / "baseline-tree")
            results.append(
                run_burst(tree, baseline, redis_url_for["baseline"], redis_pid, root / "baseline",
                          clients, per_client, None, warm_up)
            )  # fmt: skip
        results.append(
            run_burst(ROOT, "this tree", redis_url_for["this"], redis_pid, root / "this",
                      clients, per_client, api_workers, warm_up)
        )  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(results: list[BurstResult], clients: int) -> list[str]:
    lines = [
        f"| tree | API processes | jobs | jobs/s (goal >= {GOAL_JOBS_S:.0f}) | p50 ms | "
        f"p99 ms (goal <= {GOAL_P99_MS:.0f}) | goal met | CPU ms/job: API, load generator, "
        "redis | Redis commands/job | jobs/s on idle cores (derived) | clients' mean ms, "
        "lowest-highest |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        met = r.jobs_s >= GOAL_JOBS_S and r.percentile(99) <= GOAL_P99_MS
        lines.append(
            f"| {r.tree} | {r.api_processes} | {r.jobs} | {r.jobs_s:.0f} | "
            f"{r.percentile(50):.1f} | "
            f"{r.percentile(99):.1f} | {'yes' if met else 'no'} | "
            f"{', '.join(f'{r.cpu_ms_per_job(w):.2f}' for w in r.cpu_s)} | "
            f"{r.redis_commands / r.jobs:.2f} | "
            f"{r.capacity_jobs_s:.0f} | "
            f"{min(r.client_means_ms):.0f}-{max(r.client_means_ms):.0f} |"
        )
    return lines
