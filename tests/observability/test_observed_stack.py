"""A real stack (private Redis, the API, a Celery worker) seen as an operator sees it: the
/metrics scrape and the JSON log lines, after one job that succeeded and one that failed."""

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.metrics import JOB_ERROR_CODES
from tests.support import shears
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import TORCHSCRIPT_INPUT_SHAPES, fast_spec
from tests.support.processes import ManagedProcess, scoped_registry
from tests.support.redis_server import RedisServer
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

REQUEST_ID = "ci-build-42.job_1"
KEY = f"shears_{secrets.token_hex(16)}"


@dataclass
class Observed:
    api: ApiServer
    worker: ManagedProcess
    redis: RedisServer
    tenant: str
    succeeded: dict[str, Any]
    failed: dict[str, Any]
    create_response: httpx.Response

    def client(self) -> httpx.Client:
        return self.api.client(headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory, torchscript_model_file: Path
) -> Iterator[Observed]:
    root = tmp_path_factory.mktemp("observed")
    with scoped_registry(root / "logs") as registry:
        redis = RedisServer(registry=registry, data_dir=root / "redis").start()
        env = shears.shears_env(
            root / "data", broker_url=redis.url, api_keys=json.dumps({KEY: "acme"})
        )
        worker = shears.start_worker(registry, env)
        api = shears.start_api(registry, env)
        with api.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
            model = wait_for_model(http, upload_model(http, torchscript_model_file)["id"])
            good = fast_spec(input_shapes=TORCHSCRIPT_INPUT_SHAPES)
            response = http.post(
                "/v1/jobs",
                json={"model_id": model["id"], "spec": good},
                headers={"X-Request-ID": REQUEST_ID},
            )
            assert response.status_code == 202, response.text
            succeeded = wait_for_job(http, response.json()["id"])
            # TorchScript keeps no input shapes for the API to check: a wrong feature size
            # passes createJob and fails in the engine.
            bad = fast_spec(input_shapes={"input": [1, 7]})
            failed = wait_for_job(http, create_job(http, model["id"], bad)["id"])
        yield Observed(api, worker, redis, "acme", succeeded, failed, response)


def test_the_two_jobs_ended_as_the_scrape_will_count_them(observed: Observed) -> None:
    assert observed.succeeded["status"] == "succeeded", observed.succeeded
    assert observed.failed["status"] == "failed", observed.failed
    assert observed.failed["error"]["code"] in JOB_ERROR_CODES


def test_metrics_families_have_help_and_type_and_count_finished_jobs(observed: Observed) -> None:
    with observed.client() as http:
        families = parse_exposition(http.get("/metrics").text)

    for name, kind in {
        "shears_jobs": "gauge",
        "shears_jobs_queued": "gauge",
        "shears_jobs_failed": "gauge",
        "shears_job_stage_duration_seconds": "histogram",
        "shears_job_duration_seconds": "histogram",
        "shears_queue_depth": "gauge",
        "shears_queue_depth_up": "gauge",
        "shears_http_requests_total": "counter",
    }.items():
        assert families[name].kind == kind and families[name].help, name
    jobs = families["shears_jobs"]
    assert jobs.value(status="succeeded") == 1 and jobs.value(status="failed") == 1
    code = observed.failed["error"]["code"]
    assert families["shears_jobs_failed"].value(code=code) == 1
    duration = families["shears_job_duration_seconds"]
    assert duration.value("_count", status="succeeded") == 1
    assert duration.value("_count", status="failed") == 1
    stages = families["shears_job_stage_duration_seconds"]
    assert stages.value("_count", stage="queued") == 2  # both jobs waited, however briefly
    assert stages.value("_count", stage="load") >= 1


def test_histogram_buckets_are_cumulative_and_end_at_the_count(observed: Observed) -> None:
    with observed.client() as http:
        families = parse_exposition(http.get("/metrics").text)

    for name in ("shears_job_stage_duration_seconds", "shears_job_duration_seconds"):
        family = families[name]
        for series in family.series_labels():
            buckets = family.buckets(**series)
            counts = [n for _, n in buckets]
            assert counts == sorted(counts), (name, series, buckets)
            assert buckets[-1][0] == "+Inf"
            assert counts[-1] == family.value("_count", **series)


def test_queue_depth_comes_from_redis(observed: Observed) -> None:
    with observed.client() as http:
        families = parse_exposition(http.get("/metrics").text)

    assert families["shears_queue_depth_up"].value() == 1
    depth = families["shears_queue_depth"]
    assert depth.value(queue="shears.jobs") == 0 and depth.value(queue="shears.inspect") == 0


def test_no_label_names_a_job_a_model_or_a_tenant(observed: Observed) -> None:
    with observed.client() as http:
        text = http.get("/metrics").text
    labels = set(re.findall(r'="([^"]*)"', text))
    for private in (observed.succeeded["id"], observed.failed["id"], observed.tenant, KEY):
        assert private not in text
    assert not any(re.match(r"(job|mdl|ds)_", value) for value in labels), labels


def test_the_response_returns_the_request_id_and_a_new_one_when_none_is_sane(
    observed: Observed,
) -> None:
    assert observed.create_response.headers["X-Request-ID"] == REQUEST_ID
    with observed.client() as http:
        made = http.get("/healthz", headers={"X-Request-ID": "not a sane id"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])


def test_every_log_line_of_api_and_worker_is_json(observed: Observed) -> None:
    for process in (observed.api.process, observed.worker):
        lines = process.log().splitlines()
        assert lines, process.name
        for line in lines:
            document = json.loads(line)
            assert {"ts", "level", "logger", "message"} <= document.keys(), line


def test_api_lines_of_the_request_carry_its_id_and_the_job_it_created(
    observed: Observed,
) -> None:
    lines = _json_lines(observed.api.process)
    ours = [line for line in lines if line.get("request_id") == REQUEST_ID]
    access = [line for line in ours if line["logger"] == "shears.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [("POST", "/v1/jobs", 202)]
    assert any(line.get("job_id") == observed.succeeded["id"] for line in ours)


def test_worker_lines_about_the_job_carry_request_id_job_id_and_attempt(
    observed: Observed,
) -> None:
    job_id = observed.succeeded["id"]
    about = [line for line in _json_lines(observed.worker) if line.get("job_id") == job_id]

    assert any("claimed" in line["message"] for line in about)
    assert any("succeeded" in line["message"] for line in about)
    for line in about:
        assert (line["request_id"], line["attempt"]) == (REQUEST_ID, 1), line
        assert line["tenant"] != observed.tenant


def test_the_api_key_is_in_no_log_line(observed: Observed) -> None:
    for process in (observed.api.process, observed.worker):
        assert KEY not in process.log() and KEY[7:23] not in process.log()


def test_broker_down_leaves_queue_depth_out_and_the_scrape_answers(observed: Observed) -> None:
    # Last in this module: it stops the module's Redis.
    observed.redis.kill()
    with observed.client() as http:
        response = http.get("/metrics")

    assert response.status_code == 200
    families = parse_exposition(response.text)
    assert families["shears_queue_depth_up"].value() == 0
    assert "shears_queue_depth" not in families
    assert families["shears_jobs"].value(status="succeeded") == 1


def _json_lines(process: ManagedProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.log().splitlines()]


# -- a small parser of the Prometheus text format (prometheus_client is not in the lock) ---
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    name: str
    kind: str = ""
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] | None = None

    def value(self, suffix: str = "", **labels: str) -> float:
        matches = [v for n, ls, v in self.samples or [] if n == self.name + suffix and ls == labels]
        assert len(matches) == 1, (self.name + suffix, labels, self.samples)
        return matches[0]

    def series_labels(self) -> list[dict[str, str]]:
        return [ls for n, ls, _ in self.samples or [] if n == f"{self.name}_count"]

    def buckets(self, **labels: str) -> list[tuple[str, float]]:
        return [
            (ls["le"], v)
            for n, ls, v in self.samples or []
            if n == f"{self.name}_bucket" and {k: x for k, x in ls.items() if k != "le"} == labels
        ]


def parse_exposition(text: str) -> dict[str, Family]:
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, what, name, rest = line.split(" ", 3)
            family = families.setdefault(name, Family(name, samples=[]))
            if what == "HELP":
                family.help = rest
            else:
                family.kind = rest
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = families.get(name) or families[base]
        parsed = dict(_LABEL.findall(labels or ""))
        assert family.samples is not None
        family.samples.append((name, parsed, float(value)))
    return families
