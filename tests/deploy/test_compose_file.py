"""docker-compose.yml against the Compose Specification's JSON Schema (no Docker engine runs
on the development machines), plus the promises RELIABILITY.md makes about it."""

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from worker.celery_app import SOFT_SHUTDOWN_TIMEOUT_S

REPO_ROOT = Path(__file__).resolve().parents[2]
# The Compose Specification's JSON Schema (draft-07), kept in the repository so a clone alone
# passes: compose-spec/compose-spec, schema/compose-spec.json (Apache-2.0), commit
# 170098ba07d9f53c383a41bfd4c5166b0a4529a6.
SCHEMA = Path(__file__).resolve().parent / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text()))


def test_compose_file_fits_the_compose_specification(compose: dict[str, Any]) -> None:
    assert SCHEMA.is_file(), f"the Compose schema is expected at {SCHEMA}"
    # The schema is draft-07 (its README); its $schema URL lacks the "#" jsonschema expects.
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_redis_keeps_an_append_only_file_and_never_evicts(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert "healthcheck" in compose["services"]["redis"]


def test_workers_scale_and_outlast_celerys_soft_shutdown(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["build"]["target"] == "worker"
    assert worker["environment"]["REMAP_SIGTERM"] == "SIGQUIT"
    assert _seconds(worker["stop_grace_period"]) > SOFT_SHUTDOWN_TIMEOUT_S + 30


def test_api_and_workers_share_the_broker_database_and_bucket_but_no_disk(
    compose: dict[str, Any],
) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api["build"]["target"] == "api"
    assert "healthcheck" in api and "8000" in api["ports"][0]
    shared = ("SHEARS_BROKER_URL", "SHEARS_DATABASE_URL", "SHEARS_DATA_DIR", "SHEARS_BLOB_URL")
    for key in (*shared, "SHEARS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert api["environment"][key] == worker["environment"][key], key
    assert api["environment"]["SHEARS_HOST"] == "0.0.0.0"
    assert set(api["volumes"]) == {"shears-data:/data"} and "shears-data" in compose["volumes"]
    assert "volumes" not in worker, "a worker on another host has no share of the API's disk"


def test_the_bucket_is_made_before_the_api_or_a_worker_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    bucket = services["api"]["environment"]["SHEARS_BLOB_URL"].removeprefix("s3://").split("/")[0]
    assert re.fullmatch(r"minio/minio:RELEASE\.[0-9TZ-]+", services["minio"]["image"])
    assert "healthcheck" in services["minio"] and "ports" not in services["minio"]
    init = services["minio-init"]
    assert f"mc mb --ignore-existing store/{bucket}" in " ".join(init["command"])
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["minio-init"]["condition"]
        assert condition == "service_completed_successfully", name
    endpoint = services["api"]["environment"]["SHEARS_S3_ENDPOINT_URL"]
    assert endpoint == "http://minio:9000"


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"expected a duration in seconds, got {duration!r}"
    return float(match.group(1))
