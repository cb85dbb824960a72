"""While the broker is down the API says so (503, Retry-After), never 500, and leaves nothing
behind that could run later; once it is back, the client's retry works."""

from collections.abc import Callable
from pathlib import Path

from api_http import assert_problem, create_job, upload_model

from tests.support.models import fast_spec
from tests.support.processes import ManagedProcess, free_port
from tests.support.redis_server import RedisServer
from tests.support.shears import ApiServer


def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(
    start_api: Callable[[dict[str, str]], ApiServer], shears_env: Callable[..., dict[str, str]]
) -> None:
    api = start_api(shears_env(broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    with api.client() as http:
        problem = assert_problem(http.get("/readyz"), 503, "not_ready")
    assert problem["checks"]["database"] == "ok"
    assert problem["checks"]["blob_store"] == "ok"
    assert problem["checks"]["broker"] != "ok"
    assert "broker" in problem["detail"]


def test_create_job_is_503_with_retry_after_and_the_retry_creates_it(
    redis_server: RedisServer,
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[dict[str, str]], ApiServer],
    start_worker: Callable[..., ManagedProcess],
    model_files: dict[str, Path],
) -> None:
    env = shears_env(broker_url=redis_server.url)
    start_worker(env, queues=("shears.inspect",))
    api = start_api(env)
    with api.client() as http:
        model = upload_model(http, model_files["onnx"], expect=201)
        redis_server.stop()

        key = {"Idempotency-Key": "retry-me"}
        body = {"model_id": model["id"], "spec": fast_spec()}
        response = http.post("/v1/jobs", json=body, headers=key)
        problem = assert_problem(response, 503, "broker_unavailable")
        assert int(response.headers["retry-after"]) > 0
        assert "retry" in problem["detail"]
        assert http.get("/v1/jobs").json()["items"] == []  # nothing that could run later
        assert_problem(http.get("/readyz"), 503)

        redis_server.start()
        job = create_job(http, model["id"], fast_spec(), headers=key)
        assert job["status"] == "queued"
        assert [j["id"] for j in http.get("/v1/jobs").json()["items"]] == [job["id"]]
        assert http.get("/readyz").status_code == 200


def test_upload_is_503_and_leaves_nothing_while_the_broker_is_down(
    start_api: Callable[[dict[str, str]], ApiServer],
    shears_env: Callable[..., dict[str, str]],
    model_files: dict[str, Path],
) -> None:
    env = shears_env(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    api = start_api(env)
    with api.client() as http, model_files["onnx"].open("rb") as f:
        response = http.post("/v1/models", files={"file": f})
        assert_problem(response, 503, "broker_unavailable")
        assert response.headers["retry-after"]
        assert http.get("/v1/models").json()["items"] == []
    blobs = Path(env["SHEARS_DATA_DIR"]) / "blobs" / "sha256"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []


def test_create_job_for_a_model_still_validating_is_409(
    start_api: Callable[[dict[str, str]], ApiServer],
    shears_env: Callable[..., dict[str, str]],
    model_files: dict[str, Path],
) -> None:
    api = start_api(shears_env(inspect_wait_s=0))  # embedded broker, no worker
    with api.client() as http:
        model = upload_model(http, model_files["onnx"], expect=202)
        response = http.post("/v1/jobs", json={"model_id": model["id"], "spec": fast_spec()})
        assert_problem(response, 409, "model_validating")
