"""The engine's public surface and its import boundary."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pruning
from pruning.errors import ERROR_CODES, EngineError


def test_public_names_are_exported() -> None:
    for name in ("inspect_model", "prune", "PruneResult", "EngineError"):
        assert name in pruning.__all__
    assert set(pruning.__all__) <= set(dir(pruning))


def test_prune_signature_is_what_the_worker_calls() -> None:
    params = list(inspect.signature(pruning.prune).parameters)
    assert params == [
        "model_path",
        "spec",
        "out_dir",
        "fmt",
        "progress",
        "datasets",
        "device",
        "model_name",
        "digests",
        "measure_bytes",
    ]
    assert list(inspect.signature(pruning.inspect_model).parameters) == [
        "path",
        "fmt",
        "measure_bytes",
    ]


def test_error_codes_are_stable_and_distinct() -> None:
    assert len(set(ERROR_CODES)) == len(ERROR_CODES)
    assert {
        "invalid_model",
        "unsupported_model",
        "unsupported_operator",
        "invalid_spec",
        "unsupported",
        "layer_pattern_unmatched",
        "data_mismatch",
    } <= set(ERROR_CODES)
    assert EngineError("x").to_dict() == {"code": "engine_error", "message": "x"}


def test_engine_imports_no_web_queue_or_service_packages() -> None:
    """The engine reads the spec through the contract (``api_schemas``, pydantic only: its one
    definition), and nothing of the API, the queue or the stores."""
    code = (
        "import sys, pruning, pruning.cli; "
        "bad = [m for m in ('fastapi', 'starlette', 'celery', 'service', 'worker', 'storage') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
