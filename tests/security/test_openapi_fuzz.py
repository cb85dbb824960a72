"""Schemathesis drives every operation of the published OpenAPI document with generated
requests, valid and not: whatever a client sends, the answer is never a 5xx."""

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

# Bounded: examples per operation, and the whole run (2 cores shared with other suites).
MAX_EXAMPLES = 6
RUN_TIMEOUT_S = 150


def test_generated_requests_to_every_operation_never_get_a_5xx(
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[dict[str, str]], ApiServer],
    tmp_path: Path,
) -> None:
    # No worker: uploads stay `validating` after a short wait, jobs stay queued. The API
    # alone must still answer every request with a 2xx or a 4xx problem.
    api = start_api(shears_env(inspect_wait_s=0.2, max_upload_bytes=1 << 20))
    schemathesis = Path(sys.executable).with_name("schemathesis")
    argv = [
        str(schemathesis), "run", f"{api.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",  # 2 trips a CPython 3.11 AST race in hypothesis
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated is not None and generated[1] == generated[2], run.stdout[-3000:]
    assert int(generated[1]) >= 100  # every operation was exercised, not skipped
