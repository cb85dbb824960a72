"""Fixtures shared by every test package: real processes (tests/support/fixtures.py)."""

import pytest

pytest_plugins = ["tests.support.fixtures"]

# Fixtures that start real processes (redis-server, PostgreSQL, uvicorn, Celery, a stack): a
# test that uses one is an integration test, so `make test-fast` (`-m "not integration"`)
# leaves it out without each file having to remember the marker.
_PROCESS_FIXTURES = frozenset(
    {
        "processes", "redis_server", "postgres_url", "start_worker", "start_api",
        "start_serve", "make_stack", "stack", "shared_stack", "http", "onnx_model", "server",
        "keyed_server", "s3_server",
    }
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        # tests/storage runs on both job stores and both blob stores.
        on_server = params.get("store") == "postgresql" or params.get("blob_store") == "s3"
        if on_server or _PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
