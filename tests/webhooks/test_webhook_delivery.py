"""A job with a callback gets one signed POST when it ends, retried until a receiver takes it.

One stack for the module: `shears api` and a worker that only validates uploads, so jobs stay
queued until cancelled; a cancel ends a job at once, which is all these tests need to make a
webhook owed. Private callback addresses are allowed: the receiver listens on 127.0.0.1.
Jobs that run to `succeeded` and `failed` are in test_outbox_survives_restarts.py.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from webhook_http import FAST_WEBHOOKS, create_job_with_callback, wait_for_callback
from webhook_receiver import Receiver, new_secret, signature_verifies

from tests.support.api_client import upload_model, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import scoped_registry
from tests.support.shears import Stack, shears_env, start_api, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("webhook-stack")
    env = shears_env(root / "data", **FAST_WEBHOOKS)
    with scoped_registry(root / "logs") as registry:
        worker = start_worker(registry, env, queues=("shears.inspect",))
        api = start_api(registry, env)
        yield Stack(env=env, data_dir=root / "data", api=api, workers=[worker])


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def model_id(stack: Stack, onnx_model_file: Path) -> str:
    with stack.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
    return str(model["id"])


def cancelled_job_with_callback(
    http: httpx.Client, model_id: str, url: str, secret: str
) -> dict[str, Any]:
    job = create_job_with_callback(http, model_id, url, secret)
    response = http.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text
    return job


def test_a_job_shows_its_callback_pending_until_it_ends(
    http: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    job = create_job_with_callback(http, model_id, receiver.url("/waiting"), new_secret())
    assert job["status"] == "queued"
    assert job["callback_url"] == receiver.url("/waiting")
    assert job["callback"] == {
        "state": "pending",
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": None,
        "delivered_at": None,
    }
    assert http.get(f"/v1/jobs/{job['id']}").json() == job
    assert receiver.at("/waiting") == []


def test_a_cancelled_job_gets_one_signed_post_of_job_cancelled(
    http: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    secret = new_secret()
    job = cancelled_job_with_callback(http, model_id, receiver.url("/cancelled"), secret)

    done = wait_for_callback(http, job["id"])
    [post] = receiver.at("/cancelled")
    assert (done["callback"]["state"], done["callback"]["attempts"]) == ("delivered", 1)
    assert done["callback"]["delivered_at"] is not None
    assert signature_verifies(secret, post)
    assert not signature_verifies(new_secret(), post)
    assert post.headers["content-type"] == "application/json"
    assert post.headers["user-agent"].startswith("shears/")
    assert post.headers["webhook-id"].startswith("msg_")
    event = post.json()
    assert event["type"] == "job.cancelled"
    assert (event["data"]["id"], event["data"]["status"]) == (job["id"], "cancelled")
    assert event["data"]["spec"] == done["spec"]


def test_a_receiver_failing_twice_gets_three_attempts_of_the_same_webhook(
    http: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    receiver.answer("/flaky", 500, 503)
    secret = new_secret()
    job = cancelled_job_with_callback(http, model_id, receiver.url("/flaky"), secret)

    done = wait_for_callback(http, job["id"], states=("delivered",))
    posts = receiver.at("/flaky")
    assert len(posts) == 3
    assert len({p.headers["webhook-id"] for p in posts}) == 1
    assert len({p.body for p in posts}) == 1  # the same bytes every time
    assert all(signature_verifies(secret, p) for p in posts)
    assert done["callback"]["attempts"] == 3
    assert done["callback"]["last_error"] is None


def test_a_receiver_that_is_down_is_retried_until_it_comes_up(
    http: httpx.Client, model_id: str
) -> None:
    later = Receiver()  # its port is chosen, nothing listens on it yet
    secret = new_secret()
    job = cancelled_job_with_callback(http, model_id, later.url("/late"), secret)

    waiting = wait_for_callback(http, job["id"], states=("pending",), attempts=2)
    assert waiting["callback"]["last_error"]  # e.g. connection refused
    later.start()
    try:
        done = wait_for_callback(http, job["id"], states=("delivered",))
        [post] = later.at("/late")
    finally:
        later.stop()
    assert done["callback"]["attempts"] >= 3
    assert signature_verifies(secret, post)


def test_a_receiver_answering_410_gone_is_not_retried(
    http: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    receiver.answer("/gone", 410)
    job = cancelled_job_with_callback(http, model_id, receiver.url("/gone"), new_secret())

    done = wait_for_callback(http, job["id"])
    assert done["callback"]["state"] == "failed"
    assert done["callback"]["attempts"] == 1
    assert "410" in done["callback"]["last_error"]
    assert len(receiver.at("/gone")) == 1


def test_the_callback_secret_never_appears_in_responses_or_logs(
    stack: Stack, http: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    secret = new_secret()
    seen: list[str] = []
    body: dict[str, Any] = {
        "model_id": model_id,
        "spec": fast_spec(),
        "callback_url": receiver.url("/quiet"),
        "callback_secret": secret,
    }
    created = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "quiet-1"})
    seen.append(created.text)
    seen.append(http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "quiet-1"}).text)
    job_id = created.json()["id"]
    seen.append(http.post(f"/v1/jobs/{job_id}/cancel").text)
    wait_for_callback(http, job_id)
    seen += [http.get(f"/v1/jobs/{job_id}").text, http.get("/v1/jobs").text]
    seen.append(http.get(f"/v1/jobs/{job_id}/events").text)
    seen += [p.body.decode() for p in receiver.at("/quiet")]
    seen += [stack.api.process.log(), *(w.log() for w in stack.workers)]

    encoded = secret.removeprefix("whsec_")
    assert not [text for text in seen if encoded in text]
