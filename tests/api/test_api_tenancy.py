"""With API keys configured, each key sees only its own tenant's resources."""

import io
import json
from collections.abc import Callable

import numpy as np
from api_http import assert_problem

from tests.support.shears import ApiServer


def test_keys_separate_tenants_and_other_tenants_ids_are_404(
    start_api: Callable[[dict[str, str]], ApiServer], shears_env: Callable[..., dict[str, str]]
) -> None:
    keys = {"key-of-acme": "acme", "key-of-globex": "globex"}
    api = start_api(shears_env(api_keys=json.dumps(keys)))
    payload = io.BytesIO()
    np.savez(payload, x=np.zeros((4, 2)))
    acme = api.client(headers={"Authorization": "Bearer key-of-acme"})
    globex = api.client(headers={"Authorization": "Bearer key-of-globex"})
    with acme, globex, api.client() as anonymous:
        response = acme.post("/v1/datasets", files={"file": ("d.npz", payload.getvalue())})
        assert response.status_code == 201, response.text
        dataset_id = response.json()["id"]
        assert acme.get(f"/v1/datasets/{dataset_id}").status_code == 200
        assert_problem(globex.get(f"/v1/datasets/{dataset_id}"), 404)
        assert globex.get("/v1/datasets").json()["items"] == []
        problem = assert_problem(anonymous.get("/v1/datasets"), 401, "unauthorized")
        assert anonymous.get("/v1/datasets").headers["www-authenticate"] == "Bearer"
        assert "Bearer" in problem["detail"]
        assert anonymous.get("/healthz").status_code == 200
