"""createJob refuses callback URLs that would make the server call inside its own network,
and callbacks without a usable secret: 422 problem+json naming the field.

An API alone (no worker, private addresses not allowed, the default): every check here runs
before the model is looked up, so no model is needed.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from webhook_receiver import new_secret

from tests.support.models import fast_spec
from tests.support.processes import scoped_registry
from tests.support.shears import ApiServer, shears_env, start_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("refusals")
    with scoped_registry(root / "logs") as registry:
        yield start_api(registry, shears_env(root / "data"))


@pytest.fixture
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client


def job_body(**callback: Any) -> dict[str, Any]:
    return {"model_id": "mdl_0000000000000000", "spec": fast_spec(), **callback}


def problem_fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.1/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_internal_callback_urls_are_refused(http: httpx.Client, url: str) -> None:
    response = http.post("/v1/jobs", json=job_body(callback_url=url, callback_secret=new_secret()))
    fields = problem_fields(response)
    assert list(fields) == ["callback_url"]
    assert "address" in fields["callback_url"]
    assert response.json()["code"] == "callback_url_refused"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "http"),
        ("http://user:pw@example.com/hook", "credentials"),
        ("http://nothing.invalid/hook", "resolve"),
        ("http://example.com/" + "a" * 2048, "2048"),
    ],
)
def test_unusable_callback_urls_are_refused(http: httpx.Client, url: str, reason: str) -> None:
    response = http.post("/v1/jobs", json=job_body(callback_url=url, callback_secret=new_secret()))
    fields = problem_fields(response)
    assert reason in fields["callback_url"]


def test_a_callback_url_without_its_secret_is_refused(http: httpx.Client) -> None:
    fields = problem_fields(
        http.post("/v1/jobs", json=job_body(callback_url="https://example.com/h"))
    )
    assert "required" in fields["callback_secret"]


def test_a_malformed_secret_is_refused_without_being_echoed(http: httpx.Client) -> None:
    secret = "whsec_c2hvcnQ="  # base64 of 5 bytes: under the spec's 24
    response = http.post(
        "/v1/jobs", json=job_body(callback_url="https://example.com/h", callback_secret=secret)
    )
    fields = problem_fields(response)
    assert "24..64" in fields["callback_secret"]
    assert "c2hvcnQ" not in response.text
