"""A `shears serve` with an API key (embedded broker, real worker) for the generated clients,
and the committed spec they are generated from."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.processes import REPO_ROOT, scoped_registry
from tests.support.shears import ApiServer, shears_env, start_serve

COMMITTED_SPEC = REPO_ROOT / "openapi.json"
# A plain key in SHEARS_API_KEYS is hashed on load; clients send it as a bearer token.
API_KEY = "shk_generated-client-test-key"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("generated-client-server")
    env = shears_env(root / "data", api_keys=json.dumps({API_KEY: "acme"}))
    with scoped_registry(root / "logs") as registry:
        yield start_serve(registry, env)


@pytest.fixture(scope="session")
def committed_spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(COMMITTED_SPEC.read_text())
    return document
